"""From parsed options to what the library takes, checked before anything is paid for.

The API key, the price table (``--prices``), the :class:`~hailuo_async.HailuoClient`, the ``--out`` folder and the
batch file's requests (through :func:`~hailuo_async.load_requests`) are made here; every problem becomes one
:class:`UsageError` worded in the command line's terms (``invalid --duration 5 for minimax: ...``), so that nothing
is sent for a command that cannot run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import TextIO

import msgspec

from .. import (
    DEFAULT_POLL,
    UNSET,
    BatchFileError,
    Estimate,
    GenerationRequest,
    HailuoClient,
    InvalidRequestError,
    PollPolicy,
    PriceTable,
    Webhook,
    estimate,
    load_requests,
)
from .._batchfile import format_bad_lines
from .._config import Unset
from .._download import check_destination
from .._exceptions import format_usd
from .._prices import describe_unpriced
from ..providers import Provider
from ._output import UsageError, shorten
from ._parser import DEFAULT_CONCURRENCY

__all__ = [
    "BatchInput",
    "api_key",
    "destination",
    "estimate_for",
    "make_client",
    "option_error",
    "price_table",
    "read_batch",
    "timeout",
]


def api_key(args: argparse.Namespace, provider: Provider) -> str:
    """``--api-key``, else the provider's variable, else ``HAILUO_API_KEY``."""
    given: str | None = args.api_key
    if given is not None:
        if not given.strip():
            raise UsageError("--api-key is empty")
        return given.strip()
    for variable in (provider.env_var, "HAILUO_API_KEY"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    raise UsageError(
        f"no API key for {provider.name}: set the {provider.env_var} environment variable "
        "(or HAILUO_API_KEY), or pass --api-key"
    )


def price_table(args: argparse.Namespace) -> PriceTable | None:
    """The table ``--prices FILE`` names (read and checked now, before anything is paid for); ``None`` without it:
    the library's own prices."""
    path: str | None = getattr(args, "prices", None)
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return PriceTable.from_dict(data, source=f"--prices {path}")
    except OSError as exc:
        raise UsageError(f"cannot read --prices {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--prices {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    except InvalidRequestError as exc:
        raise UsageError(f"invalid --prices {path}: {shorten(str(exc.value), 60)!r}: {exc.allowed}") from None


def estimate_for(args: argparse.Namespace, provider: Provider, requests: list[GenerationRequest]) -> Estimate:
    """What ``requests`` would cost with ``--prices`` (or the library's prices). A ``--max-spend`` that cannot be
    enforced (an item without a known price) is refused here, before anything is paid for."""
    quote = estimate(requests, provider=provider, prices=price_table(args))
    cap: float | None = getattr(args, "max_spend", None)
    if cap is not None and quote.unpriced:
        raise UsageError(
            f"--max-spend {format_usd(cap)} needs every item's price; none is known for item(s) "
            f"{describe_unpriced(provider.name, quote.unpriced)}: give them with --prices FILE (or drop the cap)"
        )
    return quote


def _poll_policy(args: argparse.Namespace) -> PollPolicy:
    max_lag: float | None = getattr(args, "max_lag", None)
    if max_lag is None:
        return DEFAULT_POLL
    return msgspec.structs.replace(DEFAULT_POLL, max_lag=max_lag)


def make_client(
    args: argparse.Namespace,
    provider: Provider,
    *,
    api_key: str,
    base_url: str | None,
    journal: Path | None = None,
    submits_per_minute: float | Unset | None = UNSET,
) -> HailuoClient:
    """The client the run options describe (not yet open)."""
    try:
        return HailuoClient(
            provider,
            api_key=api_key,
            base_url=base_url,
            max_concurrency=getattr(args, "concurrency", DEFAULT_CONCURRENCY),
            requests_per_second=getattr(args, "rps", None),
            submits_per_minute=submits_per_minute,
            poll=_poll_policy(args),
            journal=journal,
            resubmit_uncertain=bool(getattr(args, "resubmit_uncertain", False)),
            prices=price_table(args),
            max_spend=getattr(args, "max_spend", None),
            record_to=getattr(args, "record", None),
            webhook=_webhook(args),
        )
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None


def _webhook(args: argparse.Namespace) -> Webhook | None:
    """``--webhook-listen``/``--webhook-url``/``--webhook-secret`` as a :class:`Webhook`, or ``None``."""
    listen: str | None = getattr(args, "webhook_listen", None)
    url: str | None = getattr(args, "webhook_url", None)
    if listen is None and url is None:
        if getattr(args, "webhook_secret", None) is not None:
            raise UsageError("--webhook-secret needs --webhook-listen or --webhook-url")
        return None
    try:
        return Webhook(listen=listen, public_url=url, secret=getattr(args, "webhook_secret", None))
    except InvalidRequestError as exc:
        message = str(exc).replace("Webhook.listen", "--webhook-listen").replace("Webhook.public_url", "--webhook-url")
        raise UsageError(message) from None


def timeout(args: argparse.Namespace) -> float | Unset:
    """``--timeout``, or the library's default."""
    value: float | None = args.timeout
    return UNSET if value is None else value


_OPTION_NAMES = {name: "--" + name.replace("_", "-") for name in GenerationRequest.__struct_fields__} | {
    "prompt": "PROMPT",
    "prompt_optimizer": "--no-prompt-optimizer",
}
"""A request parameter as the command line names it."""


def option_error(error: InvalidRequestError) -> UsageError:
    """``error`` in the command line's words: ``missing PROMPT: ...``, ``invalid --duration 6 for apimart: ...``."""
    name = _OPTION_NAMES.get(error.parameter, error.parameter)
    if error.value is None:
        return UsageError(f"missing {name}: {error.allowed}")
    value = error.value if not isinstance(error.value, str) else shorten(error.value, 80)
    where = f" for {error.provider}" if error.provider else ""
    return UsageError(f"invalid {name} {value!r}{where}: {error.allowed}")


def destination(folder: str, *, option: str = "--out") -> Path:
    """``folder`` once it is known to take the videos (created if missing): checked before anything is paid."""
    try:
        return check_destination(folder, parameter=option)
    except InvalidRequestError as exc:
        raise option_error(exc) from None


@dataclasses.dataclass(frozen=True)
class BatchInput:
    """The requests of ``hailuo batch FILE``, and the invalid lines skipped (``--skip-invalid``)."""

    name: str
    """The file as the user named it (``<stdin>`` for ``-``)."""
    requests: list[GenerationRequest]
    skipped: list[str]
    """One entry per skipped line: ``line 3, field 'duration': invalid duration='ten': ...``."""


def read_batch(args: argparse.Namespace, provider: Provider, stdin: TextIO) -> BatchInput:
    """Read and check every line of the batch file before anything is sent (:func:`~hailuo_async.load_requests`).

    A bad line refuses the whole file, listing each bad line with its number and field; with ``--skip-invalid``
    the valid lines run and the bad ones are returned in :attr:`BatchInput.skipped`, unless no line is valid."""
    source: str = args.file
    name = "<stdin>" if source == "-" else source
    defaults = {"model": args.model, "duration": args.duration, "resolution": args.resolution}
    skipped: list[str] = []
    try:
        requests = load_requests(source, format=args.format, defaults=defaults, provider=provider, stdin=stdin)
    except BatchFileError as exc:
        if not exc.bad_lines:  # the file itself cannot be read
            raise UsageError(str(exc)) from None
        if not (args.skip_invalid and exc.requests):
            message = f"{len(exc.bad_lines)} bad line(s) in {name}; nothing was submitted:\n"
            message += format_bad_lines(exc.bad_lines)
            if not args.skip_invalid:
                message += "\n(--skip-invalid runs the valid lines and lists the bad ones)"
            raise UsageError(message) from None
        requests, skipped = exc.requests, [str(bad) for bad in exc.bad_lines]
    except InvalidRequestError as exc:  # the format: argparse checked --format, so the extension told nothing
        if exc.parameter != "format":
            raise UsageError(str(exc)) from None
        raise UsageError(
            f"cannot tell the format of {source!r} from its extension; pass --format txt|jsonl|csv"
        ) from None
    if not requests:
        raise UsageError(f"{name} holds no prompts (blank lines and # comments are skipped)")
    return BatchInput(name, requests, skipped)
