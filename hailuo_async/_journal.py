"""The batch journal: a SQLite file (WAL mode) that lets a killed batch resume without paying twice.

For each item the client records its intent (with its idempotency key) before the submit is sent, the task id as
soon as the provider answers, then the outcome (with what the provider reported about it: cost, timing, video size;
and the price table's estimate) and the downloaded path. An item is identified by provider + canonical request + its
occurrence number in the input, so duplicate prompts stay distinct. Writes run on a worker thread, grouped into one
transaction when several are waiting (group commit), so the event loop never blocks on the disk. Journals written by
older versions are read as they are and gain the newer columns when opened for writing. Whatever SQLite, the file
system or the decoder raises reaches the caller as :class:`JournalError` naming the file; after a failed write the
journal refuses every later one, so that what it holds stays what was committed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import anyio
import anyio.to_thread
import msgspec

from ._exceptions import JournalBusyError, JournalError
from ._models import DEFAULT_MODEL, Generation, GenerationRequest, ProviderFactsMixin

if sys.platform != "win32":
    import fcntl

__all__ = ["Journal", "JournalItem", "JournalSummary", "completed_fields", "item_key"]

ItemState = Literal["intent", "not_created", "uncertain", "submitted", "completed", "failed", "timed_out"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    request TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    batch_index INTEGER,
    idempotency_key TEXT NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    submitted_at REAL,
    video_url TEXT,
    expires_at REAL,
    completed_at REAL,
    path TEXT,
    error_type TEXT,
    error_message TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_task ON items(task_id);
"""

# Columns added after the first release, by name and SQL type. Older files lack them: a writable open adds them
# (ALTER TABLE ... ADD COLUMN, NULL in existing rows) and a read-only open reads NULL in their place.
_ADDED_COLUMNS: dict[str, str] = {
    "cost": "REAL",
    "credits_cost": "REAL",
    "actual_time": "REAL",
    "finished_at": "REAL",
    "video_width": "INTEGER",
    "video_height": "INTEGER",
    "estimated_cost": "REAL",
}

_encode_request = msgspec.json.Encoder(order="sorted").encode
_decode_request = msgspec.json.Decoder(GenerationRequest).decode


def canonical_request(request: GenerationRequest) -> str:
    """The request as stable JSON (sorted keys). The default model is left out, so that a Hailuo-02 request keeps
    the text, and so the item id, it had before requests named a model: a journal written then resumes as it
    was (its requests read back as Hailuo-02)."""
    if request.model != DEFAULT_MODEL:
        return _encode_request(request).decode()
    fields = msgspec.to_builtins(request)
    del fields["model"]
    return _encode_request(fields).decode()


def item_key(provider: str, request: GenerationRequest, occurrence: int) -> str:
    """The journal id of the ``occurrence``-th (0-based) identical request of a batch."""
    digest = hashlib.sha256(f"{provider}\n{canonical_request(request)}\n{occurrence}".encode())
    return digest.hexdigest()[:32]


class JournalItem(msgspec.Struct, ProviderFactsMixin, frozen=True, kw_only=True):
    """One item as recorded (the provider's facts about a completed task as on :class:`Generation`)."""

    item_id: str
    provider: str
    request: GenerationRequest
    occurrence: int
    batch_index: int | None
    idempotency_key: str
    state: ItemState
    task_id: str | None = None
    submitted_at: float | None = None
    video_url: str | None = None
    expires_at: float | None = None
    completed_at: float | None = None
    path: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    cost: float | None = None
    credits_cost: float | None = None
    actual_time: float | None = None
    finished_at: float | None = None
    video_width: int | None = None
    video_height: int | None = None
    estimated_cost: float | None = None
    """The price table's estimate for the video, in US dollars (``Generation.estimated_cost``)."""

    def generation(self) -> Generation | None:
        """The recorded result, for a completed item."""
        if self.state != "completed" or not self.task_id or not self.video_url:
            return None
        return Generation(
            provider=self.provider,
            task_id=self.task_id,
            request=self.request,
            video_url=self.video_url,
            expires_at=self.expires_at,
            submitted_at=self.submitted_at or 0.0,
            completed_at=self.completed_at or 0.0,
            path=self.path,
            estimated_cost=self.estimated_cost,
            **self.provider_facts(),
        )


def completed_fields(generation: Generation) -> dict[str, Any]:
    """What a completed item records from ``generation``: pass to ``msgspec.structs.replace(item, **...)``."""
    return {
        "state": "completed",
        "video_url": generation.video_url,
        "expires_at": generation.expires_at,
        "completed_at": generation.completed_at,
        "estimated_cost": generation.estimated_cost,
        **generation.provider_facts(),
    }


class JournalSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Counts per state, and the items still open or failed."""

    total: int
    counts: dict[str, int]
    open_items: list[JournalItem]
    failed_items: list[JournalItem]


_FIRST_COLUMNS = (
    "item_id",
    "provider",
    "request",
    "occurrence",
    "batch_index",
    "idempotency_key",
    "state",
    "task_id",
    "submitted_at",
    "video_url",
    "expires_at",
    "completed_at",
    "path",
    "error_type",
    "error_message",
)
_ITEM_COLUMNS = (*_FIRST_COLUMNS, *_ADDED_COLUMNS)
"""Every recorded field of :class:`JournalItem`, in column order (``updated_at`` is the file's own)."""
_COLUMNS = ", ".join(_ITEM_COLUMNS)


def _row_to_item(row: tuple[Any, ...]) -> JournalItem:
    fields = dict(zip(_ITEM_COLUMNS, row, strict=True))
    fields["request"] = _decode_request(fields["request"])
    return JournalItem(**fields)


def _item_to_row(item: JournalItem) -> tuple[Any, ...]:
    return tuple(
        canonical_request(item.request) if name == "request" else getattr(item, name) for name in _ITEM_COLUMNS
    )


def _existing_columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(items)")}


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Give a journal written by an older version the columns added since."""
    existing = _existing_columns(db)
    for name, sql_type in _ADDED_COLUMNS.items():
        if name not in existing:
            db.execute(f"ALTER TABLE items ADD COLUMN {name} {sql_type}")


def _problem(exc: BaseException, path: Path, action: str) -> str:
    """What went wrong, for :class:`JournalError`: a file that is no journal says so; others name the action."""
    if isinstance(exc, msgspec.DecodeError) or type(exc) is sqlite3.DatabaseError:  # SQLite: "file is not a database"
        return f"{path} is not a hailuo journal ({exc})"
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot {action} the journal {path}: {detail}"


def _select_list(db: sqlite3.Connection) -> str:
    """The columns to read, with ``NULL`` standing in for any an older (read-only) file lacks."""
    existing = _existing_columns(db)
    return ", ".join(name if name in existing else f"NULL AS {name}" for name in _ITEM_COLUMNS)


class Journal:
    """An open journal file. Use :meth:`open` (async) or :meth:`open_sync`; close with :meth:`aclose`.

    :meth:`write` returns once its write is committed; concurrent writes share one commit. Storage and decoding
    problems raise :class:`JournalError`; once a commit has failed, every later write raises it too (the file keeps
    what was committed before, nothing newer)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._items: dict[str, JournalItem] = {}
        self._by_task: dict[str, str] = {}
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._flush_lock = anyio.Lock()
        self._thread_lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)
        self._lock: IO[bytes] | None = None
        self._select = _COLUMNS
        self._failed: JournalError | None = None
        """The failed commit after which nothing more is written."""

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Raise what SQLite, the file system or the decoder raise as :class:`JournalError` naming this file."""
        try:
            yield
        except (sqlite3.Error, OSError, msgspec.DecodeError) as exc:
            raise JournalError(_problem(exc, self.path, action), path=self.path) from exc

    # -- opening and reading ------------------------------------------------------------------------------

    def open_sync(self, *, readonly: bool = False) -> Journal:
        """Open (creating if needed) and load the journal; blocking.

        A writable journal is locked for this process (the lock goes when the process does): a second batch on
        the same journal raises :class:`JournalBusyError`. ``readonly`` inspects a journal, even one in use,
        without creating or locking anything; a missing file then raises ``FileNotFoundError``, as ``open()``
        does. A file that cannot be opened or read, or is no journal, raises :class:`JournalError`."""
        if readonly and not self.path.is_file():
            raise FileNotFoundError(f"no journal at {self.path}")
        with self._errors("open"):
            self._open(readonly)
        self._by_task = {item.task_id: item.item_id for item in self._items.values() if item.task_id}
        return self

    def _open(self, readonly: bool) -> None:
        if not readonly:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file()
        db: sqlite3.Connection | None = None
        try:
            if readonly:
                db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            else:
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=5000")
            if not readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process; commits stay cheap
                db.executescript(_SCHEMA)
                _add_missing_columns(db)
            self._select = _select_list(db)
            self._db = db
            self._items = {item.item_id: item for item in self._read_all()}
        except BaseException:
            if db is not None:
                db.close()
            self._db = None
            self._unlock_file()  # also when connecting failed: the lock must not outlive a failed open
            raise

    def _lock_file(self) -> None:
        if sys.platform == "win32":  # pragma: no cover - no advisory lock there
            return
        handle = open(self.path.with_name(self.path.name + ".lock"), "a+b")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise JournalBusyError(
                f"another process is running a batch with the journal {self.path}; wait for it to finish "
                "(running both at once could submit the same items twice)",
                path=self.path,
            ) from None
        self._lock = handle

    def _unlock_file(self) -> None:
        handle, self._lock = self._lock, None
        if handle is not None:
            handle.close()  # closing drops the flock

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> Journal:
        """Open (creating if needed, unless ``readonly``) and load the journal off the event loop."""
        journal = cls(path)
        await anyio.to_thread.run_sync(functools.partial(journal.open_sync, readonly=readonly))
        return journal

    def _read_all(self) -> Iterator[JournalItem]:
        assert self._db is not None
        with self._thread_lock:
            query = f"SELECT {self._select} FROM items ORDER BY batch_index, item_id"  # noqa: S608 - known columns
            rows = self._db.execute(query).fetchall()
        for row in rows:
            yield _row_to_item(row)

    def get(self, item_id: str) -> JournalItem | None:
        """The recorded item, if any (from memory; no I/O)."""
        return self._items.get(item_id)

    def items(self) -> list[JournalItem]:
        """Every recorded item, in batch order."""
        return sorted(self._items.values(), key=lambda i: (i.batch_index is None, i.batch_index or 0, i.item_id))

    def find_task(self, task_id: str) -> JournalItem | None:
        """The item that produced ``task_id``."""
        item_id = self._by_task.get(task_id)
        return None if item_id is None else self._items.get(item_id)

    def summary(self) -> JournalSummary:
        """Counts per state and the items still open or failed."""
        counts: dict[str, int] = {}
        for item in self._items.values():
            counts[item.state] = counts.get(item.state, 0) + 1
        items = self.items()
        return JournalSummary(
            total=len(items),
            counts=counts,
            open_items=[i for i in items if i.state in ("intent", "uncertain", "submitted", "timed_out")],
            failed_items=[i for i in items if i.state in ("failed", "not_created")],
        )

    # -- writing ------------------------------------------------------------------------------------------

    def _apply(self, item: JournalItem) -> tuple[str, tuple[Any, ...]]:
        self._items[item.item_id] = item
        if item.task_id:
            self._by_task[item.task_id] = item.item_id
        placeholders = ", ".join("?" * (len(_ITEM_COLUMNS) + 1))
        return (
            f"INSERT OR REPLACE INTO items ({_COLUMNS}, updated_at) VALUES ({placeholders})",  # noqa: S608
            (*_item_to_row(item), time.time()),
        )

    async def write(self, item: JournalItem) -> None:
        """Record ``item`` (replacing its previous record) and wait until it is committed.

        Raises :class:`JournalError` when the commit fails, or failed earlier: a write that raises is not in the
        file, and nothing written after it will be (an item keeps its last committed state)."""
        self._check_writable()
        self._pending.append(self._apply(item))
        async with self._flush_lock:
            self._check_writable()  # an earlier flush carrying our write may have failed
            if not self._pending:
                return  # an earlier flush carried our write
            batch, self._pending = self._pending, []
            await anyio.to_thread.run_sync(self._commit, batch, limiter=self._limiter)

    def _check_writable(self) -> None:
        if self._failed is not None:
            raise JournalError(
                f"the journal {self.path} failed a write earlier; nothing more is recorded ({self._failed})",
                path=self.path,
            ) from self._failed

    def _commit(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        db = self._db
        if db is None:
            raise RuntimeError("journal is closed")
        try:
            with self._errors("write"), self._thread_lock:
                db.execute("BEGIN")
                try:
                    for sql, params in batch:
                        db.execute(sql, params)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except JournalError as exc:
            self._failed = exc
            raise

    def close_sync(self) -> None:
        """Commit what is pending (unless a write failed) and close; blocking."""
        if self._db is None:
            return
        try:
            if self._pending and self._failed is None:
                batch, self._pending = self._pending, []
                self._commit(batch)
        finally:
            with self._errors("close"), self._thread_lock:
                self._db.close()
            self._db = None
            self._unlock_file()

    async def aclose(self) -> None:
        """Commit what is pending and close the file."""
        async with self._flush_lock:
            await anyio.to_thread.run_sync(self.close_sync, limiter=self._limiter)

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, items={len(self._items)})"
