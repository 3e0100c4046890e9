"""The live progress line, rendered as rich renders it: readable in an 80-column terminal.

Whatever the batch's size and name, the count (``finished/total``), the ``done`` count and the elapsed time show
whole and the line fits; the bar and the other counts give way first.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from hailuo_async.cli._progress import RichDisplay, Tracker


def tracker_of(total: int) -> Tracker:
    """A batch a third of the way through: one failure, a tenth running, a fifth queued, the rest waiting."""
    tracker = Tracker([f"item {i}" for i in range(total)], downloading=True)
    third = total // 3
    tracker.states[:third] = ["done"] * third
    tracker.states[third] = "failed"
    tracker.done, tracker.failed = third, 1
    running = range(third + 1, third + 1 + total // 10)
    queued = range(running.stop, running.stop + total // 5)
    for index in running:
        tracker.states[index] = "running"
    for index in queued:
        tracker.states[index] = "queued"
    return tracker


def render(tracker: Tracker, description: str, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    display = RichDisplay(tracker, console, description)
    display.changed()
    console.print(display.progress.get_renderable())
    return console.export_text()


@pytest.mark.parametrize("width", [80, 100, 160])
@pytest.mark.parametrize(
    ("total", "description"), [(30, "demo"), (1000, "a_rather_long_batch_file_name.jsonl"), (100_000, "stdin")]
)
def test_the_progress_line_keeps_count_done_and_elapsed_whole(width: int, total: int, description: str) -> None:
    tracker = tracker_of(total)
    (line,) = render(tracker, description, width).splitlines()
    assert len(line) <= width
    assert f"{tracker.finished}/{total}" in line
    assert f"{tracker.done} done" in line
    assert re.search(r"\b0:00:0\d\b", line), line  # rich's elapsed time
    assert "━" in line  # the bar, however short


def test_a_wide_terminal_shows_every_count_and_the_eta() -> None:
    (line,) = render(tracker_of(30), "demo", 160).splitlines()
    for part in ("10 done", "1 failed", "3 running", "6 queued", "10 waiting", "ETA"):
        assert part in line
