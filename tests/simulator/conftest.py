"""Fixtures for the simulator tests: a running simulator with short tasks and a plain aiohttp session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from hailuo_async.simulator import GenerationTimes, Simulator, SimulatorConfig

from .wire import on_fake_clock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(generation=GenerationTimes(kind="fixed", median=0.3))
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def clocked() -> AsyncIterator[tuple[Simulator, list[float]]]:
    """A simulator on a fake clock (advance it with ``now[0] += seconds``); tasks take 10 s, 2 s of them queued."""
    config = SimulatorConfig(generation=GenerationTimes(kind="fixed", median=10.0), queue_fraction=0.2)
    async with on_fake_clock(config) as clocked_simulator:
        yield clocked_simulator
