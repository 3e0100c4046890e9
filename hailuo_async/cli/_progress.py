"""Progress while a batch runs: each item's state, and the display that shows it.

:class:`Tracker` turns the client's :class:`~hailuo_async.ItemEvent` stream and the finished outcomes into counts,
a rate and an ETA. A :class:`Display` shows them: nothing (``--quiet``), plain lines on stderr every
:data:`PROGRESS_INTERVAL` seconds (:class:`PlainDisplay`), or rich's live bar on a terminal (:class:`RichDisplay`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, TextIO

from .. import Generation, ItemEvent
from .._poller import Outcome
from ._output import Output, duration, failure_reason, shorten, shown_path

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["PROGRESS_INTERVAL", "Display", "ItemState", "PlainDisplay", "RichDisplay", "Tracker", "make_display"]

PROGRESS_INTERVAL = 5.0
"""Seconds between two plain progress lines."""
LIVE_BAR_HINT = "pip install 'hailuo-async[cli]' gives a live progress bar"
"""Said once when plain progress lines go to a terminal because rich is missing."""

ItemState = Literal["waiting", "submitting", "queued", "running", "saving", "done", "failed"]


class Tracker:
    """Each item's state, from the batch's :class:`ItemEvent` stream; counts, rate and ETA for the displays."""

    def __init__(self, labels: Sequence[str], *, downloading: bool) -> None:
        self.labels = list(labels)
        self.total = len(labels)
        self.downloading = downloading
        self.states: list[ItemState] = ["waiting"] * self.total
        self.task_ids: list[str | None] = [None] * self.total
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0
        self.on_change: Callable[[], None] = lambda: None

    def on_event(self, event: ItemEvent) -> None:
        index = event.index
        if index is None or not 0 <= index < self.total:
            return
        if event.task_id:
            self.task_ids[index] = event.task_id
        if self.states[index] in ("done", "failed"):
            return
        if event.kind == "submitting":
            self.states[index] = "submitting"
        elif event.kind in ("submitted", "queued"):
            self.states[index] = "queued"
        elif event.kind == "running":
            self.states[index] = "running"
        elif event.kind in ("completed", "downloaded"):
            self.states[index] = "saving" if self.downloading and event.kind == "completed" else "running"
        self.on_change()

    def finish(self, index: int, outcome: Outcome) -> None:
        if isinstance(outcome, Generation):
            self.task_ids[index] = outcome.task_id
            self.states[index] = "done"
            self.done += 1
        else:
            task_id = getattr(outcome, "task_id", None)
            if isinstance(task_id, str):
                self.task_ids[index] = task_id
            self.states[index] = "failed"
            self.failed += 1
        self.on_change()

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def count(self, *states: ItemState) -> int:
        return sum(1 for state in self.states if state in states)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def rate_and_eta(self) -> tuple[float | None, float | None]:
        elapsed = self.elapsed()
        if self.finished == 0 or elapsed <= 0:
            return None, None
        rate = self.finished / elapsed
        return rate, (self.total - self.finished) / rate

    def other_counts(self) -> list[str]:
        """Every count but ``done``: failed, running, queued and (when some are) waiting."""
        parts = [f"{self.failed} failed", f"{self.count('running', 'saving')} running"]
        parts.append(f"{self.count('queued', 'submitting')} queued")
        waiting = self.count("waiting")
        if waiting:
            parts.append(f"{waiting} waiting")
        return parts

    def counts_text(self) -> str:
        return ", ".join([f"{self.done} done", *self.other_counts()])

    def rate_text(self) -> str:
        rate, eta = self.rate_and_eta()
        if rate is None or eta is None:
            return "ETA -"
        per_minute = rate * 60
        shown = f"{per_minute:.1f}/min" if per_minute < 100 else f"{rate:.1f}/s"
        return f"{shown}, ETA {duration(eta)}"

    def line(self) -> str:
        return f"[{duration(self.elapsed()):>6}] {self.finished}/{self.total} ({self.counts_text()}) {self.rate_text()}"


class Display:
    """No progress at all (``--quiet``); the base of the two real displays."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def start(self) -> None:
        pass

    def changed(self) -> None:
        pass

    def tick(self) -> None:
        pass

    def item_finished(self, index: int, outcome: Outcome) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass

    def emergency_stop(self) -> None:
        self.stop()


