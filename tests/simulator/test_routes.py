"""Paths and methods no route serves: each provider's JSON error envelope, not aiohttp's plain-text 404."""

from __future__ import annotations

import aiohttp
import pytest

from hailuo_async.simulator import Simulator

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-test-routes-0001"}


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("apimart", "/v1/video/generations"),
        ("apimart", "/v1/tasks/batch/extra"),
        ("toapis", "/v2/videos/generations"),
        ("toapis", "/"),
    ],
)
async def test_gateways_answer_their_404_envelope(
    sim: Simulator, http: aiohttp.ClientSession, provider: str, path: str
) -> None:
    base: str = getattr(sim.urls, provider)
    async with http.get(base + path, headers=AUTH) as response:
        assert response.status == 404
        assert response.content_type == "application/json"
        assert response.headers["X-Request-Id"].startswith("req_")
        error = await response.json()
    assert set(error) == {"error"}
    assert (error["error"]["code"], error["error"]["type"]) == (404, "not_found_error")
    assert f"GET {path}" in error["error"]["message"]
    stats = sim.stats()
    assert stats.requests_by_route == {f"{provider}.unknown": 1}
    assert stats.responses_by_status == {404: 1}


@pytest.mark.parametrize(
    ("provider", "error_type"), [("apimart", "invalid_request_error"), ("toapis", "invalid_request")]
)
async def test_wrong_method_is_405_with_allow(
    sim: Simulator, http: aiohttp.ClientSession, provider: str, error_type: str
) -> None:
    base: str = getattr(sim.urls, provider)
    async with http.get(f"{base}/v1/videos/generations", headers=AUTH) as response:
        assert response.status == 405
        assert "POST" in response.headers["Allow"]
        error = await response.json()
    assert (error["error"]["code"], error["error"]["type"]) == (405, error_type)
    assert "GET /v1/videos/generations" in error["error"]["message"]


async def test_minimax_answers_base_resp(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.urls.minimax}/v1/video_generations"  # a typo of /v1/video_generation
    async with http.post(url, json={"model": "MiniMax-Hailuo-02"}, headers=AUTH) as response:
        assert response.status == 200  # MiniMax's errors usually ride on HTTP 200
        assert response.headers["Trace-Id"]
        answer = await response.json()
    assert answer["base_resp"]["status_code"] == 2013
    assert answer["base_resp"]["status_msg"].startswith("invalid params")
    assert "POST /v1/video_generations" in answer["base_resp"]["status_msg"]
    async with http.get(f"{sim.urls.minimax}/v1/video_generation", headers=AUTH) as response:
        assert response.status == 200
        assert (await response.json())["base_resp"]["status_code"] == 2013

    sim.update_config(minimax_http_errors=True)
    async with http.post(url, json={}, headers=AUTH) as response:
        assert response.status == 404
        assert (await response.json())["base_resp"]["status_code"] == 2013
    async with http.get(f"{sim.urls.minimax}/v1/video_generation", headers=AUTH) as response:
        assert response.status == 405
    assert sim.stats().requests_by_route == {"minimax.unknown": 4}


async def test_paths_outside_the_providers_are_left_alone(sim: Simulator, http: aiohttp.ClientSession) -> None:
    root = sim.urls.apimart.rsplit("/", 1)[0]
    async with http.get(f"{root}/nothing/here") as response:
        assert response.status == 404
        assert response.content_type == "text/plain"
    assert sim.stats().requests_by_route == {}
