"""Durable batches against the simulator: journal and resume, crash (SIGKILL) and rerun, safe downloads."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import anyio
import msgspec
import pytest

from hailuo_async import (
    Generation,
    HailuoClient,
    ItemEvent,
    Journal,
    JournalBusyError,
    PollPolicy,
    RetryPolicy,
    SubmissionUncertainError,
)
from hailuo_async.simulator import Faults, Simulator, SimulatorConfig
from hailuo_async.simulator._cdn import mp4_bytes

from ..conftest import SECRET

pytestmark = pytest.mark.anyio

FAST_POLL = PollPolicy(max_lag=0.1, min_interval=0.05, max_interval=1.0, deadline=60)
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.2, rate_limit_default=0.2, lookup_delay=0.1)
VIDEO_BYTES = 4096


def sim_config(**changes: object) -> SimulatorConfig:
    base = SimulatorConfig.from_json(
        {"generation": {"kind": "uniform", "low": 0.2, "high": 0.5}, "video_bytes": VIDEO_BYTES}
    )
    return msgspec.structs.replace(base, **changes) if changes else base


def client_for(sim: Simulator, provider: str, journal: Path, **options: object) -> HailuoClient:
    settings: dict[str, object] = {
        "api_key": SECRET,
        "base_url": getattr(sim.urls, provider),
        "poll": FAST_POLL,
        "retry": FAST_RETRY,
        "submits_per_minute": None,
        "journal": journal,
    }
    settings.update(options)
    return HailuoClient(provider, **settings)  # type: ignore[arg-type]


def assert_videos(sim: Simulator, folder: Path, expected: int) -> None:
    files = sorted(folder.glob("*.mp4"))
    assert len(files) == expected, [f.name for f in files]
    by_task = {task.task_id: task for task in sim.tasks}
    for file in files:
        task_id = next(t for t in by_task if t in file.name)
        assert file.read_bytes() == mp4_bytes(task_id, VIDEO_BYTES), file.name
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("provider", ["apimart", "toapis", "minimax"])
async def test_cancelled_batch_resumes_without_resubmitting(provider: str, tmp_path: Path) -> None:
    prompts = [f"resume {i}" for i in range(12)] + ["resume 0", "resume 0"]  # duplicates stay distinct
    journal = tmp_path / "batch.sqlite"
    async with Simulator(sim_config()) as sim:
        async with client_for(sim, provider, journal, max_concurrency=2) as client:
            with anyio.CancelScope() as scope:

                def stop(event: ItemEvent) -> None:
                    if event.kind == "submitted" and event.index == 5:
                        scope.cancel()

                await client.gather_generations(prompts, on_event=stop, download_to=tmp_path / "videos")
        first_run = dict(sim.stats().tasks_created_by_prompt)
        assert 0 < sum(first_run.values()) < len(prompts)
        async with client_for(sim, provider, journal, max_concurrency=4) as client:
            results = await client.gather_generations(prompts, download_to=tmp_path / "videos")
        assert all(isinstance(r, Generation) for r in results)
        created = sim.stats().tasks_created_by_prompt
        assert created == {**{f"resume {i}": 1 for i in range(1, 12)}, "resume 0": 3}
        assert len({r.task_id for r in results if isinstance(r, Generation)}) == len(prompts)
        assert_videos(sim, tmp_path / "videos", len(prompts))
        # A third run finds everything done: no request at all to the API.
        sim.reset_stats()
        async with client_for(sim, provider, journal) as client:
            again = await client.gather_generations(prompts, download_to=tmp_path / "videos")
        assert [r.task_id for r in again if isinstance(r, Generation)] == [
            r.task_id for r in results if isinstance(r, Generation)
        ]
        assert sum(sim.stats().requests_by_route.values()) == 0
    reader = await Journal.open(journal, readonly=True)
    try:
        assert reader.summary().counts == {"completed": len(prompts)}
    finally:
        await reader.aclose()


async def test_uncertain_submit_on_resume(tmp_path: Path) -> None:
    # MiniMax cannot look a submit up: an uncertain item stays uncertain until the user consents to resend it.
    journal = tmp_path / "batch.sqlite"
    async with Simulator(sim_config(faults=Faults(submit_then_drop=1.0))) as sim:
        async with client_for(sim, "minimax", journal) as client:
            first = await client.gather_generations(["maybe paid"], return_exceptions=True)
        assert isinstance(first[0], SubmissionUncertainError)
        sim.update_config(faults=Faults())
        async with client_for(sim, "minimax", journal) as client:
            second = await client.gather_generations(["maybe paid"], return_exceptions=True)
        assert isinstance(second[0], SubmissionUncertainError)
        assert sim.stats().submits_by_prompt == {"maybe paid": 1}  # nothing resent without consent
        async with client_for(sim, "minimax", journal, resubmit_uncertain=True) as client:
            third = await client.gather_generations(["maybe paid"])
        assert isinstance(third[0], Generation)
        assert sim.stats().submits_by_prompt == {"maybe paid": 2}


async def test_apimart_resume_reuses_the_idempotency_key(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    async with Simulator(sim_config(faults=Faults(submit_then_drop=1.0))) as sim:
        async with client_for(sim, "apimart", journal, retry=RetryPolicy(max_attempts=1)) as client:
            first = await client.gather_generations(["keyed"], return_exceptions=True)
        assert isinstance(first[0], SubmissionUncertainError)
        key = first[0].idempotency_key
        sim.update_config(faults=Faults())
        async with client_for(sim, "apimart", journal) as client:
            second = await client.gather_generations(["keyed"])
        assert isinstance(second[0], Generation)
        assert sim.stats().tasks_created_by_prompt == {"keyed": 1}
        assert sim.task(second[0].task_id).idempotency_key == key


async def test_expired_url_is_refreshed(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite"
    async with Simulator(sim_config(url_ttl=1.0)) as sim:
        async with client_for(sim, "apimart", journal) as client:
            first = await client.gather_generations(["short lived"])
        assert isinstance(first[0], Generation)
        await anyio.sleep(1.5)  # the signed URL (second resolution) has expired
        async with client_for(sim, "apimart", journal) as client:
            saved = await client.download(first[0], tmp_path / "direct")
            resumed = await client.gather_generations(["short lived"], download_to=tmp_path / "videos")
        assert saved.path and Path(saved.path).read_bytes() == mp4_bytes(first[0].task_id, VIDEO_BYTES)
        assert isinstance(resumed[0], Generation) and resumed[0].path
        assert sim.stats().tasks_created == 1


async def test_truncated_downloads_end_byte_exact(tmp_path: Path) -> None:
    async with Simulator(sim_config(faults=Faults(cdn_truncate=0.5), seed=4)) as sim:
        async with client_for(sim, "minimax", tmp_path / "j.sqlite", max_concurrency=8) as client:
            results = await client.gather_generations([f"cut {i}" for i in range(10)], download_to=tmp_path / "v")
        assert all(isinstance(r, Generation) and r.path for r in results)
        assert_videos(sim, tmp_path / "v", 10)
        assert sim.stats().cdn_requests > 10  # some transfers were resumed or retried
        assert sim.stats().cdn_requests_with_credentials == 0


BATCH_SCRIPT = textwrap.dedent(
    """
    import sys, anyio
    from hailuo_async import HailuoClient, PollPolicy, RetryPolicy

    base_url, journal, out, provider = sys.argv[1:5]
    prompts = [line.strip() for line in open(sys.argv[5]) if line.strip()]

    def report(event):
        print(event.kind, event.index, flush=True)

    async def main():
        async with HailuoClient(
            provider, api_key="sk-crash", base_url=base_url, journal=journal, max_concurrency=3,
            submits_per_minute=None,
            poll=PollPolicy(max_lag=0.1, min_interval=0.05, max_interval=1.0),
            retry=RetryPolicy(base_delay=0.01, max_delay=0.2),
        ) as client:
            results = await client.gather_generations(
                prompts, download_to=out, on_event=report, return_exceptions=True
            )
        uncertain = [i for i, r in enumerate(results) if type(r).__name__ == "SubmissionUncertainError"]
        print("UNCERTAIN", " ".join(map(str, uncertain)), flush=True)
        print("DONE", sum(1 for r in results if getattr(r, "path", None)), flush=True)

    anyio.run(main)
    """
)


async def _run_until(args: list[str], sim: Simulator, condition: str, threshold: int) -> tuple[int, str]:
    """Start the batch process, SIGKILL it once ``condition`` reaches ``threshold`` (or let it finish)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")]))
    async with await anyio.open_process([sys.executable, *args], env=env, stderr=sys.stderr) as process:
        lines: list[str] = []
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        killed = False

        async def read() -> None:
            assert process.stdout is not None
            async for chunk in process.stdout:
                lines.append(chunk.decode())

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            while process.returncode is None and time.monotonic() < deadline:
                stats = sim.stats()
                reached = {
                    "start": 1,
                    "created": stats.tasks_created,
                    "downloads": stats.requests_by_route.get("cdn.video", 0),
                    "never": 0,
                }[condition]
                if condition != "never" and reached >= threshold:
                    process.send_signal(signal.SIGKILL)
                    killed = True
                    break
                await anyio.sleep(0.01)
            await process.wait()
            tg.cancel_scope.cancel()
        assert killed or process.returncode == 0, "".join(lines)
        return process.returncode or 0, "".join(lines)


