"""Every command and Python snippet of README.md runs, as written, against a simulator: a wrong one fails CI.

How the README is run:

- Fenced ``bash`` blocks run line by line (comment and blank lines aside) with ``bash -c`` in one fresh folder,
  in order; ``hailuo`` is this working tree's command. ``python`` blocks run as scripts in the same folder.
- Both reach a simulator subprocess without changing a word: a ``sitecustomize`` module points every provider's
  default base URL at it, and ``APIMART_API_KEY``, ``TOAPIS_API_KEY`` and ``MINIMAX_API_KEY`` hold a test key.
- The one substitution: the placeholder ``TASK_ID`` becomes the id of the task the simulator created last.
- A block preceded by ``<!-- readme-test: skip (set-up) -->`` (creating a virtualenv, installing) or
  ``<!-- readme-test: skip (serves until Ctrl-C) -->`` (``hailuo simulate``) is not run; any other reason, or such a
  marker on another kind of block, fails the test.
- ``hailuo demo`` lines and the Python snippets run alongside the other lines (they only write their own files).

The README's ``hailuo demo`` is also the demo's end-to-end test: its folder first holds what a previous demo run
left there, which the run must clear (and nothing else), and its summary must count only this run's videos.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hailuo_async.cli._demo import MANIFEST

from .cliharness import REPO, SimServer, env, simulator

README = REPO / "README.md"
SIM_CONFIG = {"generation": {"kind": "uniform", "low": 0.2, "high": 0.6}, "video_bytes": 4096, "seed": 9}
TIMEOUT = 60
SKIP = re.compile(r"<!-- readme-test: skip \((?P<reason>[^)]*)\) -->")
REASONS = {"set-up": "pip install", "serves until Ctrl-C": "hailuo simulate"}
"""The allowed reasons to skip a block, and what such a block must hold."""
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
SITECUSTOMIZE = """\
import json, os

from hailuo_async.providers import PROVIDERS

for _name, _url in json.loads(os.environ["HAILUO_README_SIMULATOR"]).items():
    if _name in PROVIDERS:
        type(PROVIDERS[_name]).default_base_url = _url
