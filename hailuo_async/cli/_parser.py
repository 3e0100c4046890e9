"""The ``hailuo`` argument parser: its commands, their options, and the types and defaults of those options.

:func:`build_parser` builds it; the options several commands share come from :func:`_shared_options`, so that each
command lists only what it honours and every ``--help`` line states its default. The command functions live in
:mod:`hailuo_async.cli._commands`, chosen by the parsed ``command``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from .. import DEFAULT_MODEL, DEFAULT_POLL, MODELS, __version__
from .._exceptions import InvalidRequestError
from .._models import canonical_model
from ..providers import PROVIDERS, Provider

__all__ = ["DEFAULT_CONCURRENCY", "JOURNAL_NAME", "build_parser"]

DEFAULT_CONCURRENCY = 16
"""Submits in flight at once unless ``--concurrency`` says otherwise."""
JOURNAL_NAME = ".hailuo-journal.sqlite"
"""The journal's file name inside ``--out``."""
DEMO_FOLDER = os.path.join("hailuo-output", "demo")
"""Where ``hailuo demo`` saves its videos by default (``hailuo-output/`` is where the examples write too)."""
DEFAULT_RESOLUTION = "768p"
"""What apimart, toapis and MiniMax all use when a request names no resolution (the CLI sends none by default)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text.strip().removeprefix("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of US dollars, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _model_name(text: str) -> str:
    try:
        return canonical_model(text)
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(exc.allowed) from None


def _by_provider(value: Callable[[Provider], object]) -> str:
    """``value`` of every provider, those that share one grouped: ``5 on apimart, 6 on minimax and toapis``."""
    groups: dict[str, list[str]] = {}
    for name in sorted(PROVIDERS):
        groups.setdefault(str(value(PROVIDERS[name])), []).append(name)
    return ", ".join(f"{shared} on {' and '.join(names)}" for shared, names in groups.items())


def _shared_options(*, connection: bool, run: bool) -> argparse.ArgumentParser:
    """The options commands share. ``connection``: ``--base-url`` and ``--api-key`` (not for the demo, which runs
    its own simulator); ``run``: how a batch runs (not for ``status``, which asks once)."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    api = common.add_argument_group("provider options")
    api.add_argument(
        "--provider",
        type=str.lower,
        choices=sorted(PROVIDERS),
        default="apimart",
        help="which API to use, any case (default: %(default)s)",
    )
    if connection:
        urls = ", ".join(f"{p.default_base_url} ({name})" for name, p in sorted(PROVIDERS.items()))
        api.add_argument("--base-url", metavar="URL", help=f"API root (default: the provider's, {urls})")
        api.add_argument(
            "--api-key",
            metavar="KEY",
            help="API key (default: the provider's variable APIMART_API_KEY, TOAPIS_API_KEY or MINIMAX_API_KEY, "
            "then HAILUO_API_KEY); prefer the variable, command lines are visible to other users",
        )
        api.add_argument(
            "--record",
            metavar="DIR",
            help="also write every API request and answer as one JSON file under DIR/PROVIDER/, with the key, "
            "credentials and URL signatures masked, to send in as test fixtures (default: none)",
        )
    if run:
        options = common.add_argument_group("run options")
        options.add_argument(
            "--concurrency",
            type=_positive_int,
            default=DEFAULT_CONCURRENCY,
            metavar="N",
            help="submits in flight at once (default: %(default)s)",
        )
        options.add_argument(
            "--rps",
            type=_positive_float,
            default=None,
            metavar="N",
            help="API requests per second (default: learn the provider's limit from its 429 answers)",
        )
        options.add_argument(
            "--timeout",
            type=_positive_float,
            default=None,
            metavar="SECONDS",
            help=f"give up waiting for an item after this long (default: {DEFAULT_POLL.deadline:g})",
        )
        options.add_argument(
            "--max-lag",
            type=_positive_float,
            default=None,
            metavar="SECONDS",
            help=(
                "how late a finished video may be noticed, at the 95th percentile; smaller costs more status "
                f"checks, larger saves them (default: {DEFAULT_POLL.max_lag:g})"
            ),
        )
    if run:
        hooks = common.add_argument_group(
            "webhook options (the provider calls back when a task ends: fewer status requests)"
        )
        hooks.add_argument(
            "--webhook-listen",
            metavar="HOST:PORT",
            help="serve the provider's deliveries here while the command runs (port 0: any free port; default: "
            "no webhook)",
        )
        hooks.add_argument(
            "--webhook-url",
            metavar="URL",
            help="the public https URL that reaches --webhook-listen (default: http://HOST:PORT when HOST is loopback)",
        )
        hooks.add_argument(
            "--webhook-secret",
            metavar="SECRET",
            help="toapis's webhook signing secret (default: the variable TOAPIS_WEBHOOK_SECRET)",
        )
    output = common.add_argument_group("output options")
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per finished item on stdout, nothing else (default: a readable summary)",
    )
    # Not a mutually exclusive group: argparse would list it outside this group in --help (main() checks instead).
    output.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what the library does to stderr, -vv: more (default: warnings only)",
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress, no notes; results and errors only (default: progress and notes on stderr)",
    )
    return common


