"""Run every benchmark and compare hailuo_async with what users write today, side by side, in one run.

    python -m benchmarks.run               # the full run (about 15 minutes)
    python -m benchmarks.run --smoke       # tiny sizes, for CI (well under a minute)
    python -m benchmarks.run --only poller # the shared poller against plain loops only (virtual time, ~3 minutes)

For each workload and each contender, a fresh simulator process (same seed, so the same tasks) and a fresh contender
process are started; the contender's CPU time and peak RSS are its own, the simulator's are apart. Figures come
from the contender (when each result reached the caller, CPU, RSS) and from the simulator (``/_sim/stats`` request
counts and 429s, sampled during the run for throughput; ``/_sim/tasks`` for each task's ``created_at``/``ready_at``).
Then the scale runs (:mod:`benchmarks.scale`), then :mod:`benchmarks.bench_poller` (the shared poller against plain
polling loops, on all three providers, in virtual time; its own ``poller.md``/``poller.json``, ``poller_smoke.*``
with ``--smoke``, and a summary here). A markdown table and the goal checks are printed and written to
``benchmarks/results/latest.md`` (``smoke.md`` with ``--smoke``) with a JSON copy next to it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    RESULTS,
    ROOT,
    SEED,
    SimulatorProcess,
    child_env,
    library_digest,
    machine,
    percentile,
    snapshot,
    source_state,
)

RATE_LIMIT = 20.0
"""Requests per second the simulator allows in the rate-limited workload (burst of the same size)."""


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    items: int
    simulator: dict[str, Any]
    rate_limited: bool = False


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # "hailuo_async" or "baseline"
    interval: float | None = None


@dataclass
class Sampler:
    """Reads ``/_sim/stats`` every ``period`` seconds in a thread of this (the driver's) process."""

    url: str
    period: float
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (time, answered not 429, 429s)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                stats = fetch_json(self.url)
            except OSError:
                stats = None
            if stats is not None:
                answered = sum(count for status, count in stats["responses_by_status"].items() if int(status) != 429)
                self.samples.append((time.time(), answered, int(stats["rate_limited"])))
            self._stop.wait(self.period)

    def accepted_between(self, start: float, end: float) -> float | None:
        """Requests answered (not 429) between two wall-clock times, interpolated between samples."""
        if len(self.samples) < 2 or end <= start:
            return None

        def at(moment: float) -> float:
            samples = self.samples
            if moment <= samples[0][0]:
                return float(samples[0][1])
            for (t0, a0, _), (t1, a1, _) in itertools.pairwise(samples):
                if t0 <= moment <= t1:
                    return a0 + (a1 - a0) * (moment - t0) / (t1 - t0) if t1 > t0 else float(a1)
            return float(samples[-1][1])

        return at(end) - at(start)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy: 127.0.0.1 only


def fetch_json(url: str) -> Any:
    with _OPENER.open(url, timeout=30) as response:
        return json.loads(response.read())


def workloads(smoke: bool) -> list[Workload]:
    if smoke:
        generation: dict[str, Any] = {"kind": "uniform", "low": 0.2, "high": 1.0, "min": 0.2, "max": 1.0}
        sizes = (20, 20, 20)
    else:
        # Real Hailuo-02 clips take minutes with a long tail; scaled down to seconds so a run takes about a minute.
        generation = {"kind": "lognormal", "median": 15.0, "sigma": 0.5, "min": 4.0, "max": 60.0}
        sizes = (1000, 400, 1000)
    base: dict[str, Any] = {"seed": SEED, "generation": generation, "estimated_time_error": 0.3}
    limit = {"rate": RATE_LIMIT, "burst": RATE_LIMIT}
    return [
        Workload("a_lognormal", f"(a) {sizes[0]:,} items, lognormal times, noisy estimated_time", sizes[0], base),
        Workload(
            "b_rate_limit",
            f"(b) {sizes[1]:,} items, provider limit {RATE_LIMIT:g} req/s",
            sizes[1],
            {**base, "rate_limit": limit},
            rate_limited=True,
        ),
        Workload(
            "c_faults",
            f"(c) {sizes[2]:,} items, 2% failures + 1% 5xx",
            sizes[2],
            {**base, "failure_rate": 0.02, "faults": {"error_5xx": 0.01}},
        ),
    ]


def contenders(smoke: bool) -> list[Contender]:
    scale = 0.1 if smoke else 1.0  # smoke: generation times are ~15x shorter, so are the baseline's intervals
    return [
        Contender("hailuo_async", "hailuo_async"),
        Contender("baseline 2 s", "baseline", 2.0 * scale),
        Contender("baseline 10 s", "baseline", 10.0 * scale),
    ]


def run_contender(
    workload: Workload,
    contender: Contender,
    *,
    concurrency: int,
    workdir: Path,
    source: Path,
    period: float,
    timeout: float,
) -> dict[str, Any]:
    """One contender on one workload against a fresh simulator process; returns the measured figures."""
    simulator = SimulatorProcess(workload.simulator, source)
    urls = simulator.start()
    sampler = Sampler(urls["stats"], period)
    output = workdir / f"{workload.key}-{contender.kind}-{contender.interval}.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.contender",
        "--contender",
        contender.kind,
        "--base-url",
        urls["apimart"],
        "--items",
        str(workload.items),
        "--seed",
        str(SEED),
        "--concurrency",
        str(concurrency),
        "--output",
        str(output),
    ]
    if contender.interval is not None:
        command += ["--interval", str(contender.interval)]
    try:
        server_cpu0 = simulator.cpu_seconds()
        sampler.start()
        completed = subprocess.run(command, cwd=source, env=child_env(source), timeout=timeout, check=False)
        sampler.stop()
        if completed.returncode != 0:
            raise RuntimeError(f"{contender.name} on {workload.key} exited with code {completed.returncode}")
        stats = fetch_json(urls["stats"])
        tasks = fetch_json(simulator.control + "/tasks")
        server_cpu1 = simulator.cpu_seconds()
    finally:
        sampler.stop()
        simulator.stop()
    result = json.loads(output.read_text())
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    return figures(workload, contender, result, stats, tasks, sampler, server_cpu)


