"""Shared by the examples: the real provider when an API key is set, otherwise the built-in simulator.

Every example calls :func:`open_client` (or :func:`connection`) instead of ``HailuoClient(...)`` directly, so it
runs out of the box: with ``APIMART_API_KEY`` (or ``HAILUO_API_KEY``) set it talks to apimart and spends real
credits; without a key it starts :class:`hailuo_async.simulator.Simulator` in process and talks to that.
``HAILUO_PROVIDER=toapis|minimax`` picks another provider; ``HAILUO_SIMULATOR=1`` forces the simulator.

Each example saves into its own folder of ``hailuo-output/`` (:func:`output_folder`; git ignores it) and reports
the files of this run only, whatever earlier runs left there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hailuo_async import HailuoClient
from hailuo_async.providers import get_provider
from hailuo_async.simulator import GenerationTimes, Simulator, SimulatorConfig

PROVIDER = os.environ.get("HAILUO_PROVIDER", "apimart")
"""The provider the examples use."""

SIMULATOR = SimulatorConfig(generation=GenerationTimes(kind="uniform", low=1.0, high=3.0), video_bytes=16384)
"""Videos take one to three seconds in the simulator (minutes on a real provider)."""
OUTPUT = Path("hailuo-output")
"""Where every example writes, below the current folder."""


def output_folder(example: str) -> Path:
    """The example's own folder, ``hailuo-output/<name>`` (``example``: its ``__file__``)."""
    return OUTPUT / Path(example).stem


def use_simulator(provider: str = PROVIDER) -> bool:
    """True unless an API key for ``provider`` is set (and ``HAILUO_SIMULATOR=1`` is not)."""
    if os.environ.get("HAILUO_SIMULATOR") == "1":
        return True
    return not (os.environ.get(get_provider(provider).env_var) or os.environ.get("HAILUO_API_KEY"))


@asynccontextmanager
async def connection(provider: str = PROVIDER) -> AsyncIterator[dict[str, Any]]:
    """Client options: ``{}`` for the real provider (key from the environment), or a running simulator's."""
    if not use_simulator(provider):
        yield {}
        return
    async with Simulator(SIMULATOR) as sim:
        print(f"(no {get_provider(provider).env_var} set: using the built-in simulator)")
        yield {"api_key": "simulator", "base_url": getattr(sim.urls, provider)}


@asynccontextmanager
async def open_client(provider: str = PROVIDER, **options: Any) -> AsyncIterator[HailuoClient]:
    """``async with HailuoClient(provider, **options)``, pointed at the simulator when no key is set."""
    async with connection(provider) as target, HailuoClient(provider, **target, **options) as client:
        yield client
