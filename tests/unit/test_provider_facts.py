"""What providers report about a finished task (cost, timing, video size): carried from the status answer into the
:class:`Generation` by the poller, and kept by the batch journal, including journals written before these facts
existed."""

from __future__ import annotations

import sqlite3
import typing
from pathlib import Path

import msgspec
import pytest

from hailuo_async import (
    FakeClock,
    Generation,
    GenerationRequest,
    HailuoClient,
    HttpRequest,
    HttpResponse,
    MockTransport,
    RetryPolicy,
    TaskState,
    TaskStatus,
)
from hailuo_async._journal import Journal, JournalItem, completed_fields
from hailuo_async._models import ProviderFacts

pytestmark = pytest.mark.anyio

WILD = Path(__file__).parents[1] / "fixtures"
FACT_NAMES = tuple(typing.get_type_hints(ProviderFacts))
REQUEST = GenerationRequest("A cat on the grass", duration=6)
FACTS = ProviderFacts(
    cost=0.28, credits_cost=2.8, actual_time=155.0, finished_at=1765001046.0, video_width=1366, video_height=768
)


def bare_records() -> list[msgspec.Struct]:
    """One record of each kind built with only its required fields."""
    return [
        TaskStatus(state=TaskState.RUNNING),
        Generation(
            provider="apimart",
            task_id="t",
            request=REQUEST,
            video_url="u",
            expires_at=None,
            submitted_at=0.0,
            completed_at=0.0,
        ),
        JournalItem(
            item_id="i",
            provider="apimart",
            request=REQUEST,
            occurrence=0,
            batch_index=None,
            idempotency_key="k",
            state="intent",
        ),
    ]


@pytest.mark.parametrize("record", bare_records(), ids=lambda r: type(r).__name__)
def test_every_record_declares_every_fact_as_optional(record: msgspec.Struct) -> None:
    assert {name: getattr(record, name) for name in FACT_NAMES} == dict.fromkeys(FACT_NAMES)
    assert set(FACT_NAMES) <= set(record.__struct_fields__)


def test_provider_facts_reads_the_attributes() -> None:
    status = TaskStatus(state=TaskState.COMPLETED, video_url="https://cdn.example/v.mp4", **FACTS)
    assert status.provider_facts() == FACTS


# -- the poller carries them into the Generation ----------------------------------------------------------------


def replay(submit: str, status: str, *, retrieve: bytes | None = None) -> MockTransport:
    """A gateway answering the submit, every status check and any files/retrieve with fixed bodies."""
    bodies = {"submit": (WILD / submit).read_bytes(), "status": (WILD / status).read_bytes()}
    if retrieve is not None:
        bodies["retrieve"] = retrieve

    def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status=200, headers={"content-type": "application/json"}, body=bodies[request.route])

    return MockTransport(handler)


def client(provider: str, transport: MockTransport) -> HailuoClient:
    retry = RetryPolicy(base_delay=0.001, max_delay=0.01)
    return HailuoClient(provider, api_key="k", transport=transport, clock=FakeClock(), retry=retry)


async def test_apimart_cost_and_timing_reach_the_generation() -> None:
    transport = replay("apimart/submit.json", "apimart/wild/status_completed_with_cost.json")
    async with client("apimart", transport) as hailuo:
        video = await hailuo.generate("A cat on the grass", duration=5)
    assert (video.cost, video.credits_cost, video.actual_time) == (0.28, 2.8, 155)
    assert video.finished_at == 1765001046  # the provider's clock; completed_at is this client's
    assert video.completed_at != video.finished_at


async def test_minimax_video_size_reaches_the_generation() -> None:
    retrieve = (
        b'{"file":{"file_id":176844028768320,"download_url":"https://cdn.example/v.mp4"},"base_resp":{"status_code":0}}'
    )
    transport = replay("minimax/submit.json", "minimax/wild/query_success_1366x768.json", retrieve=retrieve)
    async with client("minimax", transport) as hailuo:
        video = await hailuo.generate("A cat on the grass", duration=6)
    assert video.video_url == "https://cdn.example/v.mp4"
    assert (video.video_width, video.video_height, video.cost) == (1366, 768, None)


