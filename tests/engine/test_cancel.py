"""Stopping a batch costs nothing more: a cancelled batch, a closed client or Ctrl-C drop every item still waiting
for a pacer token or a submit slot at once; only a POST already on the wire finishes (and is recorded)."""

from __future__ import annotations

import anyio
import pytest

from hailuo_async import (
    FakeClock,
    GenerationTimeoutError,
    HailuoClient,
    HttpRequest,
    HttpResponse,
    ItemEvent,
    MockTransport,
    NotSubmittedError,
    RetryPolicy,
)

from .fakegw import FakeGateway

pytestmark = pytest.mark.anyio

PROMPTS = [f"a slow wave number {i}" for i in range(12)]


def paced_client(gw: FakeGateway, clock: FakeClock) -> HailuoClient:
    # One request per second: most items of the batch queue for a token, as under a tight provider limit.
    return HailuoClient(
        "apimart",
        api_key="k",
        transport=MockTransport(gw),
        clock=clock,
        retry=RetryPolicy(base_delay=0.001, max_delay=0.01),
        requests_per_second=1.0,
        max_concurrency=8,
    )


def on_post(gw: FakeGateway, count: int, then: anyio.Event) -> None:
    """Set ``then`` while the ``count``-th POST is being answered (it is on the wire)."""

    def hook(request: HttpRequest) -> HttpResponse | None:
        if request.route == "submit" and sum(gw.posts.values()) + 1 == count:
            then.set()
        return None

    gw.faults.append(hook)


async def test_cancelling_as_completed_sends_nothing_that_had_not_left() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda prompt: 600.0)
    third = anyio.Event()
    on_post(gw, 3, third)
    events: list[ItemEvent] = []
    async with paced_client(gw, clock) as client:
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for _ in client.as_completed(PROMPTS, on_event=events.append):
                    pass

            tg.start_soon(consume)
            await third.wait()
            tg.cancel_scope.cancel()
        posts_at_cancel = sum(gw.posts.values())
        clock.advance(60)  # time for anything still queued to (wrongly) go out
        await anyio.sleep(0)
    assert posts_at_cancel == 3
    assert sum(gw.posts.values()) == 3  # the POST on the wire finished; the nine queued never left
    submitted = [e.task_id for e in events if e.kind == "submitted"]
    assert len(submitted) == 3  # even the one answered during the cancellation reports its task id


async def test_closing_the_client_during_a_batch_reports_what_was_not_sent() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda prompt: 600.0)
    third = anyio.Event()
    on_post(gw, 3, third)
    client = paced_client(gw, clock)
    results: list[object] = []

    async def batch() -> None:
        results.extend(await client.gather_generations(PROMPTS, return_exceptions=True))

    async with anyio.create_task_group() as tg, client:
        tg.start_soon(batch)
        await third.wait()
        # the client closed while its batch was still running in another task
    assert sum(gw.posts.values()) == 3
    assert len(results) == len(PROMPTS)
    waited = [r for r in results if isinstance(r, GenerationTimeoutError)]
    dropped = [r for r in results if isinstance(r, NotSubmittedError)]
    assert len(waited) == 3 and {r.task_id for r in waited} == set(gw.tasks)  # still running: ids kept
    assert len(dropped) == len(PROMPTS) - 3  # never sent, never paid for


async def test_closing_the_client_drops_a_single_submit_waiting_for_its_token() -> None:
    clock = FakeClock()
    gw = FakeGateway(clock, durations=lambda prompt: 600.0)
    client = paced_client(gw, clock)
    outcomes: list[BaseException] = []

    async def second() -> None:
        try:
            await client.submit("second")
        except NotSubmittedError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg, client:
        await client.submit("first")  # takes the only token of this second
        tg.start_soon(second)
        await anyio.sleep(0)
    assert sum(gw.posts.values()) == 1
    assert len(outcomes) == 1
