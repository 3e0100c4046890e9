"""Scale: N outstanding tasks held by one client's shared poller, without a network.

    python -m benchmarks.scale --outstanding 100000 --checks 30000 --output FILE

Runs in its own process (so RSS belongs to this measurement alone). ``HailuoClient`` (defaults, ``max_concurrency``
16) gets a :class:`hailuo_async.MockTransport` whose handler plays apimart from memory, and a
:class:`hailuo_async.FakeClock`, so hours of polling take seconds. Every task reports ``processing`` with an
``estimated_time`` of a day, so all N stay outstanding and the poller settles to its longest interval. Measured:

- memory per outstanding task: RSS once all N are tracked and checked at least once, minus RSS of the open client
  before the batch, divided by N;
- client CPU per status check: process CPU time over the next ``--checks`` checks divided by their number, as the
  median of 5 rounds. The clock is jumped past every task's next check and the poller sweeps all N back to back,
  repeatedly; so the figure is the marginal cost of one check (heap, plan, status parsing, the mock handler;
  everything but real sockets) with the cost of waking an idle poller spread thin, the same way at every N;
- peak RSS of the process (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

from benchmarks.harness import API_KEY, current_rss_bytes, peak_rss_mb
from hailuo_async import FakeClock, HailuoClient, HttpRequest, HttpResponse, MockTransport

GENERATION_SECONDS = 86_400
"""Virtual generation time of every task: none finishes during the measurement."""
SWEEP_JUMP = 3_600.0
"""Virtual seconds jumped before each sweep: more than the poller's longest gap (60 s plus jitter)."""
SWEEP_STEP = 0.05
"""Virtual seconds the measuring loop sleeps between looks at the counters during a sweep."""
ROUNDS = 5
"""The CPU measurement is split into this many rounds; the median round is reported (the machine may be shared)."""


def make_transport(clock: FakeClock) -> MockTransport:
    """An apimart look-alike in memory. Task ids carry their creation time, so the mock keeps no state per task."""
    counter = iter(range(1, 1 << 62))

    def handler(request: HttpRequest) -> HttpResponse:
        transport.requests.clear()  # MockTransport logs every request; that log is not client memory
        now = clock.monotonic()
        if request.route == "submit":
            task_id = f"task_{next(counter)}_{int(now * 1000)}"
            return HttpResponse(
                status=200, body=b'{"code":200,"data":[{"status":"submitted","task_id":"%s"}]}' % task_id.encode()
            )
        task_id = request.path.split("/")[3].split("?")[0]
        created = int(task_id.rsplit("_", 1)[1]) / 1000.0
        progress = min(99, int(99 * (now - created) / GENERATION_SECONDS))
        body = b'{"code":200,"data":{"id":"%s","status":"processing","progress":%d,"estimated_time":%d}}' % (
            task_id.encode(),
            progress,
            GENERATION_SECONDS,
        )
        return HttpResponse(status=200, body=body)

    transport = MockTransport(handler)
    return transport


async def sweep(client: HailuoClient, clock: FakeClock, outstanding: int, start: int, count: int) -> None:
    """Saturated sweeps until ``count`` more checks are done: jump the clock past every task's next check, so the
    poller works through all N back to back (the cost of waking it is spread over a whole sweep, the same at any N).
    """
    while client.statistics().status_requests - start < count:
        sweep_start = client.statistics().status_requests
        clock.advance(SWEEP_JUMP)
        while True:
            done = client.statistics().status_requests
            if done - sweep_start >= outstanding or done - start >= count:
                break
            await clock.sleep(SWEEP_STEP)


async def measure(outstanding: int, checks: int) -> dict[str, Any]:
    clock = FakeClock()
    transport = make_transport(clock)

    def prompts() -> Iterator[str]:
        for index in range(outstanding):
            yield f"scale {index:06d}: a paper boat drifting down a rainy street"

    async with HailuoClient("apimart", api_key=API_KEY, transport=transport, clock=clock, max_concurrency=16) as client:
        gc.collect()
        rss_open = current_rss_bytes()
        wall = time.perf_counter()
        async with anyio.create_task_group() as tg:

            async def batch() -> None:
                await client.gather_generations(prompts(), return_exceptions=True, timeout=None)

            tg.start_soon(batch)
            # Wait until every task is tracked and has had its first status check.
            while True:
                stats = client.statistics()
                if stats.polling >= outstanding and stats.status_requests >= outstanding:
                    break
                await clock.sleep(1.0)
            fill_seconds = time.perf_counter() - wall
            gc.collect()
            rss_tracked = current_rss_bytes()
            # Saturated sweeps: jump the clock past every task's next check, so the poller works through all N
            # back to back; repeat until ``checks`` checks are done. The cost of waking the poller is spread over
            # a whole sweep, so what is left is the cost of one check itself, at any N.
            first = client.statistics().status_requests
            per_round = max(1, checks // ROUNDS)
            rounds: list[float] = []
            cpu_total = 0.0
            for _ in range(ROUNDS):
                start = client.statistics().status_requests
                cpu0 = time.process_time()
                await sweep(client, clock, outstanding, start, per_round)
                cpu = time.process_time() - cpu0
                cpu_total += cpu
                rounds.append(cpu / (client.statistics().status_requests - start) * 1e6)
            final = client.statistics()
            measured = final.status_requests - first
            tg.cancel_scope.cancel()
    return {
        "outstanding": outstanding,
        "still_outstanding": final.polling,
        "fill_seconds": fill_seconds,
        "rss_open_mb": rss_open / 2**20,
        "rss_tracked_mb": rss_tracked / 2**20,
        "bytes_per_task": (rss_tracked - rss_open) / outstanding,
        "checks_measured": measured,
        "checks_per_task": measured / outstanding,
        "cpu_seconds": cpu_total,
        "cpu_us_per_check": statistics.median(rounds),
        "cpu_us_per_check_min": min(rounds),
        "cpu_us_per_check_rounds": rounds,
        "peak_rss_mb": peak_rss_mb(),
        "failed": final.failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--outstanding", type=int, required=True, help="tasks held by the poller at once")
    parser.add_argument("--checks", type=int, required=True, help="status checks to measure CPU over")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    result = anyio.run(measure, args.outstanding, args.checks)
    args.output.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