"""


@dataclass
class Block:
    lang: str
    body: str
    skipped: str | None
    """The reason of a skip marker right before the block."""


def blocks(text: str) -> list[Block]:
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        marker = SKIP.fullmatch(before[-1].strip()) if before else None
        found.append(Block(match["lang"], match["body"], marker["reason"] if marker else None))
    return found


def shell_lines(body: str) -> list[str]:
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


@dataclass
class ReadmeRun:
    """Every README command and snippet that ran, with what it printed."""

    folder: Path
    server: SimServer
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    task_id: str = ""
    """What ``TASK_ID`` stood for."""

    def only(self, prefix: str) -> subprocess.CompletedProcess[str]:
        (result,) = [r for line, r in self.results.items() if line.startswith(prefix)]
        return result


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeRun]:
    root = tmp_path_factory.mktemp("readme")
    folder, tools = root / "work", root / "tools"
    folder.mkdir()
    tools.mkdir()
    (tools / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    launcher = tools / "hailuo"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -W error -m hailuo_async "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    # What an earlier demo run left: one video it listed, and a file of the user's it must keep.
    demo = folder / "hailuo-output" / "demo"
    demo.mkdir(parents=True)
    (demo / "old-video.mp4").write_bytes(b"an earlier run")
    (demo / "my-notes.txt").write_text("not the demo's", encoding="utf-8")
    (demo / MANIFEST).write_text(json.dumps({"files": ["old-video.mp4"]}), encoding="utf-8")

    with simulator(SIM_CONFIG) as server:
        environment = env(
            PATH=f"{tools}:{env()['PATH']}",
            PYTHONPATH=f"{tools}:{env()['PYTHONPATH']}",
            HAILUO_README_SIMULATOR=json.dumps(server.urls),
            APIMART_API_KEY="readme-key",
            TOAPIS_API_KEY="readme-key",
            MINIMAX_API_KEY="readme-key",
        )
        # Never the real providers: the redirection must hold before any README line runs.
        probe = "from hailuo_async.providers import PROVIDERS; print(PROVIDERS['apimart'].default_base_url)"
        check = subprocess.run(
            [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, timeout=TIMEOUT, check=True
        )
        assert check.stdout.strip() == server.apimart, check.stderr
        state = ReadmeRun(folder, server)
        background: dict[str, subprocess.Popen[str]] = {}

        def start(name: str, argv: list[str]) -> None:
            background[name] = subprocess.Popen(
                argv, cwd=folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

        try:
            for number, block in enumerate(blocks(README.read_text(encoding="utf-8"))):
                if block.skipped is not None:
                    continue
                if block.lang == "python":
                    script = folder / f"readme_snippet_{number}.py"
                    script.write_text(block.body, encoding="utf-8")
                    start(f"python snippet {number}", [sys.executable, "-W", "error", script.name])
                    continue
                for written in shell_lines(block.body):
                    if written.startswith("hailuo demo"):
                        start(written, ["bash", "-c", written])
                        continue
                    line = written
                    if "TASK_ID" in written:
                        state.task_id = max(server.tasks(), key=lambda task: task["created_at"])["task_id"]
                        line = written.replace("TASK_ID", state.task_id)
                    state.results[line] = subprocess.run(
                        ["bash", "-c", line],
                        cwd=folder,
                        env=environment,
                        capture_output=True,
                        text=True,
                        timeout=TIMEOUT,
                        check=False,
                    )
            for name, process in background.items():
                stdout, stderr = process.communicate(timeout=TIMEOUT)
                state.results[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            yield state
        finally:
            for process in background.values():
                if process.poll() is None:
                    process.kill()
                    process.communicate()


def test_the_readme_marks_only_set_up_and_serving_blocks_as_not_run() -> None:
    found = blocks(README.read_text(encoding="utf-8"))
    assert sum(1 for b in found if b.skipped is None and b.lang == "python") >= 1
    assert sum(1 for b in found if b.skipped is None and b.lang == "bash") >= 1
    for block in found:
        assert block.lang in ("bash", "python"), f"a fenced block must say bash or python:\n{block.body}"
        if block.skipped is not None:
            assert block.skipped in REASONS, f"unknown reason to skip a README block: {block.skipped!r}"
            assert REASONS[block.skipped] in block.body


def test_every_command_and_snippet_of_the_readme_runs(readme: ReadmeRun) -> None:
    ran = " ".join(readme.results)
    for command in ("hailuo demo", "hailuo generate", "hailuo batch", "hailuo status --journal", "hailuo status "):
        assert command in ran
    assert any(name.startswith("python snippet") for name in readme.results)
    for line, result in readme.results.items():
        assert result.returncode == 0, f"README: {line}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, f"README: {line}\n{result.stderr}"


def test_the_readme_commands_did_what_they_say(readme: ReadmeRun) -> None:
    generated = readme.only("hailuo generate")
    assert "video_url: http://127.0.0.1:" in generated.stdout
    assert list((readme.folder / "hailuo-output").glob("*.mp4"))
    assert len(list((readme.folder / "hailuo-output" / "batch").glob("*.mp4"))) == 2
    assert "2 item(s)" in readme.only("hailuo status --journal").stdout
    assert readme.task_id in readme.only(f"hailuo status {readme.task_id}").stdout
    snippets = [result for line, result in readme.results.items() if line.startswith("python snippet")]
    assert len(snippets) >= 2 and all("http://127.0.0.1:" in snippet.stdout for snippet in snippets)
    assert "(0 status requests)" in snippets[-1].stdout  # the webhook snippet: apimart's delivery is the result


def test_the_readme_demo_starts_clean_and_reports_this_run(readme: ReadmeRun) -> None:
    result = readme.only("hailuo demo")
    folder = readme.folder / "hailuo-output" / "demo"
    assert "content policy" in result.stdout
    assert "Gory close-up of a battlefield injury" in result.stdout
    assert "{{sim:" not in result.stdout
    assert "29 of 30" in result.stdout
    assert "29 in hailuo-output/demo/" in result.stdout
    assert "API requests" in result.stdout
    assert "removed the 1 files the previous demo left" in result.stderr
    assert not (folder / "old-video.mp4").exists()
    assert (folder / "my-notes.txt").exists()
    assert len(list(folder.glob("*.mp4"))) == 29
    assert len(list((folder / "frames").glob("*.png"))) == 2
    assert len(json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]) == 31
