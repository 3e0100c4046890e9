"""Ctrl-C: the first press stops the running batch (or the command) at once, the second exits at once.

:func:`run_with_interrupt` runs a command's coroutine under ``asyncio.run`` with :class:`Interrupt` installed as the
SIGINT handler. While a batch runs, :func:`hailuo_async.cli._run.run_items` hands the handler its way to stop the
batch; otherwise the handler cancels the whole command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import anyio

from ._output import EXIT_INTERRUPTED, Output
from ._progress import Display

__all__ = ["Interrupt", "run_with_interrupt"]


class Interrupt:
    """SIGINT handling: the first press cancels the running batch at once (or the command), the second exits at
    once with status 130."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.presses = 0
        self.root: anyio.CancelScope | None = None
        self.stop_batch: Callable[[], None] | None = None
        self.display: Display | None = None

    def install(self) -> Callable[[], None]:
        """Install the handler on the running loop; returns the function that removes it."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self.handle)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            return lambda: None

        def remove() -> None:
            loop.remove_signal_handler(signal.SIGINT)

        return remove

    def handle(self) -> None:
        self.presses += 1
        if self.presses >= 2:
            if self.display is not None:
                self.display.emergency_stop()
            self.out.notice("\nhailuo: interrupted again: exiting now")
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)
        if self.stop_batch is not None:
            self.stop_batch()
        elif self.root is not None:
            self.root.cancel()

    @property
    def interrupted(self) -> bool:
        return self.presses > 0


def run_with_interrupt(coroutine: Callable[[Interrupt], Awaitable[int]], out: Output) -> int:
    """Run a command's coroutine under ``asyncio.run`` with the Ctrl-C handling of :class:`Interrupt`."""

    async def runner() -> int:
        interrupt = Interrupt(out)
        remove = interrupt.install()
        try:
            with anyio.CancelScope() as root:
                interrupt.root = root
                return await coroutine(interrupt)
            out.notice("hailuo: interrupted")
            return EXIT_INTERRUPTED
        finally:
            remove()

    return asyncio.run(runner())
