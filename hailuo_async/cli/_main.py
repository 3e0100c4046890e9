"""``main()``: parse the command line, set up output and logging, run the command, turn its end into an exit status.

The one place that knows every exit path: a command's status, :class:`UsageError` (2), argparse's own errors (2),
Ctrl-C outside a batch (130) and a closed stdout pipe (1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ._commands import COMMANDS, Context
from ._output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Output, UsageError
from ._parser import build_parser

__all__ = ["main"]


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
    try:
        with _logging_to(sys.stderr, verbose=verbose, quiet=quiet):
            return COMMANDS[args.command](args, ctx)
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
