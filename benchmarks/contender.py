"""One contender's run, in its own process so its CPU time and peak RSS are measured apart from everything else.

    python -m benchmarks.contender --contender hailuo_async --base-url URL --items N --seed S --concurrency C \\
        --output FILE [--interval SECONDS]

Contenders: ``hailuo_async`` (``HailuoClient(...).gather_generations(...)`` with every default but
``max_concurrency``) and ``baseline`` (:mod:`benchmarks.baseline` polling every ``--interval`` seconds). The JSON
written to ``--output`` holds, per task id, the wall-clock time its result reached the caller, plus the process's
CPU time over the run and its peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import API_KEY, own_cpu_seconds, peak_rss_mb, workload_prompts


class Recorder:
    """Wall-clock arrival of each result, keyed by task id, and the outcome of every item."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.outcomes: dict[str, int] = {}

    def result(self, task_id: str | None, kind: str) -> None:
        if task_id is not None and kind in ("completed", "failed"):
            self.arrivals[task_id] = time.time()
        self.outcomes[kind] = self.outcomes.get(kind, 0) + 1


async def run_hailuo(base_url: str, prompts: list[str], concurrency: int, recorder: Recorder) -> dict[str, Any]:
    """hailuo_async with its defaults; only ``max_concurrency`` is set."""
    from hailuo_async import GenerationFailedError, GenerationRequest, HailuoClient, ItemEvent

    def on_event(event: ItemEvent) -> None:
        if event.kind == "completed":
            recorder.result(event.task_id, "completed")
        elif event.kind == "failed":
            error = event.error
            if isinstance(error, GenerationFailedError):
                recorder.result(error.task_id, "failed")
            else:
                recorder.result(None, type(error).__name__)

    items = [GenerationRequest(prompt, duration=5, resolution="768p") for prompt in prompts]
    async with HailuoClient("apimart", api_key=API_KEY, base_url=base_url, max_concurrency=concurrency) as client:
        started = time.time()
        await client.gather_generations(items, return_exceptions=True, on_event=on_event)
        finished = time.time()
        stats = client.statistics()
    return {
        "started": started,
        "finished": finished,
        "client_statistics": {
            "requests": stats.requests,
            "status_requests": stats.status_requests,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
            "learned_rate": stats.rate_limit,
        },
    }


async def run_plain(
    base_url: str, prompts: list[str], concurrency: int, interval: float, recorder: Recorder
) -> dict[str, Any]:
    """The baseline of :mod:`benchmarks.baseline`."""
    from benchmarks.baseline import BaselineOutcome, run_baseline

    def on_result(outcome: BaselineOutcome) -> None:
        recorder.result(outcome.task_id, outcome.kind)

    started = time.time()
    await run_baseline(base_url, API_KEY, prompts, interval=interval, concurrency=concurrency, on_result=on_result)
    return {"started": started, "finished": time.time()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contender", choices=("hailuo_async", "baseline"), required=True)
    parser.add_argument("--base-url", required=True, help="the simulator's apimart base URL")
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--interval", type=float, default=2.0, help="baseline polling interval in seconds")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    prompts = workload_prompts(args.items, args.seed)
    recorder = Recorder()
    # Import the contender's code first: its CPU time is measured over the run, not over interpreter start-up.
    if args.contender == "hailuo_async":
        import hailuo_async  # noqa: F401
    else:
        import benchmarks.baseline  # noqa: F401
    cpu_before = own_cpu_seconds()
    if args.contender == "hailuo_async":
        summary = asyncio.run(run_hailuo(args.base_url, prompts, args.concurrency, recorder))
    else:
        summary = asyncio.run(run_plain(args.base_url, prompts, args.concurrency, args.interval, recorder))
    cpu_run = own_cpu_seconds() - cpu_before
    result = {
        **summary,
        "contender": args.contender,
        "interval": args.interval if args.contender == "baseline" else None,
        "items": args.items,
        "outcomes": recorder.outcomes,
        "arrivals": recorder.arrivals,
        "cpu_run_seconds": cpu_run,
        "cpu_process_seconds": own_cpu_seconds(),
        "peak_rss_mb": peak_rss_mb(),
    }
    args.output.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