def figures(
    workload: Workload,
    contender: Contender,
    result: dict[str, Any],
    stats: dict[str, Any],
    tasks: list[dict[str, Any]],
    sampler: Sampler,
    server_cpu: float | None,
) -> dict[str, Any]:
    items = workload.items
    started, finished = float(result["started"]), float(result["finished"])
    arrivals: dict[str, float] = result["arrivals"]
    ready = [float(task["ready_at"]) for task in tasks if task["ready_at"] is not None]
    lags = [arrivals[task["task_id"]] - float(task["ready_at"]) for task in tasks if task["task_id"] in arrivals]
    routes: dict[str, int] = stats["requests_by_route"]
    status_requests = routes.get("apimart.status", 0)
    submit_requests = routes.get("apimart.submit", 0)
    requests = status_requests + submit_requests
    makespan = finished - started
    lower_bound = max(ready) - started if ready else None
    created = sorted(float(task["created_at"]) for task in tasks)
    window = (created[0], created[-1]) if len(created) >= 2 else None
    accepted_in_window = sampler.accepted_between(*window) if window is not None else None
    answered = requests - int(stats["rate_limited"])
    outcomes: dict[str, int] = result["outcomes"]
    return {
        "workload": workload.key,
        "contender": contender.name,
        "interval": contender.interval,
        "items": items,
        "completed": outcomes.get("completed", 0),
        "failed": outcomes.get("failed", 0),
        "other_errors": {kind: n for kind, n in outcomes.items() if kind not in ("completed", "failed")},
        "tasks_created": len(tasks),
        "makespan_s": makespan,
        "lower_bound_s": lower_bound,
        "makespan_ratio": makespan / lower_bound if lower_bound else None,
        "submit_requests": submit_requests,
        "status_requests": status_requests,
        "status_requests_per_item": status_requests / items,
        "requests_per_item": requests / items,
        "lag_p50_s": percentile(lags, 50),
        "lag_p95_s": percentile(lags, 95),
        "lag_p99_s": percentile(lags, 99),
        "lag_max_s": max(lags) if lags else None,
        "lag_samples": len(lags),
        "client_cpu_s": result["cpu_run_seconds"],
        "client_cpu_s_per_1k_items": result["cpu_run_seconds"] / items * 1000,
        "client_cpu_ms_per_request": result["cpu_run_seconds"] / requests * 1000 if requests else None,
        "client_cpu_process_s": result["cpu_process_seconds"],
        "peak_rss_mb": result["peak_rss_mb"],
        "rate_limited": int(stats["rate_limited"]),
        "rate_limited_share": int(stats["rate_limited"]) / requests if requests else 0.0,
        "accepted_rps_overall": answered / makespan if makespan > 0 else None,
        "submit_window_s": window[1] - window[0] if window is not None else None,
        "last_submit_s": created[-1] - started if created else None,
        "accepted_rps_submit_window": (
            accepted_in_window / (window[1] - window[0])
            if window is not None and accepted_in_window is not None
            else None
        ),
        "server_cpu_s": server_cpu,
        "client_statistics": result.get("client_statistics"),
    }


