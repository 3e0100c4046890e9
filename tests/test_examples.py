"""Every script in ``examples/`` runs to completion against the built-in simulator (no API key in the environment).

The examples spend most of their time waiting for simulated videos, so they are all started at once (each in its
own folder) and each test then waits for its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
TIMEOUT = 60


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["HAILUO_SIMULATOR"] = "1"
    env.pop("HAILUO_PROVIDER", None)
    return env


@dataclass
class Run:
    """One example's process, its folder and, once it ended, what it printed."""

    process: subprocess.Popen[str]
    folder: Path
    output: tuple[str, str] | None = None


Runs = dict[str, Run]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    started: Runs = {}
    commands = {name: [sys.executable, "-W", "error", str(EXAMPLES / name)] for name in SCRIPTS}
    # The pytest-style example also runs under pytest, as a user would run it from their own suite.
    commands["pytest:simulator_in_tests.py"] = [
        sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider", "--rootdir", str(EXAMPLES),
        "-c", os.devnull, str(EXAMPLES / "simulator_in_tests.py"),
    ]  # fmt: skip
    try:
        for name, command in commands.items():
            folder = tmp_path_factory.mktemp(name.replace(":", "-").removesuffix(".py"))
            process = subprocess.Popen(
                command, cwd=folder, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            started[name] = Run(process, folder)
        yield started
    finally:
        for run in started.values():
            if run.process.poll() is None:
                run.process.kill()
            if run.output is None:
                run.process.communicate()


def _finish(runs: Runs, name: str) -> tuple[str, Path]:
    run = runs[name]
    if run.output is None:
        try:
            run.output = run.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.output = run.process.communicate()
            pytest.fail(f"{name} did not finish within {TIMEOUT}s\n{run.output[0]}\n{run.output[1]}")
    stdout, stderr = run.output
    assert run.process.returncode == 0, f"{name} exited {run.process.returncode}\n{stdout}\n{stderr}"
    assert stderr == "", stderr
    return stdout, run.folder


def test_every_example_is_covered() -> None:
    assert SCRIPTS == [
        "bulk_from_list.py",
        "custom_progress.py",
        "first_last_frame.py",
        "generate_one.py",
        "resumable_batch.py",
        "simulator_in_tests.py",
    ]
    for name in SCRIPTS:
        source = (EXAMPLES / name).read_text(encoding="utf-8")
        assert source.startswith('"""'), f"{name} needs a module docstring"
        assert "async def main() -> None:" in source
        assert "anyio.run(main)" in source


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_against_the_simulator(runs: Runs, name: str) -> None:
    stdout, folder = _finish(runs, name)
    assert "Traceback" not in stdout
    if name != "simulator_in_tests.py":
        assert "using the built-in simulator" in stdout
        assert list(folder.rglob("*.mp4")), "the example saved no video"


def test_resumable_batch_submits_nothing_twice(runs: Runs) -> None:
    stdout, folder = _finish(runs, "resumable_batch.py")
    assert "second pass" in stdout
    assert len(list((folder / "videos" / "resumable").glob("*.mp4"))) == 16


def test_the_simulator_example_is_a_working_pytest_module(runs: Runs) -> None:
    stdout, _ = _finish(runs, "pytest:simulator_in_tests.py")
    assert "3 passed" in stdout
