"""Every file in ``examples/`` runs to completion against the built-in simulator (no API key in the environment).

They run as a user runs them after the README's first set-up command: ``python examples/NAME.py`` with the
virtualenv's interpreter (nothing activated), from a folder of their own, and without pytest (the ``cli`` extra does
not install it: a stand-in module makes ``import pytest`` fail). The pytest-style example also runs under pytest.
The examples spend most of their time waiting for simulated videos, so they are all started at once and each test
then waits for its own.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
TIMEOUT = 60
NO_PYTEST = 'raise ImportError("pytest is not installed (the cli extra)")\n'


def _env(blocked: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    paths = [str(blocked)] if blocked is not None else []
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, str(REPO), os.environ.get("PYTHONPATH")]))
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
    blocked = tmp_path_factory.mktemp("no-pytest")
    (blocked / "pytest.py").write_text(NO_PYTEST, encoding="utf-8")
    started: Runs = {}
    commands: dict[str, tuple[list[str], Path | None]] = {
        name: ([sys.executable, "-W", "error", str(EXAMPLES / name)], blocked) for name in SCRIPTS
    }
    # The pytest-style example also runs under pytest, as a user would run it from their own suite.
    commands["pytest:simulator_in_tests.py"] = ([
        sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider", "--rootdir", str(EXAMPLES),
        "-c", os.devnull, str(EXAMPLES / "simulator_in_tests.py"),
    ], None)  # fmt: skip
    try:
        for name, (command, hidden) in commands.items():
            folder = tmp_path_factory.mktemp(name.replace(":", "-").removesuffix(".py"))
            # What an earlier run left: an example reports the files of this run only.
            leftovers = folder / "hailuo-output" / Path(name).stem
            leftovers.mkdir(parents=True)
            (leftovers / "from-an-earlier-run.mp4").write_bytes(b"old")
            process = subprocess.Popen(
                command, cwd=folder, env=_env(hidden), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
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


def test_every_file_in_examples_is_run_or_is_the_helper_they_share() -> None:
    files = sorted(p.name for p in EXAMPLES.iterdir() if p.name != "__pycache__")
    helpers = [name for name in files if name not in SCRIPTS]
    imported = {
        node.module
        for script in SCRIPTS
        for node in ast.walk(ast.parse((EXAMPLES / script).read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    for name in helpers:
        assert name.endswith(".py"), f"examples/{name} is neither run nor imported by an example"
        assert name.removesuffix(".py") in imported, f"examples/{name} is neither run nor imported by an example"


def test_every_example_says_how_to_run_it_without_activating_anything() -> None:
    for name in SCRIPTS:
        source = (EXAMPLES / name).read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(source)) or ""
        assert f"``.venv/bin/python examples/{name}``" in docstring, name
        assert "nothing to activate" in docstring, name
        assert "async def main() -> None:" in source
        assert "anyio.run(main)" in source


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_against_the_simulator(runs: Runs, name: str) -> None:
    stdout, folder = _finish(runs, name)
    assert "Traceback" not in stdout
    if name != "simulator_in_tests.py":
        assert "using the built-in simulator" in stdout
        saved = [p for p in (folder / "hailuo-output" / Path(name).stem).rglob("*.mp4") if p.stat().st_size > 3]
        assert saved, "the example saved no video into its hailuo-output folder"
        assert "from-an-earlier-run" not in stdout


def test_resumable_batch_submits_nothing_twice_and_counts_this_run_only(runs: Runs) -> None:
    stdout, folder = _finish(runs, "resumable_batch.py")
    assert "second pass" in stdout
    assert "16 videos saved by this run" in stdout
    assert len(list((folder / "hailuo-output" / "resumable_batch").glob("*.mp4"))) == 16 + 1  # and the leftover


def test_custom_progress_shows_items_running_while_they_run(runs: Runs) -> None:
    stdout, _ = _finish(runs, "custom_progress.py")
    submitted = [line for line in stdout.splitlines() if re.search(r"#\d+ submitted", line)]
    assert len(submitted) == 5, stdout
    # An item runs from its submit on, whether or not the client has looked at it yet.
    first = re.search(r"(\d+) running", submitted[0])
    assert first is not None and int(first.group(1)) >= 1, stdout
    assert "5/5 saved" in stdout


def test_the_simulator_example_runs_without_pytest_and_is_a_working_pytest_module(runs: Runs) -> None:
    script, _ = _finish(runs, "simulator_in_tests.py")
    assert script.count("passed: test_") == 3
    under_pytest, _ = _finish(runs, "pytest:simulator_in_tests.py")
    assert "3 passed" in under_pytest
