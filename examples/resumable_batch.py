"""A batch that survives interruption: with a journal, running it again resumes instead of paying twice.

The client writes each item's intent before its submit and the task id right after, into a SQLite journal. Here
the first pass is cut short after a few seconds (as Ctrl-C, a crash or a reboot would); the second pass makes the
very same call and only submits what was never submitted; tasks already running are polled, finished ones are
taken from the journal.

apimart honours an idempotency key, so an item whose submit was cut off is simply sent again with the same key.
toapis and MiniMax do not: such an item comes back as ``SubmissionUncertainError`` (it may or may not exist and be
paid for) unless the client is created with ``resubmit_uncertain=True``.

Run: ``.venv/bin/python examples/resumable_batch.py`` from the repository, after the README's first set-up command
(nothing to activate). It uses the built-in simulator unless ``APIMART_API_KEY`` is set, and saves into
``hailuo-output/resumable_batch/``.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from _common import PROVIDER, connection, output_folder, use_simulator

from hailuo_async import Generation, HailuoClient, HailuoError

PROMPTS = [f"A paper crane unfolding, take {n} [Static shot]" for n in range(1, 17)]
FOLDER = output_folder(__file__)


async def run(
    target: dict[str, Any], journal: Path, *, stop_after: float | None = None
) -> list[Generation | HailuoError]:
    async with HailuoClient(PROVIDER, journal=journal, max_concurrency=4, requests_per_second=4, **target) as client:
        results: list[Generation | HailuoError] = []
        with anyio.move_on_after(stop_after):
            results = await client.gather_generations(PROMPTS, return_exceptions=True, download_to=FOLDER)
        stats = client.statistics()
        summary = client.journal.summary() if client.journal is not None else None
    print(f"  this pass: {stats.submitted} submitted, {stats.completed} finished")
    failures = Counter(type(r).__name__ for r in results if isinstance(r, HailuoError))
    for name, count in failures.items():
        print(f"  failed:    {count} x {name}")  # e.g. SubmissionUncertainError, see the module docstring
    if summary is not None:
        print(f"  journal:   {summary.counts}")
    return results


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        # A simulator forgets its tasks when it stops, so its journal must not outlive this run; a real
        # provider's journal belongs next to the videos.
        journal = Path(scratch) / "journal.sqlite" if use_simulator() else FOLDER / ".hailuo-journal.sqlite"
        async with connection() as target:
            print("first pass, interrupted after 3.5 seconds:")
            await run(target, journal, stop_after=3.5)
            print("second pass, the same call:")
            results = await run(target, journal)
    # The second pass returns every item, those finished in the first pass included (from the journal).
    saved = [r.path for r in results if isinstance(r, Generation) and r.path]
    print(f"{len(saved)} videos saved by this run in {FOLDER}")


if __name__ == "__main__":
    anyio.run(main)