# -- the journal keeps them -------------------------------------------------------------------------------------


def completed_item() -> JournalItem:
    generation = Generation(
        provider="toapis",
        task_id="vid_1",
        request=REQUEST,
        video_url="https://files.toapis.com/videos/vid_1.mp4",
        expires_at=1768466791.0,
        submitted_at=1768380224.0,
        completed_at=1768380400.0,
        **FACTS,
    )
    item = JournalItem(
        item_id="item-1",
        provider="toapis",
        request=REQUEST,
        occurrence=0,
        batch_index=0,
        idempotency_key="8f14e45fceea167a5a36dedd4bea2543",
        state="submitted",
        task_id="vid_1",
        submitted_at=1768380224.0,
    )
    recorded = msgspec.structs.replace(item, **completed_fields(generation))
    assert recorded.generation() == generation
    return recorded


async def test_journal_round_trip_keeps_the_facts(tmp_path: Path) -> None:
    path = tmp_path / "batch.sqlite"
    journal = await Journal.open(path)
    await journal.write(completed_item())
    await journal.aclose()
    for readonly in (True, False):
        reopened = await Journal.open(path, readonly=readonly)
        try:
            item = reopened.get("item-1")
            assert item == completed_item()
            generation = item.generation() if item is not None else None
            assert generation is not None and generation.provider_facts() == FACTS
        finally:
            await reopened.aclose()


# The items table as the first released version wrote it (no fact columns).
FIRST_SCHEMA = """
CREATE TABLE items (
    item_id TEXT PRIMARY KEY, provider TEXT NOT NULL, request TEXT NOT NULL, occurrence INTEGER NOT NULL,
    batch_index INTEGER, idempotency_key TEXT NOT NULL, state TEXT NOT NULL, task_id TEXT, submitted_at REAL,
    video_url TEXT, expires_at REAL, completed_at REAL, path TEXT, error_type TEXT, error_message TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX items_task ON items(task_id);
INSERT INTO items VALUES ('old-1', 'apimart', '{"duration":5,"prompt":"old"}', 0, 0, 'key-1', 'completed',
    'task_1', 1765000891.0, 'https://upload.apimart.ai/f/video/v.mp4', 1765087446.0, 1765001050.0, NULL, NULL, NULL,
    1765001050.0);
"""


def first_version_journal(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(FIRST_SCHEMA)
    db.close()
    return path


def columns(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[1] for row in db.execute("PRAGMA table_info(items)")}
    finally:
        db.close()


async def test_journal_from_the_first_version_reads_without_facts(tmp_path: Path) -> None:
    path = first_version_journal(tmp_path / "old.sqlite")
    reader = await Journal.open(path, readonly=True)
    try:
        item = reader.get("old-1")
        assert item is not None and item.state == "completed"
        generation = item.generation()
        assert generation is not None and generation.video_url == "https://upload.apimart.ai/f/video/v.mp4"
        assert set(generation.provider_facts().values()) == {None}
    finally:
        await reader.aclose()
    assert not set(FACT_NAMES) & columns(path)  # a read-only open changes nothing


async def test_journal_from_the_first_version_gains_the_columns(tmp_path: Path) -> None:
    path = first_version_journal(tmp_path / "old.sqlite")
    journal = await Journal.open(path)
    try:
        old = journal.get("old-1")
        assert old is not None and old.cost is None
        await journal.write(completed_item())
    finally:
        await journal.aclose()
    assert set(FACT_NAMES) <= columns(path)
    reader = await Journal.open(path, readonly=True)
    try:
        assert reader.get("item-1") == completed_item()
        assert reader.get("old-1") == old
    finally:
        await reader.aclose()
    again = await Journal.open(path)  # a second writable open finds nothing to add
    await again.aclose()
