"""The shared status poller against plain per-task polling loops, in virtual time, on all three providers.

    python -m benchmarks.bench_poller [--items N] [--providers apimart toapis minimax] [--rows linear none ...]
                                      [--quick] [--plot] [--output-dir benchmarks/results] [--latency 0.3]

Every run plays one (row, provider, contender) on a fresh :class:`~hailuo_async.FakeClock` against a fresh
in-process simulator: the simulator's own :class:`~hailuo_async.simulator._state.SimState` (task lifecycles,
progress shapes, queueing, rate limiters) and dialects (the providers' bodies and errors), answered through a
:class:`~hailuo_async.MockTransport` handler that does what the simulator's HTTP pipeline does for submit, status and
MiniMax's ``files/retrieve`` (rate limit first: 429, or MiniMax's ``base_resp`` 1002, with the true ``Retry-After``),
after a virtual latency per request (:data:`LATENCY`, or ``--latency``). No sockets, no network: hours of polling take
a second.

Rows: one per progress shape (``linear``, ``none``, ``steps``, ``concave``, ``convex``, ``stall``), late/long
queueing, log-normal durations, the common rate limiters (token bucket with small and large bursts, fixed windows
of a second and a minute, a sliding window), and completion by webhook (``webhook``: every delivery sent;
``webhook_drop30``: 30 % dropped). Contenders meet the same seeded tasks: the library
(``HailuoClient(..., poll=PollPolicy(max_lag=...), max_concurrency=32).gather_generations``) at several ``max_lag``
values, and plain loops (submit under a semaphore of 32, then ``sleep(interval)``, GET status, repeat; a 429 sleeps
``Retry-After`` and resends) at 1, 2, 5 and 10 s. The webhook rows have their own three: the library with
``webhook=Webhook(public_url=..., fallback_lag=30)``, beside the library at ``max_lag`` 2 and the 2 s loop. There the
in-process provider delivers what the simulator's ``WebhookSender`` would (apimart's status answer, toapis' signed
event, MiniMax's status changes after its challenge), with the simulator's seeded draws (drop, a 0.02-0.1 s delay),
by calling ``client.handle_webhook`` directly from a task of the run's task group that sleeps on the fake clock.

Measured per run: status requests per item (429s included), detection lag (result in the caller's hands minus the
task's ready time in the simulator) p50/p95/p99, makespan and its ratio to a lower bound, the share of requests
answered 429 and, on limited rows, the accepted request rate while submits were pending; with a webhook also the
deliveries sent, dropped and refused, and the lag of the items whose end delivery was dropped. It prints a markdown
table and the goal checks (PASS/FAIL, library at ``max_lag`` 2; on the webhook rows, the library with a webhook),
writes ``poller.md`` and ``poller.json`` into ``--output-dir`` and, with ``--plot``, one
``poller_tradeoff_<row>.png`` per progress row (matplotlib, the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import anyio
import anyio.abc
import msgspec

from benchmarks.harness import RESULTS, SEED, library_digest, machine, percentile, source_state
from hailuo_async import (
    FakeClock,
    GenerationFailedError,
    GenerationRequest,
    HailuoClient,
    HttpRequest,
    HttpResponse,
    ItemEvent,
    MockTransport,
    PollPolicy,
    Webhook,
    WebhookReply,
)
from hailuo_async.simulator import GenerationTimes, Progress, RateLimit, SimulatorConfig
from hailuo_async.simulator._cdn import sign_video_url
from hailuo_async.simulator._config import Webhooks
from hailuo_async.simulator._limits import RateLimiters, retry_after
from hailuo_async.simulator._providers import Apimart, Dialect, ErrorKind, Minimax, Toapis
from hailuo_async.simulator._state import LiveTask, ProviderName, SimState, parse_markers
from hailuo_async.simulator._webhooks import Problem, callback_target, delivery_body, toapis_signature_header

ProviderKey = Literal["apimart", "toapis", "minimax"]
PROVIDERS: tuple[ProviderKey, ...] = ("apimart", "toapis", "minimax")
LATENCY = 0.05
"""Virtual seconds every request takes before the simulator answers it."""
CONCURRENCY = 32
"""Submits in flight at once, for every contender."""
API_KEY = "sk-bench-poller"
MODEL = "MiniMax-Hailuo-02"
DEFAULT_ITEMS = 300
LIMITED_ITEMS = 400
QUICK_ITEMS = 100
GIVE_UP = 3600.0
"""Virtual seconds after which a plain loop stops polling a task (never reached by the rows here)."""
LIBRARY_LAGS = (0.5, 1.0, 2.0, 5.0, 10.0)
LOOP_INTERVALS = (1.0, 2.0, 5.0, 10.0)
TABLE_LAG = 2.0
"""The library's ``max_lag`` shown in the table and checked against the goals (the default)."""
TABLE_INTERVALS = (2.0, 10.0)
UNIFORM = GenerationTimes(kind="uniform", low=5.0, high=20.0, min=0.0, max=None)
"""Generation time of every row but the log-normal one: uniform in 5-20 s."""
LIMIT_RATE = 20.0
"""Sustained requests per second of every limiter row."""
SETTLE = 100
"""Event-loop turns the FakeClock gives every runnable task before it jumps to the next wake-up. The library's
poller hands out a burst of due checks (hundreds when a batch's first finishes are news) a few per turn; with 20
turns time jumped while the burst was still going out, so checks went out a quarter of a second after they were
due at max_lag 0.5 on MiniMax, which a real process does not do. At 100 the figures no longer move (200 gives the
same) at about 1.5x the real time."""
AGE_BIN = 2.0
"""Width (s) of the task-age bins status requests are counted in: where in its tasks' lives a contender spends them."""
AGE_BINS = 12
"""Bins counted; the last holds every older task."""
WEBHOOK_URL = "http://127.0.0.1:9"
"""``Webhook.public_url`` of the webhook contender: never bound (deliveries are handed to the client directly)."""
FALLBACK_LAG = 30.0
"""``Webhook.fallback_lag`` of the webhook contender: the safety-net polling of tasks given a callback."""
WEBHOOK_DELAY = (0.02, 0.1)
"""Virtual seconds between a task's end and its delivery, uniform in this range (drawn per delivery, seeded)."""


# -- rows and contenders ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    kind: Literal["shape", "limit", "webhook"]
    generation: GenerationTimes = UNIFORM
    progress: Progress = field(default_factory=Progress)
    queue_fraction: float | tuple[float, float] = 0.15
    rate_limit: RateLimit | None = None
    webhooks: Webhooks = field(default_factory=Webhooks)
    """How the in-process provider delivers webhooks (drop share, delay); only submits with a callback get any."""
    moving: bool = True
    """Whether its progress moves while a task runs (the status-request goal is 0.5x of the 2 s loop, else 0.8x)."""
    absolute: bool = False
    """Whether the absolute goal of at most 2 status requests per item applies."""
    estimated_time_bias: float = 1.0
    """How many times the true time apimart's ``estimated_time`` says."""
    estimated_time_error: float = 0.3
    """Relative noise of apimart's ``estimated_time``."""

    def config(self, seed: int) -> SimulatorConfig:
        return SimulatorConfig(
            seed=seed,
            generation=self.generation,
            estimated_time_bias=self.estimated_time_bias,
            estimated_time_error=self.estimated_time_error,
            progress=self.progress,
            queue_fraction=self.queue_fraction,
            rate_limit=self.rate_limit,
            webhooks=self.webhooks,
        )

    def items(self, requested: int | None, quick: bool) -> int:
        if requested is not None:
            return requested
        if quick:
            return QUICK_ITEMS
        return LIMITED_ITEMS if self.kind == "limit" else DEFAULT_ITEMS

    @property
    def limit_rate(self) -> float | None:
        return None if self.rate_limit is None else self.rate_limit.rate


def _limit(
    kind: Literal["token_bucket", "fixed_window", "sliding_window"], *, burst: float = 1.0, window: float = 1.0
) -> RateLimit:
    return RateLimit(kind=kind, rate=LIMIT_RATE, burst=burst, window=window)


