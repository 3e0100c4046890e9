"""Simulator state: the task store and tasks, prompt markers, the rate limiters' home and counters.

Nothing here does I/O. Time comes from an injectable monotonic clock; :class:`Timebase` turns it into the unix
timestamps the providers put in their bodies. How a task's life unfolds (durations, queueing, progress shapes) is
in :mod:`._lifecycle`; the rate limiters are in :mod:`._limits`.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from ._config import Progress, SimulatorConfig
from ._lifecycle import draw_generation_time, draw_queue_fraction, running_progress
from ._limits import RateLimiters

__all__ = [
    "Counters",
    "LiveTask",
    "Markers",
    "Outcome",
    "ProviderName",
    "SimState",
    "SimTask",
    "SimulatorStats",
    "TaskPhase",
    "TaskStore",
    "Timebase",
    "parse_markers",
]

ProviderName = Literal["apimart", "toapis", "minimax"]
TaskPhase = Literal["queued", "running", "completed", "failed"]
Outcome = Literal["success", "fail", "hang"]

_MARKER = re.compile(r"\{\{sim:([a-z_]+)(?:=([^}]*))?\}\}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class Markers(msgspec.Struct, frozen=True):
    """What the ``{{sim:...}}`` markers in a prompt ask for."""

    fail: bool = False
    hang: bool = False
    reject: bool = False
    time: float | None = None


def parse_markers(prompt: str) -> Markers:
    """Read ``{{sim:fail}}``, ``{{sim:hang}}``, ``{{sim:reject}}`` and ``{{sim:time=S}}``; others are ignored."""
    if "{{sim:" not in prompt:
        return _NO_MARKERS
    fail = hang = reject = False
    seconds: float | None = None
    for name, value in _MARKER.findall(prompt):
        if name == "fail":
            fail = True
        elif name == "hang":
            hang = True
        elif name == "reject":
            reject = True
        elif name == "time":
            try:
                parsed = float(value)
            except ValueError:
                continue
            if math.isfinite(parsed) and parsed >= 0:
                seconds = parsed
    return Markers(fail=fail, hang=hang, reject=reject, time=seconds)


_NO_MARKERS = Markers()


class SimTask(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one simulated task. Times are unix timestamps (floats)."""

    provider: str
    task_id: str
    model: str
    prompt: str
    request: dict[str, Any]
    api_key: str
    idempotency_key: str | None
    client_business_id: str | None  # toapis only
    created_at: float
    ready_at: float | None  # None for a task that hangs
    generation_time: float
    queue_time: float  # seconds of generation_time spent queued
    outcome: Outcome
    state: TaskPhase
    file_id: int | None = None  # MiniMax only


class SimulatorStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the simulator's counters (JSON-encodable; ``GET /_sim/stats`` answers the same)."""

    submits_by_prompt: dict[str, int]
    tasks_created: int
    tasks_created_by_prompt: dict[str, int]
    idempotent_replays: int
    client_id_lookups: int
    requests_by_route: dict[str, int]
    responses_by_status: dict[int, int]
    rate_limited: int
    max_concurrent_requests: int
    cdn_requests: int
    cdn_requests_with_credentials: int
    dropped_connections: int
    webhooks_sent: int
    webhooks_delivered: int
    webhooks_failed: int
    webhooks_dropped: int
    webhooks_retried: int
    webhooks_duplicated: int
    webhook_challenges: int
    webhook_challenges_failed: int


class Counters:
    """Mutable counters behind :class:`SimulatorStats`."""

    def __init__(self) -> None:
        self.submits_by_prompt: defaultdict[str, int] = defaultdict(int)
        self.tasks_created = 0
        self.tasks_created_by_prompt: defaultdict[str, int] = defaultdict(int)
        self.idempotent_replays = 0
        self.client_id_lookups = 0  # toapis status requests answered by a client_business_id
        self.requests_by_route: defaultdict[str, int] = defaultdict(int)
        self.responses_by_status: defaultdict[int, int] = defaultdict(int)
        self.rate_limited = 0
        self.max_concurrent_requests = 0
        self.cdn_requests = 0
        self.cdn_requests_with_credentials = 0
        self.dropped_connections = 0
        # Webhooks (:mod:`._webhooks`): POSTs made (every attempt), deliveries a receiver took (2xx), deliveries given
        # up (4xx, or retries exhausted), deliveries the ``drop`` share never sent, retry attempts, duplicate copies,
        # MiniMax challenges sent and those not echoed in time.
        self.webhooks_sent = 0
        self.webhooks_delivered = 0
        self.webhooks_failed = 0
        self.webhooks_dropped = 0
        self.webhooks_retried = 0
        self.webhooks_duplicated = 0
        self.webhook_challenges = 0
        self.webhook_challenges_failed = 0

    def snapshot(self) -> SimulatorStats:
        return SimulatorStats(
            submits_by_prompt=dict(self.submits_by_prompt),
            tasks_created=self.tasks_created,
            tasks_created_by_prompt=dict(self.tasks_created_by_prompt),
            idempotent_replays=self.idempotent_replays,
            client_id_lookups=self.client_id_lookups,
            requests_by_route=dict(self.requests_by_route),
            responses_by_status=dict(self.responses_by_status),
            rate_limited=self.rate_limited,
            max_concurrent_requests=self.max_concurrent_requests,
            cdn_requests=self.cdn_requests,
            cdn_requests_with_credentials=self.cdn_requests_with_credentials,
            dropped_connections=self.dropped_connections,
            webhooks_sent=self.webhooks_sent,
            webhooks_delivered=self.webhooks_delivered,
            webhooks_failed=self.webhooks_failed,
            webhooks_dropped=self.webhooks_dropped,
            webhooks_retried=self.webhooks_retried,
            webhooks_duplicated=self.webhooks_duplicated,
            webhook_challenges=self.webhook_challenges,
            webhook_challenges_failed=self.webhook_challenges_failed,
        )


