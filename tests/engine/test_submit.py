"""The money-safe submit (``hailuo_async._submit``) and the paced path, on the mock transport and a fake clock:
toapis look-ups by ``client_business_id``, apimart's 409 ``idempotency_in_progress``, undecodable status answers,
429s to every route, and the download folder checked before anything is paid for."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from hailuo_async import (
    DecodeError,
    FakeClock,
    Generation,
    HailuoClient,
    HttpRequest,
    HttpResponse,
    InvalidRequestError,
    MockTransport,
    RetryPolicy,
    SubmissionUncertainError,
    TransportError,
)

from .fakegw import FakeGateway, _json, rate_limited

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.01, lookup_delay=2.0)


@dataclass
class Toapis:
    """A toapis-shaped gateway that remembers each task's ``client_business_id``; ``post_fault`` decides, per
    POST, how the answer goes wrong after (``"drop"``) or before (``"refuse"``) the task is created."""

    clock: FakeClock
    duration: float = 30.0
    post_faults: list[str] = field(default_factory=list)
    lookup_faults: list[HttpResponse] = field(default_factory=list)
    posts: int = 0
    lookups: list[str] = field(default_factory=list)
    tasks: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (client_business_id, created)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.route == "submit":
            return self._submit(request)
        key = request.path.split("?")[0].rsplit("/", 1)[1]
        if request.route == "lookup":
            self.lookups.append(key)
            if self.lookup_faults:
                return self.lookup_faults.pop(0)
            found = [task_id for task_id, (cbid, _) in self.tasks.items() if cbid == key]
            if not found:
                return _json({"error": {"message": "task not found", "type": "not_found"}}, status=404)
            key = found[-1]
        return self._status(key)

    def _submit(self, request: HttpRequest) -> HttpResponse:
        self.posts += 1
        fault = self.post_faults.pop(0) if self.post_faults else None
        if fault == "refuse":
            raise TransportError("connection reset before the server read the body", maybe_sent=True)
        body = msgspec.json.decode(request.body or b"{}")
        task_id = f"vid_{next(self._ids)}"
        self.tasks[task_id] = (body["client_business_id"], self.clock.monotonic())
        if fault == "drop":
            raise TransportError("connection dropped after the task was created", maybe_sent=True)
        if fault == "5xx":
            return _json({"error": {"message": "upstream timeout"}}, status=502)
        return _json({"id": task_id, "object": "generation.task", "status": "queued", "progress": 0})

    def _status(self, task_id: str) -> HttpResponse:
        _, created = self.tasks[task_id]
        done = self.clock.monotonic() - created >= self.duration
        body: dict[str, object] = {"id": task_id, "object": "generation.task", "status": "in_progress"}
        if done:
            body.update(
                status="completed", progress=100, result={"type": "video", "data": [{"url": "https://x/v.mp4"}]}
            )
        return _json(body)


def toapis_client(gw: Toapis, clock: FakeClock, **options: object) -> HailuoClient:
    return HailuoClient(
        "toapis",
        api_key="k",
        transport=MockTransport(gw),
        clock=clock,
        retry=FAST_RETRY,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("fault", ["drop", "5xx"])
async def test_toapis_lost_answer_is_looked_up_and_the_task_polled(fault: str) -> None:
    clock = FakeClock()
    gw = Toapis(clock, post_faults=[fault])
    async with toapis_client(gw, clock) as client:
        video = await client.generate("a lighthouse at dusk")
    assert isinstance(video, Generation)
    assert gw.posts == 1 and len(gw.tasks) == 1  # looked up, never sent twice
    (task_id,) = gw.tasks
    assert video.task_id == task_id
    assert gw.lookups == [gw.tasks[task_id][0]]  # asked by the key the POST carried


async def test_toapis_lookup_that_finds_nothing_sends_again_with_the_same_key() -> None:
    clock = FakeClock()
    gw = Toapis(clock, post_faults=["refuse"])
    async with toapis_client(gw, clock) as client:
        started = clock.monotonic()
        task = await client.submit("a paper boat")
        waited = clock.monotonic() - started
    assert gw.posts == 2 and len(gw.tasks) == 1
    assert gw.tasks[task.task_id][0] == gw.lookups[0]  # the resend carried the same client_business_id
    assert len(gw.lookups) == 2  # "not found" is believed only when said twice, a delay apart
    assert waited >= 2 * FAST_RETRY.lookup_delay  # each look-up waited for a POST still being processed


async def test_toapis_task_created_late_is_found_by_the_second_lookup() -> None:
    clock = FakeClock()
    gw = Toapis(clock, post_faults=["refuse"])
    late: list[str] = []

    def create_late(request: HttpRequest) -> HttpResponse | None:
        # The provider was still processing the dropped POST at the first look-up: its task appears after it.
        if request.route == "lookup" and not late:
            late.append(request.path)
            answer = _json({"error": {"message": "task not found"}}, status=404)
            gw.tasks["vid_late"] = (request.path.rsplit("/", 1)[1], clock.monotonic())
            return answer
        return None

    async with HailuoClient(
        "toapis",
        api_key="k",
        transport=MockTransport(lambda request: create_late(request) or gw(request)),
        clock=clock,
        retry=FAST_RETRY,
    ) as client:
        task = await client.submit("a paper boat")
    assert task.task_id == "vid_late"
    assert gw.posts == 1  # never resent: the late task was found


async def test_toapis_lookup_that_cannot_tell_leaves_the_submit_uncertain() -> None:
    clock = FakeClock()
    failing = [_json({"error": {"message": "bad gateway"}}, status=502) for _ in range(FAST_RETRY.max_attempts)]
    gw = Toapis(clock, post_faults=["drop"], lookup_faults=failing)
    async with toapis_client(gw, clock) as client:
        with pytest.raises(SubmissionUncertainError) as caught:
            await client.submit("a paper boat")
    assert gw.posts == 1  # never resent blindly
    assert caught.value.idempotency_key == gw.lookups[0]
    assert client.statistics().uncertain == 1


async def test_toapis_resume_looks_up_an_uncertain_item_instead_of_refusing_it(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = tmp_path / "batch.sqlite"
    failing = [_json({"error": {"message": "bad gateway"}}, status=502) for _ in range(FAST_RETRY.max_attempts)]
    gw = Toapis(clock, post_faults=["drop"], lookup_faults=failing)
    async with toapis_client(gw, clock, journal=journal) as client:
        (first,) = await client.gather_generations(["a paper boat"], return_exceptions=True)
    assert isinstance(first, SubmissionUncertainError)
    async with toapis_client(gw, clock, journal=journal) as client:
        (second,) = await client.gather_generations(["a paper boat"], return_exceptions=True)
    assert isinstance(second, Generation), second
    assert gw.posts == 1 and len(gw.tasks) == 1  # the first run's task was found and polled
    assert second.task_id in gw.tasks


async def test_apimart_idempotency_in_progress_resend_carries_the_same_key_after_retry_after() -> None:
    clock = FakeClock()
    sent: list[tuple[float, str | None]] = []
    gw = FakeGateway(clock, durations=lambda prompt: 20.0)

    def record(request: HttpRequest) -> HttpResponse | None:
        if request.route != "submit":
            return None
        sent.append((clock.monotonic(), dict(request.headers).get("Idempotency-Key")))
        if len(sent) == 1:
            body = {"error": {"code": "idempotency_in_progress", "message": "in progress"}}
            return _json(body, status=409, headers={"Retry-After": "1"})
        return None

    gw.faults.append(record)
    async with HailuoClient(
        "apimart", api_key="k", transport=MockTransport(gw), clock=clock, retry=FAST_RETRY
    ) as client:
        task = await client.submit("a quiet harbour")
    assert len(sent) == 2 and sent[0][1] == sent[1][1] == task.idempotency_key
    assert sent[1][0] - sent[0][0] >= 1.0  # Retry-After honoured


async def test_status_answers_that_keep_failing_to_decode_fail_the_item_with_its_task_id() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda prompt: 20.0)
    garbled: list[float] = []

    def garble(request: HttpRequest) -> HttpResponse | None:
        if request.route != "status":
            return None
        garbled.append(clock.monotonic())
        return HttpResponse(status=200, headers={}, body=b'{"code":200,"data":{"status": [')

    gw.faults.append(garble)
    async with HailuoClient(
        "apimart", api_key="k", transport=MockTransport(gw), clock=clock, retry=FAST_RETRY
    ) as client:
        task = await client.submit("a quiet harbour")
        with pytest.raises(DecodeError) as caught:
            await client.wait(task, timeout=3600)
    assert caught.value.task_id == task.task_id
    assert caught.value.snippet.startswith('{"code":200')
    assert len(garbled) == 5  # given up after five unreadable answers in a row, not polled to the deadline
    assert clock.monotonic() - garbled[0] < 600


@pytest.mark.parametrize("route", ["status", "retrieve"])
async def test_a_429_on_any_route_slows_the_whole_client(route: str) -> None:
    clock = FakeClock()
    provider = "minimax" if route == "retrieve" else "apimart"
    gw = FakeGateway(clock, provider=provider, durations=lambda prompt: 1.0)
    limited: list[float] = []

    def limit_once(request: HttpRequest) -> HttpResponse | None:
        if request.route == route and not limited:
            limited.append(clock.monotonic())
            return rate_limited("4")
        return None

    gw.faults.append(limit_once)
    async with HailuoClient(
        provider,
        api_key="k",
        transport=MockTransport(gw),
        clock=clock,
        retry=FAST_RETRY,
        submits_per_minute=None,
    ) as client:
        task = await client.submit("a quiet harbour")
        clock.advance(5)
        status = await client.status(task)
        assert status.video_url is not None
        assert client.statistics().rate_limited == 1  # the 429 reached the pacer: every request pauses
        assert clock.monotonic() >= limited[0] + 4.0  # and the retry waited out its Retry-After


@pytest.mark.parametrize("call", ["generate", "gather_generations", "as_completed"])
async def test_an_unusable_download_folder_is_refused_before_anything_is_sent(tmp_path: Path, call: str) -> None:
    clock = FakeClock()
    gw = FakeGateway(clock)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    destination = blocker / "videos"
    async with HailuoClient("apimart", api_key="k", transport=MockTransport(gw), clock=clock) as client:

        async def run() -> None:
            if call == "generate":
                await client.generate("a quiet harbour", download_to=destination)
            elif call == "gather_generations":
                await client.gather_generations(["a quiet harbour"], download_to=destination)
            else:
                async for _ in client.as_completed(["a quiet harbour"], download_to=destination):
                    pass

        with pytest.raises(InvalidRequestError) as caught:
            await run()
    assert caught.value.parameter == "download_to"
    assert not gw.posts  # nothing paid for


async def test_server_error_after_a_lookup_miss_is_not_looped_forever() -> None:
    clock = FakeClock()
    gw = Toapis(clock, post_faults=["refuse", "refuse", "refuse", "refuse"])
    async with toapis_client(gw, clock) as client:
        with pytest.raises(SubmissionUncertainError):
            await client.submit("a paper boat")
    assert gw.posts == 3  # the first send and two resends after look-ups found nothing, then it stops
    assert len(gw.lookups) == 4  # two look-ups (a delay apart) before each resend, none after the last send


async def test_apimart_indeterminate_result_of_an_earlier_request_is_uncertain_not_refused() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock)

    def indeterminate(request: HttpRequest) -> HttpResponse | None:
        if request.route != "submit":
            return None
        body = {"error": {"code": "idempotency_result_indeterminate", "message": "outcome unknown"}}
        return _json(body, status=409)

    gw.faults.append(indeterminate)
    async with HailuoClient(
        "apimart", api_key="k", transport=MockTransport(gw), clock=clock, retry=FAST_RETRY
    ) as client:
        with pytest.raises(SubmissionUncertainError):
            await client.submit("a quiet harbour")
