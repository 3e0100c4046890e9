"""Injected faults and limits: 5xx, drops, malformed bodies, latency, rate limits, keys, credits and drift."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import aiohttp
import pytest

from hailuo_async.simulator import DRIFT_SHAPES, Faults, RateLimit, Simulator

from .wire import AUTH, PROVIDERS, get_status, payload, status_url, submit, submit_url, task_id_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_error_5xx_before_anything(sim: Simulator, http: aiohttp.ClientSession, provider: str) -> None:
    sim.update_config(faults=Faults(error_5xx=1.0))
    statuses = set()
    for _ in range(12):
        code, answer, _ = await submit(http, sim, provider)
        statuses.add(code)
        if provider == "minimax":
            assert answer["base_resp"]["status_code"] == 1024
        else:
            assert answer["error"]["code"] == code
            assert answer["error"]["type"] in {"server_error", "bad_gateway", "service_unavailable", "internal_error"}
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1
    stats = sim.stats()
    assert stats.tasks_created == 0
    assert stats.submits_by_prompt == {"a fox": 12}

    sim.update_config(faults=Faults())
    code, _, _ = await submit(http, sim, provider)
    assert code == 200


async def test_drop_submit_creates_nothing(
    sim: Simulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sim.update_config(faults=Faults(drop=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(http, sim, "toapis")
    assert [record for record in caplog.records if record.levelno >= logging.INFO] == []
    stats = sim.stats()
    assert stats.tasks_created == 0
    assert stats.dropped_connections == 1
    assert stats.submits_by_prompt == {"a fox": 1}
    assert stats.responses_by_status == {}


async def test_drop_only_on_selected_routes(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(faults=Faults(drop=1.0, routes=frozenset({"status"})))
    code, answer, _ = await submit(http, sim, "apimart")
    assert code == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_status(http, sim, "apimart", task_id_of("apimart", answer))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_submit_then_drop_creates_the_task(sim: Simulator, http: aiohttp.ClientSession, provider: str) -> None:
    sim.update_config(faults=Faults(submit_then_drop=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(http, sim, provider, "unknown outcome")
    [task] = sim.tasks
    assert task.prompt == "unknown outcome"
    assert task.provider == provider
    assert sim.stats().tasks_created_by_prompt == {"unknown outcome": 1}
    # The task is real: it can be polled.
    sim.update_config(faults=Faults())
    code, _, _ = await get_status(http, sim, provider, task.task_id)
    assert code == 200


async def test_submit_then_drop_then_idempotent_retry(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(faults=Faults(submit_then_drop=1.0))
    headers = {**AUTH, "Idempotency-Key": "job-42"}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(submit_url(sim, "apimart"), json=payload(), headers=headers):
            pass
    sim.update_config(faults=Faults())
    async with http.post(submit_url(sim, "apimart"), json=payload(), headers=headers) as response:
        answer = await response.json()
    [task] = sim.tasks
    assert task_id_of("apimart", answer) == task.task_id
    stats = sim.stats()
    assert (stats.tasks_created, stats.idempotent_replays) == (1, 1)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_malformed_body_after_creating(sim: Simulator, http: aiohttp.ClientSession, provider: str) -> None:
    sim.update_config(faults=Faults(malformed=1.0))
    async with http.post(submit_url(sim, provider), json=payload(), headers=AUTH) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        text = await response.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    [task] = sim.tasks
    async with http.get(status_url(sim, provider, task.task_id), headers=AUTH) as response:
        assert response.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(await response.text())


async def test_latency(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(faults=Faults(latency=0.3))
    started = time.monotonic()
    await submit(http, sim, "apimart")
    assert time.monotonic() - started >= 0.3
    sim.update_config(faults=Faults(latency=(0.1, 0.15)))
    started = time.monotonic()
    await submit(http, sim, "apimart")
    assert 0.1 <= time.monotonic() - started < 1.0


async def test_rate_limit_apimart_and_toapis(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    sim.update_config(rate_limit=RateLimit(rate=0.25, burst=2))
    for provider, error_type in (("apimart", "rate_limit_error"), ("toapis", "rate_limit_exceeded")):
        code, answer, _ = await submit(http, sim, provider)  # submit and status share the bucket
        assert code == 200
        code, _, _ = await get_status(http, sim, provider, task_id_of(provider, answer))
        assert code == 200
        code, error, headers = await get_status(http, sim, provider, task_id_of(provider, answer))
        assert code == 429
        assert error["error"]["type"] == error_type
        assert error["error"]["code"] == 429
        assert headers["Retry-After"] == "4"
        code, _, _ = await submit(http, sim, provider, key="sk-another-key")  # buckets are per key
        assert code == 200
    now[0] += 2
    code, _, headers = await submit(http, sim, "apimart")
    assert (code, headers["Retry-After"]) == (429, "2")
    now[0] += 2
    code, _, _ = await submit(http, sim, "apimart")
    assert code == 200
    assert sim.stats().rate_limited == 3


async def test_rate_limit_minimax(clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession) -> None:
    sim, _ = clocked
    sim.update_config(rate_limit=RateLimit(rate=2, burst=1))
    code, answer, _ = await submit(http, sim, "minimax")
    assert answer["base_resp"]["status_code"] == 0
    code, answer, headers = await submit(http, sim, "minimax")
    assert code == 200
    assert answer["base_resp"] == {"status_code": 1002, "status_msg": "rate limit"}
    assert headers["Retry-After"] == "1"
    sim.update_config(minimax_http_errors=True)
    code, answer, headers = await submit(http, sim, "minimax")
    assert (code, answer["base_resp"]["status_code"], headers["Retry-After"]) == (429, 1002, "1")
    assert sim.stats().rate_limited == 2
    assert sim.stats().tasks_created == 1


async def test_keys(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(keys=("sk-good-key-1",))
    for provider in ("apimart", "toapis"):
        code, error, _ = await submit(http, sim, provider, key="sk-wrong")
        assert (code, error["error"]["type"]) == (401, "authentication_error")
        code, _, _ = await submit(http, sim, provider, key="sk-good-key-1")
        assert code == 200
    code, answer, _ = await submit(http, sim, "minimax", key="sk-wrong")
    assert (code, answer["base_resp"]["status_code"]) == (200, 2049)
    async with http.post(submit_url(sim, "minimax"), json=payload()) as response:
        assert (await response.json())["base_resp"]["status_code"] == 1004
    code, answer, _ = await submit(http, sim, "minimax", key="sk-good-key-1")
    assert answer["base_resp"]["status_code"] == 0
    assert sim.stats().responses_by_status[401] == 2


@pytest.mark.parametrize(
    ("provider", "expected"),
    [("apimart", (402, "payment_required")), ("toapis", (402, "insufficient_quota")), ("minimax", (200, 1008))],
)
async def test_credits(sim: Simulator, http: aiohttp.ClientSession, provider: str, expected: tuple[int, Any]) -> None:
    sim.update_config(credits=2)
    for _ in range(2):
        code, answer, _ = await submit(http, sim, provider)
        assert code == 200
    # A rejected (invalid) submit costs nothing and is still answered as invalid.
    async with http.post(submit_url(sim, provider), json={"model": "x"}, headers=AUTH) as response:
        assert response.status in (200, 400)
    code, answer, _ = await submit(http, sim, provider)
    detail = answer["base_resp"]["status_code"] if provider == "minimax" else answer["error"]["type"]
    assert (code, detail) == expected
    code, _, _ = await submit(http, sim, provider, key="sk-other-key")  # credits are per key
    assert code == 200
    assert sim.stats().tasks_created == 3


# What each drift shape changes, as (main shape, drifted shape) of one observable.
DRIFTS: dict[str, tuple[str, str]] = {
    "toapis_pending": ("queued", "pending"),  # toapis submit answer's status
    "apimart_submitted": ("pending", "submitted"),  # apimart status while queued
    "toapis_submitted": ("queued", "submitted"),  # toapis status while queued
    "apimart_in_progress": ("processing", "in_progress"),  # apimart status while running
    "apimart_url_string": ("list", "str"),  # type of apimart's result.videos[0].url
    "toapis_result_url": ("data", "url"),  # where toapis' result puts the URL
    "minimax_numeric_file_id": ("str", "int"),  # type of MiniMax's file_id in the query
}


async def observe_drift(http: aiohttp.ClientSession, sim: Simulator, now: list[float]) -> dict[str, set[str]]:
    """Run 16 tasks per provider through their lifecycle on the fake clock and collect every observable."""
    seen: dict[str, set[str]] = {name: set() for name in DRIFTS}
    ids: dict[str, list[str]] = {provider: [] for provider in PROVIDERS}
    for n in range(16):
        for provider in PROVIDERS:
            _, answer, _ = await submit(http, sim, provider, f"drift {n}")
            ids[provider].append(task_id_of(provider, answer))
            if provider == "toapis":
                seen["toapis_pending"].add(answer["status"])

    async def statuses(provider: str) -> list[Any]:
        return [(await get_status(http, sim, provider, task_id))[1] for task_id in ids[provider]]

    seen["apimart_submitted"] |= {answer["data"]["status"] for answer in await statuses("apimart")}
    seen["toapis_submitted"] |= {answer["status"] for answer in await statuses("toapis")}
    now[0] += 5
    seen["apimart_in_progress"] |= {answer["data"]["status"] for answer in await statuses("apimart")}
    now[0] += 10
    for answer in await statuses("apimart"):
        seen["apimart_url_string"].add(type(answer["data"]["result"]["videos"][0]["url"]).__name__)
    for answer in await statuses("toapis"):
        seen["toapis_result_url"].add("url" if "url" in answer["result"] else "data")
    seen["minimax_numeric_file_id"] |= {type(answer["file_id"]).__name__ for answer in await statuses("minimax")}
    return seen


def test_every_drift_shape_is_exercised() -> None:
    assert set(DRIFTS) == set(DRIFT_SHAPES)


@pytest.mark.parametrize("drift", [False, True, *sorted(DRIFTS)])
async def test_each_drift_shape_switches_on_alone(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession, drift: bool | str
) -> None:
    sim, now = clocked
    enabled = set(DRIFTS) if drift is True else {drift} if isinstance(drift, str) else set()
    sim.update_config(drift=drift if isinstance(drift, bool) else frozenset({drift}))
    seen = await observe_drift(http, sim, now)
    # A drifted shape shows on about half of the tasks; every other observable keeps its main shape.
    assert seen == {name: {main, alt} if name in enabled else {main} for name, (main, alt) in DRIFTS.items()}


async def test_drifted_tasks_still_download(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    sim.update_config(drift=frozenset({"apimart_url_string", "toapis_result_url"}))
    apimart_ids: list[str] = []
    toapis_ids: list[str] = []
    for n in range(6):
        for provider in ("apimart", "toapis"):
            _, answer, _ = await submit(http, sim, provider, f"download {n}")
            (apimart_ids if provider == "apimart" else toapis_ids).append(task_id_of(provider, answer))
    now[0] += 11
    for task_id in apimart_ids:
        _, answer, _ = await get_status(http, sim, "apimart", task_id)
        url = answer["data"]["result"]["videos"][0]["url"]
        async with http.get(url if isinstance(url, str) else url[0]) as response:
            assert response.status == 200
    for task_id in toapis_ids:
        _, answer, _ = await get_status(http, sim, "toapis", task_id)
        result = answer["result"]
        async with http.get(result["url"] if "url" in result else result["data"][0]["url"]) as response:
            assert response.status == 200
