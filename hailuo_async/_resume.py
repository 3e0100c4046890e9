"""The journal's side of a batch: what to do with each item (the resume rules) and every record made of it.

Data flow: :class:`~hailuo_async._batch.BatchRunner` asks :meth:`JournalBook.plan` about each item before its
submit: finished in an earlier run (return the recorded outcome), submitted earlier (poll that task), maybe sent
earlier (look it up first, resend under the same key, or report it uncertain), or new. The submit records its
intent and task id through :meth:`JournalBook.note`; the batch records each outcome. Without a journal every item
is new and nothing is recorded.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import anyio
import msgspec

from ._clock import Clock
from ._exceptions import (
    GenerationFailedError,
    GenerationTimeoutError,
    HailuoError,
    JournalError,
    SubmissionUncertainError,
)
from ._http import redact
from ._journal import Journal, JournalItem, completed_fields, item_key
from ._models import Generation, GenerationRequest, Task, TaskState, TaskStatus
from ._poller import Outcome
from .providers import Provider

__all__ = ["JournalBook", "Plan"]

logger = logging.getLogger("hailuo_async")

EXPIRY_MARGIN = 60.0
"""Seconds of life a recorded video URL must have left to be returned without asking the provider again."""


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with one batch item, as the journal sees it."""

    key: str
    """The submission's own key (idempotency or look-up key), kept across runs."""
    item: JournalItem | None = None
    """The journal record to submit under (``None`` without a journal)."""
    task: Task | None = None
    """A task an earlier run submitted: poll it instead of submitting."""
    outcome: Generation | HailuoError | None = None
    """The final outcome an earlier run recorded: nothing more to do."""
    look_up_first: bool = False
    """An earlier run may have sent it: ask the provider before sending."""