class Timebase:
    """A monotonic clock plus the offset that maps it to unix time."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self.offset = time.time() - self.clock()

    def now(self) -> float:
        return self.clock()

    def wall(self, mono: float) -> float:
        return mono + self.offset


class LiveTask:
    """One simulated task; the lifecycle is a pure function of the clock."""

    __slots__ = (
        "alt",
        "api_key",
        "client_business_id",
        "created",
        "created_wall",
        "estimated_time",
        "file_id",
        "gen_time",
        "idempotency_key",
        "model",
        "nth",
        "outcome",
        "progress",
        "prompt",
        "provider",
        "queue_time",
        "request",
        "resolution",
        "task_id",
        "video_bytes",
    )

    def __init__(
        self,
        *,
        provider: ProviderName,
        task_id: str,
        model: str,
        prompt: str,
        request: dict[str, Any],
        api_key: str,
        idempotency_key: str | None,
        client_business_id: str | None,
        created: float,
        created_wall: float,
        gen_time: float,
        queue_time: float,
        progress: Progress,
        outcome: Outcome,
        estimated_time: int,
        resolution: str,
        file_id: int | None,
        video_bytes: int,
        alt: bool,
        nth: int = 0,
    ) -> None:
        self.provider = provider
        self.task_id = task_id
        self.model = model
        self.prompt = prompt
        self.request = request
        self.api_key = api_key
        self.idempotency_key = idempotency_key
        self.client_business_id = client_business_id
        self.created = created
        self.created_wall = created_wall
        self.gen_time = gen_time
        self.queue_time = queue_time
        self.progress = progress
        self.outcome = outcome
        self.estimated_time = estimated_time
        self.resolution = resolution
        self.file_id = file_id
        self.video_bytes = video_bytes
        # With ``drift`` on, the tasks with ``alt`` set (about half) answer in the enabled drift shapes.
        self.alt = alt
        # How many tasks this provider created with this prompt before: with the seed, the provider and the prompt
        # it names the task's random draws independently of arrival order (the webhooks' draws use it too).
        self.nth = nth

    def state(self, now: float) -> tuple[TaskPhase, int]:
        """The state and progress (0-100) at monotonic time ``now``."""
        elapsed = now - self.created
        if elapsed < self.queue_time:
            return "queued", 0
        if elapsed >= self.gen_time and self.outcome != "hang":
            return ("completed", 100) if self.outcome == "success" else ("failed", 0)
        run_time = self.gen_time - self.queue_time
        share = (elapsed - self.queue_time) / run_time if run_time > 0 else 1.0
        return "running", running_progress(self.progress, share)

    def snapshot(self, timebase: Timebase) -> SimTask:
        return SimTask(
            provider=self.provider,
            task_id=self.task_id,
            model=self.model,
            prompt=self.prompt,
            request=dict(self.request),
            api_key=self.api_key,
            idempotency_key=self.idempotency_key,
            client_business_id=self.client_business_id,
            created_at=self.created_wall,
            ready_at=None if self.outcome == "hang" else self.created_wall + self.gen_time,
            generation_time=self.gen_time,
            queue_time=self.queue_time,
            outcome=self.outcome,
            state=self.state(timebase.now())[0],
            file_id=self.file_id,
        )


class TaskStore:
    """All tasks by id (and MiniMax file id, and toapis client id), the idempotency tables and credit use per key."""

    def __init__(self, seed: int, timebase: Timebase) -> None:
        self.timebase = timebase
        self.tasks: dict[str, LiveTask] = {}
        self.by_file_id: dict[int, LiveTask] = {}
        # (provider, api key, idempotency key) -> (canonical request body, task)
        self.idempotency: dict[tuple[str, str, str], tuple[bytes, LiveTask]] = {}
        # The same keys while their first submit is still being processed (``submit_delay``).
        self.idempotency_pending: set[tuple[str, str, str]] = set()
        # (provider, api key, client_business_id) -> the most recent task submitted with it
        self.by_client_id: dict[tuple[str, str, str], LiveTask] = {}
        self.credits_used: defaultdict[str, int] = defaultdict(int)
        self._per_prompt: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._ids = random.Random(f"ids|{seed}")

    def get(self, provider: str, task_id: str, api_key: str) -> LiveTask | None:
        """The task if it exists, belongs to ``provider`` and was created with ``api_key``."""
        task = self.tasks.get(task_id)
        if task is None or task.provider != provider or task.api_key != api_key:
            return None
        return task

    def get_by_client_id(self, provider: str, client_id: str, api_key: str) -> LiveTask | None:
        """The most recent task ``api_key`` submitted to ``provider`` with this ``client_business_id``."""
        return self.by_client_id.get((provider, api_key, client_id))

    def credits_left(self, api_key: str, credits: int | None) -> bool:
        return credits is None or self.credits_used[api_key] < credits

    def create(
        self,
        *,
        provider: ProviderName,
        model: str,
        prompt: str,
        request: dict[str, Any],
        api_key: str,
        idempotency_key: str | None,
        client_business_id: str | None,
        resolution: str,
        markers: Markers,
        config: SimulatorConfig,
        unified_id: bool = False,
    ) -> LiveTask:
        """Create a task. ``unified_id``: an apimart id in the newer ``task-unified-<unix>-<8 chars>`` form (the
        status page's example id) instead of ``task_<ULID>``."""
        # Per-task randomness depends on (seed, provider, prompt, n-th such prompt), not on arrival order, so
        # concurrent submits of distinct prompts are reproducible.
        key = (provider, prompt)
        nth = self._per_prompt[key]
        self._per_prompt[key] = nth + 1
        rng = random.Random(f"{config.seed}|{provider}|{nth}|{prompt}")
        gen_time = markers.time if markers.time is not None else draw_generation_time(config.generation, rng)
        if markers.hang:
            outcome: Outcome = "hang"
        elif markers.fail or rng.random() < config.failure_rate:
            outcome = "fail"
        else:
            outcome = "success"
        noisy = gen_time * config.estimated_time_bias * (1.0 + rng.gauss(0.0, config.estimated_time_error))
        alt = rng.random() < 0.5
        queue_fraction = draw_queue_fraction(config.queue_fraction, rng)  # last: earlier draws stay put
        now = self.timebase.now()
        task = LiveTask(
            provider=provider,
            task_id=self._new_task_id(provider, unified_id),
            model=model,
            prompt=prompt,
            request=request,
            api_key=api_key,
            idempotency_key=idempotency_key,
            client_business_id=client_business_id,
            created=now,
            created_wall=self.timebase.wall(now),
            gen_time=gen_time,
            queue_time=gen_time * queue_fraction,
            progress=config.progress,
            outcome=outcome,
            estimated_time=max(1, math.ceil(noisy)),
            resolution=resolution,
            file_id=self._new_file_id() if provider == "minimax" else None,
            video_bytes=config.video_bytes,
            alt=alt,
            nth=nth,
        )
        self.tasks[task.task_id] = task
        if task.file_id is not None:
            self.by_file_id[task.file_id] = task
        if client_business_id is not None:
            self.by_client_id[(provider, api_key, client_business_id)] = task
        self.credits_used[api_key] += 1
        return task

    def _new_task_id(self, provider: str, unified: bool) -> str:
        while True:
            if provider == "minimax":
                task_id = str(self._ids.randrange(10**14, 10**15))
            elif unified:
                suffix = "".join(self._ids.choice(_BASE36) for _ in range(8))
                task_id = f"task-unified-{int(self.timebase.wall(self.timebase.now()))}-{suffix}"
            else:
                millis = int(self.timebase.wall(self.timebase.now()) * 1000) & ((1 << 48) - 1)
                value = (millis << 80) | self._ids.getrandbits(80)
                ulid = "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
                task_id = ("task_" if provider == "apimart" else "vid_") + ulid
            if task_id not in self.tasks:
                return task_id

    def _new_file_id(self) -> int:
        while True:
            file_id = self._ids.randrange(10**14, 10**15)
            if file_id not in self.by_file_id:
                return file_id


class SimState:
    """Everything the API app and the CDN app share; owned by :class:`~hailuo_async.simulator.Simulator`."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self.timebase = Timebase(clock)
        self.store = TaskStore(config.seed, self.timebase)
        self.limiters = RateLimiters(self.timebase.clock)
        self.counters = Counters()
        self.fault_rng = random.Random(f"faults|{config.seed}")
        self.uploads: dict[str, tuple[bytes, str, float]] = {}  # CDN path -> (bytes, content type, unix expiry)
        self.seen_keys: set[str] = set()  # every bearer token seen on the API port
        self.secret = os.urandom(16)  # signs CDN video URLs
        self.cdn_base = ""  # set once the CDN site is bound
        self.inflight = 0

    def wall_now(self) -> float:
        return self.timebase.wall(self.timebase.now())
