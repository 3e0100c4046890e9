"""toapis emulation: flat generation.task bodies through the lifecycle, validation and error bodies."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
import anyio
import pytest

from hailuo_async.simulator import Faults, Simulator

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-test-toapis-0001"}
MODEL = "MiniMax-Hailuo-02"
IMAGE = "https://example.com/first.jpg"


def body(prompt: str | None = "city night [Push in] {{sim:time=0.2}}", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": MODEL, **extra}
    if prompt is not None:
        payload["prompt"] = prompt
    return payload


async def submit(http: aiohttp.ClientSession, sim: Simulator, payload: Any) -> tuple[int, Any]:
    async with http.post(f"{sim.urls.toapis}/v1/videos/generations", json=payload, headers=AUTH) as response:
        return response.status, await response.json()


async def status(http: aiohttp.ClientSession, sim: Simulator, task_id: str) -> tuple[int, Any]:
    async with http.get(f"{sim.urls.toapis}/v1/videos/generations/{task_id}", headers=AUTH) as response:
        return response.status, await response.json()


async def test_submit_shape_and_lifecycle_to_download(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.urls.toapis}/v1/videos/generations", json=body(), headers=AUTH) as response:
        assert response.status == 200
        assert response.headers["X-Request-Id"]
        created = await response.json()
    assert set(created) == {"id", "object", "model", "status", "progress", "created_at", "metadata"}
    assert re.fullmatch(r"vid_[0-9A-Z]{26}", created["id"])
    assert created["object"] == "generation.task"
    assert created["model"] == MODEL
    assert created["status"] == "queued"
    assert created["progress"] == 0
    assert created["metadata"] == {}
    assert isinstance(created["created_at"], int)

    with anyio.fail_after(5):
        while True:
            code, task = await status(http, sim, created["id"])
            assert code == 200
            if task["status"] == "completed":
                break
            assert task["status"] in {"queued", "in_progress"}
            await anyio.sleep(0.05)
    assert task["progress"] == 100
    assert task["object"] == "generation.task"
    assert task["completed_at"] >= task["created_at"]
    assert task["expires_at"] - time.time() == pytest.approx(24 * 3600, abs=5)  # toapis: 24 h
    assert task["result"]["type"] == "video"
    [video] = task["result"]["data"]
    assert video["format"] == "mp4"
    async with http.get(video["url"]) as download:
        assert download.status == 200
        assert download.headers["Content-Type"] == "video/mp4"
        assert (await download.read())[4:8] == b"ftyp"


async def test_states_follow_the_clock(clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession) -> None:
    sim, now = clocked
    _, created = await submit(http, sim, body("slow"))
    seen = []
    for _ in range(6):
        _, task = await status(http, sim, created["id"])
        seen.append((task["status"], task["progress"]))
        now[0] += 2.0
    assert seen == [
        ("queued", 0),
        ("in_progress", 0),
        ("in_progress", 24),
        ("in_progress", 49),
        ("in_progress", 74),
        ("completed", 100),
    ]


async def test_failed_task_shape(clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession) -> None:
    sim, now = clocked
    _, created = await submit(http, sim, body("{{sim:fail}}"))
    now[0] += 11
    _, task = await status(http, sim, created["id"])
    assert task["status"] == "failed"
    assert task["progress"] == 0
    assert task["error"] == {
        "code": "generation_failed",
        "message": "Generation failed: Content violates the content policy",
    }
    assert "result" not in task


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"model": "sora-2", "prompt": "x"}, "model"),
        (body(None), "prompt"),
        (body(duration=5), "duration"),
        (body(resolution="768p"), "resolution"),
        (body(resolution="1080P", duration=10), "1080P"),
        (body("x" * 2001), "2000"),
        (body("a [Spin around]"), "Spin around"),
        (body("a [Pan left, Pan right, Zoom in, Shake]"), "at most 3"),
        (body("a [push in]"), "push in"),
        (body(image_urls=[IMAGE], resolution="512P", metadata={"last_frame_image": IMAGE}), "512P"),
        (body(metadata={"last_frame_image": IMAGE}), "image_urls"),
        (body(image_urls=[IMAGE, IMAGE]), "image_urls"),
        (body(image_urls=["data:image/png;base64,iVBORw0KGgo="]), "base64"),
        (body(image_urls=[IMAGE], metadata={"last_frame_image": "data:image/png;base64,iVBO"}), "base64"),
        (body(metadata={"prompt_optimizer": "true"}), "prompt_optimizer"),
        (body(metadata="nope"), "metadata"),
    ],
)
async def test_validation_errors(
    sim: Simulator, http: aiohttp.ClientSession, payload: dict[str, Any], fragment: str
) -> None:
    code, error = await submit(http, sim, payload)
    assert code == 400
    assert error["error"]["code"] == 400
    assert error["error"]["type"] == "invalid_request"
    assert fragment in error["error"]["message"]
    assert sim.stats().tasks_created == 0


@pytest.mark.parametrize(
    "payload",
    [
        body(None, image_urls=[IMAGE]),
        body("[Pan left, Pedestal up] then [Static shot]", resolution="512P", duration=10),
        body("grow up", image_urls=[IMAGE], resolution="1080P", metadata={"last_frame_image": IMAGE}),
        body(metadata={"prompt_optimizer": True, "fast_pretreatment": True, "aigc_watermark": False}),
        body(image_urls=[]),
    ],
)
async def test_valid_bodies(sim: Simulator, http: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
    code, created = await submit(http, sim, payload)
    assert code == 200, created
    assert sim.task(created["id"]).provider == "toapis"


async def test_error_bodies(sim: Simulator, http: aiohttp.ClientSession) -> None:
    code, error = await status(http, sim, "vid_01K8SGYNNNVBQTXNR4MM964S7K")
    assert code == 404
    assert error == {"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}}
    async with http.get(f"{sim.urls.toapis}/v1/videos/generations/vid_x") as response:
        assert response.status == 401
        assert (await response.json())["error"]["type"] == "authentication_error"
    # An apimart task id is not a toapis task.
    async with http.post(
        f"{sim.urls.apimart}/v1/videos/generations", json={"model": MODEL, "prompt": "x"}, headers=AUTH
    ) as response:
        apimart_id = (await response.json())["data"][0]["task_id"]
    code, _ = await status(http, sim, apimart_id)
    assert code == 404


async def test_reject_marker(sim: Simulator, http: aiohttp.ClientSession) -> None:
    code, error = await submit(http, sim, body("{{sim:reject}}"))
    assert code == 422
    assert error["error"]["type"] == "content_policy_violation"
    assert sim.stats().tasks_created == 0


# -- client_business_id: finding a task whose submit answer was lost ------------------------------------------


async def status_as(http: aiohttp.ClientSession, sim: Simulator, ref: str, key: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with http.get(f"{sim.urls.toapis}/v1/videos/generations/{ref}", headers=headers) as response:
        return response.status, await response.json()


async def test_client_business_id_answers_like_the_task_id(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    _, top = await submit(http, sim, body("top", client_business_id="order-17"))
    _, nested = await submit(http, sim, body("nested", metadata={"client_business_id": "order-18"}))
    _, plain = await submit(http, sim, body("plain"))
    pairs = ((top, "order-17"), (nested, "order-18"))
    for step, word in ((0.0, "queued"), (5.0, "in_progress"), (6.0, "completed")):
        now[0] += step
        for created, client_id in pairs:  # the same answer, with the real task id, at every stage
            by_task = await status(http, sim, created["id"])
            by_client = await status(http, sim, client_id)
            assert by_client == by_task
            assert (by_client[0], by_client[1]["id"], by_client[1]["status"]) == (200, created["id"], word)
    assert [sim.task(created["id"]).client_business_id for created, _ in pairs] == ["order-17", "order-18"]
    assert sim.task(plain["id"]).client_business_id is None
    assert sim.stats().client_id_lookups == 6


async def test_client_business_id_is_scoped_to_its_key(sim: Simulator, http: aiohttp.ClientSession) -> None:
    code, created = await submit(http, sim, body(client_business_id="job-1"))
    assert code == 200
    not_found = {"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}}
    assert await status_as(http, sim, "job-1", "sk-someone-else") == (404, not_found)
    assert await status(http, sim, "job-unknown") == (404, not_found)
    code, task = await status(http, sim, "job-1")
    assert (code, task["id"]) == (200, created["id"])
    assert sim.stats().client_id_lookups == 1


async def test_reused_client_business_id_finds_the_latest_task(sim: Simulator, http: aiohttp.ClientSession) -> None:
    # Nothing documents a reused id; the simulator keeps both tasks and the look-up answers the most recent one.
    _, first = await submit(http, sim, body("first", client_business_id="again"))
    _, second = await submit(http, sim, body("second", metadata={"client_business_id": "again"}))
    assert first["id"] != second["id"]
    _, task = await status(http, sim, "again")
    assert task["id"] == second["id"]
    _, task = await status(http, sim, first["id"])  # the first task is still there under its own id
    assert task["id"] == first["id"]


async def test_client_business_id_recovers_a_lost_submit_answer(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(faults=Faults(submit_then_drop=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(http, sim, body("paid, answer lost", client_business_id="lost-1"))
    sim.update_config(faults=Faults(drop=1.0, routes=frozenset({"submit"})))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(http, sim, body("never arrived", client_business_id="lost-2"))
    sim.update_config(faults=Faults())
    [task] = sim.tasks
    code, found = await status(http, sim, "lost-1")
    assert (code, found["id"]) == (200, task.task_id)
    code, _ = await status(http, sim, "lost-2")  # dropped before anything: no task, so no charge
    assert code == 404


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"client_business_id": 17}, "non-empty string"),
        ({"client_business_id": " "}, "non-empty string"),
        ({"metadata": {"client_business_id": ["a"]}}, "non-empty string"),
        ({"client_business_id": "a", "metadata": {"client_business_id": "b"}}, "differs"),
    ],
)
async def test_client_business_id_validation(
    sim: Simulator, http: aiohttp.ClientSession, extra: dict[str, Any], fragment: str
) -> None:
    code, error = await submit(http, sim, body(**extra))
    assert (code, error["error"]["type"]) == (400, "invalid_request")
    assert fragment in error["error"]["message"]
    code, created = await submit(http, sim, body(client_business_id="same", metadata={"client_business_id": "same"}))
    assert code == 200
    assert sim.task(created["id"]).client_business_id == "same"
