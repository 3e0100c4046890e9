"""Rate limiters on the wire: token bucket (small and large bursts), fixed windows per second and per minute, and
the sliding window; how many requests each lets through, and that ``Retry-After`` tells the true wait."""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp
import msgspec
import pytest

from hailuo_async.simulator import RateLimit, Simulator, SimulatorConfig

from .wire import KEY, PROVIDERS, START, get_status, on_fake_clock, submit

pytestmark = pytest.mark.anyio

SMALL_BUCKET = RateLimit(rate=4.0, burst=1.0, retry_after="exact")
LARGE_BUCKET = RateLimit(rate=2.0, burst=10.0, retry_after="exact")
PER_SECOND = RateLimit(kind="fixed_window", rate=5.0, window=1.0, retry_after="exact")
PER_MINUTE = RateLimit(kind="fixed_window", rate=0.1, window=60.0)  # 6 a minute, whole-second Retry-After
SLIDING = RateLimit(kind="sliding_window", rate=2.0, window=2.0, retry_after="exact")  # 4 in any 2 s
LIMITS = {
    "small_bucket": SMALL_BUCKET,
    "large_bucket": LARGE_BUCKET,
    "per_second": PER_SECOND,
    "per_minute": PER_MINUTE,
    "sliding": SLIDING,
}


def limited(limit: RateLimit) -> SimulatorConfig:
    return SimulatorConfig(rate_limit=limit)


async def attempt(
    http: aiohttp.ClientSession, sim: Simulator, provider: str = "apimart", *, key: str = KEY, submitting: bool = False
) -> str | None:
    """One request through the limiter (a status check of an unknown task, or a submit): ``None`` if it passed,
    else the limited answer's ``Retry-After``, after checking that the answer is the provider's own."""
    if submitting:
        code, answer, headers = await submit(http, sim, provider, key=key)
    else:
        code, answer, headers = await get_status(http, sim, provider, "task_unknown", key=key)
    if provider == "minimax":
        if answer["base_resp"]["status_code"] != 1002:
            return None
        assert (code, answer["base_resp"]["status_msg"]) == (
            429 if sim.config.minimax_http_errors else 200,
            "rate limit",
        )
    elif code != 429:
        return None
    else:
        assert answer["error"]["type"] == ("rate_limit_error" if provider == "apimart" else "rate_limit_exceeded")
    return headers["Retry-After"]


async def burst(http: aiohttp.ClientSession, sim: Simulator, count: int, provider: str = "apimart") -> list[str | None]:
    """``count`` requests at the same moment (the fake clock does not move)."""
    return [await attempt(http, sim, provider) for _ in range(count)]


def passed(answers: list[str | None]) -> int:
    return answers.count(None)


async def test_token_bucket_with_a_small_burst(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(SMALL_BUCKET)) as (sim, now):
        assert await burst(http, sim, 3) == [None, "0.25", "0.25"]  # a token every 0.25 s
        now[0] = START + 0.1
        assert await attempt(http, sim) == "0.15"
        now[0] = START + 0.25
        assert await burst(http, sim, 2) == [None, "0.25"]
        assert sim.stats().rate_limited == 4


async def test_token_bucket_with_a_large_burst(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(LARGE_BUCKET)) as (sim, now):
        assert passed(await burst(http, sim, 14)) == 10
        now[0] = START + 1.0
        assert await burst(http, sim, 3) == [None, None, "0.5"]  # 2 tokens a second since
        now[0] = START + 30.0
        assert passed(await burst(http, sim, 14)) == 10  # never more than the bucket holds


async def test_fixed_window_per_second(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(PER_SECOND)) as (sim, now):
        now[0] = START + 0.3
        assert await burst(http, sim, 7) == [None] * 5 + ["0.7"] * 2  # until the window ends, whatever is asked
        now[0] = START + 0.999
        assert await attempt(http, sim) == "0.001"
        now[0] = START + 1.999
        assert passed(await burst(http, sim, 7)) == 5
        now[0] = START + 2.0
        assert passed(await burst(http, sim, 7)) == 5  # a fresh window: 10 passed within a millisecond


async def test_fixed_window_per_minute(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(PER_MINUTE)) as (sim, now):
        assert await burst(http, sim, 8) == [None] * 6 + ["20"] * 2  # windows start at whole minutes: 960, 1020 s
        now[0] = START + 19.2
        assert await attempt(http, sim) == "1"  # 0.8 s, in whole seconds
        now[0] = START + 20.0
        assert passed(await burst(http, sim, 8)) == 6
        now[0] = START + 79.5
        assert await attempt(http, sim) == "1"
        now[0] = START + 80.0
        assert passed(await burst(http, sim, 8)) == 6


async def test_sliding_window(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(SLIDING)) as (sim, now):
        for moment in (0.0, 0.5, 1.0, 1.5):
            now[0] = START + moment
            assert await attempt(http, sim) is None
        now[0] = START + 1.6
        assert await attempt(http, sim) == "0.4"  # when the request of 0.0 leaves the window
        now[0] = START + 2.0
        assert await burst(http, sim, 2) == [None, "0.5"]  # then the one of 0.5
        now[0] = START + 10.0
        assert passed(await burst(http, sim, 6)) == 4