def _request_options(parser: argparse._ActionsContainer, *, batch: bool) -> None:
    """``--model``, ``--duration`` and ``--resolution`` (for a batch: of the items that do not set their own)."""
    durations = _by_provider(lambda p: " or ".join(map(str, p.durations)))
    short = _by_provider(lambda p: p.durations[0])
    which = "for items that do not set one: " if batch else ""
    parser.add_argument(
        "--model",
        type=_model_name,
        metavar="MODEL",
        help=f"{which}{', '.join(MODELS[:-1])} or {MODELS[-1]} (image-to-video only), any case "
        f"(default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--duration",
        type=int,
        metavar="SECONDS",
        help=f"{which}{durations} with {DEFAULT_MODEL}; 6 or 10 with the 2.3 models (default: the provider's, {short})",
    )
    parser.add_argument(
        "--resolution",
        metavar="RES",
        help=f"{which}512p (Hailuo-02 only), 768p or 1080p, any case; 1080p only at the shorter duration "
        f"(default: the provider's, {DEFAULT_RESOLUTION} on all three)",
    )


def _money_options(parser: argparse.ArgumentParser, *, batch: bool) -> None:
    """``--max-spend`` and ``--prices`` (and for a batch ``--dry-run``)."""
    money = parser.add_argument_group("money options")
    money.add_argument(
        "--max-spend",
        type=_non_negative_float,
        metavar="USD",
        help="submit nothing that would take the spend committed so far (charged or estimated, running tasks "
        "included) past USD dollars; every item needs a known price (default: no cap)",
    )
    money.add_argument(
        "--prices",
        metavar="FILE",
        help="your prices, a JSON file {provider: {model: {resolution: {duration: usd}}}} replacing the built-in "
        "ones (default: MiniMax's published prices; none for apimart and toapis)",
    )
    if batch:
        money.add_argument(
            "--dry-run",
            action="store_true",
            help="check every line and print the count and the estimated cost per model, resolution and duration "
            "and in total; send nothing, no API key needed (default: run the batch)",
        )


