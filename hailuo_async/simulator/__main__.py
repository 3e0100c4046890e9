"""Command line: ``python -m hailuo_async.simulator [--host H] [--port N] [--cdn-port N] [--config JSON|FILE]
[--drift all|none|NAME,...] [--submit-delay SECONDS] [--progress SHAPE] [--queue-fraction SHARE|LOW,HIGH]
[--webhook-secret S] [--webhook-previous-secret S] [--webhook-default-url URL] [--webhook-drop SHARE]
[--webhook-duplicate SHARE] [--webhook-reorder SHARE] [--webhook-delay SECONDS|LOW,HIGH]
[--webhook-retry-delays S,S,...|none]``.

Prints exactly one JSON line with the base URLs once both ports are bound, then serves until SIGINT or SIGTERM and
exits 0. :func:`build_arg_parser` and :func:`run_from_args` let another CLI (``hailuo simulate``) reuse this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from pathlib import Path
from typing import get_args

import msgspec

from ._config import DRIFT_SHAPES, DriftShape, ProgressShape, SimulatorConfig, Webhooks
from ._server import Simulator

__all__ = ["build_arg_parser", "config_from_args", "main", "run_from_args"]


def _drift(text: str) -> bool | frozenset[DriftShape]:
    """``all``, ``none`` or comma-separated drift shape names."""
    if text.strip().lower() in ("all", "none"):
        return text.strip().lower() == "all"
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - DRIFT_SHAPES.keys())
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown drift shape(s) {', '.join(unknown)}; known: {', '.join(DRIFT_SHAPES)}"
        )
    return frozenset(name for name in DRIFT_SHAPES if name in names)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _queue_fraction(text: str) -> float | tuple[float, float]:
    """``SHARE`` or ``LOW,HIGH``, each within [0, 1]."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or not all(0.0 <= value <= 1.0 for value in values) or values[0] > values[-1]:
        raise argparse.ArgumentTypeError(f"expected SHARE or LOW,HIGH within [0, 1], got {text!r}")
    return values[0] if len(values) == 1 else (values[0], values[1])


def _share(text: str) -> float:
    """A probability within [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share within [0, 1], got {text!r}")
    return value


def _delay(text: str) -> float | tuple[float, float]:
    """``SECONDS`` or ``LOW,HIGH``, each >= 0."""
    try:
        values = tuple(_seconds(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        values = ()
    if len(values) not in (1, 2) or values[0] > values[-1]:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LOW,HIGH (seconds >= 0), got {text!r}")
    return values[0] if len(values) == 1 else (values[0], values[1])


def _retry_delays(text: str) -> tuple[float, ...]:
    """``none`` or comma-separated seconds."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(_seconds(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected none or comma-separated seconds, got {text!r}") from None


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http(s) URL, got {text!r}")
    return text


def _non_empty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("expected a non-empty secret")
    return text


# --webhook-X option -> Webhooks field
_WEBHOOK_OPTIONS = {
    "webhook_secret": "toapis_secret",
    "webhook_previous_secret": "toapis_previous_secret",
    "webhook_default_url": "toapis_default_url",
    "webhook_drop": "drop",
    "webhook_duplicate": "duplicate",
    "webhook_reorder": "reorder",
    "webhook_delay": "delay",
    "webhook_retry_delays": "retry_delays",
}


def _add_webhook_options(parser: argparse.ArgumentParser) -> None:
    defaults = Webhooks()
    group = parser.add_argument_group(
        "webhooks",
        "sent to apimart's `webhook`, toapis' `metadata.callback_url` and MiniMax's `callback_url` as each provider "
        "documents; these override the config's `webhooks`",
    )
    group.add_argument(
        "--webhook-secret",
        type=_non_empty,
        default=None,
        metavar="SECRET",
        help=f"toapis: the signing secret of X-ToAPIs-Webhook-Signature (default {defaults.toapis_secret!r})",
    )
    group.add_argument(
        "--webhook-previous-secret",
        type=_non_empty,
        default=None,
        metavar="SECRET",
        help="toapis: the secret before a rotation; signatures then carry a second v1= entry made with it",
    )
    group.add_argument(
        "--webhook-default-url",
        type=_http_url,
        default=None,
        metavar="URL",
        help="toapis: the key's default webhook URL; callback URLs must be same-origin with it, and submits "
        "without one are delivered to it (default: no check)",
    )
    group.add_argument(
        "--webhook-drop", type=_share, default=None, metavar="SHARE", help="share of deliveries never sent"
    )
    group.add_argument(
        "--webhook-duplicate", type=_share, default=None, metavar="SHARE", help="share of deliveries sent twice"
    )
    group.add_argument(
        "--webhook-reorder",
        type=_share,
        default=None,
        metavar="SHARE",
        help="share of MiniMax `processing` callbacks sent after the task's `success`/`failed` one",
    )
    group.add_argument(
        "--webhook-delay",
        type=_delay,
        default=None,
        metavar="SECONDS|LOW,HIGH",
        help="seconds between an event and its delivery, fixed or drawn per delivery (default 0)",
    )
    pauses = ",".join(f"{pause:g}" for pause in defaults.retry_delays)
    group.add_argument(
        "--webhook-retry-delays",
        type=_retry_delays,
        default=None,
        metavar="S,S,...|none",
        help=f"pauses before the retries after a timeout, a connection error or a 5xx (default {pauses}, as "
        "apimart documents; none: no retries); a 4xx is never retried",
    )


