"""Smoke tests of the benchmarks: ``python -m benchmarks.run --smoke`` exits 0 and writes a well-formed JSON report;
``python -m benchmarks.bench_contract`` at a tiny size writes its table.

No timing is asserted: the smoke sizes only exercise the code (simulator and contender processes, the scale run,
the report and the goal checks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_module(*argv: str, timeout: float) -> None:
    """``python -m ARGV`` from the repository root, which must exit 0."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    completed = subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]


@pytest.mark.timeout(150)
def test_smoke_run_writes_a_well_formed_report(tmp_path: Path) -> None:
    run_module("benchmarks.run", "--smoke", "--output-dir", str(tmp_path), timeout=120)

    report = json.loads((tmp_path / "smoke.json").read_text())
    assert (tmp_path / "smoke.md").read_text().startswith("# hailuo_async benchmarks")
    assert report["smoke"] is True
    assert {"cpu_model", "cores", "python"} <= set(report["machine"])
    assert report["command"].startswith("python -m benchmarks.run")

    contenders = {"hailuo_async", "baseline 2 s", "baseline 10 s"}
    workloads = {workload["key"] for workload in report["workloads"]}
    assert workloads == {"a_lognormal", "b_rate_limit", "c_faults"}
    assert {(run["workload"], run["contender"]) for run in report["runs"]} == {
        (workload, contender) for workload in workloads for contender in contenders
    }
    for run in report["runs"]:
        for key in (
            "makespan_s",
            "lower_bound_s",
            "status_requests_per_item",
            "lag_p50_s",
            "lag_p95_s",
            "lag_p99_s",
            "client_cpu_s_per_1k_items",
            "peak_rss_mb",
            "rate_limited",
        ):
            assert isinstance(run[key], (int, float)), (run["contender"], key, run[key])
        assert run["tasks_created"] > 0

    assert [row["outstanding"] for row in report["scale"]] == [500, 2_000]
    for row in report["scale"]:
        assert isinstance(row["bytes_per_task"], float) and isinstance(row["cpu_us_per_check"], float)
    assert report["goals"]
    assert all(isinstance(goal["passed"], bool) and goal["goal"] for goal in report["goals"])


@pytest.mark.timeout(60)
def test_poller_benchmark_writes_a_well_formed_report(tmp_path: Path) -> None:
    """``python -m benchmarks.bench_poller`` at a tiny size (12 items, one provider, one row, the table's contenders,
    a round trip of 0.2 s) exits 0 and writes a well-formed report; in virtual time it takes a second or two."""
    command = ["benchmarks.bench_poller", "--quick", "--items", "12", "--providers", "toapis", "--rows", "linear"]
    run_module(*command, "--latency", "0.2", "--output-dir", str(tmp_path), "--stem", "tiny", timeout=50)

    report = json.loads((tmp_path / "tiny.json").read_text())
    assert (tmp_path / "tiny.md").read_text().startswith("# The shared poller against plain polling loops")
    assert report["latency_s"] == 0.2 and "latency 0.2 s per request" in (tmp_path / "tiny.md").read_text()
    assert report["command"].startswith("python -m benchmarks.bench_poller")
    assert report["providers"] == ["toapis"]
    assert [row["key"] for row in report["rows"]] == ["linear"]
    assert report["contenders"] == ["library max_lag 2", "loop 2 s", "loop 10 s"]
    assert {(run["row"], run["provider"], run["contender"]) for run in report["runs"]} == {
        ("linear", "toapis", contender) for contender in report["contenders"]
    }
    for run in report["runs"]:
        assert run["items"] == 12 and run["tasks_created"] == 12, run
        assert run["completed"] + run["failed"] == 12 and not run["other_errors"] and run["timed_out"] is None, run
        for key in ("status_requests_per_item", "lag_p50_s", "lag_p95_s", "lag_p99_s", "makespan_s", "lower_bound_s"):
            assert isinstance(run[key], (int, float)), (run["contender"], key, run[key])
        assert run["rate_limited"] == 0
        # Every status request answered is counted in one age bin (no limiter here: none was refused).
        assert sum(run["status_per_item_by_age"]) == pytest.approx(run["status_requests_per_item"]), run
    assert "## Where the checks go" in (tmp_path / "tiny.md").read_text()
    assert report["goals"]
    assert all(isinstance(goal["passed"], bool) and goal["goal"] for goal in report["goals"])
    assert not list(tmp_path.glob("*.png"))  # no plot unless asked: matplotlib is not needed


