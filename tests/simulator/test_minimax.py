"""Official MiniMax emulation: create, query, retrieve, base_resp errors and the HTTP-status variant."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import anyio
import pytest

from hailuo_async.simulator import Simulator

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-test-minimax-0001"}
MODEL = "MiniMax-Hailuo-02"
OK = {"status_code": 0, "status_msg": "success"}
FRAME = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQEAYABgAAD"


def body(prompt: str | None = "a man reads [Pedestal up] {{sim:time=0.2}}", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": MODEL, **extra}
    if prompt is not None:
        payload["prompt"] = prompt
    return payload


async def submit(
    http: aiohttp.ClientSession, sim: Simulator, payload: Any, headers: dict[str, str] = AUTH
) -> tuple[int, Any]:
    async with http.post(f"{sim.urls.minimax}/v1/video_generation", json=payload, headers=headers) as response:
        return response.status, await response.json()


async def query(http: aiohttp.ClientSession, sim: Simulator, task_id: str) -> tuple[int, Any]:
    url = f"{sim.urls.minimax}/v1/query/video_generation"
    async with http.get(url, params={"task_id": task_id}, headers=AUTH) as response:
        return response.status, await response.json()


async def retrieve(http: aiohttp.ClientSession, sim: Simulator, file_id: str) -> tuple[int, Any]:
    url = f"{sim.urls.minimax}/v1/files/retrieve"
    async with http.get(url, params={"file_id": file_id}, headers=AUTH) as response:
        return response.status, await response.json()


async def test_create_query_retrieve_download(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.urls.minimax}/v1/video_generation", json=body(), headers=AUTH) as response:
        assert response.status == 200
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["Trace-Id"])
        created = await response.json()
    assert created["base_resp"] == OK
    assert re.fullmatch(r"[1-9][0-9]{14}", created["task_id"])

    with anyio.fail_after(5):
        while True:
            code, task = await query(http, sim, created["task_id"])
            assert code == 200
            assert task["base_resp"] == OK
            if task["status"] == "Success":
                break
            assert task["status"] in {"Preparing", "Queueing", "Processing"}
            # In progress: the empty values captured real answers carry.
            assert (task["file_id"], task["video_width"], task["video_height"]) == ("", 0, 0)
            await anyio.sleep(0.05)
    assert task["task_id"] == created["task_id"]
    assert isinstance(task["file_id"], str)
    assert (task["video_width"], task["video_height"]) == (1366, 768)

    code, found = await retrieve(http, sim, task["file_id"])
    assert code == 200
    assert found["base_resp"] == OK
    file = found["file"]
    assert file["file_id"] == int(task["file_id"])
    assert file["filename"] == "output_aigc.mp4"
    assert file["purpose"] == "video_generation"
    assert isinstance(file["created_at"], int)
    async with http.get(file["download_url"]) as download:
        assert download.status == 200
        content = await download.read()
    assert len(content) == file["bytes"] == 65536
    assert content[4:8] == b"ftyp"


async def test_status_words_follow_the_clock(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    _, created = await submit(http, sim, body("x", resolution="1080P"))
    words = []
    for step in (0.0, 1.5, 1.0, 7.6):
        now[0] += step
        _, task = await query(http, sim, created["task_id"])
        words.append(task["status"])
    assert words == ["Preparing", "Queueing", "Processing", "Success"]
    assert (task["video_width"], task["video_height"]) == (1920, 1080)


async def test_fail_outcome(clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession) -> None:
    sim, now = clocked
    _, created = await submit(http, sim, body("{{sim:fail}}"))
    now[0] += 11
    code, task = await query(http, sim, created["task_id"])
    assert code == 200
    assert task == {
        "task_id": created["task_id"],
        "status": "Fail",
        "base_resp": {"status_code": 1027, "status_msg": "output new_sensitive"},
    }


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"model": "T2V-01", "prompt": "x"}, "model"),
        (body(None), "prompt"),
        (body(duration=5), "duration"),
        (body(resolution="768p"), "resolution"),
        (body(resolution="1080P", duration=10), "1080P"),
        (body(resolution="512P"), "512P"),
        (body(first_frame_image=FRAME, last_frame_image=FRAME, resolution="512P"), "512P"),
        (body(last_frame_image=FRAME), "first_frame_image"),
        (body("x" * 2001), "2000"),
        (body("[Orbit left]"), "Orbit left"),
        (body(first_frame_image="file:///tmp/a.jpg"), "first_frame_image"),
    ],
)
async def test_validation_is_base_resp_2013(
    sim: Simulator, http: aiohttp.ClientSession, payload: dict[str, Any], fragment: str
) -> None:
    code, answer = await submit(http, sim, payload)
    assert code == 200
    assert answer["base_resp"]["status_code"] == 2013
    assert answer["base_resp"]["status_msg"].startswith("invalid params")
    assert fragment in answer["base_resp"]["status_msg"]
    assert "task_id" not in answer
    assert sim.stats().tasks_created == 0


@pytest.mark.parametrize(
    "payload",
    [
        body(None, first_frame_image=FRAME, resolution="512P", duration=10),
        body("[Pan left,Pedestal up]", first_frame_image="https://example.com/a.jpg", last_frame_image=FRAME),
        body(prompt_optimizer=False, fast_pretreatment=True, aigc_watermark=True),
    ],
)
async def test_valid_bodies(sim: Simulator, http: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
    _, answer = await submit(http, sim, payload)
    assert answer["base_resp"] == OK, answer
    assert sim.task(answer["task_id"]).file_id is not None


async def test_business_errors_and_http_status_variant(sim: Simulator, http: aiohttp.ClientSession) -> None:
    code, answer = await submit(http, sim, body(), headers={})
    assert (code, answer["base_resp"]["status_code"]) == (200, 1004)
    code, answer = await submit(http, sim, body("{{sim:reject}}"))
    assert (code, answer["base_resp"]["status_code"]) == (200, 1026)
    code, answer = await query(http, sim, "106916112212032")
    assert (code, answer["base_resp"]["status_code"]) == (200, 2013)
    code, answer = await retrieve(http, sim, "176844028768320")
    assert (code, answer["base_resp"]["status_code"]) == (200, 2013)
    async with http.get(f"{sim.urls.minimax}/v1/query/video_generation", headers=AUTH) as response:
        assert (await response.json())["base_resp"]["status_code"] == 2013

    sim.update_config(minimax_http_errors=True)
    code, answer = await submit(http, sim, body(), headers={})
    assert (code, answer["base_resp"]["status_code"]) == (401, 1004)
    code, answer = await submit(http, sim, body(duration=7))
    assert (code, answer["base_resp"]["status_code"]) == (400, 2013)
    code, answer = await query(http, sim, "106916112212032")
    assert (code, answer["base_resp"]["status_code"]) == (404, 2013)


async def test_retrieve_before_success_is_not_found(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    _, created = await submit(http, sim, body("x"))
    file_id = sim.task(created["task_id"]).file_id
    _, answer = await retrieve(http, sim, str(file_id))
    assert answer["base_resp"]["status_code"] == 2013
    now[0] += 10
    _, answer = await retrieve(http, sim, str(file_id))
    assert answer["base_resp"] == OK
