"""A simulated task's life over time: how long it takes, how much of that it spends queued, and the progress its
status answers report meanwhile.

Pure functions of the config and an injected :class:`random.Random` (seeded per task by
:class:`~._state.TaskStore`); no I/O and no clock. The shapes and distributions are described on
:class:`~._config.GenerationTimes`, :class:`~._config.Progress` and ``SimulatorConfig.queue_fraction``.
"""

from __future__ import annotations

import math
import random

from ._config import GenerationTimes, Progress

__all__ = ["MAX_RUNNING_PROGRESS", "draw_generation_time", "draw_queue_fraction", "running_progress"]

MAX_RUNNING_PROGRESS = 99
"""The highest progress a task reports before it is done; 100 means completed."""


def draw_generation_time(times: GenerationTimes, rng: random.Random) -> float:
    """One task's total time (queue + run) in seconds, drawn from ``times`` and clamped to ``[min, max]``."""
    if times.kind == "fixed":
        value = times.median
    elif times.kind == "uniform":
        value = rng.uniform(times.low, times.high)
    elif times.kind == "bimodal":
        value = rng.uniform(times.low, times.high)
        if rng.random() < times.share:
            value *= times.factor
    else:
        value = times.median * math.exp(rng.gauss(0.0, times.sigma))
    value = max(value, times.min)
    return value if times.max is None else min(value, times.max)


def draw_queue_fraction(queue_fraction: float | tuple[float, float], rng: random.Random) -> float:
    """One task's share of its total time spent queued: the number itself, or uniform in a ``(low, high)`` range.

    A single number draws nothing, so configs without a range keep every other seeded draw where it was."""
    if not isinstance(queue_fraction, tuple):
        return queue_fraction
    return rng.uniform(*queue_fraction)


def running_progress(progress: Progress, x: float) -> int:
    """The progress (0 to 99) a running task reports when the share ``x`` of its running part has elapsed."""
    x = min(max(x, 0.0), 1.0)
    shape = progress.shape
    if shape == "none":
        return 0
    if shape == "steps":
        levels = progress.steps
        part = min(len(levels), int(x * (len(levels) + 1)))
        return levels[part - 1] if part else 0
    if shape == "stall":
        return min(progress.stall_level, int(progress.stall_level * x / progress.stall_at))
    if shape == "concave":
        share = 1.0 - (1.0 - x) ** progress.power
    elif shape == "convex":
        share = x**progress.power
    else:
        share = x
    return min(MAX_RUNNING_PROGRESS, int(MAX_RUNNING_PROGRESS * share))