ROWS: tuple[Row, ...] = (
    Row("linear", "linear progress, 15 % queued", "shape", absolute=True),
    Row("none", "no progress until done", "shape", progress=Progress(shape="none"), moving=False),
    Row("steps", "progress in steps (0, then 50)", "shape", progress=Progress(shape="steps")),
    Row("concave", "concave progress (fast first, slow at the end)", "shape", progress=Progress(shape="concave")),
    Row("convex", "convex progress (slow first, fast at the end)", "shape", progress=Progress(shape="convex")),
    Row("stall", "progress stalls at 95 from 30 % of the run", "shape", progress=Progress(shape="stall")),
    Row(
        "late_queue",
        "late/long queueing: 0-70 % of the time queued",
        "shape",
        queue_fraction=(0.0, 0.7),
        absolute=True,
    ),
    Row(
        "lognormal",
        "log-normal times (median 12 s, sigma 0.5, min 3 s)",
        "shape",
        generation=GenerationTimes(kind="lognormal", median=12.0, sigma=0.5, min=3.0, max=None),
        absolute=True,
    ),
    Row("tb_burst20", "token bucket 20/s, burst 20", "limit", rate_limit=_limit("token_bucket", burst=20.0)),
    Row("tb_burst200", "token bucket 20/s, burst 200", "limit", rate_limit=_limit("token_bucket", burst=200.0)),
    Row("fw_1s", "fixed window 20 per 1 s", "limit", rate_limit=_limit("fixed_window", window=1.0)),
    Row("fw_60s", "fixed window 1200 per 60 s", "limit", rate_limit=_limit("fixed_window", window=60.0)),
    Row("sw_1s", "sliding window 20 per 1 s", "limit", rate_limit=_limit("sliding_window", window=1.0)),
    Row(
        "webhook",
        "webhooks, linear progress, every delivery sent",
        "webhook",
        webhooks=Webhooks(delay=WEBHOOK_DELAY),
    ),
    Row(
        "webhook_drop30",
        "webhooks, linear progress, 30 % of deliveries dropped",
        "webhook",
        webhooks=Webhooks(drop=0.3, delay=WEBHOOK_DELAY),
    ),
)
ROW_KEYS = tuple(row.key for row in ROWS)


@dataclass(frozen=True)
class Contender:
    kind: Literal["library", "loop", "webhook"]
    value: float
    """``max_lag`` of the library, the loop's interval, or the webhook's ``fallback_lag``, in seconds."""

    @property
    def name(self) -> str:
        if self.kind == "library":
            return f"library max_lag {self.value:g}"
        if self.kind == "webhook":
            return f"library webhook fallback {self.value:g}"
        return f"loop {self.value:g} s"


def library_policy(max_lag: float) -> PollPolicy:
    """The library's policy for one contender: its defaults, at ``max_lag``."""
    return PollPolicy(max_lag=max_lag)


def contenders(quick: bool) -> list[Contender]:
    """Every contender; ``quick``: only the table's."""
    lags = (TABLE_LAG,) if quick else LIBRARY_LAGS
    intervals = TABLE_INTERVALS if quick else LOOP_INTERVALS
    return [Contender("library", lag) for lag in lags] + [Contender("loop", interval) for interval in intervals]


WEBHOOK_CONTENDERS = (Contender("webhook", FALLBACK_LAG), Contender("library", TABLE_LAG), Contender("loop", 2.0))
"""The contenders of the webhook rows, whatever ``--quick`` says: the library with a callback, beside the
polling-only library at ``max_lag`` 2 and the 2 s loop."""


def row_contenders(row: Row, racers: Sequence[Contender]) -> Sequence[Contender]:
    """Who plays ``row``: :data:`WEBHOOK_CONTENDERS` on the webhook rows, else ``racers``."""
    return WEBHOOK_CONTENDERS if row.kind == "webhook" else racers


def webhook_setting(contender: Contender, config: SimulatorConfig) -> Webhook:
    """The webhook contender's :class:`Webhook`: a public URL that is never bound, its ``fallback_lag``, and the
    toapis secret the in-process provider signs with."""
    return Webhook(public_url=WEBHOOK_URL, fallback_lag=contender.value, secret=config.webhooks.toapis_secret)


# -- the in-process provider -----------------------------------------------------------------------------------------


def _dialect(provider: ProviderKey, state: SimState) -> Dialect:
    if provider == "apimart":
        return Apimart()
    if provider == "toapis":
        return Toapis()
    return Minimax(lambda: state.config.minimax_http_errors)


def _json(status: int, body: Any, headers: dict[str, str]) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=msgspec.json.encode(body))


Deliver = Callable[[str, str, Mapping[str, str], bytes], Awaitable[WebhookReply]]
"""Where the in-process provider hands a webhook delivery: ``HailuoClient.handle_webhook(method, path, headers,
body)``."""
WebhookEventKind = Literal["processing", "terminal"]
_MINIMAX_OK = {"status_code": 0, "status_msg": "success"}
_TOAPIS_TASK_TYPE = "video"


