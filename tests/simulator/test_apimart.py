"""apimart emulation: submit, status shapes through the lifecycle, validation, auth and Idempotency-Key."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
import anyio
import pytest

from hailuo_async.simulator import Simulator

pytestmark = pytest.mark.anyio

KEY = "sk-test-apimart-0001"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "MiniMax-Hailuo-02"


def body(prompt: str = "a cat on the grass {{sim:time=0.2}}", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt, **extra}


async def submit(
    http: aiohttp.ClientSession, sim: Simulator, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.post(
        f"{sim.urls.apimart}/v1/videos/generations", json=payload, headers={**AUTH, **(headers or {})}
    ) as response:
        return response.status, await response.json()


async def status(http: aiohttp.ClientSession, sim: Simulator, task_id: str) -> tuple[int, Any]:
    async with http.get(f"{sim.urls.apimart}/v1/tasks/{task_id}", params={"language": "en"}, headers=AUTH) as r:
        return r.status, await r.json()


async def test_submit_shape_and_lifecycle_to_download(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.urls.apimart}/v1/videos/generations", json=body(), headers=AUTH) as response:
        assert response.status == 200
        assert response.headers["X-Request-Id"].startswith("req_")
        payload = await response.json()
    assert payload["code"] == 200
    [entry] = payload["data"]
    assert set(entry) == {"status", "task_id"}
    assert entry["status"] == "submitted"
    task_id = entry["task_id"]
    assert re.fullmatch(r"task_[0-9A-HJKMNP-TV-Z]{26}", task_id)

    with anyio.fail_after(5):
        while True:
            code, task = await status(http, sim, task_id)
            assert code == 200
            assert task["code"] == 200
            if task["data"]["status"] == "completed":
                break
            assert task["data"]["status"] in {"pending", "processing"}
            await anyio.sleep(0.05)
    data = task["data"]
    assert data["id"] == task_id
    assert data["progress"] == 100
    assert isinstance(data["created"], int)
    assert abs(data["created"] - time.time()) < 10
    assert data["completed"] >= data["created"]
    assert data["actual_time"] >= 1
    assert isinstance(data["estimated_time"], int)
    assert data["estimated_time"] >= 1
    [video] = data["result"]["videos"]
    [url] = video["url"]
    assert video["expires_at"] - time.time() == pytest.approx(72 * 3600, abs=5)  # apimart: 72 h
    assert url.startswith(sim.urls.cdn + "/videos/")
    async with http.get(url) as download:
        assert download.status == 200
        content = await download.read()
    assert content[4:8] == b"ftyp"
    assert len(content) == 65536


async def test_states_and_progress_follow_the_clock(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    _, payload = await submit(http, sim, body("a dog"))
    task_id = payload["data"][0]["task_id"]
    _, task = await status(http, sim, task_id)
    assert task["data"]["status"] == "pending"
    assert task["data"]["progress"] == 0
    assert set(task["data"]) == {"id", "status", "progress", "created", "estimated_time"}
    now[0] += 6.0  # 2 s queued + 4 of 8 s running
    _, task = await status(http, sim, task_id)
    assert task["data"]["status"] == "processing"
    assert task["data"]["progress"] == 49
    now[0] += 3.9
    _, task = await status(http, sim, task_id)
    assert task["data"]["progress"] == 97
    now[0] += 0.2
    _, task = await status(http, sim, task_id)
    assert task["data"]["status"] == "completed"
    assert task["data"]["actual_time"] == 10
    assert sim.task(task_id).state == "completed"


async def test_fail_and_hang_markers(clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession) -> None:
    sim, now = clocked
    _, failing = await submit(http, sim, body("bad {{sim:fail}} {{sim:time=1}}"))
    _, hanging = await submit(http, sim, body("stuck {{sim:hang}}"))
    now[0] += 3600
    _, task = await status(http, sim, failing["data"][0]["task_id"])
    assert task["data"]["status"] == "failed"
    error = task["data"]["error"]
    assert isinstance(error["code"], int)
    assert error["type"] == "content_policy_violation"
    assert "content policy" in error["message"]
    assert "result" not in task["data"]
    _, task = await status(http, sim, hanging["data"][0]["task_id"])
    assert task["data"]["status"] == "processing"
    assert task["data"]["progress"] == 99
    assert sim.task(hanging["data"][0]["task_id"]).ready_at is None


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"model": "MiniMax-Hailuo-03", "prompt": "x"}, "model"),
        ({"model": MODEL}, "prompt"),
        ({"model": MODEL, "prompt": "   "}, "prompt"),
        (body(duration=6), "duration"),
        (body(duration="5"), "duration"),
        (body(resolution="768P"), "resolution"),
        (body(resolution="1080p", duration=10), "1080p"),
        (body("x" * 2001), "2000"),
        (body(last_frame_image="https://example.com/b.jpg"), "first_frame_image"),
        (body(first_frame_image="/tmp/a.jpg"), "first_frame_image"),
        (body(watermark="yes"), "watermark"),
        (["not", "an", "object"], "object"),
    ],
)
async def test_validation_errors(sim: Simulator, http: aiohttp.ClientSession, payload: Any, fragment: str) -> None:
    code, error = await submit(http, sim, payload)
    assert code == 400
    assert error["error"]["code"] == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"]
    assert sim.stats().tasks_created == 0


@pytest.mark.parametrize(
    "payload",
    [
        body("[Spin around] anything goes in brackets on apimart"),
        body(resolution="512p", duration=10),
        body(resolution="1080p", duration=5),
        body(first_frame_image="data:image/jpeg;base64,/9j/4AAQ", last_frame_image="https://example.com/b.jpg"),
        body(prompt_optimizer=False, fast_pretreatment=True, watermark=False),
    ],
)
async def test_valid_bodies(sim: Simulator, http: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
    code, answer = await submit(http, sim, payload)
    assert code == 200, answer
    assert sim.task(answer["data"][0]["task_id"]).request == payload


async def test_invalid_json_and_unknown_task(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.urls.apimart}/v1/videos/generations", data=b"{not json", headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"] == "invalid_request_error"
    code, error = await status(http, sim, "task_01K8SGYNNNVBQTXNR4MM964S7K")
    assert code == 400
    assert error == {"error": {"code": 400, "message": "Invalid task ID", "type": "invalid_request_error"}}


async def test_auth_required(sim: Simulator, http: aiohttp.ClientSession) -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Basic {KEY}"}):
        async with http.post(f"{sim.urls.apimart}/v1/videos/generations", json=body(), headers=headers) as r:
            assert r.status == 401
            error = await r.json()
        assert error["error"]["type"] == "authentication_error"
        assert error["error"]["code"] == 401
    # Tasks belong to their API key.
    _, created = await submit(http, sim, body())
    task_id = created["data"][0]["task_id"]
    async with http.get(f"{sim.urls.apimart}/v1/tasks/{task_id}", headers={"Authorization": "Bearer other"}) as r:
        assert r.status == 400


async def test_idempotency_key_replays_the_same_task(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = {"Idempotency-Key": "3f2b6f4e-1d7c-4c1b-9a51-6a9e1f0c2d11"}
    first_code, first = await submit(http, sim, body("idem"), key)
    second_code, second = await submit(http, sim, body("idem"), key)
    assert first_code == second_code == 200
    assert first == second
    stats = sim.stats()
    assert stats.tasks_created == 1
    assert stats.idempotent_replays == 1
    assert stats.submits_by_prompt == {"idem": 2}
    assert sim.task(first["data"][0]["task_id"]).idempotency_key == key["Idempotency-Key"]

    code, error = await submit(http, sim, body("a different body"), key)
    assert code == 409
    assert error["error"]["code"] == "idempotency_key_reused"
    assert error["error"]["type"] == "idempotency_error"

    # The same key under another API key is another task.
    async with http.post(
        f"{sim.urls.apimart}/v1/videos/generations", json=body("idem"), headers={"Authorization": "Bearer k2", **key}
    ) as response:
        other = await response.json()
    assert other["data"][0]["task_id"] != first["data"][0]["task_id"]

    sim.update_config(idempotency=False)
    _, third = await submit(http, sim, body("idem"), key)
    assert third["data"][0]["task_id"] != first["data"][0]["task_id"]
    assert sim.stats().tasks_created == 3
