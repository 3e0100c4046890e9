"""Observation and control: stats, /_sim endpoints, task snapshots, configs, reproducibility, the public API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import get_args

import aiohttp
import anyio
import msgspec
import pytest

import hailuo_async.simulator as simulator_module
from hailuo_async.simulator import (
    Faults,
    GenerationTimes,
    RateLimit,
    Simulator,
    SimulatorConfig,
    SimulatorStats,
)
from hailuo_async.simulator._config import DriftShape

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-test-control-0001"}
MODEL = "MiniMax-Hailuo-02"


async def apimart_submit(http: aiohttp.ClientSession, sim: Simulator, prompt: str) -> str:
    async with http.post(
        f"{sim.urls.apimart}/v1/videos/generations", json={"model": MODEL, "prompt": prompt}, headers=AUTH
    ) as response:
        answer = await response.json()
    return str(answer["data"][0]["task_id"]) if response.status == 200 else ""


async def test_stats_count_requests_prompts_and_statuses(sim: Simulator, http: aiohttp.ClientSession) -> None:
    task_id = await apimart_submit(http, sim, "one")
    await apimart_submit(http, sim, "one")
    await apimart_submit(http, sim, "{{sim:reject}}")
    async with http.get(f"{sim.urls.apimart}/v1/tasks/{task_id}", headers=AUTH):
        pass
    async with http.get(f"{sim.urls.minimax}/v1/query/video_generation?task_id=1", headers=AUTH):
        pass
    stats = sim.stats()
    assert stats.submits_by_prompt == {"one": 2, "{{sim:reject}}": 1}
    assert stats.tasks_created == 2
    assert stats.tasks_created_by_prompt == {"one": 2}
    assert stats.requests_by_route == {"apimart.submit": 3, "apimart.status": 1, "minimax.status": 1}
    assert stats.responses_by_status == {200: 4, 400: 1}
    assert stats.max_concurrent_requests == 1
    assert (stats.rate_limited, stats.dropped_connections, stats.cdn_requests) == (0, 0, 0)

    async with http.get(sim.urls.stats) as response:
        assert response.status == 200
        assert msgspec.json.decode(await response.read(), type=SimulatorStats) == sim.stats()

    async with http.post(sim.urls.stats.replace("/stats", "/reset")) as response:
        assert response.status == 200
    assert sim.stats().tasks_created == 0
    assert len(sim.tasks) == 2  # tasks survive a reset
    sim.reset_stats()
    assert sim.stats().requests_by_route == {}


async def test_max_concurrent_requests(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(faults=Faults(latency=0.2))
    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(apimart_submit, http, sim, f"parallel {n}")
    assert sim.stats().max_concurrent_requests == 6


async def test_task_snapshots(sim: Simulator, http: aiohttp.ClientSession) -> None:
    before = time.time()
    task_id = await apimart_submit(http, sim, "snap {{sim:time=2.5}}")
    task = sim.task(task_id)
    assert task.provider == "apimart"
    assert task.prompt == "snap {{sim:time=2.5}}"
    assert task.request == {"model": MODEL, "prompt": "snap {{sim:time=2.5}}"}
    assert task.api_key == "sk-test-control-0001"
    assert task.idempotency_key is None
    assert before - 1 <= task.created_at <= time.time() + 1
    assert task.ready_at == pytest.approx(task.created_at + 2.5)
    assert task.generation_time == 2.5
    assert (task.outcome, task.state) == ("success", "queued")
    assert sim.tasks == [task]
    with pytest.raises(KeyError):
        sim.task("task_nope")
    async with http.get(sim.urls.stats.replace("/stats", "/tasks")) as response:
        [listed] = await response.json()
    assert listed["task_id"] == task_id


async def test_runtime_config_over_http(sim: Simulator, http: aiohttp.ClientSession) -> None:
    config_url = sim.urls.stats.replace("/stats", "/config")
    async with http.post(config_url, json={"faults": {"error_5xx": 1.0}, "credits": 5}) as response:
        assert response.status == 200
        assert (await response.json())["faults"]["error_5xx"] == 1.0
    assert sim.config.faults.error_5xx == 1.0
    assert sim.config.faults.routes == frozenset({"submit", "status", "retrieve", "upload"})
    assert sim.config.credits == 5
    assert await apimart_submit(http, sim, "x") == ""
    async with http.post(config_url, json={"failure_rate": 3}) as response:
        assert response.status == 400
    async with http.post(config_url, json={"no_such_field": 1}) as response:
        assert response.status == 400
    async with http.get(config_url) as response:
        assert SimulatorConfig.from_json(await response.read()) == sim.config
    sim.configure(SimulatorConfig())
    assert await apimart_submit(http, sim, "x") != ""


async def test_failure_rate(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.update_config(failure_rate=1.0)
    for n in range(3):
        await apimart_submit(http, sim, f"doomed {n}")
    assert {task.outcome for task in sim.tasks} == {"fail"}


async def test_seeded_runs_are_reproducible(http: aiohttp.ClientSession) -> None:
    async def times(seed: int) -> list[tuple[float, str]]:
        config = SimulatorConfig(seed=seed, failure_rate=0.5)
        async with Simulator(config) as sim:
            for n in range(8):
                await apimart_submit(http, sim, f"prompt {n}")
            return [(task.generation_time, task.outcome) for task in sim.tasks]

    first, again, other = await times(7), await times(7), await times(8)
    assert first == again
    assert first != other
    assert all(0.5 <= seconds <= 10.0 for seconds, _ in first)
    assert {outcome for _, outcome in first} == {"success", "fail"}


async def test_urls_only_while_running() -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError):
        _ = sim.urls
    async with sim:
        assert sim.urls.apimart.startswith("http://127.0.0.1:")
        assert sim.urls.apimart.rsplit("/", 1)[0] == sim.urls.toapis.rsplit("/", 1)[0]
    with pytest.raises(RuntimeError):
        _ = sim.urls
    await sim.close()


def test_config_loading(tmp_path: Path) -> None:
    text = '{"seed": 3, "generation": {"kind": "uniform", "low": 1, "high": 2}, "faults": {"latency": [0.1, 0.2]}}'
    config = SimulatorConfig.from_json(text)
    assert config.seed == 3
    assert config.generation == GenerationTimes(kind="uniform", low=1, high=2)
    assert config.faults.latency == (0.1, 0.2)
    assert SimulatorConfig.from_json(text.encode()) == config
    assert SimulatorConfig.from_json({"rate_limit": {"rate": 2, "burst": 4}}).rate_limit == RateLimit(rate=2, burst=4)
    path = tmp_path / "sim.json"
    path.write_bytes(config.to_json())
    assert SimulatorConfig.from_file(path) == config
    drifting = SimulatorConfig.from_json('{"drift": ["toapis_result_url"], "url_ttl": null, "upload_ttl": 60}')
    assert (drifting.drift, drifting.url_ttl, drifting.upload_ttl) == (frozenset({"toapis_result_url"}), None, 60)
    assert SimulatorConfig.from_json(drifting.to_json()) == drifting
    assert SimulatorConfig(drift=True).drift_shapes() == set(simulator_module.DRIFT_SHAPES)
    assert SimulatorConfig(drift=False).drift_shapes() == frozenset()
    with pytest.raises(ValueError, match="unknown drift shape"):
        SimulatorConfig(drift=frozenset({"toapis_result_type_video"}))  # type: ignore[arg-type]
    for bad in (
        '{"unknown": 1}',
        '{"failure_rate": 1.5}',
        '{"video_bytes": 10}',
        '{"faults": {"drop": -0.1}}',
        '{"faults": {"routes": ["submit", "nope"]}}',
        '{"generation": {"min": 5, "max": 1}}',
        '{"rate_limit": {"rate": 0}}',
        '{"drift": ["made_up"]}',
        '{"url_ttl": 0}',
        '{"upload_ttl": -1}',
        '{"submit_delay": -0.5}',
    ):
        with pytest.raises(msgspec.ValidationError):
            SimulatorConfig.from_json(bad)
    with pytest.raises(ValueError, match="failure_rate"):
        SimulatorConfig(failure_rate=2.0)


def test_defaults() -> None:
    config = SimulatorConfig()
    assert (config.host, config.port, config.cdn_port, config.seed) == ("127.0.0.1", 0, 0, 0)
    assert config.generation == GenerationTimes(kind="lognormal", median=3.0, sigma=0.35, min=0.5, max=10.0)
    assert (config.queue_fraction, config.estimated_time_error, config.url_ttl, config.upload_ttl) == (
        0.15,
        0.3,
        None,
        None,
    )
    assert (config.video_url_ttl("apimart"), config.video_url_ttl("toapis"), config.video_url_ttl("minimax")) == (
        72 * 3600,
        24 * 3600,
        9 * 3600,
    )
    assert config.upload_url_ttl("apimart") == 72 * 3600
    assert config.upload_url_ttl("toapis") == 24 * 3600
    assert config.submit_delay == 0.0
    assert (config.failure_rate, config.video_bytes) == (0.0, 65536)
    assert config.faults == Faults()
    assert config.faults.routes == frozenset({"submit", "status", "retrieve", "upload"})
    assert (config.rate_limit, config.keys, config.credits) == (None, None, None)
    assert (config.minimax_http_errors, config.idempotency, config.drift) == (False, True, False)


def test_public_api() -> None:
    exported = simulator_module.__all__
    assert exported == sorted(exported)
    for name in exported:
        value = getattr(simulator_module, name)
        if isinstance(value, type):
            assert value.__module__.startswith("hailuo_async.simulator")
    # Every name the config accepts is described (with its source), and nothing else is.
    assert set(simulator_module.DRIFT_SHAPES) == set(get_args(DriftShape))
    assert {"Simulator", "SimulatorConfig", "Faults", "RateLimit", "GenerationTimes", "SimulatorStats", "SimTask"} <= (
        set(exported)
    )
