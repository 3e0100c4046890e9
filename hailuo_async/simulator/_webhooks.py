"""The webhooks the simulator sends, as each provider documents them (``docs/providers.md``, "Additions").

- **apimart** (a top-level ``webhook`` base URL): one POST to ``<webhook>/callback`` when the task completes or
  fails, whose body is the task's ``GET /v1/tasks/{id}`` answer; no signature.
- **toapis** (``metadata.callback_url``, or the key's default URL when ``Webhooks.toapis_default_url`` is set): one
  ``generation.completed`` or ``generation.failed`` event ``{"id", "type", "data": {"task_id", "task_type",
  "model", "status"}}`` (no video URL), signed in ``X-ToAPIs-Webhook-Signature`` (:func:`toapis_signature`).
- **MiniMax** (``callback_url``): a ``{"challenge"}`` POST the receiver must echo before the task is created
  (:meth:`WebhookSender.challenge`), then one POST per state change: ``{"task_id", "status", "file_id",
  "base_resp"}`` with ``processing``, then ``success`` or ``failed`` (``base_resp`` 0, except a failure's, which
  carries the query's reason, 1027).

:class:`WebhookSender` runs in the simulator's event loop, started and stopped with the API app. A task's life is a
pure function of the clock (:meth:`~._state.LiveTask.state`), so :meth:`WebhookSender.watch` queues each event at
its time on the simulator's clock; one scheduler task starts a delivery task when an event is due, which applies
the configured faults (:class:`~._config.Webhooks`: drop, delay, holding a MiniMax ``processing`` back until its
task's last callback has gone, duplicates) and retries, and counts everything in the simulator's counters.
Stopping cancels the scheduler and every delivery, then closes the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import ipaddress
import logging
import random
import time
from collections.abc import Coroutine, Mapping
from typing import Any, Literal

import aiohttp
import msgspec
from yarl import URL

from ._cdn import sign_video_url
from ._config import SimulatorConfig
from ._providers import Apimart, Minimax
from ._state import LiveTask, ProviderName, SimState

__all__ = [
    "TOAPIS_EVENT_TYPES",
    "Problem",
    "WebhookSender",
    "callback_target",
    "is_loopback",
    "toapis_signature",
    "toapis_signature_header",
]

Event = Literal["processing", "terminal"]

TOAPIS_EVENT_TYPES = ("generation.completed", "generation.failed", "endpoint.test")
"""The event types toapis documents."""

logger = logging.getLogger("hailuo_async.simulator")

_TOAPIS_TASK_TYPE = "video"  # toapis' ``data.task_type`` values are undocumented: the simulator's choice
_USER_AGENT = "hailuo-async-simulator-webhooks"
_TICK = 0.05  # how often the scheduler reads an injected clock (a fake clock moves without telling anyone)
_APIMART_PORTS = (80, 443)
_MINIMAX_OK = {"status_code": 0, "status_msg": "success"}


class Problem(msgspec.Struct, frozen=True):
    """Why a submit's callback URL is refused (the message of a 400 ``invalid`` answer)."""

    message: str


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _http_url(value: object) -> URL | None:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return None
    try:
        url = URL(value)
    except ValueError:
        return None
    return url if url.host else None


def callback_target(provider: ProviderName, body: Mapping[str, Any], config: SimulatorConfig) -> str | Problem | None:
    """Where the webhooks of a submit with this (already validated) ``body`` go: a URL, None when it asks for none,
    or the :class:`Problem` a 400 answer names."""
    webhooks = config.webhooks
    if provider == "apimart":
        given = body.get("webhook")
        if given is None:
            return None
        url = _http_url(given)
        if url is None:
            return Problem("webhook must be an http(s) URL")
        if webhooks.apimart_port_check and not is_loopback(url.host) and url.port not in _APIMART_PORTS:
            return Problem(f"webhook must be a public http(s) URL on port 80 or 443, got port {url.port}")
        return str(url.with_path(url.path.rstrip("/") + "/callback", keep_query=True, keep_fragment=False))
    if provider == "toapis":
        metadata = body.get("metadata")
        given = metadata.get("callback_url") if isinstance(metadata, dict) else None
        default = webhooks.toapis_default_url
        if given is None:
            return default
        url = _http_url(given)
        if url is None:
            return Problem("metadata.callback_url must be an http(s) URL")
        if default is not None and url.origin() != URL(default).origin():
            return Problem("metadata.callback_url must be same-origin with the webhook URL configured for the key")
        return str(given)
    given = body.get("callback_url")
    if given is None:
        return None
    return str(given) if _http_url(given) is not None else Problem("callback_url must be an http(s) URL")