class PlainDisplay(Display):
    """Plain lines on stderr: one every :data:`PROGRESS_INTERVAL` seconds and one per finished item."""

    def __init__(self, tracker: Tracker, stream: TextIO, *, live_bar_hint: bool = False) -> None:
        super().__init__(tracker)
        self.stream = stream
        self.live_bar_hint = live_bar_hint

    def _write(self, text: str) -> None:
        self.stream.write(f"hailuo: {text}\n")
        self.stream.flush()

    def start(self) -> None:
        if self.live_bar_hint:
            self._write(f"progress every {PROGRESS_INTERVAL:g}s ({LIVE_BAR_HINT})")

    def tick(self) -> None:
        self._write(self.tracker.line())

    def item_finished(self, index: int, outcome: Outcome) -> None:
        t = self.tracker
        label = shorten(t.labels[index], 50)
        if isinstance(outcome, Generation):
            where = shown_path(outcome.path) or outcome.video_url
            text = f"done   #{index} {label!r} -> {where}"
        else:
            text = f"failed #{index} {label!r}: {shorten(failure_reason(outcome), 160)}"
        self._write(f"[{duration(t.elapsed()):>6}] {t.finished}/{t.total} {text}")

    def message(self, text: str) -> None:
        self._write(text)


class RichDisplay(Display):
    """A live progress bar on the terminal, finished items listed above it.

    One line, laid out for the console's width at every update: the spinner, the batch's name, ``finished/total``,
    the ``done`` count and the elapsed time always show in full; the bar takes what is left (at least
    :attr:`MIN_BAR`), and the other counts, the rate and the ETA are shortened last."""

    MIN_BAR = 8
    MAX_BAR = 40
    MAX_DESCRIPTION = 16
    ELAPSED = len("0:00:00")
    """Width of rich's elapsed time (below ten hours)."""

    def __init__(self, tracker: Tracker, console: Console, description: str) -> None:
        super().__init__(tracker)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.description = shorten(description, self.MAX_DESCRIPTION)
        self.bar = BarColumn(bar_width=self.MIN_BAR)
        self.progress: Progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(),
            self.bar,
            TextColumn("{task.fields[rest]}"),
            console=console,
            refresh_per_second=8,
        )
        self.task: TaskID = self.progress.add_task(self.description, total=tracker.total, done="", rest="", start=True)
        self._started = False
        self.changed()

    def start(self) -> None:
        self.progress.start()
        self._started = True

    def changed(self) -> None:
        t = self.tracker
        done = f"{t.done} done"
        count = 2 * len(str(t.total)) + 1  # rich's "finished/total", padded to the total's width
        # Seven columns, one space between two of them; the spinner is one character wide.
        fixed = 6 + 1 + len(self.description) + count + len(done) + self.ELAPSED
        room = self.console.width - fixed
        rest = shorten(f"{', '.join(t.other_counts())}; {t.rate_text()}", max(room - self.MIN_BAR, 1))
        if room - self.MIN_BAR < 2:
            rest = ""
        self.bar.bar_width = max(self.MIN_BAR, min(self.MAX_BAR, room - len(rest)))
        self.progress.update(self.task, completed=t.finished, done=done, rest=rest)

    def tick(self) -> None:
        self.changed()

    def item_finished(self, index: int, outcome: Outcome) -> None:
        from rich.text import Text

        label = shorten(self.tracker.labels[index], 60)
        if isinstance(outcome, Generation):
            line = Text.assemble(
                ("✓ ", "green"), f"#{index} {label}", (f"  {shown_path(outcome.path) or outcome.video_url}", "dim")
            )
        else:
            line = Text.assemble(("✗ ", "red"), f"#{index} {label}  ", (shorten(failure_reason(outcome), 140), "red"))
        self.progress.console.print(line)
        self.changed()

    def message(self, text: str) -> None:
        from rich.text import Text

        self.progress.console.print(Text(text, style="yellow"))

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.changed()
            self.progress.stop()

    def emergency_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.console.show_cursor(True)


def make_display(out: Output, tracker: Tracker, description: str) -> Display:
    if out.quiet:
        return Display(tracker)
    if out.fancy and out.console is not None:
        return RichDisplay(tracker, out.console, description)
    return PlainDisplay(tracker, out.stderr, live_bar_hint=out.live_bar_hint)