def run_scale(sizes: list[int], checks: int, workdir: Path, source: Path, timeout: float) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        output = workdir / f"scale-{size}.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--outstanding",
            str(size),
            "--checks",
            str(checks),
            "--output",
            str(output),
        ]
        subprocess.run(command, cwd=source, env=child_env(source), timeout=timeout, check=True)
        rows.append(json.loads(output.read_text()))
        print(f"  scale {size:>7,} outstanding: {rows[-1]['cpu_us_per_check']:.0f} us/check", flush=True)
    return rows


# -- report -------------------------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def runs_table(runs: list[dict[str, Any]], specs: list[Workload]) -> list[str]:
    titles = {spec.key: spec.title for spec in specs}
    limited = {spec.key for spec in specs if spec.rate_limited}
    lines = [
        "| workload | contender | done / failed | last submit s | makespan s (x lower bound) | status req/item | "
        "lag p50 / p95 / p99 s | CPU s / 1k items | CPU ms / request | peak RSS MB | 429s (share) | "
        "accepted req/s while submitting |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        others = sum(run["other_errors"].values())
        done = f"{run['completed']} / {run['failed']}" + (f" (+{others} errors)" if others else "")
        throughput = _f(run["accepted_rps_submit_window"]) if run["workload"] in limited else "-"
        lines.append(
            f"| {titles[run['workload']]} | {run['contender']} | {done} | {_f(run['last_submit_s'])} | "
            f"{_f(run['makespan_s'])} (x{_f(run['makespan_ratio'], 2)}) | {_f(run['status_requests_per_item'], 2)} | "
            f"{_f(run['lag_p50_s'], 2)} / {_f(run['lag_p95_s'], 2)} / {_f(run['lag_p99_s'], 2)} | "
            f"{_f(run['client_cpu_s_per_1k_items'], 2)} | {_f(run['client_cpu_ms_per_request'], 2)} | "
            f"{_f(run['peak_rss_mb'])} | {run['rate_limited']} ({run['rate_limited_share']:.1%}) | "
            f"{throughput} |"
        )
    return lines


def scale_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| outstanding tasks | RSS of the open client MB | RSS with all tracked MB | bytes per outstanding task | "
        "peak RSS MB | checks measured | CPU us per status check (median of 5; min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['outstanding']:,} | {_f(row['rss_open_mb'])} | {_f(row['rss_tracked_mb'])} | "
            f"{_f(row['bytes_per_task'], 0)} | {_f(row['peak_rss_mb'])} | {row['checks_measured']:,} | "
            f"{_f(row['cpu_us_per_check'])} ({_f(row['cpu_us_per_check_min'])}) |"
        )
    return lines


