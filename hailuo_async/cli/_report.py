"""What ``hailuo`` prints when a batch ends: the summary table (with the spend), the interruption report, commands
to paste, and what ``--dry-run`` found a batch would cost.

Data flow: a :class:`~hailuo_async.cli._run.RunResult` and the client's statistics -> :func:`print_summary` (a rich
table on a terminal, plain lines elsewhere) or :func:`report_interrupted` (always shown); an
:class:`~hailuo_async.Estimate` -> :func:`print_estimate`. Printed commands
(resume, status) never carry ``--api-key``: when the key came from that option, a note names the variable instead.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import msgspec

from .. import ClientStatistics, Estimate, EstimateLine, HailuoClient
from .._exceptions import format_usd
from .._prices import to_micros
from ..providers import Provider, get_provider
from ._output import Output, duration, failure_reason, plain_table, shorten
from ._run import RunResult

__all__ = ["command_lines", "print_estimate", "print_summary", "report_interrupted", "spend_text", "status_command"]

MAX_LISTED_FAILURES = 20
"""Failed items the summary lists before the rest are only counted."""
MAX_LISTED_RUNNING = 20
"""Items still running that an interruption report lists when a journal holds them all."""


def print_summary(
    out: Output,
    client: HailuoClient,
    run: RunResult,
    *,
    title: str,
    download_to: Path | None,
    skipped: int = 0,
) -> None:
    """The end-of-batch table: done, failed with reasons, time, requests used."""
    stats = client.statistics()
    total = run.tracker.total
    rows: list[tuple[str, str]] = [
        ("done", f"{len(run.successes)} of {total}"),
        ("failed", str(len(run.failures))),
    ]
    not_run = total - len(run.outcomes)
    if not_run:
        rows.append(("not finished", str(not_run)))
    if skipped:
        rows.append(("skipped", f"{skipped} invalid line{'s' if skipped != 1 else ''} (listed above)"))
    rows.append(("time", duration(run.elapsed)))
    detail = f"{stats.submitted} submits, {stats.status_requests} status checks"
    if stats.uploads:
        detail += f", {stats.uploads} image upload{'s' if stats.uploads != 1 else ''}"
    if stats.retries:
        detail += f", {stats.retries} retries"
    rows.append(("API requests", f"{stats.requests} ({detail})"))
    rows.append(("spent", spend_text(stats)))
    if download_to is not None:
        saved = sum(1 for _, generation in run.successes if generation.path)
        rows.append(("videos saved", f"{saved} in {download_to}{os.sep}"))
    failures = [(f"#{i}", shorten(run.tracker.labels[i], 50), failure_reason(e)) for i, e in run.failures]
    hidden_failures = max(0, len(failures) - MAX_LISTED_FAILURES)
    failures = failures[:MAX_LISTED_FAILURES]
    urls: list[tuple[str, str]] = []
    if download_to is None:
        urls = [(f"#{i}", g.video_url) for i, g in run.successes]

    console = out.console
    if out.fancy and console is not None and not out.json_mode:
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left", title_style="bold")
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
        if failures:
            failed = Table(title="Failed", title_justify="left", title_style="bold red")
            for name in ("item", "prompt", "reason"):
                failed.add_column(name, overflow="fold")
            for failure in failures:
                failed.add_row(*failure)
            if hidden_failures:
                failed.add_row("…", f"and {hidden_failures} more", "(--json lists every item)")
            console.print(failed)
        if urls:
            videos = Table(title="Videos", title_justify="left", title_style="bold")
            videos.add_column("item")
            videos.add_column("url", overflow="fold")
            for video in urls:
                videos.add_row(*video)
            console.print(videos)
        return
    lines = [title, *plain_table(rows)]
    if failures:
        lines.append("Failed")
        for item, label, reason in failures:
            lines.append(f"  {item}  {label!r}")
            lines.append(f"  {' ' * len(item)}  {reason}")
        if hidden_failures:
            lines.append(f"  ... and {hidden_failures} more (--json lists every item)")
    if urls:
        lines.append("Videos")
        lines.extend(f"  {item}  {url}" for item, url in urls)
    out.result("\n".join(lines))


def spend_text(stats: ClientStatistics) -> str:
    """The client's spend for people: ``$0.84 (estimated from the price table)``, ``$1.20 (charged)``..."""
    spent, estimated, unpriced = stats.spent, stats.spent_estimated, stats.unpriced
    charged = spent - estimated
    if unpriced and not spent:
        text = "unknown"
    elif estimated and charged > 0:
        text = f"{format_usd(spent)} ({format_usd(charged)} charged, {format_usd(estimated)} estimated)"
    elif estimated:
        text = f"{format_usd(spent)} (estimated from the price table)"
    else:
        text = format_usd(spent) + (" (charged)" if spent else "")
    if unpriced:
        plural = "s" if unpriced != 1 else ""
        text += f"; {unpriced} task{plural} without a known price not counted"
    if stats.max_spend is not None:
        text += f"; cap {format_usd(stats.max_spend)}"
    return text


