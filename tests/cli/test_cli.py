"""The ``hailuo`` command end to end: ``python -m hailuo_async ...`` subprocesses against a simulator subprocess.

Usage errors (bad files, missing key, bad options) run ``hailuo_async.cli.main(argv)`` in process: they never
reach the network. Everything else goes through the real entry point, including Ctrl-C and ``kill -9`` in the
middle of a batch followed by a resume that must not pay for anything twice.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import shlex
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hailuo_async.cli import _demo, main
from hailuo_async.cli._output import shorten
from hailuo_async.cli._parser import build_parser

from ..conftest import SECRET
from .cliharness import SimServer, command, env, hailuo, json_lines, run, simulator, started, wait_for

SIM_CONFIG: dict[str, Any] = {
    "generation": {"kind": "uniform", "low": 0.2, "high": 0.6},
    "video_bytes": 4096,
    "seed": 3,
}
FAST = ("--max-lag", "0.2")
"""Poll soon: the simulator's tasks take a fraction of a second."""


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with simulator(SIM_CONFIG) as sim:
        yield sim


@pytest.fixture
def tag() -> str:
    """Makes this test's prompts unique on the shared simulator."""
    return uuid.uuid4().hex[:8]


def against(server: SimServer, *, key: str = "test") -> tuple[str, ...]:
    return ("--base-url", server.apimart, "--api-key", key, *FAST)


