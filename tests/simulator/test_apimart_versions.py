"""apimart's newer response version (``X-APIMart-Response-Version``) and 409 ``idempotency_in_progress``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest

from hailuo_async.simulator import Simulator

pytestmark = pytest.mark.anyio

KEY = "sk-test-versions-0001"
AUTH = {"Authorization": f"Bearer {KEY}"}
V2 = {"X-APIMart-Response-Version": "2026-07-27"}
MODEL = "MiniMax-Hailuo-02"


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any


async def submit(
    http: aiohttp.ClientSession, sim: Simulator, prompt: str, headers: dict[str, str] | None = None
) -> Answer:
    async with http.post(
        f"{sim.urls.apimart}/v1/videos/generations",
        json={"model": MODEL, "prompt": prompt},
        headers={**AUTH, **(headers or {})},
    ) as response:
        return Answer(response.status, await response.json(), response.headers)


async def status(http: aiohttp.ClientSession, sim: Simulator, task_id: str, headers: dict[str, str]) -> Answer:
    async with http.get(f"{sim.urls.apimart}/v1/tasks/{task_id}", headers={**AUTH, **headers}) as response:
        return Answer(response.status, await response.json(), response.headers)


async def test_versioned_submit_is_202_with_an_object(sim: Simulator, http: aiohttp.ClientSession) -> None:
    answer = await submit(http, sim, "newer", V2)
    assert answer.status == 202
    request_id = answer.headers["X-Request-Id"]
    task_id = answer.body["data"]["id"]
    assert answer.body == {"code": 202, "data": {"id": task_id, "status": "pending"}, "request_id": request_id}
    assert answer.headers["X-APIMart-Response-Version"] == "2026-07-27"
    assert "Idempotency-Replayed" not in answer.headers
    # The id form of apimart's status page example; ids are opaque to clients either way.
    assert re.fullmatch(r"task-unified-\d{10}-[0-9a-z]{8}", task_id)
    assert sim.task(task_id).prompt == "newer"

    legacy = await submit(http, sim, "older")
    assert legacy.status == 200
    assert legacy.body == {"code": 200, "data": [{"status": "submitted", "task_id": legacy.body["data"][0]["task_id"]}]}
    assert "X-APIMart-Response-Version" not in legacy.headers
    # An unknown version is answered in the legacy shape.
    other = await submit(http, sim, "unknown version", {"X-APIMart-Response-Version": "2099-01-01"})
    assert (other.status, other.body["data"][0]["status"]) == (200, "submitted")


async def test_versioned_status_adds_request_id(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    task_id = (await submit(http, sim, "status", V2)).body["data"]["id"]
    for step in (0.0, 11.0):  # queued, then completed
        now[0] += step
        legacy = await status(http, sim, task_id, {})
        newer = await status(http, sim, task_id, V2)
        assert set(legacy.body) == {"code", "data"}
        assert set(newer.body) == {"code", "data", "request_id"}
        assert newer.body["request_id"] == newer.headers["X-Request-Id"] != legacy.headers["X-Request-Id"]
        assert newer.headers["X-APIMart-Response-Version"] == "2026-07-27"
        # The rest of the shape is the same (apart from the freshly signed video URL of a finished task).
        assert newer.body["code"] == legacy.body["code"] == 200
        assert newer.body["data"].keys() == legacy.body["data"].keys()
        assert newer.body["data"]["status"] == legacy.body["data"]["status"]
    [video] = newer.body["data"]["result"]["videos"]
    assert isinstance(video["url"], list)
    assert video.keys() == legacy.body["data"]["result"]["videos"][0].keys()


async def test_replays_say_so_in_the_newer_version(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = {"Idempotency-Key": "b7e4c1d2-replay"}
    first = await submit(http, sim, "replayed", {**V2, **key})
    again = await submit(http, sim, "replayed", {**V2, **key})
    assert (first.status, again.status) == (202, 202)
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.body["data"] == first.body["data"]
    assert again.body["request_id"] == again.headers["X-Request-Id"] != first.body["request_id"]
    # Without the version header, the replay is today's legacy answer, exactly.
    legacy = await submit(http, sim, "replayed", key)
    assert legacy.status == 200
    assert legacy.body == {"code": 200, "data": [{"status": "submitted", "task_id": first.body["data"]["id"]}]}
    assert "Idempotency-Replayed" not in legacy.headers
    stats = sim.stats()
    assert (stats.tasks_created, stats.idempotent_replays) == (1, 2)


@asynccontextmanager
async def submit_in_background(
    http: aiohttp.ClientSession, sim: Simulator, prompt: str, headers: dict[str, str]
) -> AsyncIterator[list[Answer]]:
    """Start a submit; the body runs once the simulator is processing it (its body read and counted), and the
    yielded list holds its answer after the block."""
    answers: list[Answer] = []

    async def send() -> None:
        answers.append(await submit(http, sim, prompt, headers))

    async with anyio.create_task_group() as group:
        group.start_soon(send)
        with anyio.fail_after(5):
            while sim.stats().submits_by_prompt.get(prompt, 0) == 0:
                await anyio.sleep(0.005)
        yield answers


@pytest.mark.parametrize("version", [{}, V2], ids=["legacy", "versioned"])
async def test_same_key_while_processing_is_409_in_progress(
    sim: Simulator, http: aiohttp.ClientSession, version: dict[str, str]
) -> None:
    sim.update_config(submit_delay=0.4)
    key = {"Idempotency-Key": "5d1c-in-progress", **version}
    async with submit_in_background(http, sim, "slow to accept", key) as first:
        busy = await submit(http, sim, "slow to accept", key)
        assert busy.status == 409
        assert busy.headers["Retry-After"] == "1"
        error = busy.body["error"]
        assert error["code"] == "idempotency_in_progress"
        assert error["type"] == "idempotency_error"
        assert "still being processed" in error["message"]
        assert sim.tasks == []  # nothing exists yet, and the 409 created nothing
        other = await submit(http, sim, "another key is not blocked", {"Idempotency-Key": "another", **version})
        assert other.status in (200, 202)
    [done] = first
    assert done.status in (200, 202)
    replay = await submit(http, sim, "slow to accept", key)
    assert (replay.status, replay.body["data"]) == (done.status, done.body["data"])
    stats = sim.stats()
    assert stats.tasks_created_by_prompt == {"slow to accept": 1, "another key is not blocked": 1}
    assert stats.responses_by_status[409] == 1
    assert stats.idempotent_replays == 1


async def test_without_idempotency_concurrent_submits_are_separate_tasks(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config(submit_delay=0.2, idempotency=False)
    key = {"Idempotency-Key": "ignored"}
    async with submit_in_background(http, sim, "twice", key) as first:
        second = await submit(http, sim, "twice", key)
    assert (second.status, first[0].status) == (200, 200)
    assert sim.stats().tasks_created_by_prompt == {"twice": 2}
