"""MiniMax-Hailuo-2.3 and 2.3-Fast on every provider's submit route, with each provider's error shape."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest

from hailuo_async import MODELS, InvalidRequestError
from hailuo_async.providers import get_provider
from hailuo_async.simulator import Simulator
from hailuo_async.simulator._providers import MODELS as SIM_MODELS
from hailuo_async.simulator._providers import Apimart as SimApimart
from hailuo_async.simulator._providers import Dialect
from hailuo_async.simulator._providers import Minimax as SimMinimax
from hailuo_async.simulator._providers import Toapis as SimToapis

from ..unit.test_rules import COMBOS
from ..unit.test_rules import build as build_request

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-test-models-0001"}
IMAGE = "https://example.com/frame.jpg"
PROVIDERS = ("apimart", "toapis", "minimax")
SUBMIT = {"apimart": "/v1/videos/generations", "toapis": "/v1/videos/generations", "minimax": "/v1/video_generation"}


def build(
    provider: str,
    model: str,
    *,
    duration: int | None = None,
    resolution: str | None = None,
    first: bool = False,
    last: bool = False,
) -> dict[str, Any]:
    """A submit body in ``provider``'s words (resolution given upper-case, as MiniMax spells it)."""
    body: dict[str, Any] = {"model": model, "prompt": "a red kite over dunes"}
    if duration is not None:
        body["duration"] = duration
    if resolution is not None:
        body["resolution"] = resolution.lower() if provider == "apimart" else resolution
    if provider == "toapis":
        if first:
            body["image_urls"] = [IMAGE]
        if last:
            body["metadata"] = {"last_frame_image": IMAGE}
    else:
        if first:
            body["first_frame_image"] = IMAGE
        if last:
            body["last_frame_image"] = IMAGE
    return body


async def submit(http: aiohttp.ClientSession, sim: Simulator, provider: str, body: dict[str, Any]) -> str:
    """The created task id, or ``"rejected: <message>"`` after checking the provider's error shape."""
    base: str = getattr(sim.urls, provider)
    async with http.post(base + SUBMIT[provider], json=body, headers=AUTH) as response:
        code, answer = response.status, await response.json()
    if provider == "minimax":
        assert code == 200
        if answer["base_resp"]["status_code"] == 0:
            return str(answer["task_id"])
        assert answer["base_resp"]["status_code"] == 2013
        return f"rejected: {answer['base_resp']['status_msg']}"
    if code == 200:
        return str(answer["id"] if provider == "toapis" else answer["data"][0]["task_id"])
    assert code == 400
    expected_type = "invalid_request_error" if provider == "apimart" else "invalid_request"
    assert (answer["error"]["code"], answer["error"]["type"]) == (400, expected_type)
    return f"rejected: {answer['error']['message']}"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("MiniMax-Hailuo-2.3", {}),  # text-to-video, defaults
        ("MiniMax-Hailuo-2.3", {"duration": 10, "resolution": "768P"}),
        ("MiniMax-Hailuo-2.3", {"duration": 6, "resolution": "1080P"}),
        ("MiniMax-Hailuo-2.3", {"first": True, "duration": 10}),
        ("MiniMax-Hailuo-2.3-Fast", {"first": True}),
        ("MiniMax-Hailuo-2.3-Fast", {"first": True, "duration": 6, "resolution": "1080P"}),
    ],
)
async def test_newer_models_accepted(
    sim: Simulator, http: aiohttp.ClientSession, provider: str, model: str, options: dict[str, Any]
) -> None:
    body = build(provider, model, **options)
    task_id = await submit(http, sim, provider, body)
    assert not task_id.startswith("rejected"), task_id
    task = sim.task(task_id)
    assert (task.model, task.request) == (model, body)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("model", "options", "fragment"),
    [
        ("MiniMax-Hailuo-2.3", {"resolution": "512P", "first": True}, "resolution"),
        ("MiniMax-Hailuo-2.3", {"resolution": "1080P", "duration": 10}, "supports only duration 6"),
        ("MiniMax-Hailuo-2.3", {"duration": 5}, "duration must be 6 or 10"),
        ("MiniMax-Hailuo-2.3", {"first": True, "last": True}, "does not support"),
        ("MiniMax-Hailuo-2.3-Fast", {}, "image-to-video only"),
        ("MiniMax-Hailuo-2.3-Fast", {"first": True, "resolution": "512P"}, "resolution"),
        ("MiniMax-Hailuo-2.3-Fast", {"first": True, "last": True}, "does not support"),
        ("MiniMax-Hailuo-2.4", {}, "model must be one of"),
    ],
)
async def test_newer_models_rules(
    sim: Simulator, http: aiohttp.ClientSession, provider: str, model: str, options: dict[str, Any], fragment: str
) -> None:
    answer = await submit(http, sim, provider, build(provider, model, **options))
    assert answer.startswith("rejected: ")
    assert fragment in answer
    assert sim.stats().tasks_created == 0


