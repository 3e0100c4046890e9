"""A task's life on the wire: progress shapes, the queued share of each task, and generation-time distributions."""

from __future__ import annotations

import math
import statistics

import aiohttp
import msgspec
import pytest

from hailuo_async.simulator import GenerationTimes, Progress, SimulatorConfig

from .wire import START, get_status, on_fake_clock, status_and_progress, submit, task_id_of

pytestmark = pytest.mark.anyio

TEN_SECONDS = GenerationTimes(kind="fixed", median=10.0)
SAMPLES = 50  # progress readings over a task's running part
RUNNING = {"apimart": "processing", "toapis": "in_progress", "minimax": "Processing"}
QUEUED = {"apimart": "pending", "toapis": "queued", "minimax": "Queueing"}


async def progress_over_time(
    http: aiohttp.ClientSession, progress: Progress, provider: str, prompt: str = "a fox"
) -> list[tuple[float, str, int | None]]:
    """(share of the running part elapsed, status word, progress) of one 10 s task that never queues, read every
    2 % of its life, then once after it is done."""
    config = SimulatorConfig(generation=TEN_SECONDS, queue_fraction=0.0, progress=progress)
    async with on_fake_clock(config) as (sim, now):
        _, answer, _ = await submit(http, sim, provider, prompt)
        task_id = task_id_of(provider, answer)
        readings: list[tuple[float, str, int | None]] = []
        for step in [*range(SAMPLES), SAMPLES]:
            now[0] = START + 10.0 * step / SAMPLES
            _, status, _ = await get_status(http, sim, provider, task_id)
            readings.append((step / SAMPLES, *status_and_progress(provider, status)))
        return readings


def running_part(provider: str, readings: list[tuple[float, str, int | None]]) -> list[tuple[float, int]]:
    """The (share, progress) readings while running, after checking the words and the final answer."""
    *running, (_, last_word, last_progress) = readings
    assert {word for _, word, _ in running} == {RUNNING[provider]}
    assert (last_word, last_progress) == ("completed", 100)
    values = [value for _, _, value in running if value is not None]
    assert len(values) == len(running) and all(0 <= value <= 99 for value in values)
    assert values == sorted(values), "progress never goes back"
    return [(share, value) for (share, _, _), value in zip(running, values, strict=True)]


@pytest.mark.parametrize("provider", ["apimart", "toapis"])
async def test_linear_progress_is_the_default(http: aiohttp.ClientSession, provider: str) -> None:
    assert SimulatorConfig().progress == Progress(shape="linear")
    for share, value in running_part(provider, await progress_over_time(http, Progress(), provider)):
        assert abs(value - 99 * share) <= 1


@pytest.mark.parametrize("provider", ["apimart", "toapis"])
async def test_no_progress_until_done(http: aiohttp.ClientSession, provider: str) -> None:
    readings = await progress_over_time(http, Progress(shape="none"), provider)
    assert {value for _, value in running_part(provider, readings)} == {0}


async def test_no_progress_still_moves_the_status_words(http: aiohttp.ClientSession) -> None:
    config = SimulatorConfig(generation=TEN_SECONDS, queue_fraction=0.3, progress=Progress(shape="none"))
    for provider in ("apimart", "toapis", "minimax"):
        async with on_fake_clock(config) as (sim, now):
            task_id = task_id_of(provider, (await submit(http, sim, provider))[1])
            words = []
            for moment in (2.0, 5.0, 9.9, 10.0):
                now[0] = START + moment
                words.append(status_and_progress(provider, (await get_status(http, sim, provider, task_id))[1]))
        zero = None if provider == "minimax" else 0  # MiniMax reports no progress in any shape
        assert words[:3] == [(QUEUED[provider], zero), (RUNNING[provider], zero), (RUNNING[provider], zero)]
        assert words[3][0] == ("Success" if provider == "minimax" else "completed")


@pytest.mark.parametrize(
    ("progress", "levels"),
    [(Progress(shape="steps"), [0, 50]), (Progress(shape="steps", steps=(25, 50, 75)), [0, 25, 50, 75])],
)
async def test_steps_report_only_their_levels(
    http: aiohttp.ClientSession, progress: Progress, levels: list[int]
) -> None:
    readings = running_part("toapis", await progress_over_time(http, progress, "toapis"))
    assert sorted({value for _, value in readings}) == levels
    for share, value in readings:  # the running part is cut into equal parts, one per level
        assert value == levels[int(share * len(levels))]


@pytest.mark.parametrize("provider", ["apimart", "toapis"])
async def test_concave_is_fast_first_and_convex_slow_first(http: aiohttp.ClientSession, provider: str) -> None:
    concave = dict(running_part(provider, await progress_over_time(http, Progress(shape="concave"), provider)))
    convex = dict(running_part(provider, await progress_over_time(http, Progress(shape="convex"), provider)))
    assert concave[0.5] >= 70 > 50 >= convex[0.5] + 20  # power 2: 74 and 24 at the midpoint, 49 when linear
    for share in concave:
        assert convex[share] <= int(99 * share) + 1 and concave[share] >= int(99 * share) - 1
    steeper = dict(running_part(provider, await progress_over_time(http, Progress(shape="concave", power=4), provider)))
    assert steeper[0.2] > concave[0.2]