class JournalBook:
    """The journal's side of batches: the resume rules and every record. Without a journal it plans fresh
    submits and records nothing. ``journal`` is set once the client opens it."""

    def __init__(self, provider: Provider, clock: Clock, *, resubmit_uncertain: bool) -> None:
        self.provider = provider
        self.clock = clock
        self.resubmit_uncertain = resubmit_uncertain
        self.journal: Journal | None = None

    async def note(self, item: JournalItem | None, **changes: Any) -> None:
        """Record ``item`` with ``changes``, if there is a journal; a cancellation waits for the write."""
        if self.journal is None or item is None:
            return
        with anyio.CancelScope(shield=True):
            await self.journal.write(msgspec.structs.replace(item, **changes))

    def plan(self, request: GenerationRequest, index: int, occurrences: dict[str, int]) -> Plan:
        """What to do with ``request``, the batch's item ``index``; raises :class:`SubmissionUncertainError`
        when an earlier run may have created its task and that can be neither confirmed nor safely resent."""
        journal = self.journal
        if journal is None:
            return Plan(key=uuid.uuid4().hex)
        name = self.provider.name
        canonical = f"{name}|{msgspec.json.encode(request).decode()}"
        occurrence = occurrences.get(canonical, 0)
        occurrences[canonical] = occurrence + 1
        item_id = item_key(name, request, occurrence)
        recorded = journal.get(item_id)
        key = recorded.idempotency_key if recorded is not None and recorded.idempotency_key else uuid.uuid4().hex
        base = JournalItem(
            item_id=item_id,
            provider=name,
            request=request,
            occurrence=occurrence,
            batch_index=index,
            idempotency_key=key,
            state="intent",
        )
        if recorded is None:
            return Plan(key=key, item=base)
        outcome = self.recorded_outcome(recorded)
        if outcome is not None:
            return Plan(key=key, outcome=outcome)
        if recorded.task_id and recorded.state in ("submitted", "timed_out", "completed"):
            task = Task(
                provider=recorded.provider,
                task_id=recorded.task_id,
                request=request,
                submitted_at=recorded.submitted_at or self.clock.time(),
                idempotency_key=recorded.idempotency_key,
            )
            return Plan(key=key, task=task)
        maybe_sent = recorded.state in ("intent", "uncertain")
        look_up_first = maybe_sent and self.provider.can_look_up_submits
        if maybe_sent and not (look_up_first or self.provider.honours_idempotency_key or self.resubmit_uncertain):
            raise SubmissionUncertainError(
                f"{name}: an earlier run may have created this task (its submit got no answer); "
                "pass resubmit_uncertain=True to submit it again",
                request=request,
                provider=name,
                idempotency_key=recorded.idempotency_key,
            )
        item = msgspec.structs.replace(base, path=recorded.path)
        return Plan(key=key, item=item, look_up_first=look_up_first)

    def recorded_outcome(self, recorded: JournalItem) -> Outcome | None:
        """The final outcome an earlier run recorded, if the item needs nothing more."""
        if recorded.state == "failed" and recorded.error_type == GenerationFailedError.__name__ and recorded.task_id:
            return GenerationFailedError(
                recorded.error_message or "task failed", provider=recorded.provider, task_id=recorded.task_id
            )  # error_message holds the provider's reason (see record_failure)
        generation = recorded.generation()
        if generation is None:
            return None
        if generation.path and Path(generation.path).is_file():
            return generation
        fresh = generation.expires_at is None or generation.expires_at > self.clock.time() + EXPIRY_MARGIN
        return generation if fresh else None  # expired URL: poll once more for a fresh one

    async def record_completed(self, generation: Generation, index: int) -> None:
        """Record a finished item (and, once saved, its file). A journal that cannot be written any more does not
        cost the finished video: the failure is logged and a later run polls the task again."""
        item = self._find(generation.task_id)
        await self._note_quietly(
            item,
            **completed_fields(generation),
            path=generation.path or (item.path if item is not None else None),
            batch_index=index,
        )

    async def record_failure(self, task: Task, error: HailuoError) -> None:
        """Record a submitted item's failure: final for a failed generation, open for anything else."""
        item = self._find(task.task_id)
        state = "timed_out" if isinstance(error, GenerationTimeoutError) else "failed"
        if not isinstance(error, (GenerationFailedError, GenerationTimeoutError)):
            state = "submitted"  # the task exists; a later run polls it again
        reason = error.reason if isinstance(error, GenerationFailedError) else str(error)
        await self._note_quietly(item, state=state, error_type=type(error).__name__, error_message=redact(reason))

    async def record_delivery(self, task_id: str, status: TaskStatus) -> bool:
        """A webhook told how a task this client does not track ended (an earlier run's): record it, so that
        resuming the batch needs no status request for it. Returns whether anything was recorded."""
        item = self._find(task_id)
        if item is None or item.state in ("completed", "failed"):
            return False
        if status.state is TaskState.FAILED:
            await self._note_quietly(
                item,
                state="failed",
                error_type=GenerationFailedError.__name__,
                error_message=redact(status.error or "task failed"),
            )
            return True
        if status.state is TaskState.COMPLETED and status.video_url:
            facts = status.provider_facts()
            await self._note_quietly(
                item,
                state="completed",
                video_url=status.video_url,
                expires_at=status.expires_at,
                completed_at=self.clock.time(),
                **facts,
            )
            return True
        return False  # it ended, but its URL takes a status request: resuming polls it

    def _find(self, task_id: str) -> JournalItem | None:
        """The journal's record of ``task_id``; ``None`` without a journal or when it cannot be read (logged)."""
        try:
            return self.journal.find_task(task_id) if self.journal is not None else None
        except JournalError as exc:
            logger.warning("hailuo_async: the journal could not be read; task %s is not recorded: %s", task_id, exc)
            return None

    async def _note_quietly(self, item: JournalItem | None, **changes: Any) -> None:
        """:meth:`note` for records made after the task exists: a journal failure is logged, not raised, so it
        never turns a finished item into a failed one (nothing is submitted on the strength of these records)."""
        try:
            await self.note(item, **changes)
        except JournalError as exc:
            logger.warning("hailuo_async: the journal could not record an item: %s", exc)