@pytest.mark.parametrize("name", sorted(LIMITS))
async def test_sustained_rate_is_the_limits_rate(http: aiohttp.ClientSession, name: str) -> None:
    """A request every 50 ms for 10 s: a bucket passes ``rate`` a second after its first burst, a window kind its
    limit in each window, and no window of the sliding kind ever holds more than its limit."""
    limit = LIMITS[name]
    async with on_fake_clock(limited(limit)) as (sim, now):
        accepted = []
        for tick in range(200):
            now[0] = START + tick * 0.05
            if await attempt(http, sim) is None:
                accepted.append(now[0])
    if limit.kind == "token_bucket":
        expected = limit.burst + limit.rate * 10
    else:
        expected = limit.per_window * math.ceil(10 / limit.window)
    assert abs(len(accepted) - expected) <= 1, (len(accepted), expected)
    if limit.kind == "sliding_window":
        for moment in accepted:
            assert sum(moment - limit.window < other <= moment for other in accepted) <= limit.per_window


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("name", sorted(LIMITS))
async def test_retry_after_is_the_true_wait(http: aiohttp.ClientSession, provider: str, name: str) -> None:
    """After a limited answer, a request 2 ms before its ``Retry-After`` is limited too, one at it passes."""
    limit = msgspec.structs.replace(LIMITS[name], retry_after="exact")
    async with on_fake_clock(limited(limit)) as (sim, now):
        now[0] = START + 0.3
        answers = await burst(http, sim, 11, provider)
        wait = answers[-1]
        assert wait is not None
        assert 0 < float(wait) <= (1 / limit.rate if limit.kind == "token_bucket" else limit.window)
        now[0] = START + 0.3 + float(wait) - 0.002
        assert await attempt(http, sim, provider) is not None
        now[0] = START + 0.3 + float(wait)
        assert await attempt(http, sim, provider) is None


async def test_every_route_of_a_key_shares_one_limit(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(msgspec.structs.replace(PER_SECOND, rate=3))) as (sim, _):
        assert await attempt(http, sim, submitting=True) is None
        assert await attempt(http, sim) is None
        assert await attempt(http, sim, submitting=True) is None
        assert await attempt(http, sim, submitting=True) == "1"
        assert await attempt(http, sim) == "1"
        assert await attempt(http, sim, key="sk-another-key") is None  # per API key
        assert await attempt(http, sim, "toapis") is None  # and per provider
        assert sim.stats().tasks_created == 2 and sim.stats().rate_limited == 2


async def test_minimax_says_1002_whatever_the_limiter(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(PER_MINUTE)) as (sim, now):
        assert await burst(http, sim, 7, "minimax") == [None] * 6 + ["20"]
        sim.update_config(minimax_http_errors=True)  # the same limit: its state is kept
        assert await attempt(http, sim, "minimax") == "20"
        now[0] = START + 20.0
        assert await attempt(http, sim, "minimax") is None


async def test_changing_the_kind_starts_afresh(http: aiohttp.ClientSession) -> None:
    async with on_fake_clock(limited(SMALL_BUCKET)) as (sim, _):
        assert await burst(http, sim, 2) == [None, "0.25"]
        sim.update_config(rate_limit=msgspec.structs.replace(SMALL_BUCKET, rate=1.0))  # same kind: same bucket
        assert await attempt(http, sim) == "1"
        sim.update_config(rate_limit=SLIDING)
        assert passed(await burst(http, sim, 6)) == 4


@pytest.mark.parametrize("name", ["large_bucket", "per_second", "sliding"])
async def test_retry_after_holds_on_the_real_clock(http: aiohttp.ClientSession, name: str) -> None:
    """On the real clock: concurrent requests pass no more than the limit allows in the time they took, and once a
    request is limited, one sent after its ``Retry-After`` passes."""
    limit = msgspec.structs.replace(LIMITS[name], rate=LIMITS[name].rate * 4, window=LIMITS[name].window / 4)
    async with Simulator(limited(limit)) as sim:
        started = time.monotonic()
        answers = await asyncio.gather(*(attempt(http, sim) for _ in range(25)))
        took = time.monotonic() - started
        if limit.kind == "token_bucket":
            most = limit.burst + math.ceil(limit.rate * took)
        else:
            most = limit.per_window * (1 + math.ceil(took / limit.window))
        assert 1 <= passed(answers) <= most
        for _ in range(25):  # nothing else is sent meanwhile, so the wait it names is the true one
            wait = await attempt(http, sim)
            if wait is not None:
                break
        assert wait is not None and 0 < float(wait) <= max(limit.window, 1 / limit.rate)
        await asyncio.sleep(float(wait))
        assert await attempt(http, sim) is None


def test_rate_limit_settings_load_and_are_checked() -> None:
    assert RateLimit(rate=2, burst=4) == RateLimit(
        kind="token_bucket", rate=2, burst=4, window=1, retry_after="seconds"
    )
    text = '{"rate_limit": {"kind": "sliding_window", "rate": 0.5, "window": 60, "retry_after": "exact"}}'
    config = SimulatorConfig.from_json(text)
    assert config.rate_limit == RateLimit(kind="sliding_window", rate=0.5, window=60, retry_after="exact")
    assert config.rate_limit.per_window == 30
    assert RateLimit(kind="fixed_window", rate=10 / 60, window=60).per_window == 10
    assert SimulatorConfig.from_json(config.to_json()) == config
    for bad in (
        '{"rate_limit": {"kind": "leaky"}}',
        '{"rate_limit": {"window": 0}}',
        '{"rate_limit": {"kind": "fixed_window", "rate": 0.5, "window": 1}}',  # less than one request a window
        '{"rate_limit": {"retry_after": "date"}}',
    ):
        with pytest.raises(msgspec.ValidationError):
            SimulatorConfig.from_json(bad)
