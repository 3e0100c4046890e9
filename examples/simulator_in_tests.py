"""Test your own code against the built-in simulator, in your own pytest suite.

The simulator is a real local HTTP server speaking apimart, toapis and MiniMax, so your code runs unchanged: point
a :class:`~hailuo_async.HailuoClient` at ``sim.urls.apimart`` with any key. Prompt markers make outcomes
deterministic (``{{sim:fail}}`` fails on content policy, ``{{sim:time=0.3}}`` finishes in 0.3 s) and
:class:`~hailuo_async.simulator.Faults` injects network trouble. ``sim.stats()`` tells what was sent.

Copy this file into your ``tests/`` folder as ``test_videos.py`` and run ``pytest`` (the anyio plugin comes with
anyio). It also runs as a script, without pytest (the ``cli`` extra does not install it):
``.venv/bin/python examples/simulator_in_tests.py`` from the repository, after the README's first set-up command
(nothing to activate). It talks to the simulator only and saves nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from hailuo_async import Generation, GenerationFailedError, HailuoClient, PollPolicy
from hailuo_async.simulator import Faults, GenerationTimes, Simulator, SimulatorConfig

try:
    import pytest
except ImportError:  # run as a script without pytest: main() below runs the same tests
    pytest = None  # type: ignore[assignment]

FAST = SimulatorConfig(generation=GenerationTimes(kind="uniform", low=0.1, high=0.3), video_bytes=1024)
"""Tasks finish in a fraction of a second."""
QUICK_POLLS = PollPolicy(max_lag=0.1, min_interval=0.1)
"""Check often, so tests do not wait for the production poll intervals."""


# -- the code under test (yours) ------------------------------------------------------------------------------


async def make_clips(client: HailuoClient, scenes: list[str]) -> dict[str, str]:
    """Generate one clip per scene; returns scene -> video URL, or "" for a scene the provider refused."""
    results = await client.gather_generations(scenes, return_exceptions=True)
    return {
        scene: result.video_url if isinstance(result, Generation) else ""
        for scene, result in zip(scenes, results, strict=True)
    }


# -- fixtures -------------------------------------------------------------------------------------------------

if pytest is not None:
    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def anyio_backend() -> str:
        return "asyncio"  # aiohttp runs on asyncio

    @pytest.fixture
    async def sim() -> AsyncIterator[Simulator]:
        async with Simulator(FAST) as simulator:
            yield simulator


def client_for(sim: Simulator) -> HailuoClient:
    return HailuoClient("apimart", api_key="test-key", base_url=sim.urls.apimart, poll=QUICK_POLLS)


# -- tests ----------------------------------------------------------------------------------------------------


async def test_every_scene_gets_a_clip(sim: Simulator) -> None:
    async with client_for(sim) as client:
        clips = await make_clips(client, ["A cat [Push in]", "A dog [Pan left]"])
    assert all(url.startswith("http://127.0.0.1:") for url in clips.values())
    assert sim.stats().tasks_created == 2


async def test_a_refused_scene_does_not_stop_the_others(sim: Simulator) -> None:
    async with client_for(sim) as client:
        clips = await make_clips(client, ["A cat", "Something forbidden {{sim:fail}}"])
        refused: GenerationFailedError | None = None
        try:  # pytest.raises says it shorter; this way the file also runs without pytest
            await client.generate("Forbidden again {{sim:fail}}")
        except GenerationFailedError as exc:
            refused = exc
    assert refused is not None and refused.task_id
    assert clips["A cat"]
    assert clips["Something forbidden {{sim:fail}}"] == ""


async def test_flaky_network_never_pays_twice(sim: Simulator) -> None:
    sim.update_config(faults=Faults(error_5xx=0.2, submit_then_drop=0.2))
    scenes = [f"Scene {n}" for n in range(8)]
    async with client_for(sim) as client:
        await make_clips(client, scenes)
    assert all(count <= 1 for count in sim.stats().tasks_created_by_prompt.values())


# -- as a script ----------------------------------------------------------------------------------------------


async def main() -> None:
    for test in (test_every_scene_gets_a_clip, test_a_refused_scene_does_not_stop_the_others,
                 test_flaky_network_never_pays_twice):  # fmt: skip
        async with Simulator(FAST) as simulator:
            await test(simulator)
        print(f"passed: {test.__name__}")


if __name__ == "__main__":
    anyio.run(main)
