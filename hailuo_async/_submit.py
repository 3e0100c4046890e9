"""The money-safe submit: one request becomes exactly one provider task, or an error that says whether one may exist.

Data flow: the client resolves local frames, then hands the request here; :class:`Submitter` builds the submit with
the provider codec, sends it through the paced path (:mod:`._sender`), holds the item's estimated cost against the
spending caps and records the journal's intent right before the POST, records the task id right after the answer,
and returns a :class:`~hailuo_async._models.Task` for the poller.

Each submission is a small state machine (:class:`SubmitStage`):

- ``NEVER_SENT``: nothing reached the provider (no attempt yet, a connect failure, a 429 before any other
  attempt): sending again is safe.
- ``MAYBE_SENT``: the POST may have reached the provider and a task may exist (a timeout, a dropped connection, a
  5xx, an unreadable answer, another request in progress under the same key). Sending again is safe only under an
  idempotency key the provider honours (apimart); where the provider can look a submit up by the client's own key
  (toapis ``client_business_id``), it is looked up: found means the task exists and is polled, not found means it
  was never created and it is sent again. Otherwise the item fails with :class:`SubmissionUncertainError` and is
  never resent automatically.
- ``ANSWERED``: the provider gave a task id.

A cancellation (Ctrl-C, a cancelled batch, the client closing) drops a submit that is still waiting for the
pacer's token; once the POST may be on its way it waits, bounded by the request timeouts, for the answer, so the
task id is recorded instead of abandoning a task that may already be paid for.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

import anyio

from ._clock import Clock
from ._config import RetryPolicy, Timeouts
from ._exceptions import (
    APIError,
    DecodeError,
    HailuoError,
    IdempotencyInProgressError,
    ReadTimeoutError,
    ServerError,
    SubmissionUncertainError,
    TransportError,
)
from ._http import HttpRequest
from ._journal import JournalItem
from ._ledger import Reservation
from ._models import GenerationRequest, Task
from ._retry import Retrier, submit_may_retry
from ._sender import PacedSender
from .providers import Provider

__all__ = ["SubmitStage", "Submitter"]

logger = logging.getLogger("hailuo_async")

Note = Callable[..., Awaitable[None]]
"""Writes a journal item with changes: ``await note(item, state=..., ...)`` (does nothing without a journal)."""

Reserve = Callable[[], Reservation]
"""Holds the item's estimated cost against the spending caps, right before its first POST; raises
:class:`~hailuo_async.BudgetExceededError` when that would pass one (then nothing is sent)."""

_MAYBE_SENT_ERRORS = (ServerError, DecodeError, IdempotencyInProgressError)
"""Answers after which a task may exist: the provider may have created it before failing to say so."""

_INDETERMINATE_CODES = frozenset({"idempotency_result_indeterminate"})
"""Error codes (apimart, 409) saying the outcome of an earlier request under the same key is unknown: a task may
exist, whatever the HTTP status says."""


class SubmitStage(enum.Enum):
    """What is known about whether a submission created a task."""

    NEVER_SENT = "never sent"
    MAYBE_SENT = "maybe sent"
    ANSWERED = "answered"


class _Submission:
    """One item's submit across its attempts and look-ups."""

    __slots__ = ("http", "intent_recorded", "journal_item", "key", "resends", "reservation", "reserve", "stage")

    def __init__(self, http: HttpRequest, key: str, journal_item: JournalItem | None, reserve: Reserve | None) -> None:
        self.http = http
        self.key = key
        self.journal_item = journal_item
        self.reserve = reserve
        self.reservation: Reservation | None = None
        self.stage = SubmitStage.NEVER_SENT
        self.intent_recorded = False
        self.resends = 0  # sent again after a look-up found no task

    def may_have_been_sent(self) -> None:
        self.stage = SubmitStage.MAYBE_SENT  # sticky: a later connect failure does not undo an earlier delivery

    def close(self, task_id: str | None) -> None:
        """Settle the cost held for this submission: kept for the task it created, or may have created; freed
        when none was."""
        if self.reservation is None:
            return
        if task_id is not None:
            self.reservation.commit(task_id)
        elif self.stage is SubmitStage.MAYBE_SENT:
            self.reservation.commit(self.key)
        else:
            self.reservation.release()