@pytest.mark.parametrize(
    ("provider", "condition", "threshold", "generation"),
    [
        ("toapis", "start", 1, "{{sim:time=0.3}}"),  # before any submit
        ("apimart", "created", 4, "{{sim:time=0.3}}"),  # mid-submit, idempotent provider
        ("minimax", "created", 4, "{{sim:time=0.3}}"),  # mid-submit, no idempotency
        ("apimart", "created", 12, "{{sim:time=2.0}}"),  # mid-poll: everything submitted, nothing finished
        ("toapis", "downloads", 3, "{{sim:time=0.2}}"),  # mid-download
    ],
)
async def test_sigkill_and_rerun(
    provider: str, condition: str, threshold: int, generation: str, tmp_path: Path
) -> None:
    script = tmp_path / "batch.py"
    script.write_text(BATCH_SCRIPT)
    prompts = tmp_path / "prompts.txt"
    names = [f"crash {i} {generation}" for i in range(12)]
    prompts.write_text("\n".join(names))
    faults = Faults(latency=0.05, routes=frozenset({"cdn"})) if condition == "downloads" else Faults()
    if condition == "created":
        faults = Faults(latency=0.02, routes=frozenset({"submit"}))  # submits take a moment: the kill lands mid-way
    async with Simulator(sim_config(faults=faults)) as sim:
        args = [
            str(script),
            getattr(sim.urls, provider),
            str(tmp_path / "j.sqlite"),
            str(tmp_path / "out"),
            provider,
            str(prompts),
        ]
        code, _ = await _run_until(args, sim, condition, threshold)
        assert code == -signal.SIGKILL
        code, output = await _run_until(args, sim, "never", 0)
        assert code == 0, output
        created = sim.stats().tasks_created_by_prompt
        uncertain = [int(i) for i in output.split("UNCERTAIN")[1].split("\n")[0].split()]
        # Never a second task for any prompt, whatever the provider.
        assert max(created.values()) == 1
        if provider == "minimax" and condition == "created":
            # Submits in flight at the kill may or may not have reached MiniMax, which offers no idempotency:
            # they are reported, not resent. At most max_concurrency of them.
            assert len(uncertain) <= 3
        else:
            assert uncertain == []
            assert created == dict.fromkeys(names, 1)
        assert f"DONE {12 - len(uncertain)}" in output, output
        assert_videos(sim, tmp_path / "out", 12 - len(uncertain))
        assert sim.stats().cdn_requests_with_credentials == 0


async def test_journal_is_locked_against_a_second_writer_but_readable(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    first = await Journal.open(path)
    try:
        with pytest.raises(JournalBusyError, match="another process"):
            Journal(path).open_sync()
        reader = Journal(path).open_sync(readonly=True)
        assert reader.summary().total == 0
        reader.close_sync()
    finally:
        await first.aclose()
    second = await Journal.open(path)  # the lock went with the first
    await second.aclose()
    with pytest.raises(FileNotFoundError):
        Journal(tmp_path / "missing.sqlite").open_sync(readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()