def build_arg_parser(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1, or the config's)")
    parser.add_argument("--port", type=int, default=None, help="API port (default: a free port)")
    parser.add_argument("--cdn-port", type=int, default=None, help="CDN port (default: a free port)")
    parser.add_argument(
        "--config",
        default=None,
        metavar="JSON|FILE",
        help="SimulatorConfig as inline JSON (starting with '{') or the path of a JSON file",
    )
    shapes = "; ".join(f"{name}: {text}" for name, text in DRIFT_SHAPES.items()).replace("%", "%%")
    parser.add_argument(
        "--drift",
        type=_drift,
        default=None,
        metavar="all|none|NAME,...",
        help=f"answer documented drift shapes (about half of the tasks each); overrides the config's. {shapes}",
    )
    parser.add_argument(
        "--submit-delay",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="time a submit takes to be processed; meanwhile apimart answers a resend with the same "
        "Idempotency-Key 409 idempotency_in_progress (overrides the config's)",
    )
    parser.add_argument(
        "--progress",
        choices=get_args(ProgressShape),
        default=None,
        metavar="SHAPE",
        help="what progress running tasks report: linear (default), none (0 until done, like MiniMax), steps "
        "(0, then 50), concave (fast first), convex (slow first), stall (95 early, then stalls); overrides the "
        "config's progress.shape and keeps its other progress settings",
    )
    parser.add_argument(
        "--queue-fraction",
        type=_queue_fraction,
        default=None,
        metavar="SHARE|LOW,HIGH",
        help="share of each task's time spent queued, or a range each task draws its share from, e.g. 0,0.7 "
        "(default 0.15, or the config's)",
    )
    _add_webhook_options(parser)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The config described by parsed arguments; command-line ports and host override the config's."""
    source: str | None = args.config
    if source is None:
        config = SimulatorConfig()
    elif source.lstrip().startswith("{"):
        config = SimulatorConfig.from_json(source)
    else:
        config = SimulatorConfig.from_file(Path(source))
    options = ("host", "port", "cdn_port", "drift", "submit_delay", "queue_fraction")
    overrides = {name: value for name in options if (value := getattr(args, name, None)) is not None}
    shape: ProgressShape | None = getattr(args, "progress", None)
    if shape is not None:
        overrides["progress"] = msgspec.structs.replace(config.progress, shape=shape)
    webhooks = {
        field: value for option, field in _WEBHOOK_OPTIONS.items() if (value := getattr(args, option, None)) is not None
    }
    if webhooks:
        overrides["webhooks"] = msgspec.structs.replace(config.webhooks, **webhooks)
    return msgspec.structs.replace(config, **overrides) if overrides else config


async def run_from_args(args: argparse.Namespace) -> int:
    """Start the simulator, print the JSON line of URLs, serve until SIGINT/SIGTERM; returns the exit code."""
    config = config_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. Windows, or not the main thread
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        async with Simulator(config) as sim:
            urls = sim.urls
            line = {
                "apimart": urls.apimart,
                "toapis": urls.toapis,
                "minimax": urls.minimax,
                "cdn": urls.cdn,
                "stats": urls.stats,
            }
            print(msgspec.json.encode(line).decode(), flush=True)
            await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hailuo_async.simulator",
        description="Serve a local simulator of the apimart, toapis and MiniMax video APIs.",
    )
    build_arg_parser(parser)
    args = parser.parse_args(argv)
    try:
        config_from_args(args)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        parser.error(f"invalid --config: {exc}")
    try:
        return asyncio.run(run_from_args(args))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
