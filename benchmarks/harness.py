"""Shared plumbing of the benchmarks: the workloads, the simulator subprocess, process resources, statistics.

Nothing here knows about a particular contender; :mod:`benchmarks.run` drives the runs and :mod:`benchmarks.contender`
is what runs inside each contender's own process.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
API_KEY = "sk-bench-0001"
MODEL = "MiniMax-Hailuo-02"
SEED = 20240611


def workload_prompts(count: int, seed: int) -> list[str]:
    """The seeded workload: ``count`` distinct prompts. The simulator draws each task's generation time, failure and
    ``estimated_time`` noise from (seed, prompt), so every contender meets exactly the same tasks."""
    return [
        f"benchmark {seed}-{index:05d}: a paper boat drifting down a rainy street at dusk" for index in range(count)
    ]


def child_env(source: Path = ROOT) -> dict[str, str]:
    """The environment of a child process: ``source`` (this checkout, or a snapshot of it) first on ``PYTHONPATH``."""
    paths = [str(source), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def snapshot(destination: Path) -> Path:
    """Copy ``hailuo_async`` and ``benchmarks`` into ``destination``: every process of one run then imports the same
    code, even if the checkout changes while the run goes on. Run children with ``cwd`` and ``PYTHONPATH`` there."""
    ignore = shutil.ignore_patterns("__pycache__", "results")
    for package in ("hailuo_async", "benchmarks"):
        shutil.copytree(ROOT / package, destination / package, ignore=ignore)
    return destination


def library_digest(source: Path = ROOT) -> str:
    """SHA-256 (first 12 hex digits) of the library's Python sources: which code exactly was measured."""
    digest = hashlib.sha256()
    for path in sorted((source / "hailuo_async").rglob("*.py")):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


class SimulatorProcess:
    """``python -m hailuo_async.simulator`` in its own process, bound to 127.0.0.1 only."""

    def __init__(self, config: dict[str, Any], source: Path = ROOT) -> None:
        self.config = {**config, "host": "127.0.0.1"}
        self.source = source
        self.process: subprocess.Popen[str] | None = None
        self.urls: dict[str, str] = {}

    def start(self) -> dict[str, str]:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hailuo_async.simulator", "--config", json.dumps(self.config)],
            cwd=self.source,
            env=child_env(self.source),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise RuntimeError(f"the simulator exited with code {self.process.returncode} before printing its URLs")
        self.urls = json.loads(line)
        return self.urls

    @property
    def control(self) -> str:
        """Base URL of the ``/_sim`` control endpoints."""
        return self.urls["stats"].rsplit("/_sim/", 1)[0] + "/_sim"

    def cpu_seconds(self) -> float | None:
        """User + system CPU the simulator has used so far (Linux only)."""
        if self.process is None:
            return None
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> int:
        process = self.process
        if process is None:
            return 0
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        self.process = None
        return process.returncode


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of another process, from ``/proc`` (None where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system CPU time of this process so far (``getrusage(RUSAGE_SELF)``)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss``, kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc/self/statm``; peak RSS elsewhere)."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return int(peak_rss_mb() * 1024 * 1024)
    return resident * os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def source_state() -> dict[str, Any]:
    """The commit measured and any uncommitted library changes (results belong to exactly that code)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.rstrip() if done.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "hailuo_async").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown", "uncommitted_library_files": dirty}


def machine() -> dict[str, Any]:
    """CPU model, cores and versions of the machine running the benchmark."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp

    import hailuo_async

    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "hailuo_async": hailuo_async.__version__,
    }