def toapis_signature(secret: str, event_id: str, timestamp: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 with ``secret`` over ``event_id + "." + timestamp + "." + body``."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def toapis_signature_header(secrets: tuple[str, ...], event_id: str, timestamp: str, body: bytes) -> str:
    """``X-ToAPIs-Webhook-Signature``: ``v1=<hex>`` per secret, the current one first, comma-separated."""
    return ",".join(f"v1={toapis_signature(secret, event_id, timestamp, body)}" for secret in secrets)


class _Due(msgspec.Struct, frozen=True, order=True):
    """A queued event: due at ``at`` on the simulator's clock (``seq`` keeps the queue's order stable)."""

    at: float
    seq: int
    task_id: str
    url: str
    event: Event


class _Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event ready to send: where, what, and the seeded decisions of the faults."""

    url: str
    body: bytes
    event_id: str | None  # toapis only: signs every attempt
    dropped: bool
    duplicate: bool
    delay: float
    hold: bool


def delivery_body(state: SimState, task: LiveTask, event: str, event_id: str, now: float) -> dict[str, Any]:
    """What the provider POSTs about ``event`` (``"processing"`` or ``"terminal"``) of ``task`` as of ``now``
    (monotonic): apimart's status answer, toapis' event (signed apart, over its bytes), MiniMax's state change. Pure
    but for signing the video URL."""
    config = state.config
    phase, progress = task.state(now)
    completed = task.outcome == "success"
    if task.provider == "apimart":
        drift = config.drift_shapes() if task.alt else frozenset()
        video = sign_video_url(state, task.task_id, task.provider) if phase == "completed" else None
        return Apimart().status_body(task, phase, progress, video, drift, now)
    if task.provider == "toapis":
        return {
            "id": event_id,
            "type": "generation.completed" if completed else "generation.failed",
            "data": {
                "task_id": task.task_id,
                "task_type": _TOAPIS_TASK_TYPE,
                "model": task.model,
                "status": "completed" if completed else "failed",
            },
        }
    file_id: int | str = ""
    base_resp: Any = _MINIMAX_OK
    if event == "processing":
        word = "processing"
    elif completed:
        word = "success"
        assert task.file_id is not None
        numeric = task.alt and "minimax_numeric_file_id" in config.drift_shapes()
        file_id = task.file_id if numeric else str(task.file_id)
    else:
        word = "failed"  # with the reason the query gives for this task (1027)
        base_resp = Minimax().status_body(task, "failed", 0, None, frozenset(), now)["base_resp"]
    return {"task_id": task.task_id, "status": word, "file_id": file_id, "base_resp": base_resp}


class WebhookSender:
    """Sends the simulator's webhooks; owned by the API app (:func:`~._api.build_api_app` starts and stops it)."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._queue: list[_Due] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        # task id -> set once the task's last delivery has been sent (or dropped), for MiniMax tasks with two
        # callbacks: a ``processing`` one held back (``reorder``) waits for it.
        self._last_sent: dict[str, asyncio.Event] = {}
        self._challenges = random.Random(f"challenges|{state.config.seed}")
        self._test_events = random.Random(f"endpoint-tests|{state.config.seed}")
        self._closed = False

    # -- lifecycle (aiohttp app signals) -----------------------------------------------------------------------

    async def start(self, app: object = None) -> None:
        """Open the session and start the scheduler (the API app's ``on_startup``)."""
        self._session = aiohttp.ClientSession(headers={"User-Agent": _USER_AGENT})
        self._scheduler = asyncio.create_task(self._schedule(), name="simulator-webhooks")

    async def stop(self, app: object = None) -> None:
        """Cancel the scheduler and every delivery, pending or under way (the API app's ``on_shutdown``)."""
        self._closed = True
        tasks = [*self._deliveries, *([self._scheduler] if self._scheduler is not None else [])]
        self._scheduler = None
        self._queue.clear()
        self._last_sent.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._deliveries.clear()

    async def close(self, app: object = None) -> None:
        """Stop, then close the session (the API app's ``on_cleanup``, after in-flight requests ended)."""
        await self.stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- scheduling --------------------------------------------------------------------------------------------

    def watch(self, task: LiveTask, url: str) -> None:
        """Queue ``task``'s webhooks to ``url``: its end (apimart, toapis, MiniMax), and for MiniMax the start of
        its running part (none if it has no running part). A task that hangs never ends."""
        if self._closed:
            return
        events: list[tuple[float, Event]] = []
        if task.provider == "minimax" and (task.queue_time < task.gen_time or task.outcome == "hang"):
            events.append((task.created + task.queue_time, "processing"))
        if task.outcome != "hang":
            events.append((task.created + task.gen_time, "terminal"))
        if len(events) == 2:
            self._last_sent[task.task_id] = asyncio.Event()
        for at, event in events:
            self._seq += 1
            heapq.heappush(self._queue, _Due(at=at, seq=self._seq, task_id=task.task_id, url=url, event=event))
        self._wake.set()

    async def _schedule(self) -> None:
        clock = self.state.timebase.clock
        real_clock = clock is time.monotonic
        while True:
            now = clock()
            while self._queue and self._queue[0].at <= now:
                due = heapq.heappop(self._queue)
                task = self.state.store.tasks.get(due.task_id)
                if task is None:
                    continue
                try:
                    delivery = self._prepare(task, due)
                except Exception:  # a bug: say so, and keep serving the other tasks' webhooks
                    logger.exception("simulator: cannot build the %s webhook of task %s", due.event, due.task_id)
                    continue
                self._spawn(self._deliver(task.task_id, due.event, delivery))
            wait: float | None = None
            if self._queue:
                wait = max(0.0, self._queue[0].at - now)
                if not real_clock:
                    wait = min(wait, _TICK)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._deliveries.add(task)
        task.add_done_callback(self._delivery_done)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("simulator: a webhook delivery failed", exc_info=task.exception())

    # -- what is sent ------------------------------------------------------------------------------------------

    def _prepare(self, task: LiveTask, due: _Due) -> _Delivery:
        """The body of ``due`` (as the task is now) and the seeded draws of the faults."""
        state = self.state
        config = state.config
        faults = config.webhooks
        # Seeded by the task's own draw key and the event, so timing and other tasks change nothing.
        rng = random.Random(f"{config.seed}|webhook|{task.provider}|{task.nth}|{task.prompt}|{due.event}")
        dropped = rng.random() < faults.drop
        duplicate = rng.random() < faults.duplicate
        hold = rng.random() < faults.reorder
        delay = rng.uniform(*faults.delay) if isinstance(faults.delay, tuple) else faults.delay
        event_id = f"evt_{rng.getrandbits(96):024x}"
        payload = delivery_body(state, task, due.event, event_id, state.timebase.now())
        return _Delivery(
            url=due.url,
            body=msgspec.json.encode(payload),
            event_id=event_id if task.provider == "toapis" else None,
            dropped=dropped,
            duplicate=duplicate,
            delay=delay,
            hold=hold,
        )

    def _headers(self, delivery: _Delivery) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if delivery.event_id is not None:
            webhooks = self.state.config.webhooks
            secrets: tuple[str, ...] = (webhooks.toapis_secret,)
            if webhooks.toapis_previous_secret is not None:
                secrets += (webhooks.toapis_previous_secret,)
            timestamp = str(int(self.state.wall_now()))
            headers["X-ToAPIs-Webhook-Id"] = delivery.event_id
            headers["X-ToAPIs-Webhook-Timestamp"] = timestamp
            headers["X-ToAPIs-Webhook-Signature"] = toapis_signature_header(
                secrets, delivery.event_id, timestamp, delivery.body
            )
        return headers

    # -- how it is sent ----------------------------------------------------------------------------------------

    async def _deliver(self, task_id: str, event: Event, delivery: _Delivery) -> None:
        last_sent = self._last_sent.get(task_id)
        try:
            if delivery.dropped:
                self.state.counters.webhooks_dropped += 1
                return
            if delivery.delay > 0:
                await asyncio.sleep(delivery.delay)
            if event == "processing" and delivery.hold and last_sent is not None:
                await last_sent.wait()  # the task's last callback goes first
            await self._attempts(delivery)
        finally:
            if event == "terminal" and last_sent is not None:
                last_sent.set()
                self._last_sent.pop(task_id, None)
        if delivery.duplicate:
            self.state.counters.webhooks_duplicated += 1
            await self._attempts(delivery)

    async def _attempts(self, delivery: _Delivery) -> None:
        """Send until a 2xx; retry after a timeout, a connection error or a 5xx, following ``retry_delays``."""
        pauses = self.state.config.webhooks.retry_delays
        for attempt in range(len(pauses) + 1):
            if attempt:
                await asyncio.sleep(pauses[attempt - 1])
                self.state.counters.webhooks_retried += 1
            status = await self._post(delivery.url, delivery.body, self._headers(delivery))
            if status is not None and 200 <= status < 300:
                self.state.counters.webhooks_delivered += 1
                return
            if status is not None and status < 500:
                break  # 4xx (and 3xx, not followed): the receiver said no, so no retry
        self.state.counters.webhooks_failed += 1

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int | None:
        """POST once; the status, or None after a timeout or a connection error."""
        assert self._session is not None
        self.state.counters.webhooks_sent += 1
        timeout = aiohttp.ClientTimeout(total=self.state.config.webhooks.timeout)
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                return response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return None

    # -- MiniMax's challenge and toapis' test event ------------------------------------------------------------

    async def challenge(self, url: str) -> bool:
        """POST ``{"challenge": <random>}`` to ``url``; True when a 2xx JSON answer echoes it (its ``challenge``
        equals the one sent) within ``challenge_timeout`` seconds."""
        assert self._session is not None
        self.state.counters.webhook_challenges += 1
        token = f"{self._challenges.getrandbits(128):032x}"
        timeout = aiohttp.ClientTimeout(total=self.state.config.webhooks.challenge_timeout)
        body = msgspec.json.encode({"challenge": token})
        headers = {"Content-Type": "application/json"}
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                answer = msgspec.json.decode(await response.read()) if 200 <= response.status < 300 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, msgspec.DecodeError):
            answer = None
        echoed = isinstance(answer, dict) and answer.get("challenge") == token
        if not echoed:
            self.state.counters.webhook_challenges_failed += 1
        return echoed

    async def send_test(self, url: str) -> tuple[str, int | None]:
        """Send toapis' ``endpoint.test`` event to ``url`` once (signed, no faults, no retries): (event id, the
        receiver's status or None)."""
        event_id = f"evt_{self._test_events.getrandbits(96):024x}"
        body = msgspec.json.encode({"id": event_id, "type": "endpoint.test", "data": {}})
        delivery = _Delivery(
            url=url, body=body, event_id=event_id, dropped=False, duplicate=False, delay=0.0, hold=False
        )
        status = await self._post(url, body, self._headers(delivery))
        if status is not None and 200 <= status < 300:
            self.state.counters.webhooks_delivered += 1
        else:
            self.state.counters.webhooks_failed += 1
        return event_id, status
