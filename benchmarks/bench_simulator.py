"""Status-endpoint throughput of ``hailuo_async.simulator``.

Starts ``python -m hailuo_async.simulator`` in a separate process, creates N tasks, then hammers the status route
with M concurrent aiohttp workers for a few seconds and reports requests per second. Results go to
``benchmarks/results/simulator.json`` (not for ``--smoke`` unless ``--output`` is given).

    python benchmarks/bench_simulator.py                 # 200 tasks, 64 workers, 5 s
    python benchmarks/bench_simulator.py --smoke         # a tiny run, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "simulator.json"
AUTH = {"Authorization": "Bearer sk-bench-0001"}
# Tasks finish after 1-3 s, so a run polls queued, running and completed tasks (completed ones sign a CDN URL).
SIM_CONFIG = '{"generation": {"kind": "uniform", "low": 1.0, "high": 3.0}}'


def status_url(urls: dict[str, str], provider: str, task_id: str) -> str:
    if provider == "apimart":
        return f"{urls['apimart']}/v1/tasks/{task_id}"
    if provider == "toapis":
        return f"{urls['toapis']}/v1/videos/generations/{task_id}"
    return f"{urls['minimax']}/v1/query/video_generation?task_id={task_id}"


async def create_tasks(session: aiohttp.ClientSession, urls: dict[str, str], provider: str, count: int) -> list[str]:
    path = "/v1/video_generation" if provider == "minimax" else "/v1/videos/generations"

    async def one(n: int) -> str:
        body = {"model": "MiniMax-Hailuo-02", "prompt": f"benchmark task {n}"}
        async with session.post(urls[provider] + path, json=body, headers=AUTH) as response:
            answer = await response.json()
        if provider == "apimart":
            return str(answer["data"][0]["task_id"])
        return str(answer["id"] if provider == "toapis" else answer["task_id"])

    semaphore = asyncio.Semaphore(32)

    async def bounded(n: int) -> str:
        async with semaphore:
            return await one(n)

    return list(await asyncio.gather(*(bounded(n) for n in range(count))))


async def hammer(
    session: aiohttp.ClientSession, urls: list[str], workers: int, warmup: float, duration: float
) -> tuple[int, int, float]:
    """Poll ``urls`` round-robin from ``workers`` coroutines; count answers after ``warmup`` for ``duration``."""
    cycle = itertools.cycle(urls)
    counting = False
    done = errors = 0
    stop = False

    async def worker() -> None:
        nonlocal done, errors
        while not stop:
            try:
                async with session.get(next(cycle), headers=AUTH) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if counting:
                if ok:
                    done += 1
                else:
                    errors += 1

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(warmup)
    counting = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    counting = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*tasks)
    return done, errors, elapsed


def start_simulator() -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "hailuo_async.simulator", "--config", SIM_CONFIG],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        raise SystemExit(f"the simulator exited with code {process.returncode} before printing its URLs")
    return process, json.loads(line)


def stop_simulator(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    return process.returncode


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux only; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, urls: dict[str, str], server_pid: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        task_ids = await create_tasks(session, urls, args.provider, args.tasks)
        targets = [status_url(urls, args.provider, task_id) for task_id in task_ids]
        server_cpu = cpu_seconds(server_pid)
        done, errors, elapsed = await hammer(session, targets, args.concurrency, args.warmup, args.duration)
        server_cpu_after = cpu_seconds(server_pid)
    # Share of one core the simulator used during warm-up + measurement; near 1.0 means the server is the limit.
    server_load = None
    if server_cpu is not None and server_cpu_after is not None:
        server_load = round((server_cpu_after - server_cpu) / (elapsed + args.warmup), 2)
    return {
        "benchmark": "simulator status throughput",
        "provider": args.provider,
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 3),
        "requests": done,
        "errors": errors,
        "requests_per_second": round(done / elapsed, 1),
        "server_cpu_share": server_load,
        "smoke": args.smoke,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--provider", choices=("apimart", "toapis", "minimax"), default="apimart")
    parser.add_argument("--tasks", type=int, default=200, help="tasks to create before polling (default 200)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent status workers (default 64)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    parser.add_argument("--output", type=Path, default=None, help=f"JSON result file (default {DEFAULT_OUTPUT})")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 10 tasks, 4 workers, 0.5 s")
    args = parser.parse_args(argv)
    if args.smoke:
        args.tasks, args.concurrency, args.duration, args.warmup = 10, 4, 0.5, 0.1
    output: Path | None = args.output or (None if args.smoke else DEFAULT_OUTPUT)

    process, urls = start_simulator()
    try:
        result = asyncio.run(run(args, urls, process.pid))
    finally:
        exit_code = stop_simulator(process)
    result["simulator_exit_code"] = exit_code
    print(
        f"{result['requests_per_second']:.0f} status requests/s "
        f"({result['requests']} in {result['seconds']} s, {args.concurrency} workers, "
        f"{result['errors']} errors, provider {args.provider}, simulator CPU {result['server_cpu_share']} core)"
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {output}")
    return 0 if exit_code == 0 and result["requests"] > 0 and result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