class Submitter:
    """Submits requests under the money-safety rules; counts what it does (``submitting``, ``submitted``,
    ``uncertain``)."""

    MAX_RESENDS = 2
    """Times a submission is sent again after a look-up showed its earlier POST created no task."""
    LOOKUPS_FOR_A_MISS = 2
    """Look-ups, each after :attr:`RetryPolicy.lookup_delay`, that must all find no task before a submission counts
    as never created: a POST still being processed when the first was asked shows up in the second."""

    def __init__(
        self,
        provider: Provider,
        sender: PacedSender,
        *,
        retry: RetryPolicy,
        timeouts: Timeouts,
        clock: Clock,
        note: Note,
        on_retry: Callable[[Exception, float], None] | None = None,
    ) -> None:
        self.provider = provider
        self.sender = sender
        self.retry = retry
        self.timeouts = timeouts
        self.clock = clock
        self._note = note
        idempotent = provider.honours_idempotency_key
        self._retrier = Retrier(
            retry,
            clock=clock,
            should_retry=lambda exc: submit_may_retry(exc, idempotent=idempotent),
            on_retry=on_retry,
        )
        self._lookup_retrier = Retrier(retry, clock=clock, on_retry=on_retry)
        self.submitting = 0
        self.submitted = 0
        self.uncertain = 0
        self.callback_url: str | None = None
        """Where the provider should report each task's end (a webhook), put in every submit when set."""

    async def submit(
        self,
        original: GenerationRequest,
        resolved: GenerationRequest,
        *,
        key: str,
        journal_item: JournalItem | None = None,
        look_up_first: bool = False,
        reserve: Reserve | None = None,
    ) -> Task:
        """Submit ``resolved`` (``original`` with its local frames replaced) and return its task.

        ``key`` is the submission's own key: the ``Idempotency-Key`` where honoured, the look-up key where the
        provider offers one. ``look_up_first``: an earlier run may have sent it (resume): ask before sending.
        ``reserve`` holds the item's estimated cost against the spending caps right before its first POST; the
        cost stays held for a task that exists or may exist, and is freed when none was created.
        Raises :class:`SubmissionUncertainError` when a task may exist but cannot be confirmed,
        :class:`BudgetExceededError` when the cost would pass a cap (nothing sent), or the error that shows
        nothing was created."""
        http = self.provider.build_submit(resolved, idempotency_key=key, callback_url=self.callback_url)
        submission = _Submission(http, key, journal_item, reserve)
        if look_up_first:
            submission.may_have_been_sent()
        self.submitting += 1
        created: str | None = None
        try:
            task_id, submitted_at = await self._until_answered(submission)
            created = task_id
        except HailuoError as exc:
            await self._fail(submission, original, exc)
        finally:
            self.submitting -= 1
            submission.close(created)
        self.submitted += 1
        logger.debug("hailuo_async: %s accepted task %s", self.provider.name, task_id)
        return Task(
            provider=self.provider.name,
            task_id=task_id,
            request=original,
            submitted_at=submitted_at,
            idempotency_key=key if self.provider.honours_idempotency_key else None,
        )

    async def _until_answered(self, submission: _Submission) -> tuple[str, float]:
        """Send until the provider answers; a lost answer that can be looked up is looked up, not given up on."""
        while True:
            failure: HailuoError | None = None
            if submission.stage is not SubmitStage.MAYBE_SENT:
                try:
                    return await self._retrier(lambda: self._attempt(submission))
                except HailuoError as exc:
                    if not self._can_look_up(submission):
                        raise
                    failure = exc
            try:
                found = await self._look_up(submission)
            except HailuoError as exc:
                if failure is None:
                    raise
                raise failure from exc  # the look-up could not tell: the send's failure stands
            if found is not None:
                return found
            submission.stage = SubmitStage.NEVER_SENT  # the provider says no task carries the key
            submission.resends += 1

    def _can_look_up(self, submission: _Submission) -> bool:
        return (
            submission.stage is SubmitStage.MAYBE_SENT
            and self.provider.can_look_up_submits
            and submission.resends < self.MAX_RESENDS
        )

    async def _attempt(self, submission: _Submission) -> tuple[str, float]:
        await self.sender.acquire(submit=True)  # a cancellation here drops the item: nothing has left
        with anyio.CancelScope(shield=True) as shield:
            shield.deadline = anyio.current_time() + self.timeouts.connect + self.timeouts.read + 1.0
            if submission.reservation is None and submission.reserve is not None:
                # Held without awaiting anything, right before the first POST: concurrent submits each see the
                # others' costs, so together they cannot pass a cap. Over the cap it raises; nothing is sent.
                submission.reservation = submission.reserve()
            if not submission.intent_recorded:
                # Committed before the POST leaves, after every wait that precedes it: an item is marked "may
                # have been sent" only when it really may have been.
                await self._note(submission.journal_item, state="intent")
                submission.intent_recorded = True
            try:
                task_id = await self.sender.call(submission.http, self.provider.parse_submit, submit=True, paced=True)
            except TransportError as exc:
                if exc.maybe_sent:
                    submission.may_have_been_sent()
                raise
            except _MAYBE_SENT_ERRORS:
                submission.may_have_been_sent()
                raise
            except APIError as exc:
                if exc.code in _INDETERMINATE_CODES:
                    submission.may_have_been_sent()
                raise
            submission.stage = SubmitStage.ANSWERED
            return await self._accepted(submission, task_id)
        submission.may_have_been_sent()  # the shield's own deadline passed while the POST was in flight
        raise ReadTimeoutError("submit: no answer before the deadline")

    async def _accepted(self, submission: _Submission, task_id: str) -> tuple[str, float]:
        submitted_at = self.clock.time()
        await self._note(submission.journal_item, state="submitted", task_id=task_id, submitted_at=submitted_at)
        return task_id, submitted_at

    async def _look_up(self, submission: _Submission) -> tuple[str, float] | None:
        """Ask the provider whether the submission created a task; ``None`` when it says no task carries the key.

        Each question waits :attr:`RetryPolicy.lookup_delay` first, so that a POST the provider is still
        processing has created its task before it is asked; a "not found" counts only once it is said twice
        (:attr:`LOOKUPS_FOR_A_MISS`), a delay apart."""
        request = self.provider.build_lookup(submission.key)
        task_id = None
        for _ in range(self.LOOKUPS_FOR_A_MISS):
            await self.clock.sleep(self.retry.lookup_delay)
            task_id = await self._lookup_retrier(lambda: self.sender.call(request, self.provider.parse_lookup))
            if task_id is not None:
                break
        if task_id is None:
            logger.info("hailuo_async: %s has no task for a lost submit; sending it again", self.provider.name)
            return None
        logger.info("hailuo_async: %s confirmed task %s for a lost submit answer", self.provider.name, task_id)
        submission.stage = SubmitStage.ANSWERED
        return await self._accepted(submission, task_id)

    async def _fail(self, submission: _Submission, original: GenerationRequest, exc: HailuoError) -> NoReturn:
        """Record and raise the end of a submission that produced no task id."""
        if submission.stage is SubmitStage.MAYBE_SENT:
            self.uncertain += 1
            error = SubmissionUncertainError(
                f"{self.provider.name}: the submit may have created a task ({type(exc).__name__}: {exc}); "
                "not resent automatically",
                request=original,
                provider=self.provider.name,
                idempotency_key=submission.key,
            )
            await self._note(
                submission.journal_item, state="uncertain", error_type=type(error).__name__, error_message=str(error)
            )
            raise error from exc
        await self._note(
            submission.journal_item, state="not_created", error_type=type(exc).__name__, error_message=str(exc)
        )
        raise exc
