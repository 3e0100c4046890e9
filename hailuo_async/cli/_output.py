"""Where every line of ``hailuo`` goes, how values read on the screen, and how the command ends.

:class:`Output` is the only writer: results on stdout (with ``--json``: JSON records only), notes, warnings and
errors on stderr. The helpers format what the other modules print (durations, paths, failure reasons, JSON
records); :class:`UsageError` and the exit statuses are what a command ends with.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .. import DownloadError, Generation, GenerationFailedError, GenerationRequest, SubmissionUncertainError
from .._poller import Outcome

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Output",
    "UsageError",
    "duration",
    "failure_reason",
    "json_record",
    "plain_table",
    "shorten",
    "shown_path",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with what the user asked for: reported in one message, exit status 2."""


def _load_rich() -> bool:
    try:
        for module in ("rich.console", "rich.progress", "rich.table", "rich.text"):
            importlib.import_module(module)
    except ImportError:
        return False
    return True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


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


# -- values as they read on the screen ------------------------------------------------------------------------


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def shown_path(path: str | None) -> str | None:
    """A saved file's path as the user would type it: relative to the current folder when inside it."""
    if path is None:
        return None
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def failure_reason(error: BaseException) -> str:
    """``ErrorType: reason``, with the hint a failure needs (``--resubmit-uncertain``)."""
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


def plain_table(rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"  {key:<{width}}  {value}" for key, value in rows]


def json_record(index: int, request: GenerationRequest, outcome: Outcome, task_id: str | None) -> dict[str, Any]:
    """One finished item as ``--json`` prints it."""
    if isinstance(outcome, Generation):
        return {
            "index": index,
            "status": "ok",
            "prompt": request.prompt,
            "model": request.model,
            "task_id": outcome.task_id,
            "video_url": outcome.video_url,
            "path": outcome.path,
            "cost": outcome.cost,
            "estimated_cost": outcome.estimated_cost,
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
        "model": request.model,
        "task_id": found if isinstance(found, str) else task_id,
        "video_url": video_url,
        "path": None,
        "cost": None,
        "estimated_cost": None,
        "error_type": type(outcome).__name__,
        "error_message": str(outcome),
    }
