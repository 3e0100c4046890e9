"""What ``hailuo demo`` runs: its prompts, its two frame images and the simulator it talks to.

The demo needs no account and no network: it starts the built-in simulator (:mod:`hailuo_async.simulator`) in
process, with generation times of one to six seconds instead of minutes. The running itself (progress, downloads,
summary) is the ordinary batch machinery of :mod:`hailuo_async.cli`; this module holds the content, and the list
of files a run wrote (:data:`MANIFEST`) so that the next run starts from a clean folder without touching anything
else in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw

from .._models import GenerationRequest
from ..simulator import GenerationTimes, SimulatorConfig

__all__ = [
    "DEMO_PROMPTS",
    "FRAME_SIZE",
    "MANIFEST",
    "clear_previous_run",
    "demo_items",
    "demo_simulator_config",
    "display_label",
    "make_frames",
    "record_run",
]

FRAME_SIZE = (640, 360)
"""Width and height of the generated frame images: short side over 300 px, aspect 16:9 (within 2:5..5:2)."""

DEMO_PROMPTS: tuple[str, ...] = (
    "A red fox trots across a snowy meadow at dawn [Tracking shot]",
    "A lighthouse on a cliff, waves crashing below [Push in]",
    "Hot air balloons rising over a desert canyon [Pan left, Pedestal up]",
    "A barista pours latte art in slow motion [Zoom in]",
    "Rain on a neon-lit Tokyo street at night [Truck right]",
    "A paper boat drifting down a gutter stream [Tracking shot]",
    "An astronaut planting a flag on a red planet [Pull out]",
    "Cherry blossoms falling in a quiet temple garden [Tilt down]",
    "A steam train crossing a stone viaduct [Pan right]",
    "A hummingbird hovering at a bright flower [Static shot]",
    "Northern lights over a frozen lake [Tilt up]",
    "A chef flambéing a pan in a busy kitchen [Shake]",
    "A whale breaching next to a small sailboat [Zoom out]",
    "A child blowing dandelion seeds into the wind [Push in]",
    "A city skyline timelapse from day to night [Static shot]",
    "A cat knocking a glass off a table, slow motion [Zoom in]",
    "Gory close-up of a battlefield injury {{sim:fail}}",
    "Surfers riding a huge turquoise wave [Truck left]",
    "A spiral staircase seen from below [Pedestal up, Zoom in]",
    "A field of sunflowers swaying in the breeze [Pan left]",
    "An old bookshop with dust dancing in the sunlight [Push in]",
    "A robot watering plants in a greenhouse [Tracking shot]",
    "A bonfire on a beach under the stars [Pedestal down]",
    "A snail crawling along a mossy branch [Zoom in, Truck right]",
    "Fireworks bursting over a harbour [Tilt up, Zoom out]",
    "A vintage car driving along a coastal road [Tracking shot]",
    "Jellyfish glowing in a dark aquarium [Static shot]",
    "A potter shaping clay on a spinning wheel [Push in]",
    "Autumn leaves swirling in a city park [Pan right, Pedestal down]",
)
"""Twenty-nine text-to-video prompts; one of them is refused on content grounds (the ``{{sim:fail}}`` marker)."""

MANIFEST = ".hailuo-demo.json"
"""The file, inside the demo's folder, listing what the last demo run wrote there."""

FIRST_LAST_PROMPT = "The sun sets behind the hills and the sky turns from blue to orange"
"""The first-last-frame item, animated between the two generated frames."""

_MARKER = re.compile(r"\s*\{\{sim:[^}]*\}\}")


def display_label(prompt: str | None) -> str:
    """The prompt as shown to a person: simulator markers (``{{sim:...}}``) removed."""
    return _MARKER.sub("", prompt or "").strip()


def demo_simulator_config(*, seed: int = 7) -> SimulatorConfig:
    """A fault-free simulator whose videos take one to six seconds (a real one takes minutes)."""
    return SimulatorConfig(seed=seed, generation=GenerationTimes(kind="uniform", low=1.0, high=6.0), video_bytes=65536)


def _landscape(sky_top: tuple[int, int, int], sky_bottom: tuple[int, int, int], sun_y: int) -> Image.Image:
    width, height = FRAME_SIZE
    image = Image.new("RGB", FRAME_SIZE)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(sky_top, sky_bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    draw.ellipse([width * 0.6, sun_y - 40, width * 0.6 + 80, sun_y + 40], fill=(255, 214, 90))
    draw.polygon(
        [(0, height), (0, 250), (160, 200), (330, 260), (480, 210), (width, 245), (width, height)], fill=(38, 70, 48)
    )
    return image


def make_frames(folder: Path) -> tuple[Path, Path]:
    """Draw the first and last frame (a landscape at day and at sunset) as PNG files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "first-frame-day.png"
    last = folder / "last-frame-sunset.png"
    _landscape((70, 130, 220), (170, 210, 250), sun_y=90).save(first, format="PNG")
    _landscape((60, 40, 110), (250, 140, 60), sun_y=230).save(last, format="PNG")
    return first, last


def demo_items(first_frame: Path, last_frame: Path) -> list[GenerationRequest]:
    """The demo batch: every prompt of :data:`DEMO_PROMPTS`, plus one first-last-frame item in the middle."""
    requests = [GenerationRequest(prompt) for prompt in DEMO_PROMPTS]
    flf = GenerationRequest(FIRST_LAST_PROMPT, first_frame=str(first_frame), last_frame=str(last_frame))
    requests.insert(12, flf)
    return requests


def record_run(folder: Path, files: Iterable[Path]) -> None:
    """Remember ``files`` (inside ``folder``) as what this demo run wrote, for :func:`clear_previous_run`."""
    names = sorted({os.path.relpath(path, folder) for path in files})
    (folder / MANIFEST).write_text(json.dumps({"files": names}, indent=1) + "\n", encoding="utf-8")


def clear_previous_run(folder: Path) -> list[Path]:
    """Delete the files the previous demo run wrote into ``folder`` (as :func:`record_run` listed them) and
    nothing else; returns what was deleted. A missing or unreadable list deletes nothing."""
    manifest = folder / MANIFEST
    try:
        names = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    root = folder.resolve()
    removed: list[Path] = []
    for name in names if isinstance(names, list) else []:
        path = folder / str(name)
        if root not in path.resolve().parents or not path.is_file():
            continue  # only regular files inside the folder, whatever the list says
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    manifest.unlink(missing_ok=True)
    return removed
