"""Batches (``hailuo_async._batch``) on the mock transport and a fake clock: what a journal failure costs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hailuo_async import FakeClock, Generation, HailuoClient, JournalError, MockTransport
from hailuo_async._journal import JournalItem

from .fakegw import FakeGateway

pytestmark = pytest.mark.anyio


async def test_a_journal_that_stops_writing_after_the_submit_does_not_fail_the_finished_item(tmp_path: Path) -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda prompt: 30.0)
    async with HailuoClient(
        "apimart", api_key="k", transport=MockTransport(gw), clock=clock, journal=tmp_path / "j.sqlite"
    ) as client:
        journal = client.journal
        assert journal is not None
        write = journal.write
        writes: list[str] = []

        async def failing_after_submit(item: JournalItem) -> None:
            writes.append(item.state)
            if item.state == "completed":  # the disk filled up after the task was recorded as submitted
                raise JournalError("disk full", path=journal.path)
            await write(item)

        journal.write = failing_after_submit  # type: ignore[method-assign]
        (result,) = await client.gather_generations(["a quiet harbour"], return_exceptions=True)
    assert isinstance(result, Generation)  # the paid video is returned, not lost to the journal's failure
    assert writes[:2] == ["intent", "submitted"] and "completed" in writes
    assert sum(gw.posts.values()) == 1


async def test_a_journal_that_cannot_record_the_intent_sends_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    gw = FakeGateway(clock)
    async with HailuoClient(
        "apimart", api_key="k", transport=MockTransport(gw), clock=clock, journal=tmp_path / "j.sqlite"
    ) as client:
        journal = client.journal
        assert journal is not None

        async def failing(item: JournalItem) -> None:
            raise JournalError("read-only file system", path=journal.path)

        journal.write = failing  # type: ignore[method-assign]
        results = await client.gather_generations(["one", "two"], return_exceptions=True)
    assert all(isinstance(r, JournalError) for r in results)
    assert not gw.posts  # an item whose intent cannot be recorded is never paid for