_EPILOG = (
    "Exit status: 0 all items succeeded, 1 some failed, 2 usage error, 130 interrupted. "
    "Run 'hailuo demo' to see it work without an account."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``hailuo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="hailuo",
        description="Generate MiniMax Hailuo videos (Hailuo-02, 2.3, 2.3-Fast) at scale through apimart, toapis or "
        "the MiniMax API.",
        epilog=_EPILOG,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"hailuo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    everything = _shared_options(connection=True, run=True)

    demo = commands.add_parser(
        "demo",
        parents=[_shared_options(connection=False, run=True)],
        allow_abbrev=False,
        help="generate ~30 videos against a built-in simulator (no account needed)",
        description="Start the built-in simulator, generate a batch of 30 videos through it with live progress, "
        "download them and print a summary. Needs no API key and no network; takes a few seconds. "
        "A second run first removes what the previous demo wrote into the folder (and nothing else).",
    )
    demo.add_argument(
        "--out", default=DEMO_FOLDER, metavar="DIR", help="where to save the videos (default: %(default)s)"
    )

    generate = commands.add_parser(
        "generate",
        parents=[everything],
        allow_abbrev=False,
        help="generate one video",
        description="Generate one video, save it and print its URL and path.",
    )
    generate.add_argument("prompt", nargs="?", metavar="PROMPT", help="what happens; may hold [camera directives]")
    request = generate.add_argument_group("request options")
    _request_options(request, batch=False)
    request.add_argument("--first-frame", metavar="URL|FILE", help="image the video starts from (default: none)")
    request.add_argument(
        "--last-frame", metavar="URL|FILE", help="image the video ends on, needs --first-frame (default: none)"
    )
    request.add_argument(
        "--no-prompt-optimizer",
        dest="prompt_optimizer",
        action="store_const",
        const=False,
        default=None,
        help="send the prompt as written (default: the provider rewrites it)",
    )
    request.add_argument(
        "--fast-pretreatment",
        action="store_const",
        const=True,
        default=None,
        help="shorter prompt optimisation (default: off)",
    )
    request.add_argument(
        "--watermark", action="store_const", const=True, default=None, help="add the AI watermark (default: off)"
    )
    generate.add_argument(
        "--out", default=".", metavar="DIR", help="where to save the video (default: the current folder)"
    )
    _money_options(generate, batch=False)

    batch = commands.add_parser(
        "batch",
        parents=[everything],
        allow_abbrev=False,
        help="generate every item of a .txt, .jsonl or .csv file (resumable)",
        description="Generate every item of FILE. .txt: one prompt per line (blank lines and # comments skipped); "
        ".jsonl: one JSON object per line with GenerationRequest fields (prompt, model, duration, resolution, "
        "first_frame, last_frame, prompt_optimizer, fast_pretreatment, watermark); .csv: a header row naming those "
        "fields. Every line is checked before anything is submitted; --dry-run stops there and prints what the "
        "batch would cost. With --out (or --journal) the batch is journaled: running the same command again "
        "resumes it without paying twice.",
    )
    batch.add_argument("file", metavar="FILE", help="the batch file, or - for stdin")
    batch.add_argument("--format", choices=("txt", "jsonl", "csv"), help="default: from the extension (stdin: txt)")
    batch.add_argument(
        "--out",
        metavar="DIR",
        help=f"download every video into DIR, journal in DIR/{JOURNAL_NAME} (default: no download)",
    )
    batch.add_argument("--journal", metavar="FILE", help="the journal file (default: inside --out; none without --out)")
    _request_options(batch.add_argument_group("request options"), batch=True)
    batch.add_argument(
        "--skip-invalid",
        action="store_true",
        help="run the valid lines, list the invalid ones and exit 1 (default: a file with an invalid line is "
        "refused whole)",
    )
    batch.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="on resume, submit again items whose earlier submit got no answer; toapis, minimax: may pay twice "
        "(default: they fail with SubmissionUncertainError)",
    )
    _money_options(batch, batch=True)

    status = commands.add_parser(
        "status",
        parents=[_shared_options(connection=True, run=False)],
        allow_abbrev=False,
        help="show one task, or a batch from its journal",
        description="With TASK_ID: ask the provider for that task's state, progress and video URL. "
        "With --journal FILE: counts per state and the items still open or failed (no network).",
    )
    status.add_argument("task_id", nargs="?", metavar="TASK_ID", help="the provider's task id")
    status.add_argument("--journal", metavar="FILE", help=f"a batch journal, e.g. DIR/{JOURNAL_NAME} (default: none)")

    from ..simulator.__main__ import build_arg_parser

    simulate = commands.add_parser(
        "simulate",
        allow_abbrev=False,
        help="serve the built-in simulator of the three providers",
        description="Serve the local simulator (same as python -m hailuo_async.simulator): prints one JSON line "
        "with the base URLs, serves until Ctrl-C.",
    )
    build_arg_parser(simulate)
    return parser
