"""Shared test configuration: asyncio only (aiohttp is asyncio-native), loopback simulators, no secrets."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import settings

from hailuo_async.simulator import Simulator, SimulatorConfig

SECRET = "sk-TEST-SECRET-0123456789abcdef"
"""A recognisable key, searched for in every output by the secrets tests."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never see a developer's real keys or proxies.
    for name in list(os.environ):
        if name.endswith("_API_KEY") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A fault-free simulator whose tasks take a fraction of a second."""
    config = SimulatorConfig.from_json(
        {"generation": {"kind": "uniform", "low": 0.2, "high": 0.5}, "video_bytes": 4096}
    )
    async with Simulator(config) as simulator:
        yield simulator


# Hypothesis explores new inputs on every developer run; CI replays a fixed sequence so that a red build always
# means a change broke something, not that the fuzzer got lucky that day.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
