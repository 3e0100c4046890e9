"""The five commands, one function each: ``demo``, ``generate``, ``batch``, ``status`` and ``simulate``.

Each takes the parsed arguments and a :class:`Context` and returns the exit status. It checks its input first
(:mod:`._setup`: nothing is paid for a command that cannot run), opens the client with ``async with``, runs the
items (:mod:`._run`) and reports (:mod:`._report`). Only the library's exceptions are caught around library calls.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .. import (
    DEFAULT_MODEL,
    DownloadError,
    Generation,
    GenerationFailedError,
    GenerationRequest,
    GenerationTimeoutError,
    HailuoClient,
    HailuoError,
    InvalidRequestError,
    Journal,
    JournalError,
    JournalItem,
    SubmissionUncertainError,
)
from .._batchfile import check_request
from ..providers import get_provider
from ._interrupt import Interrupt, run_with_interrupt
from ._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Output,
    UsageError,
    failure_reason,
    json_record,
    plain_table,
    shorten,
    shown_path,
)
from ._parser import JOURNAL_NAME
from ._report import command_lines, print_estimate, print_summary, report_interrupted, status_command
from ._run import exit_status, run_items
from ._setup import api_key, destination, estimate_for, make_client, option_error, read_batch, timeout

__all__ = ["COMMANDS", "Context"]


@dataclasses.dataclass
class Context:
    """What every command gets besides its arguments."""

    out: Output
    program: list[str]
    """How this program was started (``hailuo``, or ``python -m hailuo_async``), for the hints it prints."""
    invocation: list[str]
    """The command line as typed (program words included), for the resume hint."""
    stdin: TextIO


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo demo``: a batch of 30 through an in-process simulator, downloaded, then a summary."""
    from ..simulator import Simulator
    from . import _demo

    out = ctx.out
    provider = get_provider(args.provider)
    folder = destination(args.out)
    removed = _demo.clear_previous_run(folder)
    if removed:
        out.info(f"demo: removed the {len(removed)} files the previous demo left in {folder}{os.sep}")
    try:
        first, last = _demo.make_frames(folder / "frames")
    except OSError as exc:  # the demo's own files
        raise UsageError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    requests = _demo.demo_items(first, last)
    labels = [_demo.display_label(r.prompt) for r in requests]

    async def run(interrupt: Interrupt) -> int:
        async with Simulator(_demo.demo_simulator_config()) as sim:
            base_url: str = getattr(sim.urls, provider.name)
            out.info(
                f"demo: {len(requests)} videos through a local {provider.name} simulator (no account, no network); "
                f"one prompt is refused on content grounds, to show what a failure looks like; "
                f"videos go to {folder}{os.sep}"
            )
            client = make_client(args, provider, api_key="demo-key", base_url=base_url, submits_per_minute=None)
            async with client:
                run_result = await run_items(
                    client,
                    requests,
                    labels,
                    out=out,
                    interrupt=interrupt,
                    download_to=folder,
                    timeout=timeout(args),
                    description="demo",
                )
                saved = [Path(g.path) for _, g in run_result.successes if g.path]
                _demo.record_run(folder, [first, last, *saved])
                if run_result.interrupted:
                    out.notice("hailuo: demo interrupted")
                    return EXIT_INTERRUPTED
                print_summary(out, client, run_result, title="hailuo demo", download_to=folder)
        # The content-policy refusal is part of the show: the demo succeeds when it is the only failure.
        expected = {i for i, r in enumerate(requests) if "{{sim:fail}}" in (r.prompt or "")}
        failed = {i for i, e in run_result.failures if isinstance(e, GenerationFailedError)}
        return EXIT_OK if failed == expected and len(run_result.failures) == len(expected) else EXIT_FAILED

    return run_with_interrupt(run, out)