def goals(runs: list[dict[str, Any]], scale: list[dict[str, Any]], specs: list[Workload]) -> list[dict[str, Any]]:
    """Every goal of the issue, checked against the measured figures; nothing is rounded in favour of a PASS."""
    checks: list[dict[str, Any]] = []

    def add(name: str, passed: bool, detail: str) -> None:
        checks.append({"goal": name, "passed": passed, "detail": detail})

    by = {(run["workload"], run["contender"]): run for run in runs}
    for spec in specs:
        lib, b2, b10 = (by.get((spec.key, name)) for name in ("hailuo_async", "baseline 2 s", "baseline 10 s"))
        if lib is None or b2 is None or b10 is None:
            continue
        w = spec.key.split("_", 1)[0]
        ratio = lib["status_requests_per_item"] / b2["status_requests_per_item"]
        add(
            f"({w}) status requests/item <= 1/3 of baseline 2 s",
            ratio <= 1 / 3,
            f"{lib['status_requests_per_item']:.2f} vs {b2['status_requests_per_item']:.2f} (ratio {ratio:.2f})",
        )
        add(
            f"({w}) p95 detection lag <= baseline 2 s",
            lib["lag_p95_s"] is not None and b2["lag_p95_s"] is not None and lib["lag_p95_s"] <= b2["lag_p95_s"],
            f"{_f(lib['lag_p95_s'], 2)} s vs {_f(b2['lag_p95_s'], 2)} s",
        )
        add(
            f"({w}) fewer status requests/item than baseline 10 s",
            lib["status_requests_per_item"] < b10["status_requests_per_item"],
            f"{lib['status_requests_per_item']:.2f} vs {b10['status_requests_per_item']:.2f}",
        )
        add(
            f"({w}) p95 detection lag far lower (<= half) than baseline 10 s",
            lib["lag_p95_s"] is not None and b10["lag_p95_s"] is not None and lib["lag_p95_s"] <= b10["lag_p95_s"] / 2,
            f"{_f(lib['lag_p95_s'], 2)} s vs {_f(b10['lag_p95_s'], 2)} s",
        )
        add(
            f"({w}) client CPU/item <= baseline 2 s",
            lib["client_cpu_s"] <= b2["client_cpu_s"],
            f"{lib['client_cpu_s_per_1k_items']:.2f} vs {b2['client_cpu_s_per_1k_items']:.2f} s per 1k items",
        )
        add(
            f"({w}) client CPU/item <= baseline 10 s (stricter reading)",
            lib["client_cpu_s"] <= b10["client_cpu_s"],
            f"{lib['client_cpu_s_per_1k_items']:.2f} vs {b10['client_cpu_s_per_1k_items']:.2f} s per 1k items",
        )
        if spec.rate_limited:
            add(
                f"({w}) at most 1% of requests answered 429",
                lib["rate_limited_share"] <= 0.01,
                f"{lib['rate_limited']} of {lib['submit_requests'] + lib['status_requests']} "
                f"({lib['rate_limited_share']:.2%})",
            )
            throughput = lib["accepted_rps_submit_window"]
            add(
                f"({w}) throughput within 10% of the {RATE_LIMIT:g} req/s limit",
                throughput is not None and abs(throughput - RATE_LIMIT) <= 0.1 * RATE_LIMIT,
                f"{_f(throughput, 2)} req/s accepted while submits were pending",
            )
    if scale:
        largest = max(scale, key=lambda row: row["outstanding"])
        smallest = min(scale, key=lambda row: row["outstanding"])
        add(
            f"{largest['outstanding']:,} outstanding tasks under 300 MB RSS",
            largest["peak_rss_mb"] < 300,
            f"peak RSS {largest['peak_rss_mb']:.1f} MB",
        )
        costs = [row["cpu_us_per_check"] for row in scale]
        spread = largest["cpu_us_per_check"] / smallest["cpu_us_per_check"]
        add(
            "per-check cost flat (largest N within 1.5x of smallest N)",
            spread <= 1.5,
            " / ".join(f"{cost:.0f}" for cost in costs)
            + " us at "
            + " / ".join(f"{row['outstanding']:,}" for row in scale)
            + f" (ratio {spread:.2f})",
        )
    return checks


