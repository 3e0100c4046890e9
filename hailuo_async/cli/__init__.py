"""The ``hailuo`` command: ``demo``, ``generate``, ``batch``, ``status`` and ``simulate``.

Run ``hailuo --help`` or ``python -m hailuo_async --help``. This package is the only place in hailuo_async that
prints, and it uses the library as any program would: requests from :func:`~hailuo_async.load_requests`, an
``async with`` :class:`~hailuo_async.HailuoClient`, and only the library's exceptions caught. Output rules:

- stdout carries results: the summary table, a single video's URL and path, or with ``--json`` one JSON object per
  finished item and nothing else;
- progress goes to stdout as a live bar when stdout is a terminal and ``rich`` is installed (``pip install
  'hailuo-async[cli]'``), else to stderr as plain lines every few seconds and on each finished item; ``--quiet``
  silences it; ``-v`` sends the library's log (logger ``hailuo_async``) to stderr;
- the API key is never printed: not in errors, not in logs, not in the resume command;
- money: the summary shows what was spent (charged, or estimated from the price table); ``hailuo batch --dry-run``
  checks every line and prints the estimate per model, resolution and duration and the total, sending nothing
  (no API key needed); ``--max-spend`` refuses to start when an item has no known price (``--prices FILE``).

Exit status: 0 every item succeeded, 1 some item failed (or a line was skipped), 2 usage error (bad option, bad
input file, missing API key, unusable --out folder, unusable journal), 130 interrupted. The first Ctrl-C cancels
the batch at once: nothing more is submitted, and only a submit already on the wire is awaited (the library
shields it so its task id reaches the journal); then it prints what finished, what is still running (task ids),
what was never submitted and the command that resumes the batch. A second Ctrl-C exits at once.

Printed commands (resume, status) work when pasted: they never carry ``--api-key``; when the key came from that
option, a note says which environment variable to set instead.

Modules, in the order a command runs through them:

- :mod:`._main`: :func:`main`, exit statuses, logging;
- :mod:`._parser`: the argument parser, option types and defaults;
- :mod:`._commands`: one function per command;
- :mod:`._setup`: options -> API key, client, ``--out`` folder, batch requests (usage errors before any payment);
- :mod:`._run`: requests through the client with progress and Ctrl-C;
- :mod:`._interrupt`: the SIGINT handler and ``asyncio.run``;
- :mod:`._progress`: each item's state and the displays (plain lines, rich's live bar);
- :mod:`._report`: the summary, the interruption report, commands to paste;
- :mod:`._output`: where lines go, value formatting, ``--json`` records;
- :mod:`._demo`: what ``hailuo demo`` generates.
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
