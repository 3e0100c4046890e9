"""apimart's discovery routes: ``/v1/models``, ``/v1/model-docs`` and ``/v1/model-schema``."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import pytest

from hailuo_async.simulator import Faults, Simulator

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-test-discovery-0001"}
MODELS = ["MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast"]
IMAGE = "https://example.com/first.jpg"


async def get(http: aiohttp.ClientSession, sim: Simulator, path: str, **params: str) -> tuple[int, Any]:
    async with http.get(f"{sim.urls.apimart}{path}", params=params, headers=AUTH) as response:
        return response.status, await response.json()


async def test_models_lists_what_the_simulator_serves(sim: Simulator, http: aiohttp.ClientSession) -> None:
    code, listing = await get(http, sim, "/v1/models")
    assert code == 200
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == MODELS
    assert all(model["object"] == "model" and isinstance(model["created"], int) for model in listing["data"])
    async with http.get(f"{sim.urls.apimart}/v1/models") as response:
        assert response.status == 401
    assert sim.stats().requests_by_route["apimart.models"] == 2


@pytest.mark.parametrize(
    ("model", "durations", "resolutions", "required", "last_frame"),
    [
        ("MiniMax-Hailuo-02", [5, 10], ["512p", "768p", "1080p"], ["prompt"], True),
        ("MiniMax-Hailuo-2.3", [6, 10], ["768p", "1080p"], ["prompt"], False),
        ("MiniMax-Hailuo-2.3-Fast", [6, 10], ["768p", "1080p"], ["prompt", "first_frame_image"], False),
    ],
)
async def test_schema_and_docs_describe_each_model(
    sim: Simulator,
    http: aiohttp.ClientSession,
    model: str,
    durations: list[int],
    resolutions: list[str],
    required: list[str],
    last_frame: bool,
) -> None:
    code, answer = await get(http, sim, "/v1/model-schema", model=model, operation="video_generation")
    assert code == 200
    assert (answer["model"], answer["operation"]) == (model, "video_generation")
    schema = answer["input_schema"]
    assert schema["type"] == "object"
    assert schema["properties"]["duration"]["enum"] == durations
    assert schema["properties"]["duration"]["default"] == durations[0]
    assert schema["properties"]["resolution"]["enum"] == resolutions
    assert schema["properties"]["resolution"]["default"] == "768p"
    assert schema["required"] == required
    assert ("last_frame_image" in schema["properties"]) is last_frame
    _, without_operation = await get(http, sim, "/v1/model-schema", model=model)
    assert without_operation == answer

    code, docs = await get(http, sim, "/v1/model-docs", model=model)
    assert code == 200
    assert docs["object"] == "model.documentation"
    assert docs["model"] == model
    assert docs["doc_url"].startswith("https://") and docs["markdown_url"].startswith("https://")
    assert isinstance(docs["fetched_at"], int) and docs["cache_ttl_seconds"] > 0 and docs["stale"] is False
    markdown = docs["markdown"]
    assert markdown.startswith(f"# {model}\n")
    assert f"| `duration` | integer | no | {durations[0]}, {durations[1]} (default {durations[0]}) |" in markdown
    assert ", ".join(resolutions) in markdown
    assert ("`last_frame_image`" in markdown) is last_frame
    assert f"`1080p` is only available with `duration: {durations[0]}`." in markdown


@pytest.mark.parametrize("model", MODELS)
async def test_the_schema_agrees_with_what_submit_accepts(
    sim: Simulator, http: aiohttp.ClientSession, model: str
) -> None:
    _, answer = await get(http, sim, "/v1/model-schema", model=model)
    properties = answer["input_schema"]["properties"]
    [rule] = answer["input_schema"]["allOf"]
    only_resolution = rule["if"]["properties"]["resolution"]["const"]
    only_duration = rule["then"]["properties"]["duration"]["const"]
    durations = properties["duration"]["enum"]
    resolutions = properties["resolution"]["enum"]
    # Every enumerated pair, plus values just outside the enums.
    for duration, resolution in itertools.product([*durations, 7], [*resolutions, "512p", "720p"]):
        body = {"model": model, "prompt": "schema check", "duration": duration, "resolution": resolution}
        body.update({name: IMAGE for name in answer["input_schema"]["required"] if name != "prompt"})
        async with http.post(f"{sim.urls.apimart}/v1/videos/generations", json=body, headers=AUTH) as response:
            accepted = response.status == 200
        expected = (
            duration in durations
            and resolution in resolutions
            and not (resolution == only_resolution and duration != only_duration)
        )
        assert accepted is expected, (duration, resolution)


async def test_discovery_errors(sim: Simulator, http: aiohttp.ClientSession) -> None:
    code, error = await get(http, sim, "/v1/model-schema", model="MiniMax-Hailuo-02", operation="image_generation")
    assert code == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert "video_generation" in error["error"]["message"]
    for path in ("/v1/model-schema", "/v1/model-docs"):
        code, error = await get(http, sim, path, model="sora-2")
        assert (code, error["error"]["code"], error["error"]["type"]) == (404, 404, "not_found_error")
        assert "sora-2" in error["error"]["message"]
        code, error = await get(http, sim, path)
        assert (code, error["error"]["type"]) == (400, "invalid_request_error")
    stats = sim.stats().requests_by_route
    assert (stats["apimart.model_schema"], stats["apimart.model_docs"]) == (3, 2)


async def test_discovery_faults_are_opt_in(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(faults=Faults(error_5xx=1.0))
    code, _ = await get(http, sim, "/v1/models")
    assert code == 200
    sim.update_config(faults=Faults(error_5xx=1.0, routes=frozenset({"discovery"})))
    code, error = await get(http, sim, "/v1/models")
    assert code in (500, 502, 503)
    assert error["error"]["code"] == code
