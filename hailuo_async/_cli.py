"""The ``hailuo`` command: ``demo``, ``generate``, ``batch``, ``status`` and ``simulate``.

Run ``hailuo --help`` or ``python -m hailuo_async --help``. This module is the only place in the package that
prints. Output rules:

- stdout carries results: the summary table, a single video's URL and path, or with ``--json`` one JSON object per
  finished item and nothing else;
- progress goes to stdout as a live bar when stdout is a terminal and ``rich`` is installed (``pip install
  'hailuo-async[cli]'``), else to stderr as plain lines every few seconds and on each finished item; ``--quiet``
  silences it; ``-v`` sends the library's log (logger ``hailuo_async``) to stderr;
- the API key is never printed: not in errors, not in logs, not in the resume command.

Exit status: 0 every item succeeded, 1 some item failed (or a line was skipped), 2 usage error (bad option, bad
input file, missing API key, unusable --out folder), 130 interrupted. The first Ctrl-C cancels the batch at once:
nothing more is submitted, and only a submit already on the wire is awaited (the library shields it so its task id
reaches the journal); then it prints what finished, what is still running (task ids), what was never submitted and
the command that resumes the batch. A second Ctrl-C exits at once.

Printed commands (resume, status) work when pasted: they never carry ``--api-key``; when the key came from that
option, a note says which environment variable to set instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import importlib
import io
import json
import logging
import math
import os
import re
import shlex
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

import anyio
import msgspec

from ._client import HailuoClient
from ._config import DEFAULT_POLL, UNSET, PollPolicy, Unset
from ._download import check_destination
from ._exceptions import (
    DownloadError,
    GenerationFailedError,
    GenerationTimeoutError,
    HailuoError,
    InvalidRequestError,
    JournalBusyError,
    SubmissionUncertainError,
)
from ._images import inspect_image
from ._journal import Journal, JournalItem
from ._models import Generation, GenerationRequest, ItemEvent, frame_kind
from ._version import __version__
from .providers import PROVIDERS, Provider, get_provider

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_CONCURRENCY = 16
"""Submits in flight at once unless ``--concurrency`` says otherwise."""
PROGRESS_INTERVAL = 5.0
"""Seconds between two plain progress lines."""
JOURNAL_NAME = ".hailuo-journal.sqlite"
"""The journal's file name inside ``--out``."""
DEMO_FOLDER = os.path.join("hailuo-output", "demo")
"""Where ``hailuo demo`` saves its videos by default (``hailuo-output/`` is where the examples write too)."""
MAX_REPORTED_PROBLEMS = 20
"""Bad lines of a batch file listed before the rest are only counted."""
MAX_LISTED_FAILURES = 20
"""Failed items the summary lists before the rest are only counted."""
MAX_LISTED_RUNNING = 20
"""Items still running that an interruption report lists when a journal holds them all."""
DEFAULT_RESOLUTION = "768p"
"""What apimart, toapis and MiniMax all use when a request names no resolution (the CLI sends none by default)."""
LIVE_BAR_HINT = "pip install 'hailuo-async[cli]' gives a live progress bar"
"""Said once when plain progress lines go to a terminal because rich is missing."""

_REQUEST_FIELDS: tuple[str, ...] = GenerationRequest.__struct_fields__
_BOOL_FIELDS = ("prompt_optimizer", "fast_pretreatment", "watermark")
_TRUE = ("true", "1", "yes", "y", "on")
_FALSE = ("false", "0", "no", "n", "off")
_FRAME_FIELDS = ("first_frame", "last_frame")


class UsageError(Exception):
    """A problem with what the user asked for: reported in one message, exit status 2."""


# -- output ---------------------------------------------------------------------------------------------------


def _load_rich() -> bool:
    try:
        for module in ("rich.console", "rich.progress", "rich.table", "rich.text"):
            importlib.import_module(module)
    except ImportError:
        return False
    return True


