"""Running ``hailuo`` and the simulator as subprocesses, for the command-line tests.

A simulator subprocess prints its URLs as one JSON line; :class:`SimServer` keeps them and reads its counters
through the ``/_sim`` control endpoints. Commands run as ``python -W error -m hailuo_async`` with the working tree
on ``PYTHONPATH`` and no API key from the developer's environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: this one without API keys or ``COLUMNS``, the working tree importable."""
    result = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    result["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    result.pop("COLUMNS", None)
    result.update(extra)
    return result


def command(*args: str) -> list[str]:
    """``hailuo ARGS`` as this interpreter runs it."""
    return [sys.executable, "-W", "error", "-m", "hailuo_async", *args]


def hailuo(
    *args: str, cwd: Path, stdin: str | None = None, timeout: float = 60, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run(command(*args), cwd=cwd, stdin=stdin, timeout=timeout, environment=environment)


def run(
    argv: list[str],
    *,
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 60,
    environment: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=environment or env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


@dataclass
class SimServer:
    """A simulator subprocess's URLs and a way to read its counters."""

    urls: dict[str, str]

    @property
    def apimart(self) -> str:
        return self.urls["apimart"]

    def _call(self, method: str, route: str, body: Any = None) -> Any:
        api = urlsplit(self.urls["stats"])
        connection = HTTPConnection(api.netloc, timeout=5)
        try:
            payload = None if body is None else json.dumps(body)
            connection.request(method, route, body=payload, headers={"Content-Type": "application/json"})
            return json.load(connection.getresponse())
        finally:
            connection.close()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._call("GET", "/_sim/stats")
        return stats

    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self._call("GET", "/_sim/tasks")
        return tasks

    def configure(self, changes: dict[str, Any]) -> None:
        """Merge ``changes`` into the simulator's configuration."""
        self._call("POST", "/_sim/config", changes)

    def submits(self, prompts: list[str]) -> list[int]:
        counts = self.stats()["submits_by_prompt"]
        return [counts.get(p, 0) for p in prompts]

    def created(self, prompts: list[str]) -> list[int]:
        counts = self.stats()["tasks_created_by_prompt"]
        return [counts.get(p, 0) for p in prompts]


@contextmanager
def simulator(config: dict[str, Any]) -> Iterator[SimServer]:
    """A simulator subprocess with ``config``, stopped (SIGINT, then killed if need be) on exit."""
    argv = [sys.executable, "-m", "hailuo_async.simulator", "--config", json.dumps(config)]
    with started(argv, cwd=REPO) as process:
        try:
            assert process.stdout is not None
            yield SimServer(json.loads(process.stdout.readline()))
        finally:
            process.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=10)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fails if ``process`` ends first or it takes longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the command ended before the condition held"
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(0.05)


@contextmanager
def started(
    argv: list[str], *, cwd: Path, environment: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``argv`` running in the background (stdout and stderr piped); killed on exit if still running."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=environment or env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