@pytest.mark.timeout(60)
def test_poller_benchmark_webhook_rows_write_a_well_formed_report(tmp_path: Path) -> None:
    """The webhook row with dropped deliveries at a tiny size (12 items) on all three providers: the library with a
    webhook beside the library at max_lag 2 and the 2 s loop; every delivery handed to the client is accepted (the
    toapis signature, MiniMax's challenge), every item finishes, and the figures are there (no timing asserted)."""
    command = ["benchmarks.bench_poller", "--items", "12", "--rows", "webhook_drop30"]
    run_module(*command, "--output-dir", str(tmp_path), "--stem", "hooks", timeout=50)

    report = json.loads((tmp_path / "hooks.json").read_text())
    assert "## Webhooks" in (tmp_path / "hooks.md").read_text()
    assert [row["key"] for row in report["rows"]] == ["webhook_drop30"]
    assert report["contenders"] == ["library webhook fallback 30", "library max_lag 2", "loop 2 s"]
    assert {(run["provider"], run["contender"]) for run in report["runs"]} == {
        (provider, contender) for provider in ("apimart", "toapis", "minimax") for contender in report["contenders"]
    }
    for run in report["runs"]:
        assert run["completed"] + run["failed"] == 12 and not run["other_errors"] and run["timed_out"] is None, run
        hooks = run["webhook"]
        if run["kind"] != "webhook":
            assert hooks is None, run
            continue
        assert hooks["webhooks_sent"] > 0 and hooks["webhooks_refused"] == 0, run
        assert hooks["webhook_challenges_failed"] == 0, run
        assert (hooks["webhook_challenges"] == 12) == (run["provider"] == "minimax"), run
        assert isinstance(run["lag_p95_s"], float), run
    goals = [goal for goal in report["goals"] if goal["row"] == "webhook_drop30"]
    assert len(goals) == 9 and all(isinstance(goal["passed"], bool) for goal in goals)


def test_contract_sweep_reports_every_lag(tmp_path: Path) -> None:
    output = tmp_path / "contract.md"
    run_module(
        "benchmarks.bench_contract",
        *("--lags", "1", "2", "--seeds", "7", "--rows", "linear", "long", "--items", "12"),
        *("--output", str(output)),
        timeout=120,
    )
    text = output.read_text()
    assert text.startswith("# The polling contract across seeds and max_lag values")
    assert "### max_lag 1" in text and "### max_lag 2" in text
    for row in ("linear", "long"):
        for provider in ("apimart", "toapis", "minimax"):
            assert f"| {row} | {provider} |" in text


def test_request_floor_counts_what_the_limiter_lets_through() -> None:
    """The request floor (the least time in which the requests every client must send are answered under a row's
    limit) follows the limiter: a burst goes at once, the rest at the rate; a fixed window lets a window's worth
    through at each reset; no limit, no floor. It is what marks MiniMax's makespan goal out of reach on the limiter
    rows (three limited requests per item, not two)."""
    from benchmarks.bench_poller import LATENCY, REQUIRED_PER_ITEM, request_floor
    from hailuo_async.simulator import RateLimit

    bucket = RateLimit(kind="token_bucket", rate=20.0, burst=20.0)
    assert request_floor(60, bucket, 0.0) == pytest.approx(2.0 + LATENCY, abs=0.06)  # 20 at once, 40 at 20/s
    assert request_floor(20, bucket, 0.0) == pytest.approx(LATENCY)
    window = RateLimit(kind="fixed_window", rate=20.0, window=1.0)
    assert request_floor(41, window, 0.0) == pytest.approx(2.0 + LATENCY, abs=0.06)  # the third window's first
    assert request_floor(100, None, 0.0) is None
    assert request_floor(20, bucket, 0.0, latency=0.3) == pytest.approx(0.3)  # the burst, answered a round trip later
    assert REQUIRED_PER_ITEM["minimax"] == REQUIRED_PER_ITEM["apimart"] + 1
