"""Follow a batch with your own progress display, from the ``on_event`` callback.

Each item goes through ``submitting``, ``submitted``, then ``queued`` / ``running`` (with ``progress`` where the
provider reports it) each time the client checks on it, then ``completed`` (and ``downloaded``) or ``failed``. An
item is running from its ``submitted`` event on: the client checks a task only a few times, so a short task may
finish before any ``running`` event. The callback runs on the event loop: keep it quick and never block in it.

Run: ``.venv/bin/python examples/custom_progress.py`` from the repository, after the README's first set-up command
(nothing to activate). It uses the built-in simulator unless ``APIMART_API_KEY`` is set, and saves into
``hailuo-output/custom_progress/``.
"""

from __future__ import annotations

import time

import anyio
from _common import open_client, output_folder

from hailuo_async import ItemEvent

PROMPTS = [
    "A snail crawling along a mossy branch [Zoom in]",
    "Fireworks bursting over a harbour [Tilt up]",
    "A vintage car on a coastal road [Tracking shot]",
    "Jellyfish glowing in a dark aquarium [Static shot]",
    "A potter shaping clay on a spinning wheel [Push in]",
]

PHASES = {
    "submitting": "waiting",
    "submitted": "running",
    "queued": "running",
    "running": "running",
    "completed": "saving",
    "downloaded": "saved",
    "failed": "failed",
}
"""Each event kind, as the phase it puts an item in."""


class Progress:
    """Each item's phase; prints one line whenever an item changes phase or reports new progress."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.phase: dict[int, str] = {}
        self.progress: dict[int, int] = {}

    def count(self, phase: str) -> int:
        return sum(1 for p in self.phase.values() if p == phase)

    def __call__(self, event: ItemEvent) -> None:
        if event.index is None:
            return
        phase = PHASES.get(event.kind, "running")
        moved = self.phase.get(event.index) != phase
        advanced = event.progress is not None and event.progress != self.progress.get(event.index)
        self.phase[event.index] = phase
        if event.progress is not None:
            self.progress[event.index] = event.progress
        if not (moved or advanced):
            return
        detail = {
            "submitted": f" as {event.task_id}",
            "queued": " (queued)",
            "running": f" ({event.progress}%)" if event.progress is not None else "",
            "failed": f": {type(event.error).__name__}: {event.error}",
        }.get(event.kind, "")
        print(
            f"[{time.monotonic() - self.started:5.1f}s] #{event.index} {event.kind}{detail}  "
            f"({self.count('saved')}/{self.total} saved, {self.count('running')} running, "
            f"{self.count('failed')} failed)"
        )


async def main() -> None:
    progress = Progress(len(PROMPTS))
    async with open_client() as client:
        await client.gather_generations(
            PROMPTS, return_exceptions=True, download_to=output_folder(__file__), on_event=progress
        )


if __name__ == "__main__":
    anyio.run(main)
