"""The ``hailuo`` command end to end: ``python -m hailuo_async ...`` subprocesses against a simulator subprocess.

Usage errors (bad files, missing key, bad options) run ``hailuo_async._cli.main(argv)`` in process: they never
reach the network. Everything else goes through the real entry point, including Ctrl-C and ``kill -9`` in the
middle of a batch followed by a resume that must not pay for anything twice.
"""

from __future__ import annotations

import json
import os
import pty
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from hailuo_async._cli import main

from .conftest import SECRET

REPO = Path(__file__).resolve().parents[1]
SIM_CONFIG = '{"generation": {"kind": "uniform", "low": 0.2, "high": 0.6}, "video_bytes": 4096, "seed": 3}'
FAST = ("--first-check", "0.2")
"""Poll soon: the simulator's tasks take a fraction of a second."""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-W", "error", "-m", "hailuo_async", *args]


@dataclass
class SimServer:
    """A simulator subprocess and a way to read its counters."""

    urls: dict[str, str]

    @property
    def apimart(self) -> str:
        return self.urls["apimart"]

    def _get(self, route: str) -> Any:
        api = urlsplit(self.urls["stats"])
        connection = HTTPConnection(api.netloc, timeout=5)
        try:
            connection.request("GET", route)
            return json.load(connection.getresponse())
        finally:
            connection.close()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._get("/_sim/stats")
        return stats

    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self._get("/_sim/tasks")
        return tasks

    def submits(self, prompts: list[str]) -> list[int]:
        counts = self.stats()["submits_by_prompt"]
        return [counts.get(p, 0) for p in prompts]

    def created(self, prompts: list[str]) -> list[int]:
        counts = self.stats()["tasks_created_by_prompt"]
        return [counts.get(p, 0) for p in prompts]


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    process = subprocess.Popen(
        [sys.executable, "-m", "hailuo_async.simulator", "--config", SIM_CONFIG],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        yield SimServer(urls)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture
def tag() -> str:
    """Makes this test's prompts unique on the shared simulator."""
    return uuid.uuid4().hex[:8]


def hailuo(
    *args: str, cwd: Path, stdin: str | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args),
        cwd=cwd,
        env=env or _env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def against(server: SimServer, *, key: str = "test") -> tuple[str, ...]:
    return ("--base-url", server.apimart, "--api-key", key, *FAST)


def videos(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.mp4"))


def frame(path: Path, size: tuple[int, int] = (640, 360)) -> Path:
    Image.new("RGB", size, (30, 90, 160)).save(path, format="PNG")
    return path


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


# -- batch formats --------------------------------------------------------------------------------------------


def test_txt_batch_skips_comments_and_blank_lines_and_downloads_every_video(
    server: SimServer, tmp_path: Path, tag: str
) -> None:
    prompts = [f"{tag} a cat on the grass [Push in]", f"{tag} rain over a harbour [Pan left, Pedestal up]"]
    batch = tmp_path / "prompts.txt"
    batch.write_text(f"# my prompts\n\n{prompts[0]}\n   \n  # indented comment\n{prompts[1]}  \n", encoding="utf-8")
    result = hailuo("batch", "prompts.txt", "--out", "videos", *against(server), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(videos(tmp_path / "videos")) == 2
    assert (tmp_path / "videos" / ".hailuo-journal.sqlite").is_file()
    assert server.submits(prompts) == [1, 1]
    assert "done" in result.stdout
    assert "2 of 2" in result.stdout
    assert "not resumable" not in result.stderr


def test_jsonl_batch_with_json_output(server: SimServer, tmp_path: Path, tag: str) -> None:
    items = [
        {"prompt": f"{tag} one", "duration": 10, "resolution": "768P", "watermark": True},
        {"prompt": f"{tag} two", "prompt_optimizer": False, "fast_pretreatment": True},
        f"{tag} three",
    ]
    (tmp_path / "batch.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n\n", encoding="utf-8")
    result = hailuo("batch", "batch.jsonl", "--out", "out", "--json", *against(server), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    for record in records:
        assert record["status"] == "ok"
        assert record["task_id"]
        assert record["video_url"].startswith("http://127.0.0.1:")
        assert Path(record["path"]).is_file()
        assert record["error_type"] is None
        assert record["error_message"] is None
    sent = {t["prompt"]: t["request"] for t in server.tasks() if t["prompt"].startswith(tag)}
    assert sent[f"{tag} one"]["duration"] == 10
    assert sent[f"{tag} one"]["resolution"] == "768p"
    assert sent[f"{tag} one"]["watermark"] is True
    assert sent[f"{tag} two"]["prompt_optimizer"] is False
    assert sent[f"{tag} two"]["fast_pretreatment"] is True
    assert "watermark" not in sent[f"{tag} three"]


def test_csv_batch(server: SimServer, tmp_path: Path, tag: str) -> None:
    (tmp_path / "batch.csv").write_text(
        "prompt,duration,watermark,prompt_optimizer\n"
        f'"{tag} a fox, in the snow [Tracking shot]",10,yes,\n'
        f"{tag} a lighthouse,,0,FALSE\n"
        ",,,\n",
        encoding="utf-8",
    )
    result = hailuo("batch", "batch.csv", "--json", *against(server), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not resumable" in result.stderr  # neither --out nor --journal
    assert [r["status"] for r in json_lines(result.stdout)] == ["ok", "ok"]
    sent = {t["prompt"]: t["request"] for t in server.tasks() if t["prompt"].startswith(tag)}
    fox = sent[f"{tag} a fox, in the snow [Tracking shot]"]
    assert fox["duration"] == 10
    assert fox["watermark"] is True
    assert "prompt_optimizer" not in fox
    assert sent[f"{tag} a lighthouse"]["watermark"] is False
    assert sent[f"{tag} a lighthouse"]["prompt_optimizer"] is False


def test_batch_from_stdin(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompts = [f"{tag} stdin one", f"{tag} stdin two"]
    text = "# from a pipe\n" + "\n".join(prompts) + "\n"
    result = hailuo("batch", "-", "--journal", "j.sqlite", "--json", *against(server), cwd=tmp_path, stdin=text)
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == 2
    assert server.submits(prompts) == [1, 1]
    lines = json.dumps({"prompt": f"{tag} stdin jsonl", "duration": 5})
    result = hailuo("batch", "-", "--format", "jsonl", "--json", *against(server), cwd=tmp_path, stdin=lines)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[0]["prompt"] == f"{tag} stdin jsonl"


# -- bad input: nothing is submitted --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "line", "field"),
    [
        ("bad.txt", "# header\n{tag} fine\n\n{tag} spins [Spin around]\n", 4, "prompt"),
        ("bad.jsonl", '{{"prompt": "{tag} fine"}}\n{{"prompt": "{tag} x", "duration": "ten"}}\n', 2, "duration"),
        ("bad2.jsonl", '{{"prompt": "{tag} fine"}}\n\n{{"prompt": "{tag} x", "durations": 5}}\n', 3, "durations"),
        ("bad3.jsonl", '{{"prompt": "{tag} fine"}}\n{{"prompt": "{tag} x", "duration": 6}}\n', 2, "duration"),
        ("bad.csv", "prompt,watermark\n{tag} fine,yes\n{tag} x,maybe\n", 3, "watermark"),
        ("bad2.csv", "prompt,duration\n{tag} fine,5\n{tag} x,7\n", 3, "duration"),
        (
            "frames.jsonl",
            '{{"prompt": "{tag} fine"}}\n{{"prompt": "{tag} x", "first_frame": "small.png"}}\n',
            2,
            "first_frame",
        ),
    ],
)
def test_a_bad_line_is_reported_with_its_number_and_nothing_is_submitted(
    server: SimServer,
    tmp_path: Path,
    tag: str,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
    line: int,
    field: str,
) -> None:
    frame(tmp_path / "small.png", (200, 200))
    path = tmp_path / name
    path.write_text(content.format(tag=tag), encoding="utf-8")
    before = server.stats()["tasks_created"]
    code = main(["batch", str(path), "--out", str(tmp_path / "out"), *against(server)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"line {line}" in err
    assert field in err
    assert "nothing was submitted" in err
    assert server.stats()["tasks_created"] == before
    assert not any(p.startswith(tag) for p in server.stats()["submits_by_prompt"])


def test_more_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tmp_path / "missing.txt"), "--api-key", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    assert main(["batch", str(tmp_path / "empty.txt"), "--api-key", "x"]) == 2
    assert "no prompts" in capsys.readouterr().err
    (tmp_path / "b.csv").write_text("prompt,colour\nx,red\n")
    assert main(["batch", str(tmp_path / "b.csv"), "--api-key", "x"]) == 2
    err = capsys.readouterr().err
    assert "line 1" in err
    assert "colour" in err
    (tmp_path / "b.jsonl").write_text('{"prompt": "a"}\n{"prompt": \n')
    assert main(["batch", str(tmp_path / "b.jsonl"), "--api-key", "x"]) == 2
    assert "line 2" in capsys.readouterr().err
    (tmp_path / "b.weird").write_text("a\n")
    assert main(["batch", str(tmp_path / "b.weird"), "--api-key", "x"]) == 2
    assert "--format" in capsys.readouterr().err


# -- usage errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "variable"),
    [("apimart", "APIMART_API_KEY"), ("toapis", "TOAPIS_API_KEY"), ("minimax", "MINIMAX_API_KEY")],
)
def test_a_missing_key_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider: str, variable: str
) -> None:
    (tmp_path / "p.txt").write_text("a cat\n")
    assert main(["batch", str(tmp_path / "p.txt"), "--provider", provider]) == 2
    assert variable in capsys.readouterr().err
    assert main(["generate", "a cat", "--provider", provider]) == 2
    assert variable in capsys.readouterr().err
    assert main(["status", "task_1", "--provider", provider]) == 2
    assert variable in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["generate", "x", "--concurrency", "0"]) == 2
    assert main(["batch", "x.txt", "--provider", "nope"]) == 2
    assert main(["status"]) == 2
    assert main(["status", "task_1", "--journal", "j.sqlite"]) == 2
    assert main(["status", "--journal", str(tmp_path / "missing.sqlite")]) == 2
    assert not (tmp_path / "missing.sqlite").exists()
    assert main(["demo", "--api-key", "x", "--out", str(tmp_path)]) == 2
    assert main(["generate", "a [Spin around]", "--api-key", "x"]) == 2
    assert main(["generate", "a", "--duration", "6", "--api-key", "x"]) == 2  # apimart takes 5 or 10
    assert main(["generate", "a", "--last-frame", "https://example.com/x.png", "--api-key", "x"]) == 2
    assert main(["--version"]) == 0
    assert main(["batch", "--help"]) == 0
    capsys.readouterr()


# -- generate and status --------------------------------------------------------------------------------------


def test_generate_prints_the_url_and_the_saved_path(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompt = f"{tag} a hummingbird [Zoom in]"
    result = hailuo(
        "generate", prompt, "--duration", "10", "--resolution", "768p", "--no-prompt-optimizer", "--watermark",
        "--fast-pretreatment", "--out", "clips", *against(server), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["video_url"].startswith("http://127.0.0.1:")
    saved = tmp_path / lines["path"] if not Path(lines["path"]).is_absolute() else Path(lines["path"])
    assert saved.is_file()
    assert saved.parent == tmp_path / "clips"
    (task,) = [t for t in server.tasks() if t["prompt"] == prompt]
    assert task["request"]["duration"] == 10
    assert task["request"]["resolution"] == "768p"
    assert task["request"]["prompt_optimizer"] is False
    assert task["request"]["watermark"] is True
    assert task["request"]["fast_pretreatment"] is True


def test_generate_first_last_frame_from_local_files_then_status(server: SimServer, tmp_path: Path, tag: str) -> None:
    first, last = frame(tmp_path / "a.png"), frame(tmp_path / "b.png", (360, 640))
    prompt = f"{tag} she turns around"
    result = hailuo(
        "generate", prompt, "--first-frame", str(first), "--last-frame", str(last), "--json", *against(server),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["status"] == "ok"
    assert Path(record["path"]).is_file()
    (task,) = [t for t in server.tasks() if t["prompt"] == prompt]
    assert task["request"]["first_frame_image"].startswith(server.urls["cdn"])
    status = hailuo("status", record["task_id"], "--base-url", server.apimart, "--api-key", "test", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "completed" in status.stdout
    assert "video_url" in status.stdout
    status = hailuo(
        "status", record["task_id"], "--json", "--base-url", server.apimart, "--api-key", "test", cwd=tmp_path
    )
    (answer,) = json_lines(status.stdout)
    assert answer["state"] == "completed"
    assert answer["video_url"].startswith("http://")


def test_generate_failure_exits_1(server: SimServer, tmp_path: Path, tag: str) -> None:
    result = hailuo("generate", f"{tag} forbidden {{{{sim:fail}}}}", *against(server), cwd=tmp_path)
    assert result.returncode == 1
    assert "content policy" in result.stderr
    assert result.stdout == ""


def test_status_of_an_unknown_task_exits_1(server: SimServer, tmp_path: Path) -> None:
    result = hailuo("status", "task_nope", "--base-url", server.apimart, "--api-key", "test", cwd=tmp_path)
    assert result.returncode == 1
    assert "hailuo: error:" in result.stderr


# -- failures, JSON, journal status ---------------------------------------------------------------------------


def test_a_failed_item_exits_1_and_the_journal_reports_it(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompts = [f"{tag} good", f"{tag} refused {{{{sim:fail}}}}", f"{tag} also good"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    result = hailuo("batch", "p.txt", "--out", "out", "--json", *against(server), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    records = {r["index"]: r for r in json_lines(result.stdout)}
    assert [records[i]["status"] for i in range(3)] == ["ok", "failed", "ok"]
    failed = records[1]
    assert failed["error_type"] == "GenerationFailedError"
    assert "content policy" in failed["error_message"]
    assert failed["task_id"]
    assert failed["path"] is None
    # No network needed to read a journal: no key, no base URL.
    status = hailuo("status", "--journal", "out/.hailuo-journal.sqlite", cwd=tmp_path)
    assert status.returncode == 1
    assert "completed" in status.stdout
    assert "Failed (1)" in status.stdout
    status = hailuo("status", "--journal", "out/.hailuo-journal.sqlite", "--json", cwd=tmp_path)
    (summary,) = json_lines(status.stdout)
    assert summary["total"] == 3
    assert summary["counts"] == {"completed": 2, "failed": 1}
    assert summary["failed"][0]["index"] == 1
    assert summary["open"] == []
    # Running it again pays for nothing and changes nothing.
    again = hailuo("batch", "p.txt", "--out", "out", "--json", *against(server), cwd=tmp_path)
    assert again.returncode == 1
    assert server.submits(prompts) == [1, 1, 1]
    assert "Content violates the content policy" in json_lines(again.stdout)[0]["error_message"] or any(
        "content policy" in (r["error_message"] or "") for r in json_lines(again.stdout)
    )


# -- interruption and resume ----------------------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the batch ended before it could be interrupted"
        assert time.monotonic() < deadline, "timed out waiting for the batch to make progress"
        time.sleep(0.05)


def _slow_batch(tmp_path: Path, tag: str, count: int = 12) -> list[str]:
    prompts = [f"{tag} item {i} {{{{sim:time=1.5}}}}" for i in range(count)]
    (tmp_path / "slow.txt").write_text("\n".join(prompts) + "\n")
    return prompts


def test_ctrl_c_stops_prints_the_resume_command_and_the_rerun_pays_nothing_twice(
    server: SimServer, tmp_path: Path, tag: str
) -> None:
    prompts = _slow_batch(tmp_path, tag)
    args = (
        "batch",
        "slow.txt",
        "--out",
        "out",
        "--rps",
        "6",
        "--concurrency",
        "2",
        "-vv",
        *against(server, key=SECRET),
    )
    process = subprocess.Popen(
        _command(*args), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: sum(server.created(prompts)) >= 4, process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "still running" in stderr
    assert "Resume with" in stderr
    resume = next(line for line in stderr.splitlines() if "-m hailuo_async batch" in line)
    assert shlex.split(resume)[2:9] == ["hailuo_async", "batch", "slow.txt", "--out", "out", "--rps", "6"]
    assert SECRET not in stdout + stderr
    assert "***" in resume
    assert len(videos(tmp_path / "out")) < len(prompts)

    rerun = hailuo(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stderr
    assert SECRET not in rerun.stdout + rerun.stderr
    assert server.submits(prompts) == [1] * len(prompts)
    assert len(videos(tmp_path / "out")) == len(prompts)


def test_a_second_ctrl_c_exits_at_once(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompts = [f"{tag} patient {i} {{{{sim:time=5}}}}" for i in range(6)]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    # One request every two seconds: after the first Ctrl-C the batch waits for the submits already under way.
    args = ("batch", "p.txt", "--out", "out", "--rps", "0.5", "--concurrency", "4", *against(server))
    process = subprocess.Popen(
        _command(*args), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: sum(server.created(prompts)) >= 1, process)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=10)
        assert time.monotonic() - started < 3
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert "waiting for" in stderr
    assert "interrupted again" in stderr


def test_the_same_batch_cannot_run_twice_at_once(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompts = [f"{tag} long {i} {{{{sim:time=5}}}}" for i in range(2)]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    args = ("batch", "p.txt", "--out", "out", *against(server))
    first = subprocess.Popen(
        _command(*args), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(lambda: sum(server.created(prompts)) == 2, first)
        second = hailuo(*args, cwd=tmp_path)
        assert second.returncode == 2
        assert "another process is running a batch with the journal" in second.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=20) == 130
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert server.submits(prompts) == [1, 1]


def test_kill_9_mid_batch_then_the_same_command_finishes_without_creating_anything_twice(
    server: SimServer, tmp_path: Path, tag: str
) -> None:
    prompts = _slow_batch(tmp_path, tag)
    args = ("batch", "slow.txt", "--out", "out", "--rps", "6", "--concurrency", "2", *against(server))
    process = subprocess.Popen(
        _command(*args), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(lambda: sum(server.created(prompts)) >= 5, process)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    status = hailuo("status", "--journal", "out/.hailuo-journal.sqlite", "--json", cwd=tmp_path)
    (summary,) = json_lines(status.stdout)
    assert summary["counts"].get("submitted", 0) >= 4

    rerun = hailuo(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert server.created(prompts) == [1] * len(prompts)
    assert len(videos(tmp_path / "out")) == len(prompts)


# -- simulate, demo, terminals --------------------------------------------------------------------------------


def test_simulate_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        _command("simulate", "--config", '{"seed": 1}'),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {"apimart", "toapis", "minimax", "cdn", "stats"}
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert main(["simulate", "--config", '{"failure_rate": 9}']) == 2


def test_demo_end_to_end(tmp_path: Path) -> None:
    result = hailuo("demo", "--out", "tmp", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "content policy" in result.stdout
    assert "Gory close-up of a battlefield injury" in result.stdout
    assert "{{sim:" not in result.stdout
    assert "29 of 30" in result.stdout
    assert "API requests" in result.stdout
    assert len(videos(tmp_path / "tmp")) == 29
    assert len(list((tmp_path / "tmp" / "frames").glob("*.png"))) == 2


def _run_on_a_terminal(argv: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; returns (exit status, everything it wrote)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        argv, cwd=cwd, env=_env(COLUMNS="120", TERM="xterm"), stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        os.close(controller)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_live_progress_on_a_terminal(server: SimServer, tmp_path: Path, tag: str) -> None:
    (tmp_path / "p.txt").write_text(f"{tag} terminal one\n{tag} terminal two {{{{sim:fail}}}}\n")
    code, output = _run_on_a_terminal(_command("batch", "p.txt", "--out", "o", *against(server)), tmp_path)
    assert code == 1, output
    assert "━" in output  # rich's bar
    assert "Failed" in output
    assert "content policy" in output


def test_a_terminal_without_rich_gets_plain_lines(server: SimServer, tmp_path: Path, tag: str) -> None:
    (tmp_path / "p.txt").write_text(f"{tag} plain one\n")
    script = "import sys; sys.modules['rich'] = None; from hailuo_async._cli import main; sys.exit(main())"
    argv = [sys.executable, "-W", "error", "-c", script, "batch", "p.txt", "--out", "o", *against(server)]
    code, output = _run_on_a_terminal(argv, tmp_path)
    assert code == 0, output
    assert "━" not in output
    assert "hailuo: [" in output
    assert "1 of 1" in output
