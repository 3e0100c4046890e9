"""Smoke test of the benchmarks: ``python -m benchmarks.run --smoke`` exits 0 and writes a well-formed JSON report.

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


@pytest.mark.timeout(150)
def test_smoke_run_writes_a_well_formed_report(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--output-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]

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
