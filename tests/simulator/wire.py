"""Shared by the simulator's tests: a simulator on a fake clock, and raw requests to the submit and status routes
of each provider."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from hailuo_async.simulator import Simulator, SimulatorConfig

KEY = "sk-test-faults-0001"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "MiniMax-Hailuo-02"
SUBMIT_PATHS = {
    "apimart": "/v1/videos/generations",
    "toapis": "/v1/videos/generations",
    "minimax": "/v1/video_generation",
}
PROVIDERS = sorted(SUBMIT_PATHS)
START = 1000.0  # where the fake clock starts


@contextlib.asynccontextmanager
async def on_fake_clock(config: SimulatorConfig) -> AsyncIterator[tuple[Simulator, list[float]]]:
    """A running simulator whose clock reads ``now[0]`` (it starts at :data:`START`; move it by hand)."""
    now = [START]
    async with Simulator(config, clock=lambda: now[0]) as simulator:
        yield simulator, now


def submit_url(sim: Simulator, provider: str) -> str:
    base: str = getattr(sim.urls, provider)
    return base + SUBMIT_PATHS[provider]


def status_url(sim: Simulator, provider: str, task_id: str) -> str:
    if provider == "apimart":
        return f"{sim.urls.apimart}/v1/tasks/{task_id}"
    if provider == "toapis":
        return f"{sim.urls.toapis}/v1/videos/generations/{task_id}"
    return f"{sim.urls.minimax}/v1/query/video_generation?task_id={task_id}"


def task_id_of(provider: str, answer: Any) -> str:
    if provider == "apimart":
        return str(answer["data"][0]["task_id"])
    return str(answer["id"] if provider == "toapis" else answer["task_id"])


def payload(prompt: str = "a fox") -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt}


async def submit(
    http: aiohttp.ClientSession, sim: Simulator, provider: str, prompt: str = "a fox", key: str = KEY
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with http.post(submit_url(sim, provider), json=payload(prompt), headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


async def get_status(
    http: aiohttp.ClientSession, sim: Simulator, provider: str, task_id: str, key: str = KEY
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with http.get(status_url(sim, provider, task_id), headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


def status_and_progress(provider: str, answer: Any) -> tuple[str, int | None]:
    """The status word and progress of a status answer (MiniMax reports no progress: ``None``)."""
    if provider == "apimart":
        return str(answer["data"]["status"]), int(answer["data"]["progress"])
    if provider == "toapis":
        return str(answer["status"]), int(answer["progress"])
    return str(answer["status"]), None
