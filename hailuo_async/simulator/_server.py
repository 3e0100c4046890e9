"""The :class:`Simulator`: binds the API app and the CDN app on two ports and exposes the in-process API."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import msgspec
from aiohttp import web

from ._api import build_api_app
from ._cdn import build_cdn_app
from ._config import SimulatorConfig
from ._state import Counters, SimState, SimTask, SimulatorStats

__all__ = ["Simulator", "SimulatorUrls"]

_SHUTDOWN_TIMEOUT = 1.0  # seconds granted to in-flight requests (e.g. injected latency) on close


class SimulatorUrls(msgspec.Struct, frozen=True, kw_only=True):
    """Base URLs of a running simulator. Append the provider's documented paths to the first three."""

    apimart: str
    toapis: str
    minimax: str
    cdn: str
    stats: str


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - only mapping a wildcard bind to a connectable address
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Simulator:
    """A local HTTP server speaking apimart, toapis and official MiniMax, with injectable faults.

    Use as ``async with Simulator(config) as sim:``; :attr:`urls` holds the base URLs. ``clock`` replaces
    ``time.monotonic`` for the task lifecycle, URL expiry and rate limits (exposed timestamps stay unix times).
    """

    def __init__(self, config: SimulatorConfig | None = None, *, clock: Callable[[], float] | None = None) -> None:
        self._state = SimState(config if config is not None else SimulatorConfig(), clock)
        self._runners: list[web.AppRunner] = []
        self._urls: SimulatorUrls | None = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind both ports (``config.host``; ports 0 pick free ones)."""
        if self._runners:
            raise RuntimeError("the simulator is already running")
        config = self._state.config
        host = _url_host(config.host)
        try:
            cdn_port = await self._serve(build_cdn_app(self._state), config.host, config.cdn_port)
            self._state.cdn_base = f"http://{host}:{cdn_port}"
            api_port = await self._serve(build_api_app(self._state), config.host, config.port)
        except BaseException:
            await self.close()
            raise
        api = f"http://{host}:{api_port}"
        self._urls = SimulatorUrls(
            apimart=f"{api}/apimart",
            toapis=f"{api}/toapis",
            minimax=f"{api}/minimax",
            cdn=self._state.cdn_base,
            stats=f"{api}/_sim/stats",
        )

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound: Any = runner.addresses[0]
        return int(bound[1])

    async def close(self) -> None:
        """Stop serving; open connections are closed. Safe to call twice."""
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        self._urls = None

    @property
    def urls(self) -> SimulatorUrls:
        if self._urls is None:
            raise RuntimeError("the simulator is not running; use `async with Simulator() as sim`")
        return self._urls

    @property
    def config(self) -> SimulatorConfig:
        return self._state.config

    def configure(self, config: SimulatorConfig) -> None:
        """Switch to ``config`` from the next request on (``host`` and ports are not re-bound)."""
        self._state.config = config

    def update_config(self, **changes: Any) -> SimulatorConfig:
        """Replace some fields, e.g. ``sim.update_config(faults=Faults(drop=0.5))``; returns the new config."""
        config = msgspec.structs.replace(self._state.config, **changes)
        self._state.config = config
        return config

    def stats(self) -> SimulatorStats:
        return self._state.counters.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters. Tasks, credit use, idempotency keys and rate limiters' state are kept."""
        self._state.counters = Counters()

    @property
    def tasks(self) -> list[SimTask]:
        """Snapshots of every task, in creation order."""
        timebase = self._state.timebase
        return [task.snapshot(timebase) for task in self._state.store.tasks.values()]

    def task(self, task_id: str) -> SimTask:
        """Snapshot of one task; raises ``KeyError`` for an unknown id."""
        return self._state.store.tasks[task_id].snapshot(self._state.timebase)