def run_poller(smoke: bool, output_dir: Path, source: Path, *, timeout: float) -> dict[str, Any]:
    """:mod:`benchmarks.bench_poller` in its own process on the run's snapshot of the code; returns its JSON report.
    ``smoke``: one provider, two rows, 12 items, the table's contenders only."""
    stem = "poller_smoke" if smoke else "poller"
    command = [sys.executable, "-m", "benchmarks.bench_poller", "--output-dir", str(output_dir), "--stem", stem]
    if smoke:
        command += ["--quick", "--items", "12", "--providers", "apimart", "--rows", "linear", "tb_burst20"]
    completed = subprocess.run(
        command, cwd=source, env=child_env(source), timeout=timeout, check=False, stdout=subprocess.DEVNULL
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmarks.bench_poller exited with code {completed.returncode}")
    report: dict[str, Any] = json.loads((output_dir / f"{stem}.json").read_text())
    return report


def poller_summary(poller: dict[str, Any]) -> list[str]:
    """One line per (row, provider) of the poller benchmark: the library with a webhook (webhook rows), the library at
    max_lag 2, the 2 s and 10 s loops (status requests per item / p95 lag), and how many of the row's goals pass."""
    from benchmarks.bench_poller import FALLBACK_LAG, TABLE_INTERVALS, TABLE_LAG, Contender

    names = [
        Contender("webhook", FALLBACK_LAG).name,
        Contender("library", TABLE_LAG).name,
        *(Contender("loop", i).name for i in TABLE_INTERVALS),
    ]
    by = {(run["row"], run["provider"], run["contender"]): run for run in poller["runs"]}
    keys = list(dict.fromkeys((run["row"], run["provider"]) for run in poller["runs"]))
    lines = [
        "| row | provider | " + " | ".join(f"{name}: req/item / p95 lag s" for name in names) + " | goals |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for row, provider in keys:
        cells = []
        for name in names:
            run = by.get((row, provider, name))
            cells.append("-" if run is None else f"{run['status_requests_per_item']:.2f} / {_f(run['lag_p95_s'], 2)}")
        mine = [g for g in poller["goals"] if g["row"] == row and g["provider"] == provider]
        lines.append(
            f"| {row} | {provider} | " + " | ".join(cells) + f" | {sum(g['passed'] for g in mine)} of {len(mine)} |"
        )
    passed = sum(goal["passed"] for goal in poller["goals"])
    lines += [
        "",
        f"Poller goals: {passed} of {len(poller['goals'])} pass (every check in `results/poller.md`).",
    ]
    return lines


def render(report: dict[str, Any], specs: list[Workload]) -> str:
    info = report["machine"]
    lines = [
        f"# hailuo_async benchmarks{' (smoke)' if report['smoke'] else ''}",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        f"- code: commit {report['source']['commit']}"
        + (
            f" plus uncommitted changes to {', '.join(report['source']['uncommitted_library_files'])}"
            if report["source"]["uncommitted_library_files"]
            else ""
        )
        + f" (library sources sha256 {report['source']['library_sha256']})",
        f"- machine: {info['cpu_model']}, {info['cores']} cores, {info['implementation']} {info['python']}, "
        f"{info['platform']}; aiohttp {info['aiohttp']}, hailuo_async {info['hailuo_async']}",
        f"- concurrency (submits in flight) {report['concurrency']} for every contender; seed {SEED}; "
        f"a fresh simulator process per contender",
        "",
        "## Workloads",
        "",
        *runs_table(report["runs"], specs),
        "",
        "## Scale (MockTransport + FakeClock, no network)",
        "",
        *scale_table(report["scale"]),
        "",
        "## Goals",
        "",
        *(f"- {'PASS' if g['passed'] else 'FAIL'}: {g['goal']} ({g['detail']})" for g in report["goals"]),
        "",
    ]
    poller = report.get("poller")
    if poller:
        lines += [
            "## Shared poller against plain loops (virtual time, `benchmarks/bench_poller.py`)",
            "",
            f"Command `{poller['command']}`; {poller['items_note']} items per row; took {poller['wall_s']:.0f} s.",
            "",
            *poller_summary(poller),
            "",
        ]
    if report["smoke"]:
        lines += [
            "Smoke sizes are far too small for the goals to mean anything; they are shown to exercise the code.",
            "",
        ]
    return "\n".join(lines)


MARKERS = ("<!-- benchmark:start -->", "<!-- benchmark:end -->")


def publish(report: dict[str, Any], specs: list[Workload], text: str) -> None:
    """Put the latest full run into the top-level README (headline table) and ``benchmarks/README.md`` (all of it),
    between the benchmark markers."""
    info = report["machine"]
    runs = report["runs"]
    headline = [
        f"Command `{report['command']}`, {report['date']}, commit {report['source']['commit']}; "
        f"{info['cpu_model']}, {info['cores']} cores, {info['implementation']} {info['python']}.",
        "",
        "| workload | contender | status req/item | lag p50 / p95 s | CPU s / 1k items | 429s |",
        "|---|---|---|---|---|---|",
    ]
    titles = {spec.key: spec.title for spec in specs}
    for run in runs:
        headline.append(
            f"| {titles[run['workload']]} | {run['contender']} | {_f(run['status_requests_per_item'], 2)} | "
            f"{_f(run['lag_p50_s'], 2)} / {_f(run['lag_p95_s'], 2)} | {_f(run['client_cpu_s_per_1k_items'], 2)} | "
            f"{run['rate_limited']} ({run['rate_limited_share']:.1%}) |"
        )
    issue = [goal for goal in report["goals"] if "stricter reading" not in goal["goal"]]
    extra = [goal for goal in report["goals"] if "stricter reading" in goal["goal"]]
    headline += ["", f"The issue's goals: {sum(goal['passed'] for goal in issue)} of {len(issue)} pass."]
    headline += [f"- FAIL: {goal['goal']} ({goal['detail']})" for goal in issue if not goal["passed"]]
    if extra:
        headline.append(
            f"Our stricter extra reading, client CPU per item at most the 10 s loop's (which sends as few status "
            f"requests): {sum(goal['passed'] for goal in extra)} of {len(extra)} pass; per request the library "
            "costs about twice a bare aiohttp loop."
        )
    body = text.split("\n", 2)[2].replace("\n## ", "\n### ")  # drop the title; sections one level down
    for path, content in ((ROOT / "README.md", "\n".join(headline)), (ROOT / "benchmarks" / "README.md", body)):
        if not path.exists():
            continue
        old = path.read_text()
        start, end = old.find(MARKERS[0]), old.find(MARKERS[1])
        if start < 0 or end < start:
            continue
        path.write_text(old[: start + len(MARKERS[0])] + "\n" + content.strip() + "\n" + old[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes of every workload, a few seconds each")
    parser.add_argument("--concurrency", type=int, default=32, help="submits in flight, for every contender")
    parser.add_argument("--output-dir", type=Path, default=RESULTS, help=f"where results go (default {RESULTS})")
    parser.add_argument(
        "--only",
        choices=("workloads", "scale", "poller"),
        default=None,
        help="run one part only (poller: writes only results/poller.md and poller.json, or poller_smoke.*)",
    )
    parser.add_argument(
        "--workload",
        action="append",
        choices=("a", "b", "c"),
        help="run only this workload (repeatable); the results go to partial.md/json, not latest",
    )
    parser.add_argument(
        "--contender",
        action="append",
        choices=("hailuo_async", "baseline 2 s", "baseline 10 s"),
        help="run only this contender (repeatable); the results go to partial.md/json, not latest",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="run nothing: render results/latest.json again and update the READMEs' benchmark sections",
    )
    args = parser.parse_args(argv)

    if args.publish:
        saved: dict[str, Any] = json.loads((RESULTS / "latest.json").read_text())
        saved_specs = [
            Workload(w["key"], w["title"], w["items"], w["simulator"], "rate_limit" in w["simulator"])
            for w in saved["workloads"]
        ]
        saved_text = render(saved, saved_specs)
        (RESULTS / "latest.md").write_text(saved_text)
        publish(saved, saved_specs, saved_text)
        print("updated results/latest.md and the benchmark sections of README.md and benchmarks/README.md")
        return 0

    specs = [spec for spec in workloads(args.smoke) if not args.workload or spec.key[0] in args.workload]
    racers = [racer for racer in contenders(args.smoke) if not args.contender or racer.name in args.contender]
    partial = bool(args.workload or args.contender)
    command = "python -m benchmarks.run" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    runs: list[dict[str, Any]] = []
    scale: list[dict[str, Any]] = []
    poller: dict[str, Any] | None = None
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hailuo-bench-") as tmp:
        workdir = Path(tmp)
        # Every process of the run imports one snapshot of the code, whatever happens to the checkout meanwhile.
        code = snapshot(workdir / "src")
        source = {**source_state(), "library_sha256": library_digest(code)}
        if args.only == "poller":
            print("shared poller against plain loops (virtual time) ...", flush=True)
            run_poller(args.smoke, args.output_dir, code, timeout=120 if args.smoke else 1800)
            stem = "poller_smoke" if args.smoke else "poller"
            print((args.output_dir / f"{stem}.md").read_text())
            print(f"wrote {args.output_dir / (stem + '.md')} and {stem}.json")
            return 0
        if args.only not in ("scale", "poller"):
            for spec in specs:
                for racer in racers:
                    print(f"{spec.title}: {racer.name} ...", flush=True)
                    run = run_contender(
                        spec,
                        racer,
                        concurrency=args.concurrency,
                        workdir=workdir,
                        source=code,
                        period=0.1 if args.smoke else 0.5,
                        timeout=120 if args.smoke else 1200,
                    )
                    runs.append(run)
                    print(
                        f"  makespan {run['makespan_s']:.1f} s, {run['status_requests_per_item']:.2f} status req/item, "
                        f"lag p95 {_f(run['lag_p95_s'], 2)} s, CPU {run['client_cpu_s']:.2f} s, "
                        f"{run['rate_limited']} x 429",
                        flush=True,
                    )
        if args.only not in ("workloads", "poller"):
            sizes, checks = ([500, 2_000], 2_000) if args.smoke else ([1_000, 10_000, 100_000], 50_000)
            print("scale ...", flush=True)
            scale = run_scale(sizes, checks, workdir, code, timeout=120 if args.smoke else 900)
        if args.only is None and not partial:
            print("shared poller against plain loops (virtual time) ...", flush=True)
            poller = run_poller(args.smoke, args.output_dir, code, timeout=120 if args.smoke else 1800)
    report: dict[str, Any] = {
        "command": command,
        "smoke": args.smoke,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(),
        "source": source,
        "concurrency": args.concurrency,
        "seed": SEED,
        "workloads": [{"key": s.key, "title": s.title, "items": s.items, "simulator": s.simulator} for s in specs],
        "runs": runs,
        "scale": scale,
        "goals": goals(runs, scale, specs),
        "poller": poller,
    }
    text = render(report, specs)
    print()
    print(text)
    stem = "partial" if partial else "smoke" if args.smoke else "latest"
    (args.output_dir / f"{stem}.md").write_text(text)
    (args.output_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output_dir / (stem + '.md')} and {stem}.json")
    if stem == "latest" and args.only is None and args.output_dir == RESULTS:
        publish(report, specs, text)
        print("updated the benchmark sections of README.md and benchmarks/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