def print_estimate(out: Output, quote: Estimate, *, name: str, cap: float | None, skipped: Sequence[str]) -> None:
    """What ``hailuo batch --dry-run`` prints: the count, a line per model, resolution and duration, the total,
    where the prices come from and where ``--max-spend`` would stop the batch; with ``--json`` one JSON object."""
    count = len(quote.items)
    fits = None if cap is None else _items_under(quote, cap)
    if out.json_mode:
        out.json(
            {
                "dry_run": True,
                "file": name,
                "provider": quote.provider,
                "count": count,
                "skipped": len(skipped),
                "lines": [msgspec.to_builtins(line) for line in quote.lines()],
                "total_usd": quote.total,
                "complete": quote.complete,
                "unpriced": [item.index for item in quote.unpriced],
                "max_spend": cap,
                "items_under_cap": fits,
            }
        )
        return
    rows = [(f"{line.model} {line.resolution} {line.duration} s", _line_cost(line)) for line in quote.lines()]
    total = format_usd(quote.total)
    if quote.unpriced:
        total += f" for the priced items; {len(quote.unpriced)} item(s) without a known price (--prices FILE)"
    rows.append(("total", total))
    text = [f"hailuo batch --dry-run: {_items(count)} in {name} for {quote.provider}; nothing was sent"]
    text.extend(plain_table(rows))
    sources = sorted({i.source + (f", {i.as_of}" if i.as_of else "") for i in quote.items if i.source})
    text.extend(f"prices: {source}" for source in sources)
    if cap is not None and fits is not None:
        stop = "the whole batch fits" if fits == count else f"the batch would stop after {_items(fits)}"
        text.append(f"--max-spend {format_usd(cap)}: {stop}")
    if skipped:
        text.append(f"{len(skipped)} invalid line(s) skipped (--skip-invalid)")
    out.result("\n".join(text))


def _items(count: int) -> str:
    return f"{count} item{'s' if count != 1 else ''}"


def _line_cost(line: EstimateLine) -> str:
    if line.unit_usd is None or line.subtotal_usd is None:
        return f"{line.count} x unknown"
    return f"{line.count} x {format_usd(line.unit_usd)} = {format_usd(line.subtotal_usd)}"


def _items_under(quote: Estimate, cap: float) -> int:
    """How many items, in order, fit under ``cap``: where a batch under ``--max-spend`` would stop."""
    room, fits = to_micros(cap), 0
    for item in quote.items:
        needed = to_micros(item.usd or 0)
        if needed > room:
            break
        room -= needed
        fits += 1
    return fits


def without_api_key(words: Sequence[str]) -> list[str]:
    """``words`` without ``--api-key KEY`` / ``--api-key=KEY``: a printed command must not carry the key."""
    kept: list[str] = []
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word == "--api-key":
            skip_next = True
        elif not word.startswith("--api-key="):
            kept.append(word)
    return kept


def command_lines(words: Sequence[str], *, key_option: bool, provider: Provider, note: str = "") -> list[str]:
    """A command to paste (indented, ``--api-key`` left out), after a line naming the key's variable when the key
    came from ``--api-key``: the command then reads it from the environment."""
    lines = []
    if key_option:
        lines.append(
            f"hailuo: first put your key in {provider.env_var} (export {provider.env_var}=...): the command "
            "leaves --api-key out so that the key stays off the screen"
        )
    lines.append("  " + shlex.join(without_api_key(words)) + note)
    return lines


def status_command(args: argparse.Namespace, task_id: str, program: Sequence[str]) -> list[str]:
    """``hailuo status TASK_ID`` with this run's provider and base URL, as :func:`command_lines`."""
    words = [*program, "status", task_id]
    if args.provider != "apimart":
        words += ["--provider", args.provider]
    if args.base_url:
        words += ["--base-url", args.base_url]
    return command_lines(words, key_option=args.api_key is not None, provider=get_provider(args.provider))


def report_interrupted(
    out: Output,
    run: RunResult,
    *,
    resume: list[str] | None,
    journal: Path | None,
    provider: str,
) -> None:
    """What finished, what still runs (task ids), what was never sent, and how to resume (always shown, even with
    ``--quiet``). ``resume``: the lines of :func:`command_lines` for the command that resumes the batch."""
    t = run.tracker
    running = [i for i in range(t.total) if t.task_ids[i] and i not in run.outcomes]
    not_submitted = sum(1 for i in range(t.total) if not t.task_ids[i] and i not in run.outcomes)
    lines = [
        f"hailuo: interrupted after {duration(run.elapsed)}: {len(run.outcomes)} of {t.total} items finished "
        f"({len(run.successes)} done, {len(run.failures)} failed)."
    ]
    if running:
        lines.append(f"hailuo: {len(running)} item(s) still running on {provider} (already paid for):")
        listed = running if journal is None else running[:MAX_LISTED_RUNNING]
        lines.extend(f"  #{i}  {t.task_ids[i]}  {shorten(t.labels[i], 50)!r}" for i in listed)
        if len(listed) < len(running):
            lines.append(f"  ... and {len(running) - len(listed)} more (hailuo status --journal {journal} lists all)")
    if not_submitted:
        lines.append(f"hailuo: {not_submitted} item(s) not submitted (nothing was sent for them).")
    if resume is not None and journal is not None:
        lines.append(f"hailuo: the journal {journal} holds every task id; nothing will be paid twice. Resume with:")
        lines.extend(resume)
    elif running:
        lines.append(
            "hailuo: no journal: running the same command again would submit every item again. "
            "Check a task with `hailuo status TASK_ID`; next time pass --out or --journal to make a batch resumable."
        )
    out.notice("\n".join(lines))
