"""Follow a batch with your own progress display, from the ``on_event`` callback.

Each item goes through ``submitting``, ``submitted``, ``queued``/``running`` (with ``progress`` where the provider
reports it), then ``completed`` (and ``downloaded``) or ``failed``. The callback runs on the event loop: keep it
quick and never block in it.

Run: ``python examples/custom_progress.py`` (uses the built-in simulator unless ``APIMART_API_KEY`` is set).
"""

from __future__ import annotations

import time
from collections import Counter

import anyio
from _common import open_client

from hailuo_async import ItemEvent

PROMPTS = [
    "A snail crawling along a mossy branch [Zoom in]",
    "Fireworks bursting over a harbour [Tilt up]",
    "A vintage car on a coastal road [Tracking shot]",
    "Jellyfish glowing in a dark aquarium [Static shot]",
    "A potter shaping clay on a spinning wheel [Push in]",
]


class Progress:
    """Counts items per step and prints one line per change that matters."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.step: dict[int, str] = {}

    def __call__(self, event: ItemEvent) -> None:
        if event.index is None:
            return
        self.step[event.index] = event.kind
        if event.kind in ("submitted", "completed", "downloaded", "failed"):
            counts = Counter(self.step.values())
            detail = f" task {event.task_id}" if event.kind == "submitted" else ""
            if event.error is not None:
                detail = f" {type(event.error).__name__}: {event.error}"
            print(
                f"[{time.monotonic() - self.started:5.1f}s] #{event.index} {event.kind}{detail}  "
                f"({counts['downloaded']}/{self.total} saved, {counts['running']} running)"
            )


async def main() -> None:
    progress = Progress(len(PROMPTS))
    async with open_client() as client:
        await client.gather_generations(PROMPTS, return_exceptions=True, download_to="videos", on_event=progress)


if __name__ == "__main__":
    anyio.run(main)
