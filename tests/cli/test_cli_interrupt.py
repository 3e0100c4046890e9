"""Ctrl-C in the middle of ``hailuo batch``: nothing that had not left is submitted, and the report adds up.

The batches run as subprocesses against a simulator subprocess whose videos take several seconds, paced at one
request per second so that most items are still waiting for their turn when Ctrl-C comes.
"""

from __future__ import annotations

import re
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cliharness import SimServer, command, simulator, started, wait_for

SLOW = {"generation": {"kind": "uniform", "low": 6.0, "high": 9.0}, "video_bytes": 4096, "seed": 11}


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with simulator(SLOW) as sim:
        yield sim


def _batch(tmp_path: Path, name: str, count: int) -> list[str]:
    prompts = [f"{name} {tmp_path.name} item {i}" for i in range(count)]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return prompts


def test_the_first_ctrl_c_sends_nothing_more_and_reports_what_was_not_submitted(
    server: SimServer, tmp_path: Path
) -> None:
    prompts = _batch(tmp_path, "paced", 20)
    args = ("batch", "p.txt", "--out", "out", "--rps", "1", "--base-url", server.apimart, "--api-key", "k")
    with started(command(*args), cwd=tmp_path) as process:
        wait_for(lambda: sum(server.created(prompts)) >= 1, process, timeout=10)
        time.sleep(2)
        before = sum(server.created(prompts))
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, stderr = process.communicate(timeout=10)
        took = time.monotonic() - interrupted
    after = sum(server.created(prompts))
    assert process.returncode == 130, stderr
    assert took < 4, f"the first Ctrl-C took {took:.1f}s to end the batch"
    # At one request a second, one POST can be on the wire when Ctrl-C comes (and one may land while the count
    # above is read): nothing else may leave.
    assert after - before <= 2, f"{after - before} tasks were created after Ctrl-C"
    assert after < len(prompts)
    # The report agrees with the simulator: every created task is listed as running, every other item as not
    # submitted.
    running = re.search(r"(\d+) item\(s\) still running", stderr)
    not_submitted = re.search(r"(\d+) item\(s\) not submitted", stderr)
    assert running is not None and not_submitted is not None, stderr
    assert int(running.group(1)) == after
    assert int(not_submitted.group(1)) == len(prompts) - after
    listed = re.findall(r"^  #\d+  (task_\S+)", stderr, flags=re.MULTILINE)
    assert sorted(listed) == sorted(t["task_id"] for t in server.tasks() if t["prompt"] in prompts)
    resume = shlex.split(stderr.split("Resume with:\n", 1)[1].splitlines()[-1])
    assert resume[3:] == ["batch", "p.txt", "--out", "out", "--rps", "1", "--base-url", server.apimart]
    assert "APIMART_API_KEY" in stderr


def test_a_second_ctrl_c_exits_at_once_while_a_submit_is_on_the_wire(server: SimServer, tmp_path: Path) -> None:
    prompts = _batch(tmp_path, "patient", 4)
    server.configure({"faults": {"latency": 5.0, "routes": ["submit"]}})
    try:
        args = ("batch", "p.txt", "--out", "out", "--base-url", server.apimart, "--api-key", "k")
        with started(command(*args), cwd=tmp_path) as process:
            # Every submit waits five seconds for its answer: the first Ctrl-C waits for them (they may be paid for).
            wait_for(lambda: sum(server.submits(prompts)) >= 1, process, timeout=10)
            process.send_signal(signal.SIGINT)
            time.sleep(0.5)
            assert process.poll() is None
            process.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
            _, stderr = process.communicate(timeout=10)
            assert time.monotonic() - interrupted < 2
    finally:
        server.configure({"faults": {"latency": 0.0, "routes": ["submit", "status", "retrieve", "upload"]}})
    assert process.returncode == 130
    assert "stopping" in stderr
    assert "interrupted again" in stderr
