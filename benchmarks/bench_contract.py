"""The polling contract across seeds and ``max_lag`` values, in virtual time: how a change to the forecaster or
the planner is judged.

``python -m benchmarks.bench_contract`` plays every progress-shape row of :mod:`benchmarks.bench_poller` (and a
``long`` row of 30-300 s tasks, the durations real generations take, a ``mixed`` row of short and eight times longer
tasks, ``short_estimate`` and ``long_estimate`` rows whose estimates say a quarter of the time and four times
it, and ``long_short_estimate``: 50-200 s tasks whose estimate says a quarter) on the three providers, with
several seeds, the library alone at each ``max_lag`` asked for. Per ``max_lag`` it
reports the mean status requests per item, the worst p95 lag as a share of ``max_lag`` and every run whose p95 lag
exceeded ``max_lag``: the contract must hold on all of them, whatever the shape, the provider and the seed, and one
seed or one row is never enough to say a change is better. The table goes to ``benchmarks/results/contract.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from hailuo_async.simulator import GenerationTimes

from .bench_poller import PROVIDERS, ROWS, SETTLE, Contender, Row, Run, play
from .harness import RESULTS

LONG = Row(
    "long",
    "30-300 s tasks, linear progress",
    "shape",
    generation=GenerationTimes(kind="uniform", low=30.0, high=300.0, min=0.0, max=None),
)
"""The durations real Hailuo generations take: what the library is for, beside the short rows that keep runs fast."""
MIXED = Row(
    "mixed",
    "half 5-10 s, half 8 times as long (40-80 s), linear progress",
    "shape",
    generation=GenerationTimes(kind="bimodal", low=5.0, high=10.0, share=0.5, factor=8.0, min=0.0, max=None),
)
"""A batch of two kinds of task (short and long videos, two resolutions): what its quick tasks show must not set
the checks of its long ones."""
SHORT_ESTIMATE = Row(
    "short_estimate",
    "5-20 s tasks whose estimated_time says a quarter of the time (apimart)",
    "shape",
    estimated_time_bias=0.25,
    estimated_time_error=0.05,
)
"""A provider's estimate four times too short: the estimate read as the time left then fits the first tasks read early
and misleads for those read late."""
LONG_ESTIMATE = Row(
    "long_estimate",
    "5-20 s tasks whose estimated_time says four times the time (apimart)",
    "shape",
    estimated_time_bias=4.0,
)
"""A provider's estimate four times too long, as apimart's answers have shown (600 s estimated, 155 s taken): the
range assumed before any task finishes must reach past it, noise included."""
LONG_SHORT_ESTIMATE = Row(
    "long_short_estimate",
    "50-200 s tasks whose estimated_time says a quarter of the time (apimart)",
    "shape",
    generation=GenerationTimes(kind="uniform", low=50.0, high=200.0, min=0.0, max=None),
    estimated_time_bias=0.25,
    estimated_time_error=0.05,
)
"""Long tasks with an estimate four times too short: no task finishes for a long while, so most wait for the first
finish past the longest gap ``max_interval`` allows; they must still hear of it."""
SHAPES = (
    *(row for row in ROWS if row.kind == "shape"),
    LONG,
    MIXED,
    SHORT_ESTIMATE,
    LONG_ESTIMATE,
    LONG_SHORT_ESTIMATE,
)
SEEDS = (20261127, 7, 99)
LAGS = (0.5, 1.0, 2.0, 5.0)


@dataclass
class Outcome:
    row: str
    provider: str
    seed: int
    per_item: float
    p95: float
    p99: float


def sweep(lag: float, rows: tuple[Row, ...], seeds: tuple[int, ...], items: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for row in rows:
        for provider in PROVIDERS:
            for seed in seeds:
                run = Run(
                    row=row,
                    provider=provider,
                    contender=Contender("library", lag),
                    items=items,
                    seed=seed,
                    settle=SETTLE,
                    submit_budget=False,
                )
                figures = play(run, timeout=None)
                outcomes.append(
                    Outcome(
                        row.key,
                        provider,
                        seed,
                        figures["status_requests_per_item"],
                        figures["lag_p95_s"],
                        figures["lag_p99_s"],
                    )
                )
    return outcomes


def summary(lag: float, outcomes: list[Outcome]) -> list[str]:
    over = [o for o in outcomes if o.p95 > lag]
    worst = max(o.p95 / lag for o in outcomes)
    lines = [
        f"### max_lag {lag:g}",
        "",
        f"- runs: {len(outcomes)}; mean status requests per item {statistics.mean(o.per_item for o in outcomes):.2f}",
        f"- worst p95 lag / max_lag: {worst:.2f}; median p99 lag / max_lag: "
        f"{statistics.median(o.p99 / lag for o in outcomes):.2f}",
        f"- runs over max_lag at the 95th percentile: {len(over)}"
        + ("".join(f"\n  - {o.row} / {o.provider} / seed {o.seed}: {o.p95:.2f} s" for o in over)),
        "",
        "| row | provider | req/item (mean over seeds) | p95 lag s (worst seed) |",
        "|---|---|---|---|",
    ]
    for row in dict.fromkeys(o.row for o in outcomes):
        for provider in PROVIDERS:
            mine = [o for o in outcomes if o.row == row and o.provider == provider]
            lines.append(
                f"| {row} | {provider} | {statistics.mean(o.per_item for o in mine):.2f} | "
                f"{max(o.p95 for o in mine):.2f} |"
            )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_contract", description=__doc__)
    parser.add_argument("--lags", type=float, nargs="+", default=list(LAGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--rows", nargs="+", choices=[row.key for row in SHAPES], default=[row.key for row in SHAPES])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--output", type=Path, default=RESULTS / "contract.md")
    args = parser.parse_args(argv)
    rows = tuple(row for row in SHAPES if row.key in args.rows)
    started = time.perf_counter()
    lines = [
        "# The polling contract across seeds and max_lag values (virtual time)",
        "",
        f"- command: `python -m benchmarks.bench_contract` (lags {' '.join(f'{lag:g}' for lag in args.lags)}, "
        f"seeds {' '.join(str(seed) for seed in args.seeds)}, {args.items} items per run)",
        "",
    ]
    for lag in args.lags:
        block = summary(lag, sweep(lag, rows, tuple(args.seeds), args.items))
        print("\n".join(block[:5]), flush=True)
        lines.extend(block)
    lines.insert(3, f"- the whole run took {time.perf_counter() - started:.0f} s of real time")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
