"""load_requests: a batch file (.txt, .jsonl, .csv or stdin) into validated requests, or one BatchFileError.

The parsers' edge cases are fuzzed in unit/test_fuzz_batchfile.py; the command line's wording of these errors is
tested in cli/test_cli.py.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
from PIL import Image

from hailuo_async import BadLine, BatchFileError, GenerationRequest, InvalidRequestError, load_requests
from hailuo_async.providers import PROVIDERS


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def frame(path: Path, size: tuple[int, int] = (640, 360)) -> Path:
    Image.new("RGB", size, (30, 90, 160)).save(path, format="PNG")
    return path


def test_every_format_gives_the_same_requests(tmp_path: Path) -> None:
    txt = write(tmp_path / "p.txt", "# my prompts\n\nA cat [Push in]\n  A dog  \n")
    jsonl = write(tmp_path / "p.jsonl", '"A cat [Push in]"\n# a comment\n{"prompt": "A dog"}\n')
    csv = write(tmp_path / "p.csv", "prompt\nA cat [Push in]\n\nA dog\n")
    expected = [GenerationRequest("A cat [Push in]"), GenerationRequest("A dog")]
    for path in (txt, jsonl, csv):
        assert load_requests(path) == expected
        assert load_requests(str(path), provider="apimart") == expected
    assert load_requests(write(tmp_path / "no-extension", "A cat [Push in]\nA dog\n")) == expected
    assert load_requests(write(tmp_path / "p.ndjson", '"A cat [Push in]"\n"A dog"\n')) == expected


def test_fields_cells_and_defaults(tmp_path: Path) -> None:
    lines = [
        {"prompt": "one", "duration": 10, "resolution": "1080P", "watermark": True},
        {"prompt": "two", "prompt_optimizer": False},
    ]
    jsonl = write(tmp_path / "p.jsonl", "\n".join(json.dumps(line) for line in lines))
    one, two = load_requests(jsonl, defaults={"duration": 6, "resolution": None})
    assert (one.duration, one.resolution, one.watermark) == (10, "1080p", True)
    assert (two.duration, two.prompt_optimizer, two.resolution) == (6, False, None)
    csv = write(tmp_path / "p.csv", 'Prompt,duration,watermark,fast_pretreatment\n"a, b",10,yes,\nc,,0,TRUE\n')
    first, second = load_requests(csv, defaults={"duration": 5})
    assert (first.prompt, first.duration, first.watermark, first.fast_pretreatment) == ("a, b", 10, True, None)
    assert (second.duration, second.watermark, second.fast_pretreatment) == (5, False, True)


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_requests("-", stdin=io.StringIO("A cat\n")) == [GenerationRequest("A cat")]
    assert load_requests("-", format="jsonl", stdin=io.StringIO('{"prompt": "A dog"}\n')) == [
        GenerationRequest("A dog")
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("A fox\n"))
    assert load_requests("-") == [GenerationRequest("A fox")]


def test_an_empty_file_gives_no_requests(tmp_path: Path) -> None:
    assert load_requests(write(tmp_path / "p.txt", "# nothing yet\n\n")) == []


def test_the_provider_s_rules_apply_only_when_it_is_given(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"prompt": "A cat", "duration": 6}\n')
    assert load_requests(path)[0].duration == 6  # a valid request...
    with pytest.raises(BatchFileError) as info:
        load_requests(path, provider=PROVIDERS["apimart"])  # ...that apimart does not take
    assert info.value.provider == "apimart"
    (bad,) = info.value.bad_lines
    assert (bad.line, bad.field) == (1, "duration")
    assert bad.message.startswith("invalid duration=6 for apimart")
    assert load_requests(path, provider="minimax")[0].duration == 6


def test_local_frames_are_relative_to_the_file_and_checked_with_a_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "batch"
    (folder / "frames").mkdir(parents=True)
    frame(folder / "frames" / "day.png")
    frame(folder / "frames" / "tiny.png", (200, 200))
    lines = [
        {"prompt": "A day", "first_frame": "frames/day.png"},
        {"prompt": "A tiny one", "first_frame": "frames/tiny.png"},
        {"prompt": "Online", "first_frame": "https://example.com/a.png"},
    ]
    path = write(folder / "p.jsonl", "\n".join(json.dumps(line) for line in lines))
    monkeypatch.chdir(tmp_path)
    unchecked = load_requests(Path("batch") / "p.jsonl")
    assert [r.first_frame for r in unchecked] == [
        str(folder / "frames" / "day.png"),
        str(folder / "frames" / "tiny.png"),
        "https://example.com/a.png",
    ]
    with pytest.raises(BatchFileError) as info:
        load_requests(path, provider="toapis")
    (bad,) = info.value.bad_lines
    assert (bad.line, bad.field) == (2, "first_frame")
    assert "short side" in bad.message or "300" in bad.message
    assert [r.prompt for r in info.value.requests] == ["A day", "Online"]


def test_bad_lines_are_all_kept_and_the_message_lists_twenty(tmp_path: Path) -> None:
    lines = ['{"prompt": "fine"}', *(f'{{"prompt": "p{i}", "duration": "ten"}}' for i in range(25))]
    path = write(tmp_path / "p.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(BatchFileError) as info:
        load_requests(path)
    error = info.value
    assert isinstance(error, InvalidRequestError)
    assert (error.parameter, error.source, error.value) == ("source", str(path), str(path))
    assert len(error.bad_lines) == 25
    assert [bad.line for bad in error.bad_lines] == list(range(2, 27))
    assert error.requests == [GenerationRequest("fine")]
    message = str(error)
    assert message.startswith(f"25 bad line(s) in {path}:\n  line 2, field 'duration': invalid duration='ten'")
    assert message.count("\n  line ") == 20
    assert message.endswith("\n  ... and 5 more")
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (clone.bad_lines, clone.requests, str(clone)) == (error.bad_lines, error.requests, message)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "no such file: {path}"),
        ("folder.txt", "folder", "{path} is a folder, not a batch file"),
        ("latin.txt", b"\xff\xfe caf\xe9\n", "{path} is not UTF-8 text (invalid start byte at byte 0)"),
    ],
)
def test_an_unreadable_file_is_a_batch_file_error_without_lines(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(BatchFileError) as info:
        load_requests(path)
    assert str(info.value) == message.format(path=path)
    assert (info.value.bad_lines, info.value.requests) == ([], [])
    assert isinstance(info.value.__cause__, OSError | UnicodeDecodeError)


def test_wrong_arguments_are_invalid_request_errors(tmp_path: Path) -> None:
    weird = write(tmp_path / "p.weird", "A cat\n")
    with pytest.raises(InvalidRequestError, match="cannot tell the format of") as info:
        load_requests(weird)
    assert info.value.parameter == "format"
    assert not isinstance(info.value, BatchFileError)
    assert load_requests(weird, format="txt") == [GenerationRequest("A cat")]
    with pytest.raises(InvalidRequestError, match="'txt', 'jsonl' or 'csv'"):
        load_requests(weird, format="xml")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as info:
        load_requests(weird, format="txt", defaults={"durations": 5})
    assert (info.value.parameter, info.value.value) == ("defaults", "durations")


def test_a_bad_line_reads_as_the_command_line_prints_it() -> None:
    assert str(BadLine(line=4, field="prompt", message="invalid prompt='x': text")) == (
        "line 4, field 'prompt': invalid prompt='x': text"
    )
    assert str(BadLine(line=1, field=None, message="not valid JSON")) == "line 1: not valid JSON"


def test_a_model_field_or_column_names_each_line_s_model(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path / "m.jsonl",
        '{"prompt": "a", "model": "minimax-hailuo-2.3"}\n'
        '{"prompt": "b"}\n'
        '{"prompt": "c", "model": "MiniMax-Hailuo-2.3-Fast", "first_frame": "https://example.com/c.jpg"}\n',
    )
    a, b, c = load_requests(jsonl, provider="minimax")
    assert (a.model, b.model, c.model) == ("MiniMax-Hailuo-2.3", "MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3-Fast")
    (b_default,) = load_requests(write(tmp_path / "b.txt", "b\n"), defaults={"model": "MINIMAX-HAILUO-2.3"})
    assert b_default.model == "MiniMax-Hailuo-2.3"
    csv = write(tmp_path / "m.csv", "prompt,Model,resolution\nd,MiniMax-Hailuo-2.3,1080P\ne,,\n")
    d, e = load_requests(csv, provider="toapis", defaults={"model": "MiniMax-Hailuo-2.3"})
    assert (d.model, d.resolution, e.model) == ("MiniMax-Hailuo-2.3", "1080p", "MiniMax-Hailuo-2.3")


def test_each_line_is_checked_against_its_model_s_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.jsonl",
        '{"prompt": "fine", "model": "MiniMax-Hailuo-2.3"}\n'
        '{"prompt": "no such model", "model": "MiniMax-Hailuo-3"}\n'
        '{"prompt": "512p", "model": "MiniMax-Hailuo-2.3", "resolution": "512p", "first_frame": "https://e.com/a.jpg"}\n'
        '{"prompt": "no first frame", "model": "MiniMax-Hailuo-2.3-Fast"}\n'
        '{"prompt": "last", "model": "MiniMax-Hailuo-2.3", "first_frame": "https://e.com/a.jpg", '
        '"last_frame": "https://e.com/b.jpg"}\n',
    )
    with pytest.raises(BatchFileError) as info:
        load_requests(path, provider="apimart")
    assert [(bad.line, bad.field) for bad in info.value.bad_lines] == [
        (2, "model"),
        (3, "resolution"),
        (4, "first_frame"),
        (5, "last_frame"),
    ]
    assert "MiniMax-Hailuo-2.3-Fast (any case)" in info.value.bad_lines[0].message
    assert "MiniMax-Hailuo-2.3 takes 768p or 1080p" in info.value.bad_lines[1].message
    assert [r.prompt for r in info.value.requests] == ["fine"]
    with pytest.raises(BatchFileError):
        load_requests(path)  # without a provider the model's name is still checked
