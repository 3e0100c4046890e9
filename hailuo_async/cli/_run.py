"""Running requests through an open client with progress, ``--json`` lines and Ctrl-C.

Data flow: requests -> ``client.as_completed`` (fed lazily, so that Ctrl-C stops what has not left) -> each
:class:`~hailuo_async.ItemEvent` to the :class:`Tracker`, each outcome to the display and the JSON lines ->
:class:`RunResult`, which the commands summarise (:mod:`hailuo_async.cli._report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio

from .. import Generation, GenerationRequest, HailuoClient, HailuoError
from .._config import Unset
from .._poller import Outcome
from ._interrupt import Interrupt
from ._output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Output, json_record
from ._progress import PROGRESS_INTERVAL, Tracker, make_display

__all__ = ["RunResult", "exit_status", "run_items"]


@dataclasses.dataclass
class RunResult:
    """What :func:`run_items` saw."""

    outcomes: dict[int, Outcome]
    interrupted: bool
    elapsed: float
    tracker: Tracker

    @property
    def failures(self) -> list[tuple[int, HailuoError]]:
        return sorted((i, o) for i, o in self.outcomes.items() if isinstance(o, HailuoError))

    @property
    def successes(self) -> list[tuple[int, Generation]]:
        return sorted((i, o) for i, o in self.outcomes.items() if isinstance(o, Generation))


def exit_status(run: RunResult) -> int:
    """130 when interrupted, 1 when an item failed or did not finish, else 0."""
    if run.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.failures or len(run.outcomes) < run.tracker.total else EXIT_OK


async def run_items(
    client: HailuoClient,
    requests: Sequence[GenerationRequest],
    labels: Sequence[str],
    *,
    out: Output,
    interrupt: Interrupt,
    download_to: Path | None,
    timeout: float | Unset | None,
    description: str = "generating",
    json_lines: bool = True,
    item_lines: bool = True,
) -> RunResult:
    """Run ``requests`` through ``client.as_completed`` with progress, JSON lines and Ctrl-C.

    Ctrl-C (:class:`Interrupt`) cancels the batch at once: items waiting for their turn are never sent; a submit
    already on the wire is awaited by the library, which records its task id and reports it as ``submitted``.
    ``json_lines``: print each finished item as JSON (with ``--json``); ``item_lines``: list each finished item
    in the progress display."""
    tracker = Tracker(labels, downloading=download_to is not None)
    display = make_display(out, tracker, description)
    tracker.on_change = display.changed
    outcomes: dict[int, Outcome] = {}
    batch_scope = anyio.CancelScope()
    stopping = [False]

    def feed() -> Iterator[GenerationRequest]:
        for request in requests:
            if stopping[0]:
                return
            yield request

    def request_stop() -> None:
        stopping[0] = True
        display.message("stopping: nothing more is submitted (Ctrl-C again to quit at once)")
        batch_scope.cancel()

    async def ticker() -> None:
        while True:
            await anyio.sleep(PROGRESS_INTERVAL)
            display.tick()

    interrupt.stop_batch = request_stop
    interrupt.display = display
    display.start()
    try:
        with batch_scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                stream = client.as_completed(
                    feed(), download_to=download_to, on_event=tracker.on_event, timeout=timeout
                )
                async with contextlib.aclosing(stream):
                    async for index, outcome in stream:
                        outcomes[index] = outcome
                        tracker.finish(index, outcome)
                        if item_lines:
                            display.item_finished(index, outcome)
                        if out.json_mode and json_lines:
                            out.json(json_record(index, requests[index], outcome, tracker.task_ids[index]))
                tg.cancel_scope.cancel()
    finally:
        interrupt.stop_batch = None
        display.stop()
        interrupt.display = None
    return RunResult(outcomes=outcomes, interrupted=stopping[0], elapsed=tracker.elapsed(), tracker=tracker)