class InProcessProvider:
    """One provider of the simulator, without HTTP: what ``_Api`` does for submit, status (and toapis' look-up by
    ``client_business_id``) and MiniMax's ``files/retrieve``, rate limit included. Every request first waits
    ``latency`` virtual seconds (the run's, :data:`LATENCY` by default); the answer is then given at once. Counts
    requests and 429s per route, and when each accepted request arrived.

    Webhooks, as the simulator's ``WebhookSender`` sends them but without HTTP: a submit whose body carries a
    callback URL (``callback_target``: apimart's ``webhook`` plus ``/callback``, toapis' ``metadata.callback_url``,
    MiniMax's ``callback_url``) gets one delivery when its task ends (MiniMax: also one when it starts running),
    each handed to :attr:`deliver` (the client's ``handle_webhook``) at its due time plus the row's seeded delay,
    in a task of :attr:`group` (the run's task group) that sleeps on the run's clock. The seeded draws (dropped,
    duplicated, delay, toapis event id) are the simulator's own, per task and event. A MiniMax submit first has its
    challenge echoed through :attr:`deliver` (no latency), else it is answered ``base_resp`` 2013 and creates no
    task. No retries: a delivery answered other than 2xx is counted as refused."""

    def __init__(self, provider: ProviderKey, config: SimulatorConfig, clock: FakeClock, latency: float) -> None:
        self.provider = provider
        self.clock = clock
        self.latency = latency
        self.state = SimState(config, clock=clock.monotonic)
        # Unix times in bodies follow the fake clock, not the real one: identical bodies in every run.
        self.state.timebase.offset = clock.time() - clock.monotonic()
        self.state.cdn_base = "https://cdn.simulator.invalid"
        self.dialect = _dialect(provider, self.state)
        self.name: ProviderName = self.dialect.name
        self.requests: collections.Counter[str] = collections.Counter()
        self.limited: collections.Counter[str] = collections.Counter()
        self.accepted_at: list[float] = []
        self.status_ages: collections.Counter[int] = collections.Counter()
        """Status requests answered, by the age of their task (seconds since its creation) in :data:`AGE_BIN` bins."""
        self._request_ids = 0
        self.deliver: Deliver | None = None
        self.group: anyio.abc.TaskGroup | None = None
        self.webhooks: collections.Counter[str] = collections.Counter()
        """Deliveries ``sent`` (each copy), ``dropped``, ``duplicated``, ``refused`` (answered other than 2xx),
        ``unaccepted_ends`` (end deliveries sent but none answered 2xx), ``challenges`` and
        ``challenges_failed``."""
        self.dropped_ends: set[str] = set()
        """Tasks whose end delivery was dropped."""
        self.delivered_at: dict[str, float] = {}
        """When each task's end delivery was first answered 2xx."""
        self._challenges = random.Random(f"challenges|{config.seed}")

    def connect(self, deliver: Deliver | None, group: anyio.abc.TaskGroup | None) -> None:
        """Deliver webhooks through ``deliver``, scheduled in ``group`` (``None``: stop; nothing is delivered)."""
        self.deliver, self.group = deliver, group

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        await self.clock.sleep(self.latency)
        return await self.answer(request)

    # -- the pipeline ------------------------------------------------------------------------------------------

    async def answer(self, request: HttpRequest) -> HttpResponse:
        route = request.route
        self.requests[route] += 1
        limit = self.state.config.rate_limit
        if limit is not None and route != "upload":
            wait = self.state.limiters.take(self.name, API_KEY, limit)
            if wait is not None:
                self.limited[route] += 1
                self.state.counters.rate_limited += 1
                return self.error("rate_limited", headers={"retry-after": retry_after(wait, limit.retry_after)})
        self.accepted_at.append(self.clock.monotonic())
        if route == "submit":
            return await self.submit(request)
        if route in ("status", "lookup"):
            return self.status(request)
        if route == "retrieve":
            return self.retrieve(request)
        return self.error("no_resource")

    def respond(self, status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponse:
        self._request_ids += 1
        request_id = f"{self._request_ids:016x}"
        if self.name != "minimax":
            request_id = f"req_{request_id}"
        return _json(status, body, {self.dialect.request_id_header.lower(): request_id, **(headers or {})})

    def error(self, kind: ErrorKind, message: str | None = None, headers: dict[str, str] | None = None) -> HttpResponse:
        status, body = self.dialect.error(kind, message)
        return self.respond(status, body, headers)

    # -- routes ------------------------------------------------------------------------------------------------

    async def submit(self, request: HttpRequest) -> HttpResponse:
        try:
            body = msgspec.json.decode(request.body or b"")
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            return self.error("invalid", "request body must be a JSON object")
        normalized = self.dialect.validate(body)
        if isinstance(normalized, str):
            return self.error("invalid", normalized)
        state = self.state
        callback = callback_target(self.name, body, state.config)
        if isinstance(callback, Problem):
            return self.error("invalid", callback.message)
        markers = parse_markers(normalized.prompt)
        if markers.reject:
            return self.error("rejected")
        # MiniMax checks the callback URL before the task exists: no echo, no task (base_resp 2013).
        if callback is not None and self.name == "minimax" and not await self.challenge(callback):
            return self.error("invalid", "fail to check callback url")
        task = state.store.create(
            provider=self.name,
            model=normalized.model,
            prompt=normalized.prompt,
            request=body,
            api_key=API_KEY,
            idempotency_key=dict(request.headers).get("Idempotency-Key"),
            client_business_id=normalized.client_business_id,
            resolution=normalized.resolution,
            markers=markers,
            config=state.config,
        )
        state.counters.tasks_created += 1
        if callback is not None:
            self.watch(task, callback)
        return self.respond(200, self.dialect.submit_body(task, frozenset()))

    def _task_id(self, request: HttpRequest) -> str:
        parts = urlsplit(request.path)
        if self.name == "minimax":
            return parse_qs(parts.query).get("task_id", [""])[0]
        return unquote(parts.path.rsplit("/", 1)[-1])

    def status(self, request: HttpRequest) -> HttpResponse:
        state = self.state
        task_id = self._task_id(request)
        task = state.store.get(self.name, task_id, API_KEY)
        if task is None and self.name == "toapis":
            task = state.store.get_by_client_id(self.name, task_id, API_KEY)
        if task is None:
            return self.error("not_found")
        now = state.timebase.now()
        self.status_ages[min(int((now - task.created) // AGE_BIN), AGE_BINS - 1)] += 1
        phase, progress = task.state(now)
        video = None
        if phase == "completed" and self.name != "minimax":
            video = sign_video_url(state, task.task_id, self.name)
        return self.respond(200, self.dialect.status_body(task, phase, progress, video, frozenset(), now))

    def retrieve(self, request: HttpRequest) -> HttpResponse:
        state = self.state
        file_id = parse_qs(urlsplit(request.path).query).get("file_id", [""])[0]
        task = state.store.by_file_id.get(int(file_id)) if file_id.isdigit() else None
        if task is None or task.state(state.timebase.now())[0] != "completed":
            return self.error("not_found", "file not found")
        url, _ = sign_video_url(state, task.task_id, self.name)
        assert isinstance(self.dialect, Minimax)
        return self.respond(200, self.dialect.retrieve_body(task, url))

    # -- webhooks ----------------------------------------------------------------------------------------------

    def watch(self, task: LiveTask, url: str) -> None:
        """Schedule ``task``'s deliveries to ``url`` in :attr:`group`: its end (none if it hangs), and on MiniMax
        the start of its running part (none if it has none)."""
        if self.group is None:
            raise RuntimeError("a submit asked for webhooks, but no client is connected to deliver them to")
        if task.provider == "minimax" and (task.queue_time < task.gen_time or task.outcome == "hang"):
            self.group.start_soon(self._delivery, task, url, task.created + task.queue_time, "processing")
        if task.outcome != "hang":
            self.group.start_soon(self._delivery, task, url, task.created + task.gen_time, "terminal")

    async def _delivery(self, task: LiveTask, url: str, due: float, event: WebhookEventKind) -> None:
        clock = self.clock
        await clock.sleep(due - clock.monotonic())
        config = self.state.config
        faults = config.webhooks
        # The simulator's own draws (WebhookSender._prepare), in its order: the same deliveries drop.
        rng = random.Random(f"{config.seed}|webhook|{task.provider}|{task.nth}|{task.prompt}|{event}")
        dropped = rng.random() < faults.drop
        duplicate = rng.random() < faults.duplicate
        rng.random()  # reorder (MiniMax's processing held back): not played here
        delay = rng.uniform(*faults.delay) if isinstance(faults.delay, tuple) else faults.delay
        event_id = f"evt_{rng.getrandbits(96):024x}"
        if dropped:
            self.webhooks["dropped"] += 1
            if event == "terminal":
                self.dropped_ends.add(task.task_id)
            return
        await clock.sleep(delay)
        # Built as it is sent (the simulator builds it when due; nothing in it changes meanwhile). Float rounding
        # may leave ``(created + gen_time) - created`` an ulp short of ``gen_time``: a terminal body is built as of
        # the first moment the task reads as ended.
        at = max(clock.monotonic(), due)
        while event == "terminal" and task.state(at)[0] not in ("completed", "failed"):
            at = math.nextafter(at, math.inf)
        body = msgspec.json.encode(self.webhook_body(task, event, event_id, at))
        accepted = await self._post(url, body, event_id if task.provider == "toapis" else None)
        if duplicate:
            self.webhooks["duplicated"] += 1
            accepted = await self._post(url, body, event_id if task.provider == "toapis" else None) or accepted
        if event == "terminal":
            if accepted:
                self.delivered_at[task.task_id] = clock.monotonic()
            else:
                self.webhooks["unaccepted_ends"] += 1

    def webhook_body(self, task: LiveTask, event: WebhookEventKind, event_id: str, now: float) -> dict[str, Any]:
        """What the provider POSTs about ``event`` as of ``now`` (monotonic), as the simulator builds it."""
        return delivery_body(self.state, task, event, event_id, now)

    async def _post(self, url: str, body: bytes, event_id: str | None) -> bool:
        """Hand one delivery to :attr:`deliver` (toapis': signed, ``event_id`` given); whether it was answered
        2xx."""
        headers = {"Content-Type": "application/json"}
        if event_id is not None:
            timestamp = str(int(self.clock.time()))
            headers["X-ToAPIs-Webhook-Id"] = event_id
            headers["X-ToAPIs-Webhook-Timestamp"] = timestamp
            headers["X-ToAPIs-Webhook-Signature"] = toapis_signature_header(
                (self.state.config.webhooks.toapis_secret,), event_id, timestamp, body
            )
        self.webhooks["sent"] += 1
        reply = await self._hand(url, headers, body)
        if reply is not None and 200 <= reply.status < 300:
            return True
        self.webhooks["refused"] += 1
        return False

    async def challenge(self, url: str) -> bool:
        """MiniMax's check of a callback URL: ``{"challenge": <random>}`` handed to :attr:`deliver`; whether a
        2xx JSON answer echoes it."""
        self.webhooks["challenges"] += 1
        token = f"{self._challenges.getrandbits(128):032x}"
        body = msgspec.json.encode({"challenge": token})
        reply = await self._hand(url, {"Content-Type": "application/json"}, body)
        answer: Any = None
        if reply is not None and 200 <= reply.status < 300:
            try:
                answer = msgspec.json.decode(reply.body)
            except msgspec.DecodeError:
                answer = None
        echoed = isinstance(answer, dict) and answer.get("challenge") == token
        if not echoed:
            self.webhooks["challenges_failed"] += 1
        return echoed

    async def _hand(self, url: str, headers: dict[str, str], body: bytes) -> WebhookReply | None:
        """POST ``body`` to ``url`` by calling :attr:`deliver` with its path (and query); ``None`` when nothing is
        connected (as a connection refused)."""
        if self.deliver is None:
            return None
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return await self.deliver("POST", path, headers, body)

    # -- after the run -----------------------------------------------------------------------------------------

    def tasks(self) -> list[LiveTask]:
        return list(self.state.store.tasks.values())


# -- the contenders --------------------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """When each result reached the caller (virtual seconds), by task id, and every item's outcome."""

    clock: FakeClock
    arrivals: dict[str, float] = field(default_factory=dict)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)

    def result(self, task_id: str | None, kind: str) -> None:
        if task_id is not None and kind in ("completed", "failed"):
            self.arrivals[task_id] = self.clock.monotonic()
        self.outcomes[kind] += 1


def prompts(count: int, seed: int) -> list[str]:
    return [
        f"bench poller {seed}-{index:05d}: a paper boat drifting down a rainy street at dusk" for index in range(count)
    ]


async def run_library(
    provider: ProviderKey,
    sim: InProcessProvider,
    clock: FakeClock,
    texts: Sequence[str],
    max_lag: float,
    recorder: Recorder,
    *,
    submit_budget: bool,
    webhook: Webhook | None = None,
) -> None:
    """``HailuoClient(...).gather_generations(items)`` with ``poll=library_policy(max_lag)``, 32 submits in flight.
    ``submit_budget``: keep MiniMax's documented submit budget (20 per minute); off, submits are paced only by what
    the provider answers, as the loops' are. ``webhook``: the client's :class:`Webhook`; ``sim`` then delivers
    through ``client.handle_webhook``, its deliveries scheduled in a task group of this run that ends once every
    one has been handed over (at most a delay after the last task's end), before the client closes."""

    def on_event(event: ItemEvent) -> None:
        if event.kind == "completed":
            recorder.result(event.task_id, "completed")
        elif event.kind == "failed":
            error = event.error
            if isinstance(error, GenerationFailedError):
                recorder.result(error.task_id, "failed")
            else:
                recorder.result(None, type(error).__name__)

    options: dict[str, Any] = {} if submit_budget else {"submits_per_minute": None}
    items = [GenerationRequest(text) for text in texts]
    async with HailuoClient(
        provider,
        api_key=API_KEY,
        transport=MockTransport(sim, keep_requests=False),
        clock=clock,
        poll=library_policy(max_lag),
        max_concurrency=CONCURRENCY,
        webhook=webhook,
        **options,
    ) as client:
        if webhook is None:
            await client.gather_generations(items, return_exceptions=True, on_event=on_event)
            return
        try:
            async with anyio.create_task_group() as deliveries:
                sim.connect(client.handle_webhook, deliveries)
                await client.gather_generations(items, return_exceptions=True, on_event=on_event)
        finally:
            sim.connect(None, None)


def _loop_submit(provider: ProviderKey, prompt: str) -> HttpRequest:
    if provider == "apimart":
        body: dict[str, Any] = {"model": MODEL, "prompt": prompt, "duration": 5, "resolution": "768p"}
        path = "/v1/videos/generations"
    elif provider == "toapis":
        body = {"model": MODEL, "prompt": prompt, "duration": 6, "resolution": "768P"}
        path = "/v1/videos/generations"
    else:
        body = {"model": MODEL, "prompt": prompt, "duration": 6, "resolution": "768P"}
        path = "/v1/video_generation"
    return HttpRequest(
        method="POST",
        path=path,
        route="submit",
        headers=(("Content-Type", "application/json"),),
        body=msgspec.json.encode(body),
    )


def _loop_status(provider: ProviderKey, task_id: str) -> HttpRequest:
    if provider == "apimart":
        path = f"/v1/tasks/{task_id}"
    elif provider == "toapis":
        path = f"/v1/videos/generations/{task_id}"
    else:
        path = f"/v1/query/video_generation?task_id={task_id}"
    return HttpRequest(method="GET", path=path, route="status")


def _retry_after(provider: ProviderKey, response: HttpResponse, body: Any) -> float | None:
    """Seconds to wait if ``response`` is a rate-limit answer (HTTP 429, MiniMax ``base_resp`` 1002), else None."""
    limited = response.status == 429
    if provider == "minimax" and isinstance(body, dict):
        base = body.get("base_resp")
        limited = limited or (isinstance(base, dict) and base.get("status_code") == 1002)
    if not limited:
        return None
    try:
        return float(response.headers.get("retry-after", "1"))
    except ValueError:
        return 1.0


async def run_loops(
    provider: ProviderKey,
    sim: InProcessProvider,
    clock: FakeClock,
    texts: Sequence[str],
    interval: float,
    recorder: Recorder,
) -> None:
    """One plain loop per item: submit under a shared semaphore, then sleep ``interval``, GET status, repeat until
    the task ends. A 429 sleeps ``Retry-After`` and resends the same request; MiniMax's finished tasks need one
    ``files/retrieve`` for the URL. The same handler answers, through the same latency, as the library's."""
    slots = asyncio.Semaphore(CONCURRENCY)

    async def call(request: HttpRequest) -> Any:
        while True:
            response = await sim(request)
            body = msgspec.json.decode(response.body)
            wait = _retry_after(provider, response, body)
            if wait is None:
                return body
            await clock.sleep(wait)

    async def item(prompt: str) -> None:
        async with slots:
            answer = await call(_loop_submit(provider, prompt))
        if provider == "apimart":
            data = answer.get("data") if isinstance(answer, dict) else None
            task_id = data[0].get("task_id") if isinstance(data, list) and data else None
        else:
            task_id = answer.get("id" if provider == "toapis" else "task_id") if isinstance(answer, dict) else None
        if not task_id:
            recorder.result(None, "submit_error")
            return
        started = clock.monotonic()
        while clock.monotonic() - started < GIVE_UP:
            await clock.sleep(interval)
            body = await call(_loop_status(provider, str(task_id)))
            word = body.get("data", {}).get("status") if provider == "apimart" else body.get("status")
            if word in ("completed", "Success"):
                if provider == "minimax":
                    await call(
                        HttpRequest(
                            method="GET", path=f"/v1/files/retrieve?file_id={body['file_id']}", route="retrieve"
                        )
                    )
                recorder.result(str(task_id), "completed")
                return
            if word in ("failed", "Fail"):
                recorder.result(str(task_id), "failed")
                return
        recorder.result(str(task_id), "gave_up")

    await asyncio.gather(*(item(prompt) for prompt in texts))


# -- one run, its figures --------------------------------------------------------------------------------------------


def earliest_arrivals(count: int, limit: RateLimit | None, start: float, *, latency: float = LATENCY) -> list[float]:
    """When each of ``count`` submits could reach the provider at the earliest, in input order: at most
    :data:`CONCURRENCY` in flight, each taking ``latency``, and each accepted by the row's limiter (the
    simulator's own, played on its own clock by a client that knows when to send and sends nothing else)."""
    moment = [start]
    limiters = RateLimiters(lambda: moment[0])
    arrivals: list[float] = []
    for index in range(count):
        sent = arrivals[index - CONCURRENCY] if index >= CONCURRENCY else start
        moment[0] = max(sent + latency, arrivals[-1] if arrivals else start)
        if limit is not None:
            while (wait := limiters.take("bound", API_KEY, limit)) is not None:
                moment[0] += wait
        arrivals.append(moment[0])
    return arrivals


def lower_bound(
    generation_times: Sequence[float], limit: RateLimit | None, start: float, *, minimax: bool, latency: float = LATENCY
) -> tuple[float, float]:
    """Two references for the makespan, both with items in input order and a result in the caller's hands the moment
    its task is ready (MiniMax: one ``files/retrieve`` latency later):

    - the lower bound: every submit at its earliest possible moment (:func:`earliest_arrivals`), so a limiter's
      burst or a fresh window counts; status requests are not charged to the limit, so no contender can beat it;
    - the pace reference: item ``i`` submitted at ``i / rate`` (0 without a limit), plus one latency; a burst or a
      large window lets a contender beat this one (ratio below 1)."""
    extra = latency if minimax else 0.0
    arrivals = earliest_arrivals(len(generation_times), limit, start, latency=latency)
    bound = max(arrival - start + seconds for arrival, seconds in zip(arrivals, generation_times, strict=True))
    rate = None if limit is None else limit.rate
    pace = max((index / rate if rate else 0.0) + latency + seconds for index, seconds in enumerate(generation_times))
    return bound + extra, pace + extra


REQUIRED_PER_ITEM: dict[ProviderKey, int] = {"apimart": 2, "toapis": 2, "minimax": 3}
"""Requests every client must send per item, whatever its polling: the submit and a status check that finds the
task done; on MiniMax also the ``files/retrieve`` that turns its file id into the video's URL."""


def request_floor(count: int, limit: RateLimit | None, start: float, *, latency: float = LATENCY) -> float | None:
    """The least time in which ``count`` requests can all be answered under ``limit`` (``None`` without one): each
    sent the moment the row's limiter (the simulator's own, on its own clock) would accept it, plus one latency. No
    client can get its last result sooner, whatever it polls and whatever the generation times; where it exceeds
    the lower bound, the makespan goal cannot be met (MiniMax's ``files/retrieve`` is one such request per item)."""
    if limit is None:
        return None
    moment = [start]
    limiters = RateLimiters(lambda: moment[0])
    for _ in range(count):
        while (wait := limiters.take("floor", API_KEY, limit)) is not None:
            moment[0] += wait
    return moment[0] - start + latency


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Run:
    """One (row, provider, contender) run: a fresh clock, simulator and recorder."""

    row: Row
    provider: ProviderKey
    contender: Contender
    items: int
    seed: int
    settle: int
    submit_budget: bool
    latency: float = LATENCY
    clock: FakeClock = field(init=False)
    sim: InProcessProvider = field(init=False)
    recorder: Recorder = field(init=False)
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.clock = FakeClock(settle=self.settle)
        self.sim = InProcessProvider(self.provider, self.row.config(self.seed), self.clock, self.latency)
        self.recorder = Recorder(self.clock)
        self.start = self.clock.monotonic()

    async def play(self) -> None:
        # The library jitters its checks with the random module: seeded per run, so every run is repeatable.
        random.seed(f"{self.seed}|{self.row.key}|{self.provider}|{self.contender.name}")
        texts = prompts(self.items, self.seed)
        clock, sim, recorder = self.clock, self.sim, self.recorder
        if self.contender.kind == "library":
            await run_library(
                self.provider, sim, clock, texts, self.contender.value, recorder, submit_budget=self.submit_budget
            )
        elif self.contender.kind == "webhook":
            await run_library(
                self.provider,
                sim,
                clock,
                texts,
                TABLE_LAG,
                recorder,
                submit_budget=self.submit_budget,
                webhook=webhook_setting(self.contender, sim.state.config),
            )
        else:
            await run_loops(self.provider, sim, clock, texts, self.contender.value, recorder)


class RunTimeout(Exception):
    """A run took longer than its real-time limit (the watchdog's alarm interrupts even a loop that never awaits)."""


def play(run: Run, *, timeout: float | None) -> dict[str, Any]:
    """Play ``run`` in its own event loop and return its figures. ``timeout``: real seconds after which the run is
    stopped by ``SIGALRM`` and reported as timed out, with what it had done by then (skipped where the platform has
    no interval timers, off the main thread, or while another alarm is armed, e.g. pytest-timeout's)."""
    wall = time.perf_counter()
    fired: list[bool] = []
    armed = (
        timeout is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
    previous: Any = None
    if armed:

        def alarm(signum: int, frame: object) -> None:
            fired.append(True)
            raise RunTimeout(f"no result after {timeout:g} s of real time")

        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout or 0.0)
    try:
        asyncio.run(run.play())
    except Exception:
        if not fired:
            raise
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, previous)
    result = figures(run, time.perf_counter() - wall)
    if fired:
        result["timed_out"] = f"stopped after {timeout:g} s of real time at virtual {result['virtual_s']:.1f} s"
    return result


def figures(run: Run, wall: float) -> dict[str, Any]:
    row, provider, contender, items = run.row, run.provider, run.contender, run.items
    sim, recorder, start = run.sim, run.recorder, run.start
    tasks = sim.tasks()
    by_prompt = {task.prompt: task for task in tasks}
    ready = {task.task_id: task.created + task.gen_time for task in tasks}
    lags = [
        recorder.arrivals[task.task_id] - ready[task.task_id] for task in tasks if task.task_id in recorder.arrivals
    ]
    completed_lags = [
        recorder.arrivals[task.task_id] - ready[task.task_id]
        for task in tasks
        if task.task_id in recorder.arrivals and task.outcome == "success"
    ]
    texts = prompts(items, sim.state.config.seed)
    # Every contender creates the same tasks (the draws depend on the seed and the prompt only).
    generation_times = [by_prompt[text].gen_time if text in by_prompt else 0.0 for text in texts]
    bound = pace = None
    if tasks:
        bound, pace = lower_bound(
            generation_times, row.rate_limit, start, minimax=provider == "minimax", latency=run.latency
        )
    floor = request_floor(REQUIRED_PER_ITEM[provider] * items, row.rate_limit, start, latency=run.latency)
    last_result = max(recorder.arrivals.values(), default=None)
    makespan = None if last_result is None else last_result - start
    created = sorted(task.created for task in tasks)
    requests = sum(sim.requests.values())
    limited = sum(sim.limited.values())
    accepted_rps = None
    if row.rate_limit is not None and len(created) >= 2 and created[-1] > created[0]:
        window = [moment for moment in sim.accepted_at if created[0] <= moment <= created[-1]]
        accepted_rps = len(window) / (created[-1] - created[0])
    outcomes = dict(recorder.outcomes)
    hooks = sim.webhooks
    dropped_lags = [
        recorder.arrivals[task.task_id] - ready[task.task_id]
        for task in tasks
        if task.task_id in sim.dropped_ends and task.task_id in recorder.arrivals
    ]
    delivered_lags = [
        recorder.arrivals[task.task_id] - ready[task.task_id]
        for task in tasks
        if task.task_id not in sim.dropped_ends and task.task_id in recorder.arrivals
    ]
    # A result in hand before its task's end delivery was accepted: the safety-net polling got there first.
    polled_first = sum(
        1 for task_id, moment in sim.delivered_at.items() if recorder.arrivals.get(task_id, moment) < moment
    )
    webhook_figures: dict[str, Any] = {
        "webhooks_sent": hooks["sent"],
        "webhooks_dropped": hooks["dropped"],
        "webhooks_duplicated": hooks["duplicated"],
        "webhooks_refused": hooks["refused"],
        "webhook_ends_unaccepted": hooks["unaccepted_ends"],
        "webhook_challenges": hooks["challenges"],
        "webhook_challenges_failed": hooks["challenges_failed"],
        "end_deliveries_dropped": len(sim.dropped_ends),
        "results_before_delivery": polled_first,
        "lag_delivered_p95_s": _round(percentile(delivered_lags, 95)),
        "lag_dropped_p50_s": _round(percentile(dropped_lags, 50)),
        "lag_dropped_p95_s": _round(percentile(dropped_lags, 95)),
        "lag_dropped_max_s": _round(max(dropped_lags, default=None)),
    }
    return {
        "row": row.key,
        "provider": provider,
        "contender": contender.name,
        "kind": contender.kind,
        "value": contender.value,
        "items": items,
        "completed": outcomes.get("completed", 0),
        "failed": outcomes.get("failed", 0),
        "other_errors": {kind: n for kind, n in outcomes.items() if kind not in ("completed", "failed")},
        "tasks_created": len(tasks),
        "status_requests": sim.requests["status"],
        "status_requests_per_item": sim.requests["status"] / items,
        "status_per_item_by_age": [sim.status_ages[index] / items for index in range(AGE_BINS)],
        "requests": requests,
        "requests_by_route": dict(sim.requests),
        "rate_limited": limited,
        "rate_limited_by_route": dict(sim.limited),
        "rate_limited_share": limited / requests if requests else 0.0,
        "lag_p50_s": _round(percentile(completed_lags, 50)),
        "lag_p95_s": _round(percentile(completed_lags, 95)),
        "lag_p99_s": _round(percentile(completed_lags, 99)),
        "lag_max_s": _round(max(lags, default=None)),
        "lag_min_s": _round(min(lags, default=None)),
        "makespan_s": _round(makespan),
        "lower_bound_s": _round(bound),
        "makespan_ratio": _round(makespan / bound if makespan is not None and bound else None),
        "pace_reference_s": _round(pace),
        "request_floor_s": _round(floor),
        "makespan_pace_ratio": _round(makespan / pace if makespan is not None and pace else None),
        "last_submit_s": _round(created[-1] - start if created else None),
        "accepted_rps_while_submitting": _round(accepted_rps),
        "limit_rps": row.limit_rate,
        "webhook": webhook_figures if contender.kind == "webhook" else None,
        "virtual_s": round(run.clock.monotonic() - start, 3),
        "wall_s": round(wall, 3),
        "timed_out": None,
    }


# -- goals -----------------------------------------------------------------------------------------------------------


def goals(runs: list[dict[str, Any]], rows: Sequence[Row], providers: Sequence[ProviderKey]) -> list[dict[str, Any]]:
    """The goals for the library at ``max_lag`` 2, per row and provider; nothing is rounded in favour of a PASS.

    MiniMax reports no progress at all, so its rows are held to the goal of the ``none`` row (0.8x the 2 s loop's
    status requests) whatever shape the simulator plays, and the absolute goal (at most 2 per item "where progress
    or estimates are close to linear") does not apply to it: it reports neither. The webhook rows check the library
    with a webhook instead (:func:`webhook_goals`)."""
    checks: list[dict[str, Any]] = []
    by = {(run["row"], run["provider"], run["contender"]): run for run in runs}
    library = Contender("library", TABLE_LAG).name
    loop2 = Contender("loop", 2.0).name

    for row in rows:
        if row.kind == "webhook":
            checks.extend(webhook_goals(by, row, providers))
            continue
        for provider in providers:
            lib, base = by.get((row.key, provider, library)), by.get((row.key, provider, loop2))
            if lib is None:
                continue

            def add(goal: str, passed: bool, detail: str, row: Row = row, provider: ProviderKey = provider) -> None:
                checks.append({"row": row.key, "provider": provider, "goal": goal, "passed": passed, "detail": detail})

            add("every item finished", _finished(lib), _outcome(lib))
            p95 = lib["lag_p95_s"]
            add("p95 lag <= 2.0 s", p95 is not None and p95 <= 2.0, f"{_f(p95, 2)} s")
            if base is not None:
                add(
                    "p95 lag <= the 2 s loop's",
                    p95 is not None and base["lag_p95_s"] is not None and p95 <= base["lag_p95_s"],
                    f"{_f(p95, 2)} s vs {_f(base['lag_p95_s'], 2)} s",
                )
            per_item = lib["status_requests_per_item"]
            if row.kind == "shape" and base is not None and row.key != "lognormal":
                share = 0.5 if row.moving and provider != "minimax" else 0.8
                ratio = per_item / base["status_requests_per_item"]
                add(
                    f"status req/item <= {share:g}x the 2 s loop's",
                    ratio <= share,
                    f"{per_item:.2f} vs {base['status_requests_per_item']:.2f} (x{ratio:.2f})",
                )
            if row.absolute and provider != "minimax":  # MiniMax reports neither progress nor an estimate
                add("status req/item <= 2.0", per_item <= 2.0, f"{per_item:.2f}")
            if row.kind == "limit":
                add("429 share <= 1 %", lib["rate_limited_share"] <= 0.01, f"{lib['rate_limited_share']:.2%}")
                rps, limit = lib["accepted_rps_while_submitting"], lib["limit_rps"]
                add(
                    "accepted rate >= 90 % of the limit while submits wait",
                    rps is not None and rps >= 0.9 * limit,
                    f"{_f(rps, 1)} req/s of {limit:g}",
                )
                ratio = lib["makespan_ratio"]
                add(
                    "makespan <= 1.3x the lower bound",
                    ratio is not None and ratio <= 1.3,
                    f"{_f(lib['makespan_s'])} s: x{_f(ratio, 2)} the lower bound, "
                    f"x{_f(lib['makespan_pace_ratio'], 2)} the pace reference{_floor_note(lib)}",
                )
    return checks


def _floor_note(run: Mapping[str, Any]) -> str:
    """Where the requests every client must send take longer than 1.3x the lower bound allows: say so (the goal
    is then out of any client's reach)."""
    floor, bound = run.get("request_floor_s"), run.get("lower_bound_s")
    if floor is None or not bound or floor <= 1.3 * bound:
        return ""
    return (
        f"; out of reach: the {REQUIRED_PER_ITEM[run['provider']]} requests per item every client must send take "
        f"{floor:.1f} s at the limit (x{floor / bound:.2f} the lower bound)"
    )


WEBHOOK_STATUS_GOALS: dict[ProviderKey, float] = {"apimart": 0.2, "toapis": 1.2, "minimax": 1.2}
"""Status requests per item the webhook contender may send with every delivery arriving: apimart's delivery is
the whole answer; toapis' says only that the task ended, and MiniMax's needs ``files/retrieve`` after its status,
so one status check per item follows."""
WEBHOOK_P95_GOAL = 0.2
"""p95 lag (s) of the webhook contender with every delivery arriving."""


def webhook_goals(
    by: Mapping[tuple[str, str, str], dict[str, Any]], row: Row, providers: Sequence[ProviderKey]
) -> list[dict[str, Any]]:
    """The goals of a webhook row for the library with a webhook: every item finished and every delivery sent
    answered 2xx; with nothing dropped, status requests per item within :data:`WEBHOOK_STATUS_GOALS` and p95 lag
    within :data:`WEBHOOK_P95_GOAL`; with deliveries dropped, the items whose end delivery was dropped found by the
    safety net: their p95 lag within ``fallback_lag``."""
    checks: list[dict[str, Any]] = []
    name = WEBHOOK_CONTENDERS[0].name
    fallback = WEBHOOK_CONTENDERS[0].value
    for provider in providers:
        run = by.get((row.key, provider, name))
        if run is None:
            continue

        def add(goal: str, passed: bool, detail: str, provider: ProviderKey = provider) -> None:
            checks.append({"row": row.key, "provider": provider, "goal": goal, "passed": passed, "detail": detail})

        hooks = run["webhook"]
        add("every item finished", _finished(run), _outcome(run))
        refused = hooks["webhooks_refused"] + hooks["webhook_challenges_failed"]
        add(
            "every delivery and challenge answered 2xx",
            refused == 0,
            f"{hooks['webhooks_refused']} of {hooks['webhooks_sent']} deliveries and "
            f"{hooks['webhook_challenges_failed']} of {hooks['webhook_challenges']} challenges refused",
        )
        if row.webhooks.drop == 0:
            per_item, bound = run["status_requests_per_item"], WEBHOOK_STATUS_GOALS[provider]
            add(f"status req/item <= {bound:g}", per_item <= bound, f"{per_item:.2f}")
            p95 = run["lag_p95_s"]
            add(
                f"p95 lag <= {WEBHOOK_P95_GOAL:g} s",
                p95 is not None and p95 <= WEBHOOK_P95_GOAL,
                f"{_f(p95, 2)} s",
            )
        else:
            p95 = hooks["lag_dropped_p95_s"]
            add(
                f"p95 lag of the items whose delivery was dropped <= fallback_lag ({fallback:g} s)",
                p95 is not None and p95 <= fallback,
                f"{_f(p95, 2)} s over {hooks['end_deliveries_dropped']} items "
                f"(max {_f(hooks['lag_dropped_max_s'], 2)} s)",
            )
    return checks


# -- the report ------------------------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _finished(run: dict[str, Any]) -> bool:
    return run["completed"] + run["failed"] == run["items"] and not run["other_errors"] and not run["timed_out"]


def _outcome(run: dict[str, Any]) -> str:
    others = sum(run["other_errors"].values())
    text = f"{run['completed']} / {run['failed']}"
    if others:
        text += f" (+{others} errors: {run['other_errors']})"
    if run["timed_out"]:
        text += f" ({run['timed_out']})"
    return text


def table(runs: list[dict[str, Any]], *, names: Sequence[str] | None = None) -> list[str]:
    lines = [
        "| row | provider | contender | done / failed | status req/item | lag p50 / p95 / p99 s | "
        "makespan s (x lower bound) | 429s | accepted req/s while submitting | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if names is not None and run["contender"] not in names:
            continue
        if _row(run["row"]).kind == "webhook":
            continue  # in webhook_table
        rps = "-" if run["limit_rps"] is None else f"{_f(run['accepted_rps_while_submitting'])} / {run['limit_rps']:g}"
        lines.append(
            f"| {run['row']} | {run['provider']} | {run['contender']} | {_outcome(run)} | "
            f"{run['status_requests_per_item']:.2f} | {_f(run['lag_p50_s'], 2)} / {_f(run['lag_p95_s'], 2)} / "
            f"{_f(run['lag_p99_s'], 2)} | {_f(run['makespan_s'])} (x{_f(run['makespan_ratio'], 2)}) | "
            f"{run['rate_limited']} ({run['rate_limited_share']:.1%}) | {rps} | {run['wall_s']:.2f} |"
        )
    return lines


def webhook_table(runs: list[dict[str, Any]]) -> list[str]:
    """The webhook rows: the library with a webhook beside the library at max_lag 2 and the 2 s loop."""
    lines = [
        "| row | provider | contender | done / failed | status req/item | other req/item | lag p50 / p95 / p99 s | "
        "deliveries sent / dropped (refused) | dropped-delivery items: lag p50 / p95 / max s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if _row(run["row"]).kind != "webhook":
            continue
        others = sum(n for route, n in run["requests_by_route"].items() if route not in ("submit", "status"))
        others /= run["items"]
        hooks = run["webhook"]
        sent = dropped = "-"
        if hooks is not None:
            sent = f"{hooks['webhooks_sent']} / {hooks['webhooks_dropped']} ({hooks['webhooks_refused']})"
            if hooks["end_deliveries_dropped"]:
                dropped = (
                    f"{_f(hooks['lag_dropped_p50_s'], 2)} / {_f(hooks['lag_dropped_p95_s'], 2)} / "
                    f"{_f(hooks['lag_dropped_max_s'], 2)} ({hooks['end_deliveries_dropped']} items)"
                )
        lines.append(
            f"| {run['row']} | {run['provider']} | {run['contender']} | {_outcome(run)} | "
            f"{run['status_requests_per_item']:.2f} | {others:.2f} | {_f(run['lag_p50_s'], 2)} / "
            f"{_f(run['lag_p95_s'], 2)} / {_f(run['lag_p99_s'], 2)} | {sent} | {dropped} | {run['wall_s']:.2f} |"
        )
    return lines


def tradeoff_table(runs: list[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """Status requests per item / p95 lag of every contender, one line per progress row and provider."""
    by = {(run["row"], run["provider"], run["contender"]): run for run in runs}
    keys = sorted({(run["row"], run["provider"]) for run in runs if _row(run["row"]).kind == "shape"}, key=_order)
    lines = [
        "| row | provider | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for row_key, provider in keys:
        cells = []
        for name in names:
            run = by.get((row_key, provider, name))
            cells.append("-" if run is None else f"{run['status_requests_per_item']:.2f} / {_f(run['lag_p95_s'], 2)}")
        lines.append(f"| {row_key} | {provider} | " + " | ".join(cells) + " |")
    return lines


def ages_table(runs: list[dict[str, Any]]) -> list[str]:
    """Status requests per item by task age on the progress rows: the library at max_lag 2 beside the 2 s loop."""
    library, loop = Contender("library", TABLE_LAG).name, Contender("loop", 2.0).name
    by = {(run["row"], run["provider"], run["contender"]): run for run in runs}
    bins = [f"{AGE_BIN * index:g}-{AGE_BIN * (index + 1):g}" for index in range(AGE_BINS - 1)]
    lines = [
        "| row | provider | " + " | ".join(bins) + f" | {AGE_BIN * (AGE_BINS - 1):g}+ s | all |",
        "|---|---|" + "---|" * (AGE_BINS + 1),
    ]
    for row_key, provider in sorted({(run["row"], run["provider"]) for run in runs}, key=_order):
        if _row(row_key).kind != "shape":
            continue
        lib, base = by.get((row_key, provider, library)), by.get((row_key, provider, loop))
        if lib is None or base is None:
            continue
        cells = [
            f"{mine:.2f} / {theirs:.2f}"
            for mine, theirs in zip(lib["status_per_item_by_age"], base["status_per_item_by_age"], strict=True)
        ]
        total = f"{lib['status_requests_per_item']:.2f} / {base['status_requests_per_item']:.2f}"
        lines.append(f"| {row_key} | {provider} | " + " | ".join(cells) + f" | {total} |")
    return lines


def _row(key: str) -> Row:
    return next(row for row in ROWS if row.key == key)


def _order(key: tuple[str, str]) -> tuple[int, int]:
    names: tuple[str, ...] = PROVIDERS
    return ROW_KEYS.index(key[0]), names.index(key[1])


def render(report: dict[str, Any]) -> str:
    info = report["machine"]
    names = report["contenders"]
    shown = [Contender("library", TABLE_LAG).name, *(Contender("loop", i).name for i in TABLE_INTERVALS)]
    passed = sum(goal["passed"] for goal in report["goals"])
    unfinished = [run for run in report["runs"] if not _finished(run)]
    source = report["source"]
    budget_note = "the library default (20/min)" if report["submit_budget"] else "off (submits_per_minute=None)"
    hooked = [run for run in report["runs"] if _row(run["row"]).kind == "webhook"]
    results_section = [
        "## Results (library at max_lag 2, loops at 2 s and 10 s; every contender in poller.json)",
        "",
        *table(report["runs"], names=shown),
        "",
    ]
    tradeoff_section = [
        "## Trade-off: status req/item / p95 lag s, every contender",
        "",
        *tradeoff_table(report["runs"], [name for name in names if name != WEBHOOK_CONTENDERS[0].name]),
        "",
    ]
    ages_section = [
        f"## Where the checks go: status requests per item by task age ({AGE_BIN:g} s bins; library at max_lag "
        f"{TABLE_LAG:g} / loop 2 s)",
        "",
        "On a batch submitted at once, nothing is known until its first tasks end; after that, the library checks a "
        "task whose progress moves to read it, again to draw its line, and once it ends: the bins show where the "
        "checks it saves come from.",
        "",
        *ages_table(report["runs"]),
        "",
    ]
    webhook_section = [
        f"## Webhooks (library with `Webhook(fallback_lag={FALLBACK_LAG:g})` beside the library at max_lag "
        f"{TABLE_LAG:g} and the 2 s loop)",
        "",
        f"Each delivery is handed to `client.handle_webhook` {WEBHOOK_DELAY[0]:g}-{WEBHOOK_DELAY[1]:g} s after "
        "its task's end (MiniMax: also one when it starts running; its challenge first); a dropped share is never "
        "sent. Other req/item: requests besides submit and status (MiniMax's files/retrieve).",
        "",
        *webhook_table(report["runs"]),
        "",
    ]
    lines = [
        "# The shared poller against plain polling loops (virtual time)",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}; the whole run took {report['wall_s']:.0f} s of real time",
        f"- code: {report['code_note'] or 'commit ' + source['commit']}"
        + (
            f" plus uncommitted changes to {', '.join(source['uncommitted_library_files'])}"
            if source["uncommitted_library_files"]
            else ""
        )
        + f" (library sources sha256 {source['library_sha256']})",
        f"- machine: {info['cpu_model']}, {info['cores']} cores, {info['implementation']} {info['python']}; "
        f"hailuo_async {info['hailuo_async']}",
        f"- MiniMax submit budget: {budget_note}",
        f"- items per row: {report['items_note']}; seed {report['seed']}; "
        f"latency {report['latency_s']:g} s per request; {CONCURRENCY} submits in flight for every contender; "
        f"FakeClock settle {report['settle']}",
        "",
        "Rows: " + "; ".join(f"`{row['key']}` {row['title']}" for row in report["rows"]) + ".",
        "",
        *(results_section if len(hooked) < len(report["runs"]) else []),
        *(webhook_section if hooked else []),
        *(tradeoff_section if any(row["kind"] == "shape" for row in report["rows"]) else []),
        *(ages_section if any(row["kind"] == "shape" for row in report["rows"]) else []),
        "Runs that did not finish every item: "
        + (
            ", ".join(f"{run['row']} / {run['provider']} / {run['contender']} ({_outcome(run)})" for run in unfinished)
            or "none"
        )
        + ".",
        "",
        f"## Goals (library at max_lag {TABLE_LAG:g}"
        + ("; on the webhook rows, the library with a webhook" if hooked else "")
        + f"): {passed} of {len(report['goals'])} pass",
        "",
        *(
            f"- {'PASS' if goal['passed'] else 'FAIL'}: {goal['row']} / {goal['provider']}: {goal['goal']} "
            f"({goal['detail']})"
            for goal in report["goals"]
        ),
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, Any], output_dir: Path) -> list[Path]:
    """One PNG per progress row: status requests per item against p95 lag; the library's ``max_lag`` values as a
    curve per provider, the loops as points. matplotlib is imported here only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    colours = {"apimart": "tab:blue", "toapis": "tab:orange", "minimax": "tab:green"}
    written: list[Path] = []
    runs = report["runs"]
    for row_key in [row["key"] for row in report["rows"] if row["kind"] == "shape"]:
        figure, axes = plt.subplots(figsize=(7.5, 5.0))
        for provider in report["providers"]:
            mine = [run for run in runs if run["row"] == row_key and run["provider"] == provider]
            library = sorted((run for run in mine if run["kind"] == "library"), key=lambda run: run["value"])
            loops = [run for run in mine if run["kind"] == "loop"]
            xs = [run["status_requests_per_item"] for run in library if run["lag_p95_s"] is not None]
            ys = [run["lag_p95_s"] for run in library if run["lag_p95_s"] is not None]
            axes.plot(xs, ys, "-o", color=colours[provider], label=f"library, {provider}")
            for run in library:
                if run["lag_p95_s"] is not None:
                    axes.annotate(
                        f"{run['value']:g}",
                        (run["status_requests_per_item"], run["lag_p95_s"]),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                        color=colours[provider],
                    )
            axes.scatter(
                [run["status_requests_per_item"] for run in loops],
                [run["lag_p95_s"] for run in loops],
                marker="x",
                color=colours[provider],
                label=f"loops, {provider}",
            )
            labelled = loops if provider == report["providers"][0] else []  # the loops barely differ by provider
            for run in labelled:
                axes.annotate(
                    f"loop {run['value']:g} s",
                    (run["status_requests_per_item"], run["lag_p95_s"]),
                    textcoords="offset points",
                    xytext=(4, -12),
                    fontsize=7,
                    color="dimgray",
                )
        axes.set_xscale("log")
        for axis_formatter in (axes.xaxis.set_major_formatter, axes.xaxis.set_minor_formatter):
            axis_formatter(ScalarFormatter())
        axes.set_xlabel("status requests per item (log)")
        axes.set_ylabel("p95 detection lag, s")
        library_note = "library max_lag 0.5-10 (curves)"
        axes.set_title(f"{_row(row_key).title}: {library_note} vs plain loops (x)", fontsize=9)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = output_dir / f"poller_tradeoff_{row_key}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


# -- driving ---------------------------------------------------------------------------------------------------------


def run_matrix(
    rows: Sequence[Row],
    providers: Sequence[ProviderKey],
    racers: Sequence[Contender],
    *,
    items: int | None,
    quick: bool,
    seed: int,
    settle: int,
    submit_budget: bool,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
    latency: float = LATENCY,
) -> list[dict[str, Any]]:
    """Every (row, provider, contender) run, in order; ``timeout``: real seconds each run may take."""
    runs: list[dict[str, Any]] = []
    for row in rows:
        for provider in providers:
            for racer in row_contenders(row, racers):
                run = play(
                    Run(row, provider, racer, row.items(items, quick), seed, settle, submit_budget, latency),
                    timeout=timeout,
                )
                runs.append(run)
                if progress is not None:
                    progress(
                        f"{row.key:14s} {provider:8s} {racer.name:28s} "
                        f"{run['status_requests_per_item']:6.2f} req/item  "
                        f"p95 {_f(run['lag_p95_s'], 2):>6s} s  makespan x{_f(run['makespan_ratio'], 2):>5s}  "
                        f"429s {run['rate_limited']:5d}  ({run['wall_s']:.2f} s)"
                        + (f"  TIMED OUT: {run['timed_out']}" if run["timed_out"] else "")
                    )
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=None, help="items per row (default 300, limiter rows 400)")
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    parser.add_argument("--rows", nargs="+", choices=ROW_KEYS, default=list(ROW_KEYS))
    parser.add_argument(
        "--quick", action="store_true", help="only the table's contenders, and 100 items unless --items says"
    )
    parser.add_argument("--plot", action="store_true", help="write poller_tradeoff_<row>.png (needs matplotlib)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS, help=f"where results go (default {RESULTS})")
    parser.add_argument("--stem", default="poller", help="file names of the report (default poller)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--settle", type=int, default=SETTLE, help=f"FakeClock settle turns (default {SETTLE}; see SETTLE)"
    )
    parser.add_argument(
        "--minimax-submit-budget",
        action="store_true",
        help="keep the library's MiniMax submit budget (20/min); by default it is off, as the loops have none",
    )
    parser.add_argument("--verbose", action="store_true", help="print a line per run")
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=30.0,
        help="real seconds one run may take before it is stopped and reported as timed out (default 30; 0: none)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=LATENCY,
        help=f"virtual seconds every request takes to be answered (default {LATENCY:g}; real providers: 0.2-1)",
    )
    parser.add_argument("--code-note", default="", help="what code is measured, in place of the commit (snapshots)")
    args = parser.parse_args(argv)
    if args.items is not None and args.items < 1:
        parser.error("--items must be >= 1")
    if not 0.0 <= args.latency <= 5.0:
        parser.error("--latency must be between 0 and 5 seconds")

    rows = [row for row in ROWS if row.key in args.rows]
    providers: list[ProviderKey] = [p for p in PROVIDERS if p in args.providers]
    racers = contenders(args.quick)
    command = "python -m benchmarks.bench_poller" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    wall = time.perf_counter()
    runs = run_matrix(
        rows,
        providers,
        racers,
        items=args.items,
        quick=args.quick,
        seed=args.seed,
        settle=args.settle,
        submit_budget=args.minimax_submit_budget,
        timeout=args.run_timeout or None,
        progress=(lambda line: print(line, flush=True)) if args.verbose else None,
        latency=args.latency,
    )
    if args.items is not None:
        items_note = f"{args.items}"
    elif args.quick:
        items_note = f"{QUICK_ITEMS}"
    else:
        items_note = f"{DEFAULT_ITEMS} ({LIMITED_ITEMS} on the limiter rows)"
    report: dict[str, Any] = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "wall_s": time.perf_counter() - wall,
        "machine": machine(),
        "source": {**source_state(), "library_sha256": library_digest()},
        "code_note": args.code_note,
        "seed": args.seed,
        "settle": args.settle,
        "latency_s": args.latency,
        "concurrency": CONCURRENCY,
        "submit_budget": args.minimax_submit_budget,
        "items_note": items_note,
        "providers": providers,
        "rows": [
            {
                "key": row.key,
                "title": row.title,
                "kind": row.kind,
                "items": row.items(args.items, args.quick),
                "simulator": msgspec.to_builtins(row.config(args.seed)),
            }
            for row in rows
        ],
        "contenders": list(dict.fromkeys(racer.name for row in rows for racer in row_contenders(row, racers))),
        "runs": runs,
        "goals": goals(runs, rows, providers),
    }
    text = render(report)
    print(text)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"{args.stem}.md").write_text(text)
    (args.output_dir / f"{args.stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output_dir / (args.stem + '.md')} and {args.stem}.json")
    if args.plot:
        try:
            written = plot(report, args.output_dir)
        except ImportError as exc:
            print(f"--plot needs matplotlib (pip install -e '.[bench]'): {exc}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
        full = set(args.rows) == set(ROW_KEYS) and args.latency == LATENCY
        if args.output_dir.resolve() == RESULTS.resolve() and args.stem == "poller" and full:
            publish(report)
            print("wrote the poller section of README.md")
    return 0


README_MARKERS = ("<!-- poller:start -->", "<!-- poller:end -->")
README_PLOTS = ("linear", "none", "late_queue")


def publish(report: dict[str, Any]) -> None:
    """Put a full plotted run's summary into the top-level README, between the poller markers."""
    from benchmarks.run import poller_summary

    readme = Path(__file__).resolve().parents[1] / "README.md"
    old = readme.read_text()
    start, end = old.find(README_MARKERS[0]), old.find(README_MARKERS[1])
    if start < 0 or end < start:
        return
    lines = [
        f"Command `{report['command']}`, {report['date']}; {report['items_note']} items per row, "
        f"{report['latency_s']:g} s per request (full tables and every goal check: `benchmarks/results/poller.md`).",
        "",
        *poller_summary(report),
        "",
        *(
            f"![status requests per item against p95 lag, {key}](benchmarks/results/poller_tradeoff_{key}.png)"
            for key in README_PLOTS
        ),
    ]
    readme.write_text(old[: start + len(README_MARKERS[0])] + "\n" + "\n".join(lines) + "\n" + old[end:])


if __name__ == "__main__":
    sys.exit(main())
