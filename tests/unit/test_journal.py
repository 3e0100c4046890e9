"""The journal's failures: every storage and decoding problem is a JournalError naming the file, from the library
and from the command line; a failed write leaves the file as it was and refuses every later write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import msgspec
import pytest

from hailuo_async import GenerationRequest, Journal, JournalBusyError, JournalError, JournalItem
from hailuo_async._journal import item_key
from hailuo_async.cli import main

pytestmark = pytest.mark.anyio

PROMPT = "A lighthouse in a storm [Push in]"


def corrupt(path: Path) -> Path:
    path.write_bytes(b"this is not an SQLite file, only some text long enough to look like a header" * 4)
    return path


def item(state: str = "intent", prompt: str = PROMPT) -> JournalItem:
    request = GenerationRequest(prompt)
    item_id = item_key("apimart", request, 0)
    return JournalItem(
        item_id=item_id,
        provider="apimart",
        request=request,
        occurrence=0,
        batch_index=0,
        idempotency_key=f"key-{item_id}",
        state=state,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("readonly", [False, True])
async def test_a_corrupt_file_is_a_journal_error_naming_it(tmp_path: Path, readonly: bool) -> None:
    path = corrupt(tmp_path / "corrupt.sqlite")
    with pytest.raises(JournalError) as info:
        await Journal.open(path, readonly=readonly)
    error = info.value
    assert str(error) == f"{path} is not a hailuo journal (file is not a database)"
    assert error.path == str(path)
    assert isinstance(error.__cause__, sqlite3.DatabaseError)
    with pytest.raises(JournalError) as again:  # the failed open let go of its lock: not JournalBusyError
        await Journal.open(path, readonly=readonly)
    assert type(again.value) is JournalError


async def test_an_item_that_does_not_decode_is_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = await Journal.open(path)
    await journal.write(item())
    await journal.aclose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE items SET request = ?", ('{"prompt": 42}',))
    db.close()
    with pytest.raises(JournalError, match=r"j\.sqlite is not a hailuo journal") as info:
        await Journal.open(path, readonly=True)
    assert isinstance(info.value.__cause__, msgspec.DecodeError)


async def test_a_folder_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open the journal") as info:
        await Journal.open(tmp_path)
    assert info.value.path == str(tmp_path)


async def test_a_failed_write_refuses_every_later_one_and_keeps_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = await Journal.open(path)
    await journal.write(item("intent"))
    with sqlite3.connect(path) as db:  # from now on the file refuses any item in state "failed"
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.state = 'failed' "
            "BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END"
        )
    db.close()
    errors: list[JournalError] = []

    async def write(state: str, prompt: str) -> None:
        try:
            await journal.write(item(state, prompt))
        except JournalError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:  # writes waiting together share the failed commit
        tg.start_soon(write, "failed", PROMPT)
        tg.start_soon(write, "intent", "another prompt")
    assert len(errors) == 2
    assert any(str(e) == f"cannot write the journal {path}: simulated disk failure" for e in errors)
    with pytest.raises(JournalError, match="failed a write earlier") as info:
        await journal.write(item("submitted"))  # allowed by the file, refused by the journal
    assert isinstance(info.value.__cause__, JournalError)
    await journal.aclose()
    reader = await Journal.open(path, readonly=True)
    assert [(i.request.prompt, i.state) for i in reader.items()] == [(PROMPT, "intent")]
    await reader.aclose()


async def test_busy_is_a_journal_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    first = await Journal.open(path)
    try:
        with pytest.raises(JournalError) as info:
            await Journal.open(path)
        assert isinstance(info.value, JournalBusyError)
        assert info.value.path == str(path)
    finally:
        await first.aclose()


def test_the_cli_reports_a_corrupt_journal_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corrupt(tmp_path / "corrupt.sqlite")
    expected = f"hailuo: error: {path} is not a hailuo journal (file is not a database)\n"
    assert main(["status", "--journal", str(path)]) == 2
    assert capsys.readouterr() == ("", expected)
    (tmp_path / "p.txt").write_text("a cat\n")
    batch = [
        "batch",
        str(tmp_path / "p.txt"),
        "--journal",
        str(path),
        "--api-key",
        "x",
        "--base-url",
        "http://127.0.0.1:9",
    ]
    assert main(batch) == 2  # refused when the client opens, before anything is sent
    assert capsys.readouterr().err.endswith(expected)