@pytest.mark.parametrize(
    ("provider", "duration", "accepted"),
    [("apimart", 5, True), ("apimart", 6, False), ("toapis", 6, True), ("minimax", 6, True), ("minimax", 5, False)],
)
async def test_hailuo_02_durations_unchanged(
    sim: Simulator, http: aiohttp.ClientSession, provider: str, duration: int, accepted: bool
) -> None:
    answer = await submit(http, sim, provider, build(provider, "MiniMax-Hailuo-02", duration=duration))
    assert answer.startswith("rejected") is not accepted


async def test_toapis_echoes_the_model_and_minimax_sizes_the_video(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    body = build("toapis", "MiniMax-Hailuo-2.3-Fast", first=True, resolution="1080P")
    async with http.post(f"{sim.urls.toapis}/v1/videos/generations", json=body, headers=AUTH) as response:
        created = await response.json()
    assert created["model"] == "MiniMax-Hailuo-2.3-Fast"
    now[0] += 11
    async with http.get(f"{sim.urls.toapis}/v1/videos/generations/{created['id']}", headers=AUTH) as response:
        task = await response.json()
    assert (task["model"], task["status"]) == ("MiniMax-Hailuo-2.3-Fast", "completed")

    task_id = await submit(http, sim, "minimax", build("minimax", "MiniMax-Hailuo-2.3", resolution="1080P"))
    now[0] += 11
    url = f"{sim.urls.minimax}/v1/query/video_generation"
    async with http.get(url, params={"task_id": task_id}, headers=AUTH) as response:
        query = await response.json()
    assert (query["status"], query["video_width"], query["video_height"]) == ("Success", 1920, 1080)


# -- the simulator and the client agree ------------------------------------------------------------------------

DIALECTS: dict[str, Dialect] = {"apimart": SimApimart(), "toapis": SimToapis(), "minimax": SimMinimax()}


def test_the_simulator_and_the_client_accept_the_same_requests() -> None:
    # Every (provider, model, duration, resolution, mode): the client's rules (providers/_rules.py) and the
    # simulator's (simulator/_providers.py), written apart from the same page, give the same verdict.
    disagreements = []
    for provider_name, model, duration, resolution, mode in COMBOS:
        request = build_request(model, duration, resolution, mode)
        provider = get_provider(provider_name)
        try:
            provider.validate(request)
            client_accepts = True
        except InvalidRequestError:
            client_accepts = False
        body = msgspec.json.decode(msgspec.json.encode(provider.submit_body(request)))
        answer = DIALECTS[provider_name].validate(body)
        if client_accepts != (not isinstance(answer, str)):
            disagreements.append((provider_name, model, duration, resolution, mode, answer))
    assert disagreements == []


def test_the_simulator_serves_the_client_s_models() -> None:
    assert set(SIM_MODELS) == set(MODELS)