def printed_command(text: str, after: str) -> tuple[list[str], str]:
    """The first indented line after the line ending with ``after``, as argv, and the notes in between."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(after)) + 1
    index = next(i for i in range(start, len(lines)) if lines[i].startswith("  "))
    return shlex.split(lines[index]), "\n".join(lines[start:index])


def videos(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.mp4"))


def frame(path: Path, size: tuple[int, int] = (640, 360)) -> Path:
    Image.new("RGB", size, (30, 90, 160)).save(path, format="PNG")
    return path


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


def test_batch_with_a_webhook_gets_its_results_delivered(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompts = [f"{tag} delivered {i}" for i in range(3)]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    before = server.stats()
    result = hailuo(
        "batch", "p.txt", "--json", "--webhook-listen", "127.0.0.1:0", *against(server), cwd=tmp_path, timeout=90
    )
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in json_lines(result.stdout)] == ["ok"] * 3
    after = server.stats()
    assert after["webhooks_delivered"] - before["webhooks_delivered"] >= 3
    # apimart's delivery carries the result: the safety net (30 s) never had to look.
    assert after["requests_by_route"].get("apimart.status", 0) == before["requests_by_route"].get("apimart.status", 0)
    bad = hailuo("batch", "p.txt", "--webhook-secret", "s", *against(server), cwd=tmp_path)
    assert bad.returncode == 2 and "--webhook-secret needs --webhook-listen or --webhook-url" in bad.stderr
    public = hailuo("batch", "p.txt", "--webhook-listen", "0.0.0.0:0", *against(server), cwd=tmp_path)
    assert public.returncode == 2 and "--webhook-url" in public.stderr


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
    (tmp_path / "bad.jsonl").write_text('{"prompt": 3}\n')  # --skip-invalid with no valid line: nothing to run
    assert main(["batch", str(tmp_path / "bad.jsonl"), "--skip-invalid", "--api-key", "x"]) == 2
    err = capsys.readouterr().err
    assert "1 bad line(s) in" in err
    assert "nothing was submitted" in err
    assert "(--skip-invalid runs" not in err


def test_skip_invalid_runs_the_valid_lines_and_lists_the_others(
    server: SimServer, tmp_path: Path, tag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = [f"{tag} good one", f"{tag} bad duration", f"{tag} good two", f"{tag} spins [Spin around]"]
    items = [{"prompt": prompts[0]}, {"prompt": prompts[1], "duration": "ten"}, {"prompt": prompts[2], "duration": 10}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(i) for i in [*items, {"prompt": prompts[3]}]) + "\n")
    # Without the option the file is refused whole, and the message says how to run the valid lines anyway.
    assert main(["batch", str(tmp_path / "p.jsonl"), *against(server)]) == 2
    refusal = capsys.readouterr().err
    assert "--skip-invalid" in refusal
    assert server.submits(prompts) == [0, 0, 0, 0]

    result = hailuo("batch", "p.jsonl", "--skip-invalid", "--json", *against(server), cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # not every line became a video
    assert [r["prompt"] for r in json_lines(result.stdout)] == [prompts[0], prompts[2]] or sorted(
        r["prompt"] for r in json_lines(result.stdout)
    ) == sorted([prompts[0], prompts[2]])
    assert all(r["status"] == "ok" for r in json_lines(result.stdout))
    assert server.submits(prompts) == [1, 0, 1, 0]
    assert "skipping 2 invalid line(s)" in result.stderr
    assert "line 2, field 'duration': invalid duration='ten': a whole number of seconds" in result.stderr
    assert "line 4, field 'prompt': invalid prompt=" in result.stderr
    assert "Spin around" in result.stderr
    assert "Expected `" not in refusal + result.stderr  # msgspec's wording never reaches the user


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


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_help_states_every_default_and_lists_only_the_options_a_command_honours() -> None:
    parsers = _subcommands()
    for name, parser in parsers.items():
        if name == "simulate":  # the simulator's own options (hailuo_async.simulator)
            continue
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS and action.dest != "help":
                assert "default" in (action.help or ""), f"hailuo {name} {action.option_strings[0]}: no default"
    generate = parsers["generate"].format_help()
    assert "5 on apimart, 6 on minimax and toapis" in " ".join(generate.split())
    assert "768p" in generate
    options = {name: {s for a in p._actions for s in a.option_strings} for name, p in parsers.items()}
    assert not {"--base-url", "--api-key"} & options["demo"]  # the demo runs its own simulator
    assert not {"--concurrency", "--rps", "--timeout", "--max-lag", "--out"} & options["status"]
    assert {"--base-url", "--api-key", "--json"} <= options["status"]


def test_argument_errors_speak_the_command_line_s_language(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--api-key", "x"]) == 2
    err = capsys.readouterr().err
    assert "PROMPT" in err
    assert "prompt=None" not in err
    assert main(["generate", "a cat", "--provider", "MiniMax", "--duration", "5", "--api-key", "x"]) == 2
    assert "invalid --duration 5 for minimax: 6 or 10" in capsys.readouterr().err
    assert main(["status", "task_1", "--rps", "3", "--api-key", "x"]) == 2  # status makes one request
    assert main(["demo", "--base-url", "http://127.0.0.1:9"]) == 2
    assert main(["generate", "a", "-q", "-v", "--api-key", "x"]) == 2
    capsys.readouterr()


def _unusable_folder(tmp_path: Path, case: str) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    if case == "a file":
        return blocker
    if case == "inside a file":
        return blocker / "videos"
    if os.geteuid() == 0:
        # root writes into any folder whose mode forbids it; sysfs refuses new files even to root
        if not Path("/sys/kernel").is_dir():
            pytest.skip("root writes into read-only folders, and this machine has no sysfs to stand in")
        return Path("/sys/kernel")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked


@pytest.mark.parametrize("case", ["a file", "inside a file", "read-only"])
@pytest.mark.parametrize("name", ["generate", "batch", "demo"])
def test_an_unusable_out_folder_is_refused_before_anything_is_paid(
    server: SimServer, tmp_path: Path, tag: str, capsys: pytest.CaptureFixture[str], name: str, case: str
) -> None:
    folder = _unusable_folder(tmp_path, case)
    (tmp_path / "p.txt").write_text(f"{tag} one\n")
    argv = {
        "generate": ["generate", f"{tag} one", *against(server)],
        "batch": ["batch", str(tmp_path / "p.txt"), *against(server)],
        "demo": ["demo"],
    }[name]
    before = server.stats()["tasks_created"]
    assert main([*argv, "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"invalid --out {shorten(str(folder), 80)!r}: a writable folder" in err  # a long path is shortened
    assert server.stats()["tasks_created"] == before
    assert server.submits([f"{tag} one"]) == [0]


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


def test_the_timeout_hint_is_a_status_command_that_works_when_pasted(
    server: SimServer, tmp_path: Path, tag: str
) -> None:
    prompt = f"{tag} slow {{{{sim:time=4}}}}"
    minimax = ("--provider", "MiniMax", "--base-url", server.urls["minimax"], "--api-key", SECRET, *FAST)
    result = hailuo("generate", prompt, "--timeout", "0.5", *minimax, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "GenerationTimeoutError" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    status, note = printed_command(result.stderr, "check it with:")
    assert "MINIMAX_API_KEY" in note
    assert "--api-key" not in status
    pasted = run(status, cwd=tmp_path, environment=env(MINIMAX_API_KEY=SECRET))
    assert pasted.returncode == 0, pasted.stderr
    (task,) = [t for t in server.tasks() if t["prompt"] == prompt]
    assert task["task_id"] in pasted.stdout
    assert "running" in pasted.stdout or "queued" in pasted.stdout


def test_record_writes_every_exchange_without_the_key(server: SimServer, tmp_path: Path, tag: str) -> None:
    result = hailuo(
        "generate", f"{tag} recorded", "--out", "videos", "--record", "rec", *against(server, key=SECRET), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "rec" / "apimart").glob("*.json"))
    assert [path.name.split("-")[1] for path in files][:1] == ["submit"] and len(files) >= 2
    assert all(SECRET not in path.read_text() for path in files)


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


def _slow_batch(tmp_path: Path, tag: str, count: int = 12) -> list[str]:
    prompts = [f"{tag} item {i} {{{{sim:time=1.5}}}}" for i in range(count)]
    (tmp_path / "slow.txt").write_text("\n".join(prompts) + "\n")
    return prompts


def test_ctrl_c_prints_a_resume_command_that_works_when_pasted_and_pays_nothing_twice(
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
    with started(command(*args), cwd=tmp_path) as process:
        wait_for(lambda: sum(server.created(prompts)) >= 4, process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "still running" in stderr
    assert SECRET not in stdout + stderr
    assert len(videos(tmp_path / "out")) < len(prompts)
    resume, note = printed_command(stderr, "Resume with:")
    assert "--api-key" not in resume
    assert "APIMART_API_KEY" in note  # the key came from --api-key: the note says where the command reads it
    assert resume[resume.index("slow.txt") :][:5] == ["slow.txt", "--out", "out", "--rps", "6"]

    # Pasted as printed, with the key where the note says.
    rerun = run(resume, cwd=tmp_path, environment=env(APIMART_API_KEY=SECRET))
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stderr
    assert SECRET not in rerun.stdout + rerun.stderr
    assert server.submits(prompts) == [1] * len(prompts)
    assert len(videos(tmp_path / "out")) == len(prompts)


def test_the_same_batch_cannot_run_twice_at_once(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompts = [f"{tag} long {i} {{{{sim:time=5}}}}" for i in range(2)]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    args = ("batch", "p.txt", "--out", "out", *against(server))
    with started(command(*args), cwd=tmp_path) as first:
        wait_for(lambda: sum(server.created(prompts)) == 2, first)
        second = hailuo(*args, cwd=tmp_path)
        assert second.returncode == 2
        assert "another process is running a batch with the journal" in second.stderr
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=20)
        assert first.returncode == 130
    assert server.submits(prompts) == [1, 1]


def test_kill_9_mid_batch_then_the_same_command_finishes_without_creating_anything_twice(
    server: SimServer, tmp_path: Path, tag: str
) -> None:
    prompts = _slow_batch(tmp_path, tag)
    args = ("batch", "slow.txt", "--out", "out", "--rps", "6", "--concurrency", "2", *against(server))
    with started(command(*args), cwd=tmp_path) as process:
        wait_for(lambda: sum(server.created(prompts)) >= 5, process)
        process.kill()
        process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL
    status = hailuo("status", "--journal", "out/.hailuo-journal.sqlite", "--json", cwd=tmp_path)
    (summary,) = json_lines(status.stdout)
    counts = summary["counts"]
    assert counts.get("submitted", 0) + counts.get("completed", 0) >= 5  # every task created is in the journal

    rerun = hailuo(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert server.created(prompts) == [1] * len(prompts)
    assert len(videos(tmp_path / "out")) == len(prompts)


# -- simulate, terminals (the demo runs as the README runs it: cli/test_readme_commands.py) -------------------


def test_simulate_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with started(command("simulate", "--config", '{"seed": 1}'), cwd=tmp_path) as process:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {"apimart", "toapis", "minimax", "cdn", "stats"}
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert main(["simulate", "--config", '{"failure_rate": 9}']) == 2


def test_the_demo_clears_only_what_its_previous_run_listed(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    (folder / "frames").mkdir(parents=True)
    written = [folder / "a.mp4", folder / "frames" / "first.png"]
    for path in [*written, folder / "mine.mp4", tmp_path / "outside.mp4"]:
        path.write_bytes(b"x")
    _demo.record_run(folder, written)
    manifest = json.loads((folder / _demo.MANIFEST).read_text())
    manifest["files"] += ["../outside.mp4", "frames", "missing.mp4"]  # a list edited by hand deletes nothing else
    (folder / _demo.MANIFEST).write_text(json.dumps(manifest))
    assert sorted(_demo.clear_previous_run(folder)) == sorted(written)
    assert (folder / "mine.mp4").exists()
    assert (tmp_path / "outside.mp4").exists()
    assert (folder / "frames").is_dir()
    assert not (folder / _demo.MANIFEST).exists()
    assert _demo.clear_previous_run(folder) == []  # no list, nothing to clear


def _run_on_a_terminal(argv: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; returns (exit status, everything it wrote)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env(COLUMNS="120", TERM="xterm"), stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal
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
    code, output = _run_on_a_terminal(command("batch", "p.txt", "--out", "o", *against(server)), tmp_path)
    assert code == 1, output
    assert "━" in output  # rich's bar
    assert "Failed" in output
    assert "content policy" in output


def test_a_terminal_without_rich_gets_plain_lines(server: SimServer, tmp_path: Path, tag: str) -> None:
    (tmp_path / "p.txt").write_text(f"{tag} plain one\n")
    script = "import sys; sys.modules['rich'] = None; from hailuo_async.cli import main; sys.exit(main())"
    argv = [sys.executable, "-W", "error", "-c", script, "batch", "p.txt", "--out", "o", *against(server)]
    code, output = _run_on_a_terminal(argv, tmp_path)
    assert code == 0, output
    assert "━" not in output
    assert "hailuo: [" in output
    assert "1 of 1" in output
    assert output.count("pip install 'hailuo-async[cli]'") == 1


# -- models and money ---------------------------------------------------------------------------------------------


def on_minimax(server: SimServer) -> tuple[str, ...]:
    return ("--provider", "minimax", "--base-url", server.urls["minimax"], "--api-key", "test", *FAST)


def test_dry_run_sends_nothing_and_prints_the_total(server: SimServer, tmp_path: Path, tag: str) -> None:
    items: list[dict[str, Any]] = [
        *({"prompt": f"{tag} cat {i}"} for i in range(3)),
        {"prompt": f"{tag} kite", "model": "minimax-hailuo-2.3", "resolution": "1080P"},
        {"prompt": f"{tag} dunes", "duration": 10},
    ]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    base = ("batch", "b.jsonl", "--dry-run", "--provider", "minimax", "--base-url", server.urls["minimax"])
    result = hailuo(*base, "--max-spend", "1", cwd=tmp_path)  # no API key anywhere: none is needed
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "5 items in b.jsonl for minimax; nothing was sent" in text
    assert "MiniMax-Hailuo-02 768p 6 s" in text and "3 x $0.28 = $0.84" in text
    assert "MiniMax-Hailuo-2.3 1080p 6 s" in text and "1 x $0.49 = $0.49" in text
    assert "MiniMax-Hailuo-02 768p 10 s" in text and "1 x $0.56 = $0.56" in text
    assert "total" in text and "$1.89" in text
    assert "prices: MiniMax pay-as-you-go video prices" in text
    assert "--max-spend $1.00: the batch would stop after 3 items" in text
    (record,) = json_lines(hailuo(*base, "--json", cwd=tmp_path).stdout)
    assert (record["dry_run"], record["count"], record["total_usd"], record["complete"]) == (True, 5, 1.89, True)
    prompts = [str(i["prompt"]) for i in items]
    assert server.submits(prompts) == [0] * 5
    assert not (tmp_path / ".hailuo-journal.sqlite").exists()


def test_dry_run_lists_what_it_cannot_price(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.txt").write_text("a cat\na dog\n", encoding="utf-8")
    assert main(["batch", str(tmp_path / "p.txt"), "--dry-run"]) == 0  # apimart publishes no per-video price
    out = capsys.readouterr().out
    assert "2 x unknown" in out and "2 item(s) without a known price" in out
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"apimart": {"MiniMax-Hailuo-02": {"768p": {"5": 0.2}}}}), encoding="utf-8")
    assert main(["batch", str(tmp_path / "p.txt"), "--dry-run", "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    assert "2 x $0.20 = $0.40" in out and f"prices: --prices {prices}" in out
    assert main(["batch", str(tmp_path / "p.txt"), "--dry-run", "--max-spend", "1"]) == 2
    err = capsys.readouterr().err
    assert "--max-spend $1.00 needs every item's price" in err
    assert "#0 (MiniMax-Hailuo-02 768p 5 s), #1 (MiniMax-Hailuo-02 768p 5 s) on apimart" in err


def test_max_spend_stops_a_batch_and_the_summary_shows_the_spend(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompts = [f"{tag} wave {i}" for i in range(5)]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    # One at a time: MiniMax's submits are paced at 20 a minute, and a refused item then waits for no token.
    result = hailuo("batch", "p.txt", "--max-spend", "0.6", "--concurrency", "1", *on_minimax(server), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert sum(server.created(prompts)) == 2
    assert "spent" in result.stdout
    assert "$0.56 (estimated from the price table); cap $0.60" in result.stdout
    assert result.stdout.count("NotSubmittedError: not submitted") == 3
    assert "max_spend $0.60" in result.stdout


def test_generate_sends_the_model(server: SimServer, tmp_path: Path, tag: str) -> None:
    prompt = f"{tag} a kite over dunes"
    args = ("generate", prompt, "--model", "minimax-hailuo-2.3", "--resolution", "1080P", "--out", "clips")
    result = hailuo(*args, *on_minimax(server), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (task,) = [t for t in server.tasks() if t["prompt"] == prompt]
    assert task["request"]["model"] == "MiniMax-Hailuo-2.3"
    assert task["request"]["resolution"] == "1080P"


def test_model_and_money_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "a cat", "--model", "hailuo-3", "--api-key", "x"]) == 2
    assert "MiniMax-Hailuo-02, MiniMax-Hailuo-2.3, MiniMax-Hailuo-2.3-Fast" in capsys.readouterr().err
    assert main(["generate", "a cat", "--model", "MiniMax-Hailuo-2.3-Fast", "--api-key", "x"]) == 2
    assert "missing --first-frame: MiniMax-Hailuo-2.3-Fast is image-to-video only" in capsys.readouterr().err
    assert main(["generate", "a cat", "--model", "MiniMax-Hailuo-2.3", "--resolution", "512p", "--api-key", "x"]) == 2
    assert "invalid --resolution '512p' for apimart: MiniMax-Hailuo-2.3 takes 768p or 1080p" in capsys.readouterr().err
    assert main(["generate", "a cat", "--max-spend", "1", "--api-key", "x"]) == 2  # no apimart price
    assert "needs every item's price" in capsys.readouterr().err
    assert main(["generate", "a cat", "--max-spend", "-1", "--api-key", "x"]) == 2
    assert "--max-spend" in capsys.readouterr().err
    bad = tmp_path / "prices.json"
    for content, words in [
        ("{not json", "is not JSON"),
        ('{"minimax": {"MiniMax-Hailuo-2.3": {"512p": {"6": 0.1}}}}', "takes: 768p, 1080p"),
    ]:
        bad.write_text(content, encoding="utf-8")
        assert main(["generate", "a cat", "--provider", "minimax", "--prices", str(bad), "--api-key", "x"]) == 2
        assert words in capsys.readouterr().err
    assert main(["generate", "a cat", "--prices", str(tmp_path / "missing.json"), "--api-key", "x"]) == 2
    assert "cannot read --prices" in capsys.readouterr().err