@pytest.mark.parametrize("provider", ["apimart", "toapis"])
async def test_stall_reaches_its_level_early_then_stalls(http: aiohttp.ClientSession, provider: str) -> None:
    readings = running_part(provider, await progress_over_time(http, Progress(shape="stall"), provider))
    assert [value for share, value in readings if share >= 0.3] == [95] * 35
    assert max(value for share, value in readings if share < 0.3) < 95
    custom = Progress(shape="stall", stall_level=80, stall_at=0.5)
    readings = running_part(provider, await progress_over_time(http, custom, provider))
    assert {value for share, value in readings if share >= 0.5} == {80}
    assert abs(dict(readings)[0.26] - 80 * 0.26 / 0.5) <= 1


@pytest.mark.parametrize(
    ("progress", "stuck_at"),
    [(Progress(), 99), (Progress(shape="none"), 0), (Progress(shape="steps"), 50), (Progress(shape="stall"), 95)],
)
async def test_a_hanging_task_keeps_the_shape_of_its_end(
    http: aiohttp.ClientSession, progress: Progress, stuck_at: int
) -> None:
    readings = await progress_over_time(http, progress, "apimart", "a fox {{sim:hang}}")
    assert readings[-1][1:] == ("processing", stuck_at)


async def test_a_task_keeps_the_shape_it_was_created_with(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(SimulatorConfig(generation=TEN_SECONDS, queue_fraction=0.0)) as (sim, now):
        first = task_id_of("toapis", (await submit(http, sim, "toapis", "first"))[1])
        sim.update_config(progress=Progress(shape="none"))
        second = task_id_of("toapis", (await submit(http, sim, "toapis", "second"))[1])
        now[0] = START + 5.0
        assert (await get_status(http, sim, "toapis", first))[1]["progress"] == 49
        assert (await get_status(http, sim, "toapis", second))[1]["progress"] == 0


# -- the queued share ------------------------------------------------------------------------------------------


async def first_running_moments(http: aiohttp.ClientSession, config: SimulatorConfig, tasks: int) -> list[float]:
    """When each of ``tasks`` 10 s toapis tasks was first seen running (seconds after submit, to 0.1 s); while
    queued they must say so with progress 0."""
    async with on_fake_clock(config) as (sim, now):
        ids = [task_id_of("toapis", (await submit(http, sim, "toapis", f"clip {n}"))[1]) for n in range(tasks)]
        seen: dict[str, float] = {}
        for tenth in range(101):
            now[0] = START + tenth / 10
            for task_id in ids:
                if task_id not in seen:
                    answer = (await get_status(http, sim, "toapis", task_id))[1]
                    if answer["status"] == "queued":
                        assert answer["progress"] == 0
                    else:
                        seen[task_id] = tenth / 10
        for task_id in ids:  # what the wire showed is what the task drew
            assert seen[task_id] - 0.1 < sim.task(task_id).queue_time <= seen[task_id] + 1e-9
        return [seen[task_id] for task_id in ids]


async def test_each_task_draws_its_queued_share_from_the_range(http: aiohttp.ClientSession) -> None:
    config = SimulatorConfig(generation=TEN_SECONDS, queue_fraction=(0.0, 0.7), seed=7)
    moments = await first_running_moments(http, config, 30)
    assert all(moment <= 7.1 for moment in moments)
    assert min(moments) <= 1.5 and max(moments) >= 5.5  # spread over the range, not one share for all
    assert len(set(moments)) >= 15
    again = await first_running_moments(http, config, 30)
    assert again == moments  # seeded: the same seed and prompts queue the same way
    other = await first_running_moments(http, msgspec.structs.replace(config, seed=8), 30)
    assert other != moments


async def test_one_number_queues_every_task_for_the_same_share(http: aiohttp.ClientSession) -> None:
    moments = await first_running_moments(http, SimulatorConfig(generation=TEN_SECONDS), 5)
    assert moments == [1.5] * 5  # the default: 15 % of the task's time


# -- generation times ------------------------------------------------------------------------------------------


async def generation_times(http: aiohttp.ClientSession, config: SimulatorConfig, tasks: int) -> list[float]:
    """The generation times of ``tasks`` apimart submits, as ``GET /_sim/tasks`` reports them."""
    async with on_fake_clock(config) as (sim, _):
        for n in range(tasks):
            await submit(http, sim, "apimart", f"clip {n}")
        async with http.get(sim.urls.stats.replace("/stats", "/tasks")) as response:
            return [float(task["generation_time"]) for task in await response.json()]


async def test_lognormal_times_have_a_long_tail_when_uncapped(http: aiohttp.ClientSession) -> None:
    long_tail = GenerationTimes(kind="lognormal", median=2.0, sigma=1.0, min=0.0, max=None)
    times = await generation_times(http, SimulatorConfig(generation=long_tail, seed=11), 300)
    median = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    assert 1.6 <= median <= 2.5
    assert 3.5 <= p95 / median <= 8.0  # exp(1.645) = 5.2 for sigma 1
    assert max(times) > 10.0  # past the default cap
    assert await generation_times(http, SimulatorConfig(generation=long_tail, seed=11), 300) == times
    capped = await generation_times(
        http, SimulatorConfig(generation=msgspec.structs.replace(long_tail, max=8.0), seed=11), 300
    )
    assert max(capped) == 8.0 and capped == [min(value, 8.0) for value in times]


async def test_uniform_times_stay_within_their_bounds(http: aiohttp.ClientSession) -> None:
    uniform = GenerationTimes(kind="uniform", low=2.0, high=6.0)
    times = await generation_times(http, SimulatorConfig(generation=uniform, seed=3), 100)
    assert all(2.0 <= value <= 6.0 for value in times)
    assert min(times) < 2.5 and max(times) > 5.5
    assert await generation_times(http, SimulatorConfig(generation=uniform, seed=4), 100) != times


async def test_bimodal_times_make_a_share_of_the_tasks_factor_times_longer(http: aiohttp.ClientSession) -> None:
    mixed = GenerationTimes(kind="bimodal", low=2.0, high=4.0, share=0.25, factor=10.0, max=None)
    times = await generation_times(http, SimulatorConfig(generation=mixed, seed=5), 200)
    short = [value for value in times if value <= 4.0]
    long = [value for value in times if value >= 20.0]
    assert len(short) + len(long) == len(times)  # nothing in between
    assert 0.15 <= len(long) / len(times) <= 0.35
    assert await generation_times(http, SimulatorConfig(generation=mixed, seed=5), 200) == times


async def test_apimart_estimated_time_can_be_biased(http: aiohttp.ClientSession) -> None:
    spread = GenerationTimes(kind="uniform", low=20.0, high=40.0)
    config = SimulatorConfig(generation=spread, estimated_time_error=0.0, estimated_time_bias=0.25)
    async with on_fake_clock(config) as (sim, _):
        for n in range(10):
            task_id = task_id_of("apimart", (await submit(http, sim, "apimart", f"clip {n}"))[1])
            estimate = (await get_status(http, sim, "apimart", task_id))[1]["data"]["estimated_time"]
            assert estimate == math.ceil(0.25 * sim.task(task_id).generation_time)


async def test_apimart_estimated_time_is_noisy_unless_told_otherwise(http: aiohttp.ClientSession) -> None:
    spread = GenerationTimes(kind="uniform", low=2.0, high=30.0)
    for error, exact in ((0.0, True), (0.3, False)):
        async with on_fake_clock(SimulatorConfig(generation=spread, estimated_time_error=error)) as (sim, _):
            pairs = []
            for n in range(20):
                task_id = task_id_of("apimart", (await submit(http, sim, "apimart", f"clip {n}"))[1])
                estimate = (await get_status(http, sim, "apimart", task_id))[1]["data"]["estimated_time"]
                pairs.append((estimate, sim.task(task_id).generation_time))
        assert all(estimate >= 1 for estimate, _ in pairs)
        matches = [estimate == math.ceil(actual) for estimate, actual in pairs]
        assert all(matches) if exact else matches.count(False) >= 10


# -- configuration ---------------------------------------------------------------------------------------------


def test_progress_and_queue_settings_load_and_are_checked() -> None:
    text = '{"progress": {"shape": "steps", "steps": [30, 60]}, "queue_fraction": [0.1, 0.7]}'
    config = SimulatorConfig.from_json(text)
    assert config.progress == Progress(shape="steps", steps=(30, 60))
    assert config.queue_fraction == (0.1, 0.7)
    assert SimulatorConfig.from_json(config.to_json()) == config
    assert SimulatorConfig.from_json('{"generation": {"max": null}}').generation.max is None
    for bad in (
        '{"progress": {"shape": "wobbly"}}',
        '{"progress": {"steps": []}}',
        '{"progress": {"steps": [60, 30]}}',
        '{"progress": {"steps": [100]}}',
        '{"progress": {"power": 1}}',
        '{"progress": {"stall_level": 100}}',
        '{"progress": {"stall_at": 0}}',
        '{"queue_fraction": [0.7, 0.1]}',
        '{"queue_fraction": [0, 1.5]}',
        '{"queue_fraction": -0.1}',
        '{"generation": {"max": -1}}',
        '{"generation": {"kind": "bimodal", "share": 1.5}}',
        '{"generation": {"factor": -2}}',
        '{"estimated_time_bias": 0}',
    ):
        with pytest.raises(msgspec.ValidationError):
            SimulatorConfig.from_json(bad)