def cmd_generate(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo generate PROMPT``: one video, saved; prints its URL and path."""
    out = ctx.out
    provider = get_provider(args.provider)
    try:
        request = GenerationRequest(
            args.prompt,
            model=args.model or DEFAULT_MODEL,
            duration=args.duration,
            resolution=args.resolution,
            first_frame=args.first_frame,
            last_frame=args.last_frame,
            prompt_optimizer=args.prompt_optimizer,
            fast_pretreatment=args.fast_pretreatment,
            watermark=args.watermark,
        )
        check_request(request, provider)
    except InvalidRequestError as exc:
        raise option_error(exc) from None
    estimate_for(args, provider, [request])
    key = api_key(args, provider)
    folder = destination(args.out)
    label = request.prompt or Path(str(request.first_frame)).name

    async def run(interrupt: Interrupt) -> int:
        async with make_client(args, provider, api_key=key, base_url=args.base_url) as client:
            result = await run_items(
                client,
                [request],
                [label],
                out=out,
                interrupt=interrupt,
                download_to=None,
                timeout=timeout(args),
                json_lines=False,
                item_lines=False,
            )
            task_id = result.tracker.task_ids[0]
            if result.interrupted or 0 not in result.outcomes:
                lines = ["hailuo: interrupted."]
                if task_id:
                    lines.append(f"hailuo: task {task_id} keeps running on {provider.name}; check it with:")
                    lines.extend(status_command(args, task_id, ctx.program))
                else:
                    lines.append("hailuo: nothing was submitted.")
                out.notice("\n".join(lines))
                return EXIT_INTERRUPTED
            outcome = result.outcomes[0]
            if isinstance(outcome, Generation):
                try:
                    outcome = await client.download(outcome, folder)
                except HailuoError as exc:
                    message = f"task {outcome.task_id} finished but its video could not be saved: {exc}"
                    outcome = DownloadError(message, generation=outcome)
            if out.json_mode:
                out.json(json_record(0, request, outcome, task_id))
            if isinstance(outcome, Generation):
                if not out.json_mode:
                    out.result(f"video_url: {outcome.video_url}\npath: {shown_path(outcome.path)}")
                return EXIT_OK
            out.error(failure_reason(outcome))
            if isinstance(outcome, GenerationTimeoutError) and not out.json_mode:
                command = status_command(args, task_id or outcome.task_id, ctx.program)
                out.notice("\n".join(["hailuo: the task may still finish; check it with:", *command]))
            if isinstance(outcome, DownloadError) and outcome.generation is not None and not out.json_mode:
                out.result(f"video_url: {outcome.generation.video_url}")
            return EXIT_FAILED

    return run_with_interrupt(run, out)


def cmd_batch(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo batch FILE``: every item of a txt/jsonl/csv file, checked first, journaled when possible; with
    ``--dry-run`` only checked and priced."""
    out = ctx.out
    provider = get_provider(args.provider)
    batch = read_batch(args, provider, ctx.stdin)
    quote = estimate_for(args, provider, batch.requests)
    if args.dry_run:
        print_estimate(out, quote, name=batch.name, cap=args.max_spend, skipped=batch.skipped)
        return EXIT_FAILED if batch.skipped else EXIT_OK
    key = api_key(args, provider)
    folder = None if args.out is None else destination(args.out)
    journal: Path | None = Path(args.journal) if args.journal else (folder / JOURNAL_NAME if folder else None)
    if journal is None:
        out.warn(
            "no --out or --journal: this batch is not resumable (an interruption loses track of the tasks already "
            "paid for) and its videos are not downloaded"
        )
    if batch.skipped:
        out.notice(
            f"hailuo: warning: skipping {len(batch.skipped)} invalid line(s) of {batch.name} "
            "(--skip-invalid):\n  " + "\n  ".join(batch.skipped)
        )
    labels = [r.prompt or Path(str(r.first_frame)).name for r in batch.requests]

    def again(note: str = "") -> list[str]:
        """The command that runs this batch again (resuming it), as :func:`command_lines`."""
        return command_lines(ctx.invocation, key_option=args.api_key is not None, provider=provider, note=note)

    async def run_through(client: HailuoClient, interrupt: Interrupt) -> int:
        if client.journal is not None:
            summary = client.journal.summary()
            if summary.total:
                counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items()))
                out.info(f"resuming from {journal} ({counts})")
        result = await run_items(
            client,
            batch.requests,
            labels,
            out=out,
            interrupt=interrupt,
            download_to=folder,
            timeout=timeout(args),
            description=Path(args.file).name if args.file != "-" else "stdin",
        )
        if result.interrupted:
            resume = again("   # with the same input on stdin" if args.file == "-" else "")
            report_interrupted(out, result, resume=resume, journal=journal, provider=provider.name)
            return EXIT_INTERRUPTED
        print_summary(out, client, result, title="hailuo batch", download_to=folder, skipped=len(batch.skipped))
        final = (GenerationFailedError, InvalidRequestError, SubmissionUncertainError)
        retryable = [i for i, e in result.failures if not isinstance(e, final)]
        if journal is not None and retryable:
            out.info(
                "\n".join(
                    [
                        f"{len(retryable)} failed item(s) can be retried (nothing already paid for is "
                        "submitted again) with:",
                        *again(),
                    ]
                )
            )
        return EXIT_FAILED if batch.skipped else exit_status(result)

    async def run(interrupt: Interrupt) -> int:
        client = make_client(args, provider, api_key=key, base_url=args.base_url, journal=journal)
        try:
            async with client:  # opening locks the journal against a concurrent run of the same batch
                return await run_through(client, interrupt)
        except JournalError as exc:  # busy (another run of this batch), unreadable, not a journal, or unwritable
            raise UsageError(str(exc)) from None

    return run_with_interrupt(run, out)


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo status TASK_ID`` (asks the provider) or ``hailuo status --journal FILE`` (reads the journal)."""
    if (args.task_id is None) == (args.journal is None):
        raise UsageError("give either a TASK_ID or --journal FILE")
    if args.journal is not None:
        return _status_journal(Path(args.journal), ctx.out)
    out = ctx.out
    provider = get_provider(args.provider)
    key = api_key(args, provider)
    task_id: str = args.task_id

    async def run(interrupt: Interrupt) -> int:
        async with make_client(args, provider, api_key=key, base_url=args.base_url) as client:
            try:
                status = await client.status(task_id)
            except HailuoError as exc:
                if out.json_mode:
                    out.json({"task_id": task_id, "error_type": type(exc).__name__, "error_message": str(exc)})
                out.error(str(exc))
                return EXIT_FAILED
        if out.json_mode:
            out.json(
                {
                    "task_id": task_id,
                    "state": status.state.value,
                    "provider_status": status.provider_status,
                    "progress": status.progress,
                    "video_url": status.video_url,
                    "expires_at": status.expires_at,
                    "error": status.error,
                    "error_code": status.error_code,
                }
            )
        else:
            rows = [("task", task_id), ("state", f"{status.state.value} ({status.provider_status})")]
            if status.progress is not None:
                rows.append(("progress", f"{status.progress}%"))
            if status.video_url:
                rows.append(("video_url", status.video_url))
            if status.error:
                rows.append(("error", status.error + (f" (code {status.error_code})" if status.error_code else "")))
            out.result("\n".join(line.strip() for line in plain_table(rows)))
        return EXIT_FAILED if status.state.value == "failed" else EXIT_OK

    return run_with_interrupt(run, out)


def _journal_item_record(item: JournalItem) -> dict[str, Any]:
    return {
        "index": item.batch_index,
        "state": item.state,
        "prompt": item.request.prompt,
        "task_id": item.task_id,
        "video_url": item.video_url,
        "path": item.path,
        "error_type": item.error_type,
        "error_message": item.error_message,
    }


def _status_journal(path: Path, out: Output) -> int:
    if not path.is_file():
        raise UsageError(f"no journal at {path}")
    journal = Journal(path)
    try:
        journal.open_sync(readonly=True)  # no lock, nothing created: works while the batch runs
        summary = journal.summary()
    except JournalError as exc:
        raise UsageError(str(exc)) from None
    finally:
        journal.close_sync()
    if out.json_mode:
        out.json(
            {
                "journal": str(path),
                "total": summary.total,
                "counts": summary.counts,
                "open": [_journal_item_record(i) for i in summary.open_items],
                "failed": [_journal_item_record(i) for i in summary.failed_items],
            }
        )
    else:
        lines = [f"journal {path}: {summary.total} item(s)"]
        lines.extend(plain_table([(state, str(n)) for state, n in sorted(summary.counts.items())]))
        for title, items in (("Still open", summary.open_items), ("Failed", summary.failed_items)):
            if items:
                lines.append(f"{title} ({len(items)})")
                for item in items:
                    detail = item.task_id or "no task id"
                    if item.error_type:
                        detail += f"  {item.error_type}: {shorten(item.error_message or '', 100)}"
                    lines.append(
                        f"  #{item.batch_index}  {item.state:<10} {detail}  {shorten(item.request.prompt or '', 40)!r}"
                    )
        out.result("\n".join(lines))
    return EXIT_FAILED if summary.failed_items else EXIT_OK


def cmd_simulate(args: argparse.Namespace, ctx: Context) -> int:
    """``hailuo simulate``: the simulator's own command line (:mod:`hailuo_async.simulator.__main__`).

    The simulator is a stand-in server, not the client library: its configuration errors (a JSON file that
    cannot be read or does not fit ``SimulatorConfig``) and its socket errors are plain ``OSError`` and
    ``ValueError``, caught here as its own command line catches them."""
    from ..simulator.__main__ import config_from_args, run_from_args

    try:
        config_from_args(args)
    except (OSError, ValueError) as exc:  # msgspec's DecodeError and ValidationError are ValueErrors
        raise UsageError(f"invalid --config: {exc}") from None
    try:
        return asyncio.run(run_from_args(args))
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:  # e.g. a --port already in use
        ctx.out.error(str(exc))
        return EXIT_FAILED


COMMANDS: dict[str, Callable[[argparse.Namespace, Context], int]] = {
    "demo": cmd_demo,
    "generate": cmd_generate,
    "batch": cmd_batch,
    "status": cmd_status,
    "simulate": cmd_simulate,
}
"""The function of each command, by the name :func:`~hailuo_async.cli._parser.build_parser` gives it."""