class Output:
    """Where every line goes. ``fancy``: a terminal on stdout and rich installed (live bar, tables)."""

    def __init__(self, *, json_mode: bool, quiet: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.stdout = stdout
        self.stderr = stderr
        live = _isatty(stdout) and not json_mode and not quiet
        rich = live and _load_rich()
        self.fancy = rich
        self.live_bar_hint = live and not rich
        """A terminal would get a live bar if rich were installed: the plain display says so once."""
        self.console: Console | None = None
        if self.fancy:
            from rich.console import Console

            self.console = Console(file=stdout, highlight=False)

    def info(self, message: str) -> None:
        """A note for the person at the terminal (stderr); silenced by ``--quiet``."""
        if not self.quiet:
            self._line(self.stderr, f"hailuo: {message}")

    def warn(self, message: str) -> None:
        if not self.quiet:
            self._line(self.stderr, f"hailuo: warning: {message}")

    def error(self, message: str) -> None:
        """Always shown (stderr)."""
        self._line(self.stderr, f"hailuo: error: {message}")

    def notice(self, message: str) -> None:
        """Always shown (stderr): things the user must know even with ``--quiet`` (interruption, resume)."""
        self._line(self.stderr, message)

    def result(self, message: str) -> None:
        """A human-readable result: stdout, or stderr with ``--json`` (stdout then carries JSON only)."""
        if self.json_mode:
            if not self.quiet:
                self._line(self.stderr, message)
            return
        self._line(self.stdout, message)

    def json(self, record: dict[str, Any]) -> None:
        self._line(self.stdout, json.dumps(record, ensure_ascii=False))

    @staticmethod
    def _line(stream: TextIO, message: str) -> None:
        stream.write(message + "\n")
        stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _shown_path(path: str | None) -> str | None:
    """A saved file's path as the user would type it: relative to the current folder when inside it."""
    if path is None:
        return None
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# -- progress -------------------------------------------------------------------------------------------------

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

    def finish(self, index: int, outcome: Generation | HailuoError) -> None:
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
        return f"{shown}, ETA {_duration(eta)}"

    def line(self) -> str:
        return (
            f"[{_duration(self.elapsed()):>6}] {self.finished}/{self.total} ({self.counts_text()}) {self.rate_text()}"
        )


def _failure_reason(error: BaseException) -> str:
    if isinstance(error, GenerationFailedError):
        reason = error.reason
        # A failure recorded by an earlier run comes back from the journal with its whole message as the reason.
        prefix = f"{error.provider} task {error.task_id} failed: "
        while reason.startswith(prefix):
            reason = reason[len(prefix) :]
        reason += f" (code {error.code})" if error.code else ""
    else:
        reason = str(error)
    if isinstance(error, SubmissionUncertainError):
        reason += " [run again with --resubmit-uncertain to submit it anyway]"
    return f"{type(error).__name__}: {reason}"


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

    def item_finished(self, index: int, outcome: Generation | HailuoError) -> None:
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

    def item_finished(self, index: int, outcome: Generation | HailuoError) -> None:
        t = self.tracker
        label = _shorten(t.labels[index], 50)
        if isinstance(outcome, Generation):
            where = _shown_path(outcome.path) or outcome.video_url
            text = f"done   #{index} {label!r} -> {where}"
        else:
            text = f"failed #{index} {label!r}: {_shorten(_failure_reason(outcome), 160)}"
        self._write(f"[{_duration(t.elapsed()):>6}] {t.finished}/{t.total} {text}")

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
        self.description = _shorten(description, self.MAX_DESCRIPTION)
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
        rest = _shorten(f"{', '.join(t.other_counts())}; {t.rate_text()}", max(room - self.MIN_BAR, 1))
        if room - self.MIN_BAR < 2:
            rest = ""
        self.bar.bar_width = max(self.MIN_BAR, min(self.MAX_BAR, room - len(rest)))
        self.progress.update(self.task, completed=t.finished, done=done, rest=rest)

    def tick(self) -> None:
        self.changed()

    def item_finished(self, index: int, outcome: Generation | HailuoError) -> None:
        from rich.text import Text

        label = _shorten(self.tracker.labels[index], 60)
        if isinstance(outcome, Generation):
            line = Text.assemble(
                ("✓ ", "green"), f"#{index} {label}", (f"  {_shown_path(outcome.path) or outcome.video_url}", "dim")
            )
        else:
            line = Text.assemble(("✗ ", "red"), f"#{index} {label}  ", (_shorten(_failure_reason(outcome), 140), "red"))
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


def _make_display(out: Output, tracker: Tracker, description: str) -> Display:
    if out.quiet:
        return Display(tracker)
    if out.fancy and out.console is not None:
        return RichDisplay(tracker, out.console, description)
    return PlainDisplay(tracker, out.stderr, live_bar_hint=out.live_bar_hint)


# -- interruption ---------------------------------------------------------------------------------------------


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


# -- running a batch ------------------------------------------------------------------------------------------

Outcome = Generation | HailuoError


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


def _json_record(index: int, request: GenerationRequest, outcome: Outcome, task_id: str | None) -> dict[str, Any]:
    if isinstance(outcome, Generation):
        return {
            "index": index,
            "status": "ok",
            "prompt": request.prompt,
            "task_id": outcome.task_id,
            "video_url": outcome.video_url,
            "path": outcome.path,
            "error_type": None,
            "error_message": None,
        }
    found = getattr(outcome, "task_id", None)
    video_url = None
    if isinstance(outcome, DownloadError) and outcome.generation is not None:
        video_url = outcome.generation.video_url
        found = outcome.generation.task_id
    return {
        "index": index,
        "status": "failed",
        "prompt": request.prompt,
        "task_id": found if isinstance(found, str) else task_id,
        "video_url": video_url,
        "path": None,
        "error_type": type(outcome).__name__,
        "error_message": str(outcome),
    }


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
    display = _make_display(out, tracker, description)
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
                            out.json(_json_record(index, requests[index], outcome, tracker.task_ids[index]))
                tg.cancel_scope.cancel()
    finally:
        interrupt.stop_batch = None
        display.stop()
        interrupt.display = None
    return RunResult(outcomes=outcomes, interrupted=stopping[0], elapsed=tracker.elapsed(), tracker=tracker)


# -- summaries ------------------------------------------------------------------------------------------------


def _plain_table(rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"  {key:<{width}}  {value}" for key, value in rows]


def print_summary(
    out: Output,
    client: HailuoClient,
    run: RunResult,
    *,
    title: str,
    download_to: Path | None,
    skipped: int = 0,
) -> None:
    """The end-of-batch table: done, failed with reasons, time, requests used."""
    stats = client.statistics()
    total = run.tracker.total
    rows: list[tuple[str, str]] = [
        ("done", f"{len(run.successes)} of {total}"),
        ("failed", str(len(run.failures))),
    ]
    not_run = total - len(run.outcomes)
    if not_run:
        rows.append(("not finished", str(not_run)))
    if skipped:
        rows.append(("skipped", f"{skipped} invalid line{'s' if skipped != 1 else ''} (listed above)"))
    rows.append(("time", _duration(run.elapsed)))
    detail = f"{stats.submitted} submits, {stats.status_requests} status checks"
    if stats.uploads:
        detail += f", {stats.uploads} image upload{'s' if stats.uploads != 1 else ''}"
    if stats.retries:
        detail += f", {stats.retries} retries"
    rows.append(("API requests", f"{stats.requests} ({detail})"))
    if download_to is not None:
        saved = sum(1 for _, generation in run.successes if generation.path)
        rows.append(("videos saved", f"{saved} in {download_to}{os.sep}"))
    failures = [(f"#{i}", _shorten(run.tracker.labels[i], 50), _failure_reason(e)) for i, e in run.failures]
    hidden_failures = max(0, len(failures) - MAX_LISTED_FAILURES)
    failures = failures[:MAX_LISTED_FAILURES]
    urls: list[tuple[str, str]] = []
    if download_to is None:
        urls = [(f"#{i}", g.video_url) for i, g in run.successes]

    console = out.console
    if out.fancy and console is not None and not out.json_mode:
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left", title_style="bold")
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
        if failures:
            failed = Table(title="Failed", title_justify="left", title_style="bold red")
            for name in ("item", "prompt", "reason"):
                failed.add_column(name, overflow="fold")
            for failure in failures:
                failed.add_row(*failure)
            if hidden_failures:
                failed.add_row("…", f"and {hidden_failures} more", "(--json lists every item)")
            console.print(failed)
        if urls:
            videos = Table(title="Videos", title_justify="left", title_style="bold")
            videos.add_column("item")
            videos.add_column("url", overflow="fold")
            for video in urls:
                videos.add_row(*video)
            console.print(videos)
        return
    lines = [title, *_plain_table(rows)]
    if failures:
        lines.append("Failed")
        for item, label, reason in failures:
            lines.append(f"  {item}  {label!r}")
            lines.append(f"  {' ' * len(item)}  {reason}")
        if hidden_failures:
            lines.append(f"  ... and {hidden_failures} more (--json lists every item)")
    if urls:
        lines.append("Videos")
        lines.extend(f"  {item}  {url}" for item, url in urls)
    out.result("\n".join(lines))


def _without_api_key(words: Sequence[str]) -> list[str]:
    """``words`` without ``--api-key KEY`` / ``--api-key=KEY``: a printed command must not carry the key."""
    kept: list[str] = []
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word == "--api-key":
            skip_next = True
        elif not word.startswith("--api-key="):
            kept.append(word)
    return kept


def _command_lines(words: Sequence[str], *, key_option: bool, provider: Provider, note: str = "") -> list[str]:
    """A command to paste (indented, ``--api-key`` left out), after a line naming the key's variable when the key
    came from ``--api-key``: the command then reads it from the environment."""
    lines = []
    if key_option:
        lines.append(
            f"hailuo: first put your key in {provider.env_var} (export {provider.env_var}=...): the command "
            "leaves --api-key out so that the key stays off the screen"
        )
    lines.append("  " + shlex.join(_without_api_key(words)) + note)
    return lines


def _status_command(args: argparse.Namespace, task_id: str, program: Sequence[str]) -> list[str]:
    """``hailuo status TASK_ID`` with this run's provider and base URL, as :func:`_command_lines`."""
    words = [*program, "status", task_id]
    if args.provider != "apimart":
        words += ["--provider", args.provider]
    if args.base_url:
        words += ["--base-url", args.base_url]
    return _command_lines(words, key_option=args.api_key is not None, provider=get_provider(args.provider))


def report_interrupted(
    out: Output,
    run: RunResult,
    *,
    resume: list[str] | None,
    journal: Path | None,
    provider: str,
) -> None:
    """What finished, what still runs (task ids), what was never sent, and how to resume (always shown, even with
    ``--quiet``). ``resume``: the lines of :func:`_command_lines` for the command that resumes the batch."""
    t = run.tracker
    running = [i for i in range(t.total) if t.task_ids[i] and i not in run.outcomes]
    not_submitted = sum(1 for i in range(t.total) if not t.task_ids[i] and i not in run.outcomes)
    lines = [
        f"hailuo: interrupted after {_duration(run.elapsed)}: {len(run.outcomes)} of {t.total} items finished "
        f"({len(run.successes)} done, {len(run.failures)} failed)."
    ]
    if running:
        lines.append(f"hailuo: {len(running)} item(s) still running on {provider} (already paid for):")
        listed = running if journal is None else running[:MAX_LISTED_RUNNING]
        lines.extend(f"  #{i}  {t.task_ids[i]}  {_shorten(t.labels[i], 50)!r}" for i in listed)
        if len(listed) < len(running):
            lines.append(f"  ... and {len(running) - len(listed)} more (hailuo status --journal {journal} lists all)")
    if not_submitted:
        lines.append(f"hailuo: {not_submitted} item(s) not submitted (nothing was sent for them).")
    if resume is not None and journal is not None:
        lines.append(f"hailuo: the journal {journal} holds every task id; nothing will be paid twice. Resume with:")
        lines.extend(resume)
    elif running:
        lines.append(
            "hailuo: no journal: running the same command again would submit every item again. "
            "Check a task with `hailuo status TASK_ID`; next time pass --out or --journal to make a batch resumable."
        )
    out.notice("\n".join(lines))


# -- reading batch files --------------------------------------------------------------------------------------

BatchFormat = Literal["txt", "jsonl", "csv"]


@dataclasses.dataclass(frozen=True)
class BatchLine:
    """One item of a batch file and where it came from."""

    line: int
    request: GenerationRequest


class _LineProblem(Exception):
    """Why one line of a batch file (or one option of ``generate``) cannot be a request; ``error`` when it is an
    invalid value, so that ``generate`` can name the option rather than the field."""

    def __init__(self, field: str | None, message: str, error: InvalidRequestError | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.error = error

    @classmethod
    def invalid(cls, error: InvalidRequestError) -> _LineProblem:
        return cls(error.parameter, str(error), error)


_EXPECTED: dict[str, str] = {
    "prompt": "text",
    "duration": "a whole number of seconds: 5 or 10 (apimart), 6 or 10 (toapis, minimax)",
    "resolution": "one of 512p, 768p, 1080p (any case)",
    "first_frame": "a URL, a data: URI or a file path, as text",
    "last_frame": "a URL, a data: URI or a file path, as text",
    **dict.fromkeys(_BOOL_FIELDS, "true or false"),
}
"""What each field of a batch line takes, in the words of the library's own validation errors."""


def _bool_cell(field: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _LineProblem.invalid(InvalidRequestError(field, value, "true/false, 1/0 or yes/no"))


def _int_cell(field: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _LineProblem.invalid(InvalidRequestError(field, value, _EXPECTED[field])) from None


def _build_request(fields: dict[str, Any], defaults: dict[str, Any]) -> GenerationRequest:
    for name, value in defaults.items():
        if fields.get(name) is None and value is not None:
            fields[name] = value
    try:
        return msgspec.convert(fields, GenerationRequest)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, InvalidRequestError):
            raise _LineProblem.invalid(cause) from None
        # A value of the wrong JSON type: msgspec says "Expected `int | null`, got `str` - at `$.duration`";
        # say it the way every other validation error does.
        found = re.search(r"at `\$\.(\w+)`", str(exc))
        if found is None or found.group(1) not in fields:
            raise _LineProblem(None, f"not a valid request ({exc})") from None
        field = found.group(1)
        error = InvalidRequestError(field, fields[field], _EXPECTED.get(field, "a value of another type"))
        raise _LineProblem.invalid(error) from None


def _check_fields(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in _REQUEST_FIELDS]
    if unknown:
        raise _LineProblem(unknown[0], f"unknown field {unknown[0]!r} (fields: {', '.join(_REQUEST_FIELDS)})")


def _parse_txt(text: str, defaults: dict[str, Any]) -> Iterator[tuple[int, GenerationRequest | _LineProblem]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            yield number, _build_request({"prompt": line}, defaults)
        except _LineProblem as problem:
            yield number, problem


def _parse_jsonl(text: str, defaults: dict[str, Any]) -> Iterator[tuple[int, GenerationRequest | _LineProblem]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _LineProblem(None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if isinstance(value, str):
                value = {"prompt": value}
            if not isinstance(value, dict):
                raise _LineProblem(None, f"expected a JSON object (or a prompt string), got {type(value).__name__}")
            _check_fields(list(value))
            yield number, _build_request(dict(value), defaults)
        except _LineProblem as problem:
            yield number, problem


def _parse_csv(text: str, defaults: dict[str, Any]) -> Iterator[tuple[int, GenerationRequest | _LineProblem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    try:
        for row in reader:
            number = reader.line_num
            if header is None:
                header = [cell.strip().lower() for cell in row]
                try:
                    if not any(header):
                        raise _LineProblem(None, "the first row must name the columns (e.g. prompt,duration)")
                    _check_fields(header)
                    duplicates = sorted({n for n in header if header.count(n) > 1})
                    if duplicates:
                        raise _LineProblem(duplicates[0], f"column {duplicates[0]!r} appears twice")
                except _LineProblem as problem:
                    yield number, problem
                    return
                continue
            if not any(cell.strip() for cell in row):
                continue
            try:
                if len(row) > len(header):
                    raise _LineProblem(None, f"{len(row)} cells but the header names {len(header)} columns")
                fields: dict[str, Any] = {}
                for name, cell in zip(header, row, strict=False):
                    if not cell.strip():
                        continue
                    if name == "duration":
                        fields[name] = _int_cell(name, cell)
                    elif name in _BOOL_FIELDS:
                        fields[name] = _bool_cell(name, cell)
                    else:
                        fields[name] = cell.strip()
                yield number, _build_request(fields, defaults)
            except _LineProblem as problem:
                yield number, problem
    except csv.Error as exc:
        yield reader.line_num, _LineProblem(None, f"malformed CSV: {exc}")


_PARSERS: dict[BatchFormat, Callable[[str, dict[str, Any]], Iterator[tuple[int, GenerationRequest | _LineProblem]]]] = {
    "txt": _parse_txt,
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
}


def _format_for(source: str, given: str | None) -> BatchFormat:
    if given is not None:
        return cast("BatchFormat", given)
    if source == "-":
        return "txt"
    suffix = Path(source).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".txt", ".text", ""):
        return "txt"
    raise UsageError(f"cannot tell the format of {source!r} from its extension; pass --format txt|jsonl|csv")


def _resolve_frames(request: GenerationRequest, base: Path | None) -> GenerationRequest:
    """Local frame paths of a batch file are relative to the file's folder."""
    if base is None:
        return request
    changes: dict[str, str] = {}
    for name in _FRAME_FIELDS:
        value = getattr(request, name)
        if value is not None and frame_kind(value) == "file":
            path = Path(value).expanduser()
            if not path.is_absolute():
                changes[name] = os.path.normpath(base / path)
    return msgspec.structs.replace(request, **changes) if changes else request


def _check_local_frames(
    request: GenerationRequest, provider: Provider, cache: dict[tuple[str, str], InvalidRequestError | None]
) -> None:
    for name in _FRAME_FIELDS:
        value = getattr(request, name)
        if value is None or frame_kind(value) != "file":
            continue
        key = (name, value)
        if key not in cache:
            try:
                inspect_image(value, parameter=name, provider=provider)
                cache[key] = None
            except InvalidRequestError as exc:
                cache[key] = exc
        problem = cache[key]
        if problem is not None:
            raise _LineProblem.invalid(problem)


@dataclasses.dataclass(frozen=True)
class BatchFile:
    """The valid lines of a batch file, and the invalid ones skipped (``--skip-invalid``)."""

    name: str
    """The file as the user named it (``<stdin>`` for ``-``)."""
    lines: list[BatchLine]
    skipped: list[str]
    """One entry per skipped line: ``line 3, field 'duration': invalid duration='ten': ...``."""


def read_batch(
    source: str,
    *,
    fmt: str | None,
    provider: Provider,
    defaults: dict[str, Any],
    stdin: TextIO,
    skip_invalid: bool = False,
) -> BatchFile:
    """Parse and validate every line of a batch file (``-``: stdin) before anything is sent.

    Raises :class:`UsageError` listing each bad line with its number and field; with ``skip_invalid`` the bad
    lines are returned in :attr:`BatchFile.skipped` instead, unless no line is valid."""
    kind = _format_for(source, fmt)
    if source == "-":
        name = "<stdin>"
        text = stdin.read()
        base: Path | None = None
    else:
        name = source
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UsageError(f"no such file: {source}") from None
        except IsADirectoryError:
            raise UsageError(f"{source} is a folder, not a batch file") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
        base = path.resolve().parent
    problems: list[str] = []
    lines: list[BatchLine] = []
    image_checks: dict[tuple[str, str], InvalidRequestError | None] = {}
    for number, parsed in _PARSERS[kind](text, defaults):
        try:
            if isinstance(parsed, _LineProblem):
                raise parsed
            request = _resolve_frames(parsed, base)
            try:
                provider.validate(request)
            except InvalidRequestError as exc:
                raise _LineProblem.invalid(exc) from None
            _check_local_frames(request, provider, image_checks)
            lines.append(BatchLine(number, request))
        except _LineProblem as problem:
            where = f"line {number}" + (f", field {problem.field!r}" if problem.field else "")
            problems.append(f"{where}: {problem.message}")
    if problems and not (skip_invalid and lines):
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        message = f"{len(problems)} bad line(s) in {name}; nothing was submitted:\n  " + "\n  ".join(shown)
        if more:
            message += f"\n  ... and {more} more"
        if not skip_invalid:
            message += "\n(--skip-invalid runs the valid lines and lists the bad ones)"
        raise UsageError(message)
    if not lines:
        raise UsageError(f"{name} holds no prompts (blank lines and # comments are skipped)")
    return BatchFile(name, lines, problems)


# -- clients --------------------------------------------------------------------------------------------------


def _api_key(args: argparse.Namespace, provider: Provider) -> str:
    given: str | None = args.api_key
    if given is not None:
        if not given.strip():
            raise UsageError("--api-key is empty")
        return given.strip()
    for variable in (provider.env_var, "HAILUO_API_KEY"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    raise UsageError(
        f"no API key for {provider.name}: set the {provider.env_var} environment variable "
        "(or HAILUO_API_KEY), or pass --api-key"
    )


def _poll_policy(args: argparse.Namespace) -> PollPolicy:
    first_check: float | None = getattr(args, "first_check", None)
    if first_check is None:
        return DEFAULT_POLL
    return msgspec.structs.replace(DEFAULT_POLL, first_check=first_check)


def _make_client(
    args: argparse.Namespace,
    provider: Provider,
    *,
    api_key: str,
    base_url: str | None,
    journal: Path | None = None,
    submits_per_minute: float | Unset | None = UNSET,
) -> HailuoClient:
    try:
        return HailuoClient(
            provider,
            api_key=api_key,
            base_url=base_url,
            max_concurrency=getattr(args, "concurrency", DEFAULT_CONCURRENCY),
            requests_per_second=getattr(args, "rps", None),
            submits_per_minute=submits_per_minute,
            poll=_poll_policy(args),
            journal=journal,
            resubmit_uncertain=bool(getattr(args, "resubmit_uncertain", False)),
        )
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None


def _timeout(args: argparse.Namespace) -> float | Unset:
    value: float | None = args.timeout
    return UNSET if value is None else value


_OPTION_NAMES = {name: "--" + name.replace("_", "-") for name in _REQUEST_FIELDS} | {
    "prompt": "PROMPT",
    "prompt_optimizer": "--no-prompt-optimizer",
}
"""A request parameter as the command line names it."""


def _option_error(error: InvalidRequestError) -> UsageError:
    """``error`` in the command line's words: ``missing PROMPT: ...``, ``invalid --duration 6 for apimart: ...``."""
    name = _OPTION_NAMES.get(error.parameter, error.parameter)
    if error.value is None:
        return UsageError(f"missing {name}: {error.allowed}")
    value = error.value if not isinstance(error.value, str) else _shorten(error.value, 80)
    where = f" for {error.provider}" if error.provider else ""
    return UsageError(f"invalid {name} {value!r}{where}: {error.allowed}")


def _destination(folder: str, *, option: str = "--out") -> Path:
    """``folder`` once it is known to take the videos (created if missing): checked before anything is paid."""
    try:
        return check_destination(folder, parameter=option)
    except InvalidRequestError as exc:
        raise _option_error(exc) from None


def _exit_status(run: RunResult) -> int:
    if run.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.failures or len(run.outcomes) < run.tracker.total else EXIT_OK


# -- commands -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Context:
    """What every command gets besides its arguments."""

    out: Output
    program: list[str]
    """How this program was started (``hailuo``, or ``python -m hailuo_async``), for the hints it prints."""
    invocation: list[str]
    """The command line as typed (program words included), for the resume hint."""
    stdin: TextIO


def _run(coroutine: Callable[[Interrupt], Awaitable[int]], out: Output) -> int:
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


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo demo``: a batch of 30 through an in-process simulator, downloaded, then a summary."""
    from . import _demo
    from .simulator import Simulator

    out = ctx.out
    provider = get_provider(args.provider)
    folder = _destination(args.out)
    removed = _demo.clear_previous_run(folder)
    if removed:
        out.info(f"demo: removed the {len(removed)} files the previous demo left in {folder}{os.sep}")
    try:
        first, last = _demo.make_frames(folder / "frames")
    except OSError as exc:
        raise UsageError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    requests = _demo.demo_items(first, last)
    labels = [_demo.display_label(r.prompt) for r in requests]

    async def run(interrupt: Interrupt) -> int:
        async with Simulator(_demo.demo_simulator_config()) as sim:
            base_url: str = getattr(sim.urls, provider.name)
            out.info(
                f"demo: {len(requests)} videos through a local {provider.name} simulator (no account, no network); "
                f"one prompt is refused on content grounds, to show what a failure looks like; "
                f"videos go to {folder}{os.sep}"
            )
            client = _make_client(args, provider, api_key="demo-key", base_url=base_url, submits_per_minute=None)
            async with client:
                run_result = await run_items(
                    client,
                    requests,
                    labels,
                    out=out,
                    interrupt=interrupt,
                    download_to=folder,
                    timeout=_timeout(args),
                    description="demo",
                )
                saved = [Path(g.path) for _, g in run_result.successes if g.path]
                _demo.record_run(folder, [first, last, *saved])
                if run_result.interrupted:
                    out.notice("hailuo: demo interrupted")
                    return EXIT_INTERRUPTED
                print_summary(out, client, run_result, title="hailuo demo", download_to=folder)
        # The content-policy refusal is part of the show: the demo succeeds when it is the only failure.
        expected = {i for i, r in enumerate(requests) if "{{sim:fail}}" in (r.prompt or "")}
        failed = {i for i, e in run_result.failures if isinstance(e, GenerationFailedError)}
        return EXIT_OK if failed == expected and len(run_result.failures) == len(expected) else EXIT_FAILED

    return _run(run, out)


def cmd_generate(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo generate PROMPT``: one video, saved; prints its URL and path."""
    out = ctx.out
    provider = get_provider(args.provider)
    try:
        request = GenerationRequest(
            args.prompt,
            duration=args.duration,
            resolution=args.resolution,
            first_frame=args.first_frame,
            last_frame=args.last_frame,
            prompt_optimizer=args.prompt_optimizer,
            fast_pretreatment=args.fast_pretreatment,
            watermark=args.watermark,
        )
        provider.validate(request)
        _check_local_frames(request, provider, {})
    except InvalidRequestError as exc:
        raise _option_error(exc) from None
    except _LineProblem as problem:
        raise (UsageError(problem.message) if problem.error is None else _option_error(problem.error)) from None
    api_key = _api_key(args, provider)
    folder = _destination(args.out)
    label = request.prompt or Path(str(request.first_frame)).name

    async def run(interrupt: Interrupt) -> int:
        client = _make_client(args, provider, api_key=api_key, base_url=args.base_url)
        async with client:
            result = await run_items(
                client,
                [request],
                [label],
                out=out,
                interrupt=interrupt,
                download_to=None,
                timeout=_timeout(args),
                json_lines=False,
                item_lines=False,
            )
            task_id = result.tracker.task_ids[0]
            if result.interrupted or 0 not in result.outcomes:
                lines = ["hailuo: interrupted."]
                if task_id:
                    lines.append(f"hailuo: task {task_id} keeps running on {provider.name}; check it with:")
                    lines.extend(_status_command(args, task_id, ctx.program))
                else:
                    lines.append("hailuo: nothing was submitted.")
                out.notice("\n".join(lines))
                return EXIT_INTERRUPTED
            outcome = result.outcomes[0]
            if isinstance(outcome, Generation):
                try:
                    outcome = await client.download(outcome, folder)
                except HailuoError as exc:
                    message = f"task {outcome.task_id} finished but its video could not be saved: {exc}"
                    outcome = DownloadError(message, generation=outcome)
            if out.json_mode:
                out.json(_json_record(0, request, outcome, task_id))
            if isinstance(outcome, Generation):
                if not out.json_mode:
                    out.result(f"video_url: {outcome.video_url}\npath: {_shown_path(outcome.path)}")
                return EXIT_OK
            out.error(_failure_reason(outcome))
            if isinstance(outcome, GenerationTimeoutError) and not out.json_mode:
                command = _status_command(args, task_id or outcome.task_id, ctx.program)
                out.notice("\n".join(["hailuo: the task may still finish; check it with:", *command]))
            if isinstance(outcome, DownloadError) and outcome.generation is not None and not out.json_mode:
                out.result(f"video_url: {outcome.generation.video_url}")
            return EXIT_FAILED

    return _run(run, out)


def cmd_batch(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo batch FILE``: every item of a txt/jsonl/csv file, checked first, journaled when possible."""
    out = ctx.out
    provider = get_provider(args.provider)
    defaults = {"duration": args.duration, "resolution": args.resolution}
    batch_file = read_batch(
        args.file,
        fmt=args.format,
        provider=provider,
        defaults=defaults,
        stdin=ctx.stdin,
        skip_invalid=args.skip_invalid,
    )
    api_key = _api_key(args, provider)
    folder = None if args.out is None else _destination(args.out)
    journal: Path | None = Path(args.journal) if args.journal else (folder / JOURNAL_NAME if folder else None)
    if journal is None:
        out.warn(
            "no --out or --journal: this batch is not resumable (an interruption loses track of the tasks already "
            "paid for) and its videos are not downloaded"
        )
    if batch_file.skipped:
        out.notice(
            f"hailuo: warning: skipping {len(batch_file.skipped)} invalid line(s) of {batch_file.name} "
            "(--skip-invalid):\n  " + "\n  ".join(batch_file.skipped)
        )
    requests = [line.request for line in batch_file.lines]
    labels = [r.prompt or Path(str(r.first_frame)).name for r in requests]

    def again(note: str = "") -> list[str]:
        """The command that runs this batch again (resuming it), as :func:`_command_lines`."""
        return _command_lines(ctx.invocation, key_option=args.api_key is not None, provider=provider, note=note)

    async def run(interrupt: Interrupt) -> int:
        client = _make_client(args, provider, api_key=api_key, base_url=args.base_url, journal=journal)
        try:
            await client.__aenter__()  # the journal is locked against a concurrent run of the same batch
        except JournalBusyError as exc:
            raise UsageError(str(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            raise UsageError(f"cannot open the journal {journal}: {exc}") from None
        try:
            if client.journal is not None:
                summary = client.journal.summary()
                if summary.total:
                    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items()))
                    out.info(f"resuming from {journal} ({counts})")
            result = await run_items(
                client,
                requests,
                labels,
                out=out,
                interrupt=interrupt,
                download_to=folder,
                timeout=_timeout(args),
                description=Path(args.file).name if args.file != "-" else "stdin",
            )
            if result.interrupted:
                resume = again("   # with the same input on stdin" if args.file == "-" else "")
                report_interrupted(out, result, resume=resume, journal=journal, provider=provider.name)
                return EXIT_INTERRUPTED
            print_summary(
                out, client, result, title="hailuo batch", download_to=folder, skipped=len(batch_file.skipped)
            )
            final = (GenerationFailedError, InvalidRequestError, SubmissionUncertainError)
            retryable = [i for i, e in result.failures if not isinstance(e, final)]
            if journal is not None and retryable:
                out.info(
                    "\n".join(
                        [
                            f"{len(retryable)} failed item(s) can be retried (nothing already paid for is "
                            "submitted again) with:",
                            *again(),
                        ]
                    )
                )
            return EXIT_FAILED if batch_file.skipped else _exit_status(result)
        finally:
            await client.aclose()

    return _run(run, out)


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo status TASK_ID`` (asks the provider) or ``hailuo status --journal FILE`` (reads the journal)."""
    if (args.task_id is None) == (args.journal is None):
        raise UsageError("give either a TASK_ID or --journal FILE")
    if args.journal is not None:
        return _status_journal(Path(args.journal), ctx.out)
    out = ctx.out
    provider = get_provider(args.provider)
    api_key = _api_key(args, provider)
    task_id: str = args.task_id

    async def run(interrupt: Interrupt) -> int:
        client = _make_client(args, provider, api_key=api_key, base_url=args.base_url)
        async with client:
            try:
                status = await client.status(task_id)
            except HailuoError as exc:
                if out.json_mode:
                    out.json({"task_id": task_id, "error_type": type(exc).__name__, "error_message": str(exc)})
                out.error(str(exc))
                return EXIT_FAILED
        if out.json_mode:
            out.json(
                {
                    "task_id": task_id,
                    "state": status.state.value,
                    "provider_status": status.provider_status,
                    "progress": status.progress,
                    "video_url": status.video_url,
                    "expires_at": status.expires_at,
                    "error": status.error,
                    "error_code": status.error_code,
                }
            )
        else:
            rows = [("task", task_id), ("state", f"{status.state.value} ({status.provider_status})")]
            if status.progress is not None:
                rows.append(("progress", f"{status.progress}%"))
            if status.video_url:
                rows.append(("video_url", status.video_url))
            if status.error:
                rows.append(("error", status.error + (f" (code {status.error_code})" if status.error_code else "")))
            out.result("\n".join(line.strip() for line in _plain_table(rows)))
        return EXIT_FAILED if status.state.value == "failed" else EXIT_OK

    return _run(run, out)


def _journal_item_record(item: JournalItem) -> dict[str, Any]:
    return {
        "index": item.batch_index,
        "state": item.state,
        "prompt": item.request.prompt,
        "task_id": item.task_id,
        "video_url": item.video_url,
        "path": item.path,
        "error_type": item.error_type,
        "error_message": item.error_message,
    }


def _status_journal(path: Path, out: Output) -> int:
    if not path.is_file():
        raise UsageError(f"no journal at {path}")
    journal = Journal(path)
    try:
        journal.open_sync(readonly=True)  # no lock, nothing created: works while the batch runs
        summary = journal.summary()
    except (sqlite3.Error, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"{path} is not a hailuo journal ({exc})") from None
    finally:
        journal.close_sync()
    if out.json_mode:
        out.json(
            {
                "journal": str(path),
                "total": summary.total,
                "counts": summary.counts,
                "open": [_journal_item_record(i) for i in summary.open_items],
                "failed": [_journal_item_record(i) for i in summary.failed_items],
            }
        )
    else:
        lines = [f"journal {path}: {summary.total} item(s)"]
        lines.extend(_plain_table([(state, str(n)) for state, n in sorted(summary.counts.items())]))
        for title, items in (("Still open", summary.open_items), ("Failed", summary.failed_items)):
            if items:
                lines.append(f"{title} ({len(items)})")
                for item in items:
                    detail = item.task_id or "no task id"
                    if item.error_type:
                        detail += f"  {item.error_type}: {_shorten(item.error_message or '', 100)}"
                    lines.append(
                        f"  #{item.batch_index}  {item.state:<10} {detail}  {_shorten(item.request.prompt or '', 40)!r}"
                    )
        out.result("\n".join(lines))
    return EXIT_FAILED if summary.failed_items else EXIT_OK


def cmd_simulate(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo simulate``: the simulator's own command line (:mod:`hailuo_async.simulator.__main__`)."""
    from .simulator.__main__ import config_from_args, run_from_args

    try:
        config_from_args(args)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise UsageError(f"invalid --config: {exc}") from None
    try:
        return asyncio.run(run_from_args(args))
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        ctx.out.error(str(exc))
        return EXIT_FAILED


# -- argument parsing -----------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _by_provider(value: Callable[[Provider], object]) -> str:
    """``value`` of every provider, those that share one grouped: ``5 on apimart, 6 on minimax and toapis``."""
    groups: dict[str, list[str]] = {}
    for name in sorted(PROVIDERS):
        groups.setdefault(str(value(PROVIDERS[name])), []).append(name)
    return ", ".join(f"{shared} on {' and '.join(names)}" for shared, names in groups.items())


def _options(*, connection: bool, run: bool) -> argparse.ArgumentParser:
    """The options commands share. ``connection``: ``--base-url`` and ``--api-key`` (not for the demo, which runs
    its own simulator); ``run``: how a batch runs (not for ``status``, which asks once)."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    api = common.add_argument_group("provider options")
    api.add_argument(
        "--provider",
        type=str.lower,
        choices=sorted(PROVIDERS),
        default="apimart",
        help="which API to use, any case (default: %(default)s)",
    )
    if connection:
        urls = ", ".join(f"{p.default_base_url} ({name})" for name, p in sorted(PROVIDERS.items()))
        api.add_argument("--base-url", metavar="URL", help=f"API root (default: the provider's, {urls})")
        api.add_argument(
            "--api-key",
            metavar="KEY",
            help="API key (default: the provider's variable APIMART_API_KEY, TOAPIS_API_KEY or MINIMAX_API_KEY, "
            "then HAILUO_API_KEY); prefer the variable, command lines are visible to other users",
        )
    if run:
        options = common.add_argument_group("run options")
        options.add_argument(
            "--concurrency",
            type=_positive_int,
            default=DEFAULT_CONCURRENCY,
            metavar="N",
            help="submits in flight at once (default: %(default)s)",
        )
        options.add_argument(
            "--rps",
            type=_positive_float,
            default=None,
            metavar="N",
            help="API requests per second (default: learn the provider's limit from its 429 answers)",
        )
        options.add_argument(
            "--timeout",
            type=_positive_float,
            default=None,
            metavar="SECONDS",
            help=f"give up waiting for an item after this long (default: {DEFAULT_POLL.deadline:g})",
        )
        options.add_argument(
            "--first-check",
            type=_positive_float,
            default=None,
            metavar="SECONDS",
            help=f"advanced: delay before a task's first status check (default: {DEFAULT_POLL.first_check:g})",
        )
    output = common.add_argument_group("output options")
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per finished item on stdout, nothing else (default: a readable summary)",
    )
    # Not a mutually exclusive group: argparse would list it outside this group in --help (main() checks instead).
    output.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what the library does to stderr, -vv: more (default: warnings only)",
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress, no notes; results and errors only (default: progress and notes on stderr)",
    )
    return common


def _request_options(parser: argparse._ActionsContainer, *, batch: bool) -> None:
    """``--duration`` and ``--resolution`` (for a batch: of the items that do not set their own)."""
    durations = _by_provider(lambda p: " or ".join(map(str, p.durations)))
    short = _by_provider(lambda p: p.durations[0])
    which = "for items that do not set one: " if batch else ""
    parser.add_argument(
        "--duration",
        type=int,
        metavar="SECONDS",
        help=f"{which}{durations} (default: the provider's, {short})",
    )
    parser.add_argument(
        "--resolution",
        metavar="RES",
        help=f"{which}512p, 768p or 1080p, any case; 1080p only at the shorter duration "
        f"(default: the provider's, {DEFAULT_RESOLUTION} on all three)",
    )


_EPILOG = (
    "Exit status: 0 all items succeeded, 1 some failed, 2 usage error, 130 interrupted. "
    "Run 'hailuo demo' to see it work without an account."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``hailuo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="hailuo",
        description="Generate MiniMax Hailuo-02 videos at scale through apimart, toapis or the MiniMax API.",
        epilog=_EPILOG,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"hailuo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    everything = _options(connection=True, run=True)

    demo = commands.add_parser(
        "demo",
        parents=[_options(connection=False, run=True)],
        allow_abbrev=False,
        help="generate ~30 videos against a built-in simulator (no account needed)",
        description="Start the built-in simulator, generate a batch of 30 videos through it with live progress, "
        "download them and print a summary. Needs no API key and no network; takes a few seconds. "
        "A second run first removes what the previous demo wrote into the folder (and nothing else).",
    )
    demo.add_argument(
        "--out", default=DEMO_FOLDER, metavar="DIR", help="where to save the videos (default: %(default)s)"
    )
    demo.set_defaults(handler=cmd_demo)

    generate = commands.add_parser(
        "generate",
        parents=[everything],
        allow_abbrev=False,
        help="generate one video",
        description="Generate one video, save it and print its URL and path.",
    )
    generate.add_argument("prompt", nargs="?", metavar="PROMPT", help="what happens; may hold [camera directives]")
    request = generate.add_argument_group("request options")
    _request_options(request, batch=False)
    request.add_argument("--first-frame", metavar="URL|FILE", help="image the video starts from (default: none)")
    request.add_argument(
        "--last-frame", metavar="URL|FILE", help="image the video ends on, needs --first-frame (default: none)"
    )
    request.add_argument(
        "--no-prompt-optimizer",
        dest="prompt_optimizer",
        action="store_const",
        const=False,
        default=None,
        help="send the prompt as written (default: the provider rewrites it)",
    )
    request.add_argument(
        "--fast-pretreatment",
        action="store_const",
        const=True,
        default=None,
        help="shorter prompt optimisation (default: off)",
    )
    request.add_argument(
        "--watermark", action="store_const", const=True, default=None, help="add the AI watermark (default: off)"
    )
    generate.add_argument(
        "--out", default=".", metavar="DIR", help="where to save the video (default: the current folder)"
    )
    generate.set_defaults(handler=cmd_generate)

    batch = commands.add_parser(
        "batch",
        parents=[everything],
        allow_abbrev=False,
        help="generate every item of a .txt, .jsonl or .csv file (resumable)",
        description="Generate every item of FILE. .txt: one prompt per line (blank lines and # comments skipped); "
        ".jsonl: one JSON object per line with GenerationRequest fields (prompt, duration, resolution, "
        "first_frame, last_frame, prompt_optimizer, fast_pretreatment, watermark); .csv: a header row naming those "
        "fields. Every line is checked before anything is submitted. With --out (or --journal) the batch is "
        "journaled: running the same command again resumes it without paying twice.",
    )
    batch.add_argument("file", metavar="FILE", help="the batch file, or - for stdin")
    batch.add_argument("--format", choices=("txt", "jsonl", "csv"), help="default: from the extension (stdin: txt)")
    batch.add_argument(
        "--out",
        metavar="DIR",
        help=f"download every video into DIR, journal in DIR/{JOURNAL_NAME} (default: no download)",
    )
    batch.add_argument("--journal", metavar="FILE", help="the journal file (default: inside --out; none without --out)")
    _request_options(batch.add_argument_group("request options"), batch=True)
    batch.add_argument(
        "--skip-invalid",
        action="store_true",
        help="run the valid lines, list the invalid ones and exit 1 (default: a file with an invalid line is "
        "refused whole)",
    )
    batch.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="on resume, submit again items whose earlier submit got no answer; toapis, minimax: may pay twice "
        "(default: they fail with SubmissionUncertainError)",
    )
    batch.set_defaults(handler=cmd_batch)

    status = commands.add_parser(
        "status",
        parents=[_options(connection=True, run=False)],
        allow_abbrev=False,
        help="show one task, or a batch from its journal",
        description="With TASK_ID: ask the provider for that task's state, progress and video URL. "
        "With --journal FILE: counts per state and the items still open or failed (no network).",
    )
    status.add_argument("task_id", nargs="?", metavar="TASK_ID", help="the provider's task id")
    status.add_argument("--journal", metavar="FILE", help=f"a batch journal, e.g. DIR/{JOURNAL_NAME} (default: none)")
    status.set_defaults(handler=cmd_status)

    from .simulator.__main__ import build_arg_parser

    simulate = commands.add_parser(
        "simulate",
        allow_abbrev=False,
        help="serve the built-in simulator of the three providers",
        description="Serve the local simulator (same as python -m hailuo_async.simulator): prints one JSON line "
        "with the base URLs, serves until Ctrl-C.",
    )
    build_arg_parser(simulate)
    simulate.set_defaults(handler=cmd_simulate)
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, so log lines go through a live display's redirection."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def _logging_to(stream: TextIO, *, verbose: int, quiet: bool) -> Iterator[None]:
    """Send the library's log (logger ``hailuo_async``) to ``stream`` for the duration of one command.

    ``-v`` shows INFO, ``-vv`` DEBUG; by default only warnings, with ``--quiet`` only errors. The logger's earlier
    state is restored afterwards, so calling :func:`main` in process leaves logging as it found it."""
    log = logging.getLogger("hailuo_async")
    saved = (log.level, log.propagate)
    handler = _StderrHandler(stream) if stream is sys.stderr else logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("hailuo: %(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG))
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _program_words(argv: Sequence[str] | None) -> list[str]:
    if argv is not None:
        return ["hailuo"]
    program = sys.argv[0] if sys.argv and sys.argv[0] else "hailuo"
    if Path(program).name == "__main__.py":
        return [sys.executable, "-m", "hailuo_async"]
    return [program]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hailuo`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    quiet = bool(getattr(args, "quiet", False))
    verbose = int(getattr(args, "verbose", 0) or 0)
    if quiet and verbose:
        sys.stderr.write("hailuo: error: -q/--quiet and -v/--verbose cannot be used together\n")
        return EXIT_USAGE
    out = Output(json_mode=bool(getattr(args, "json", False)), quiet=quiet, stdout=sys.stdout, stderr=sys.stderr)
    program = _program_words(argv)
    ctx = Context(out=out, program=program, invocation=[*program, *arguments], stdin=sys.stdin)
    handler: Callable[[argparse.Namespace, Context], int] = args.handler
    try:
        with _logging_to(sys.stderr, verbose=verbose, quiet=quiet):
            return handler(args, ctx)
    except UsageError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        out.notice("hailuo: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
