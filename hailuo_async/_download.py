"""Saving finished videos to disk: the last step of the data flow.

``submit → poll → Generation(video_url) → here → Generation(path)``. A video URL comes from a third party (the
gateway or its CDN) and is usually signed and short-lived, so this module treats everything about it as hostile:

- the body streams through :meth:`Transport.stream`, the credential-less session, into a hidden ``.part`` file
  in the target folder, written from worker threads so the event loop keeps polling;
- the HTTP status, ``Content-Length`` / ``Content-Range``, a size cap and the MP4 signature (an ``ftyp`` box at
  offset 4) are checked before the file gets its final name;
- interrupted transfers resume with ``Range`` and back off between attempts; an expired signed URL
  (403/404/410) is refreshed once;
- the final name is claimed atomically and never replaces an existing file (an identical one is accepted);
- file names are built from a template (:func:`video_filename`) and checked to stay inside the folder
  (:func:`safe_destination`); prompts, task ids and URLs never become path components verbatim;
- error messages show URLs without their query string (signatures) via :func:`~hailuo_async._http.redact`.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import secrets
import shutil
import stat
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread
import msgspec
from anyio import AsyncFile

from ._config import DEFAULT_RETRY, RetryPolicy
from ._exceptions import DownloadError, InvalidRequestError, TransportError
from ._http import parse_retry_after, redact
from ._models import Generation
from ._retry import retry_delay
from ._transport import Transport

__all__ = ["Downloader", "check_destination", "download_video", "safe_destination", "video_filename"]

DEFAULT_MAX_BYTES = 2 * 1024**3
"""Largest video accepted by default (2 GiB); a Hailuo-02 1080p clip is a few tens of MB."""

TYPICAL_VIDEO_BYTES = 64 * 1024**2
"""Free space a destination folder must have before a paid generation starts (a 1080p Hailuo-02 clip is a few
tens of MB; the check is a floor, not a guarantee)."""

MAX_NAME_BYTES = 200
"""Longest file name produced or accepted, in bytes (most file systems allow 255)."""

_SLUG_CHARS = 40
_TASK_ID_CHARS = 64
_HASH_CHARS = 12
_MAX_INDEX = 10**15
_WRITE_BUFFER = 1024 * 1024  # gather chunks to ~1 MiB before handing a write to a worker thread
_COMPARE_BLOCK = 1024 * 1024
_PROGRESS = 256 * 1024  # an interrupted attempt that saved at least this much does not use up an attempt
_MAX_CANDIDATES = 1000
_EXPIRED = (403, 404, 410)
_TRANSIENT = (408, 425, 429)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)


# -- names ---------------------------------------------------------------------------------------------------


def _slug(prompt: str | None) -> str:
    folded = unicodedata.normalize("NFKD", prompt or "").encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:_SLUG_CHARS].strip("-")
    return slug or "video"


def _safe_task_id(task_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", task_id).strip("-")
    if cleaned == task_id and 0 < len(cleaned) <= _TASK_ID_CHARS:
        return cleaned
    # Changed, truncated or empty: add a digest of the original so two hostile ids never share a name.
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    head = cleaned[: _TASK_ID_CHARS - _HASH_CHARS - 1].strip("-")
    return f"{head}-{digest}" if head else f"task-{digest}"


def video_filename(index: int | None, prompt: str | None, task_id: str) -> str:
    """A safe file name ``{index:05d}_{slug}_{taskid}.mp4`` (the index part omitted when ``index`` is None).

    The slug is the prompt lower-cased and folded to ASCII with every other run of characters turned into
    ``-`` (at most 40 characters, ``video`` when nothing is left). The task id keeps only ``[A-Za-z0-9_-]``
    (at most 64 characters); when that changes it, a short SHA-256 of the original id is appended so distinct
    ids never collide. The result is never ``.``/``..``/empty, has no path separator and is at most
    :data:`MAX_NAME_BYTES` bytes. Pure function."""
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < _MAX_INDEX):
        raise InvalidRequestError("index", index, f"an integer from 0 to {_MAX_INDEX - 1}")
    if not isinstance(task_id, str):
        raise InvalidRequestError("task_id", task_id, "a string")
    parts = [_slug(prompt), _safe_task_id(task_id)]
    if index is not None:
        parts.insert(0, f"{index:05d}")
    return "_".join(parts) + ".mp4"  # ASCII, at most 15 + 1 + 40 + 1 + 64 + 4 = 125 bytes


def _name_problem(filename: str) -> str | None:
    """Why ``filename`` is not a plain file name, or ``None`` when it is safe to use in a folder."""
    if not isinstance(filename, str) or not filename:
        return "an empty or non-text name"
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    decoded = filename
    for _ in range(3):  # %252e%252e%252f decodes twice before it shows its dots
        decoded = unquote(decoded)
    for text in (filename, decoded):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            return "a control or NUL character"
        if "/" in text or "\\" in text or (os.altsep and os.altsep in text) or os.sep in text:
            return "a path separator"
        if ".." in text or text.strip() in ("", "."):
            return "a relative path component"
        if ":" in text:
            return "a drive or stream separator"
    if os.path.isabs(filename) or Path(filename).name != filename:
        return "a path instead of a name"
    if filename[-1] in ". ":
        return "a trailing dot or space"
    if filename.split(".")[0].strip().lower() in _WINDOWS_RESERVED:
        return "a reserved device name"
    return None


def safe_destination(directory: str | os.PathLike[str], filename: str, *, parameter: str | None = None) -> Path:
    """``directory / filename``, after checking that it stays strictly inside ``directory``.

    ``filename`` must be a plain name: no separators (``/`` or ``\\``), NUL or control characters, ``..``,
    absolute or drive paths, nor any of these once percent-decoded (``%2e%2e%2f``), at most
    :data:`MAX_NAME_BYTES` bytes. Symbolic links are resolved on both sides and the target must still be a
    direct child of the folder. The folder is created when missing. Raises :class:`DownloadError`, or
    :class:`InvalidRequestError` naming ``parameter`` when the name came from the user. Blocking (file system)."""
    problem = _name_problem(filename)
    if problem is None:
        base = Path(directory)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"cannot create folder {os.fspath(base)!r}: {exc.strerror or exc}") from None
        root = Path(os.path.realpath(base))
        candidate = root / filename
        target = Path(os.path.realpath(candidate))
        if target == root or not target.is_relative_to(root) or target.parent != root:
            problem = "a name that resolves outside the folder"
        else:
            return candidate
    if parameter is not None:
        raise InvalidRequestError(parameter, filename, f"a plain file name (got {problem})")
    raise DownloadError(f"refusing output file name {filename!r}: {problem}")


def check_destination(directory: str | os.PathLike[str], *, parameter: str = "download_to") -> Path:
    """Check, before anything is paid for, that videos can be saved into ``directory``: it exists or can be
    created, is a folder, is writable, and has room for a typical video (:data:`TYPICAL_VIDEO_BYTES`).

    Creates the folder when missing and returns it. Raises :class:`InvalidRequestError` naming ``parameter``,
    the folder and what is wrong. Blocking (file system)."""
    folder = Path(directory)

    def refuse(problem: str) -> InvalidRequestError:
        return InvalidRequestError(parameter, os.fspath(folder), f"a writable folder ({problem})")

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise refuse("it exists and is not a folder") from None
    except NotADirectoryError:
        raise refuse("a part of its path is a file, not a folder") from None
    except OSError as exc:
        raise refuse(f"it cannot be created: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise refuse("it is not a folder")
    probe = folder / f".hailuo-write-check-{secrets.token_hex(6)}"
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as exc:
        raise refuse(f"it cannot be written: {exc.strerror or exc}") from None
    try:
        free: int | None = shutil.disk_usage(folder).free
    except OSError:
        free = None  # unknown: the download itself reports a full disk
    if free is not None and free < TYPICAL_VIDEO_BYTES:
        raise refuse(f"only {free // 1024**2} MB free; a video needs about {TYPICAL_VIDEO_BYTES // 1024**2} MB")
    return folder


# -- transfer ------------------------------------------------------------------------------------------------


def _shown(url: str) -> str:
    """``url`` for messages: no query string or fragment (signatures), secrets masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        bare = parts._replace(netloc=netloc, query="", fragment="").geturl()  # no user:password@ either
        suffix = "?…" if parts.query else ""
    except ValueError:
        bare, suffix = url.split("?", 1)[0].split("#", 1)[0], ""
    return redact(bare)[:200] + suffix


class _Retryable(DownloadError):
    """An attempt that failed in a way worth repeating (connection lost, short body, 5xx/429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Expired(DownloadError):
    """The URL answered 403/404/410: a signed URL that has most likely expired."""


class _Transfer:
    """Where one download stands between attempts: the URL, and the open ``.part`` file with its byte count."""

    def __init__(self, url: str, part: Path, file: AsyncFile[bytes]) -> None:
        self.url = url
        self.part = part
        self.file = file  # kept open across attempts, so reading starts as soon as the headers arrive
        self.offset = 0  # bytes of the video on disk in ``part``; the file position is always here
        self.restart = False  # ask for the whole video next time (the bytes on disk are dropped when it arrives)
        self.total: int | None = None  # full size of the video, once an answer told us


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(first byte, total size or None)`` from a ``Content-Range`` header, ``None`` when unusable."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    first, last, total = match.groups()
    if int(last) < int(first):
        return None
    return int(first), None if total == "*" else int(total)


def _content_length(headers: Mapping[str, str]) -> int | None:
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    if encoding not in ("", "identity"):
        return None  # the body arrives decoded, so the header counts different bytes
    raw = headers.get("content-length")
    try:
        length = int(raw) if raw is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


async def _close_iterator(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _attempt(transport: Transport, transfer: _Transfer, *, max_bytes: int, expected_size: int | None) -> None:
    """One GET of the video into ``transfer.part``, resuming at ``transfer.offset``; raises on any problem."""
    resume = 0 if transfer.restart else transfer.offset
    headers = {"Range": f"bytes={resume}-"} if resume else {}
    shown = _shown(transfer.url)
    total: int | None = None
    async with transport.stream(transfer.url, headers=headers) as response:
        status = response.status
        answer = response.headers
        try:
            if status in _EXPIRED:
                raise _Expired(f"download of {shown} refused with HTTP {status} (expired or unknown URL)")
            if status in _TRANSIENT or status >= 500:
                raise _Retryable(f"download of {shown} answered HTTP {status}", retry_after=parse_retry_after(answer))
            if status == 416 and resume:
                transfer.restart = True
                raise _Retryable(f"download of {shown}: range {resume}- not satisfiable; restarting")
            length = _content_length(answer)
            if status == 206:
                parsed = _content_range(answer.get("content-range"))
                if parsed is None or parsed[0] != resume:
                    transfer.restart = True
                    raise _Retryable(
                        f"download of {shown}: Content-Range {answer.get('content-range')!r} does not start at "
                        f"byte {resume}; restarting from zero"
                    )
                start = resume
                total = parsed[1] if parsed[1] is not None else (start + length if length is not None else None)
            elif status == 200:
                start = 0  # a server that ignores Range sends the whole video again
                total = length
            else:
                raise DownloadError(f"download of {shown} failed with HTTP {status}")
            transfer.restart = False  # from here on the file follows this body
            transfer.total = total
            if total is not None and total > max_bytes:
                raise DownloadError(f"download of {shown}: {total} bytes exceeds the limit of {max_bytes} bytes")
            if total is not None and expected_size is not None and total != expected_size:
                raise DownloadError(
                    f"download of {shown}: the server announces {total} bytes, expected {expected_size}"
                )
            await _receive(response.chunks, transfer, start=start, total=total, max_bytes=max_bytes, shown=shown)
        finally:
            await _close_iterator(response.chunks)
    size = transfer.offset
    if total is not None and size < total:
        raise _Retryable(f"download of {shown} stopped after {size} of {total} bytes")
    if expected_size is not None and size < expected_size:
        raise _Retryable(f"download of {shown} stopped after {size} of {expected_size} bytes")
    if expected_size is not None and size != expected_size:
        raise DownloadError(f"download of {shown}: got {size} bytes, expected {expected_size}")


async def _receive(
    chunks: AsyncIterator[bytes], transfer: _Transfer, *, start: int, total: int | None, max_bytes: int, shown: str
) -> None:
    """Write the body into the part file from byte ``start``; keeps ``transfer.offset`` equal to the bytes on disk."""
    file = transfer.file
    buffer = bytearray()
    position = start
    head_checked = start != 0  # a resumed body does not start at the ftyp box; the whole file is checked later

    async def flush() -> None:
        if transfer.offset != start and position == start + len(buffer):
            # First write of a restart from zero (the server ignored Range): drop what the file held.
            await file.seek(start)
            await file.truncate()
            transfer.offset = start
        if buffer:
            await file.write(bytes(buffer))
            transfer.offset += len(buffer)
            buffer.clear()

    try:
        async for chunk in chunks:
            if not chunk:
                continue
            position += len(chunk)
            if position > max_bytes:
                raise DownloadError(f"download of {shown} exceeds the limit of {max_bytes} bytes")
            if total is not None and position > total:
                raise DownloadError(f"download of {shown} sent more than the {total} bytes announced")
            buffer += chunk
            if not head_checked and len(buffer) >= 8:
                if bytes(buffer[4:8]) != b"ftyp":  # an HTML error page or anything else: stop early
                    raise DownloadError(
                        f"download of {shown} is not an MP4 video (no ftyp box; starts {bytes(buffer[:8])!r})"
                    )
                head_checked = True
            if len(buffer) >= _WRITE_BUFFER:
                await flush()
    except TransportError as exc:
        await flush()  # keep what arrived: the next attempt resumes after it
        raise _Retryable(f"download of {shown} interrupted after {transfer.offset} bytes: {exc}") from None
    await flush()


def _read_head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(8)


def _create_part(directory: Path, name: str) -> Path:
    """A new, empty, uniquely named hidden ``.part`` file next to the final name (never an existing file)."""
    base = name[:150]
    # A process killed mid-transfer leaves its .part behind; the next download of the same name clears it.
    for stale in directory.glob(f".{glob.escape(base)}.*.part"):
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
    for _ in range(100):
        part = directory / f".{base}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return part
    raise DownloadError(f"cannot create a temporary file in {os.fspath(directory)!r}")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _remove_shielded(path: Path) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_remove, path)


async def _fetch(
    transport: Transport,
    url: str,
    part: Path,
    *,
    retry: RetryPolicy,
    max_bytes: int,
    expected_size: int | None,
    refresh_url: Callable[[], Awaitable[str]] | None,
    on_retry: Callable[[Exception, float], None] | None,
) -> None:
    """Download ``url`` into the existing ``part`` file, retrying and resuming; the caller removes ``part`` on error."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"refusing to download {_shown(url)}: not an http(s) URL")
    async with await anyio.open_file(part, "r+b") as file:
        transfer = _Transfer(url, part, file)
        await _transfer_with_retries(
            transport,
            transfer,
            retry=retry,
            max_bytes=max_bytes,
            expected_size=expected_size,
            refresh_url=refresh_url,
            on_retry=on_retry,
        )
        await file.flush()
        await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
    head = await anyio.to_thread.run_sync(_read_head, part)
    if head[4:8] != b"ftyp":
        raise DownloadError(f"download of {_shown(url)} is not an MP4 video (no ftyp box; starts {head[:8]!r})")


async def _transfer_with_retries(
    transport: Transport,
    transfer: _Transfer,
    *,
    retry: RetryPolicy,
    max_bytes: int,
    expected_size: int | None,
    refresh_url: Callable[[], Awaitable[str]] | None,
    on_retry: Callable[[Exception, float], None] | None,
) -> None:
    refreshed = False
    failures = attempts = 0
    while True:
        before = transfer.offset
        try:
            await _attempt(transport, transfer, max_bytes=max_bytes, expected_size=expected_size)
        except _Expired as exc:
            if refresh_url is None or refreshed:
                raise DownloadError(
                    str(exc) + ("" if refresh_url is None else " even after refreshing the URL")
                ) from None
            refreshed = True
            transfer.url = await refresh_url()
            transfer.restart = True  # a fresh URL may serve a different rendition: start over
            continue
        except (_Retryable, TransportError) as exc:
            if isinstance(exc, TransportError) and type(exc) is TransportError and not exc.maybe_sent:
                # The transport refused the URL itself (scheme, https→http redirect): retrying cannot help.
                raise DownloadError(f"download of {_shown(transfer.url)} refused: {exc}") from None
            gained = transfer.offset - before
            # An attempt that moved the video on (256 KiB, or a quarter of what was left) is not a failure;
            # the total number of attempts stays bounded all the same.
            if gained < _PROGRESS and (transfer.total is None or gained * 4 < transfer.total - before):
                failures += 1
            attempts += 1
            if failures >= retry.max_attempts or attempts >= 10 * retry.max_attempts:
                raise DownloadError(
                    f"download of {_shown(transfer.url)} failed after {failures} attempts: {exc}"
                ) from None
            delay = _retry_delay(max(failures - 1, 0), retry, exc)
            if on_retry is not None:
                on_retry(exc, delay)
            await anyio.sleep(delay)
        else:
            return


def _retry_delay(attempt: int, policy: RetryPolicy, exc: Exception) -> float:
    hint = exc.retry_after if isinstance(exc, _Retryable) else None
    return retry_delay(attempt, policy, hint)


# -- placing the file ----------------------------------------------------------------------------------------

Placement = Literal["placed", "identical", "conflict"]


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            block = left.read(_COMPARE_BLOCK)
            if block != right.read(_COMPARE_BLOCK):
                return False
            if not block:
                return True


def _existing_verdict(part: Path, dest: Path) -> Placement | None:
    """``identical`` (and ``part`` removed) when ``dest`` is a regular file with the same bytes, ``conflict``
    when it is anything else, ``None`` when it vanished meanwhile."""
    try:
        info = os.lstat(dest)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or not _same_content(part, dest):
        return "conflict"
    _remove(part)
    return "identical"


def _claim(part: Path, dest: Path) -> bool:
    """Atomically give ``part``'s content the name ``dest``; ``False`` if something already has that name.

    A hard link claims the name atomically (it fails if anything exists there). Where hard links are not
    supported, an exclusive create reserves the name and ``os.replace`` then swaps the video in."""
    try:
        os.link(part, dest)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        os.close(fd)
        os.replace(part, dest)
        return True
    _remove(part)
    return True


def _place(part: Path, dest: Path) -> Placement:
    """Give the verified ``part`` the name ``dest`` without ever replacing an existing file (blocking)."""
    for _ in range(3):
        if _claim(part, dest):
            return "placed"
        verdict = _existing_verdict(part, dest)
        if verdict is not None:
            return verdict
    return "conflict"


def _numbered(filename: str, number: int) -> str:
    stem, dot, ext = filename.rpartition(".")
    return f"{stem}-{number}.{ext}" if dot else f"{filename}-{number}"


async def _download_and_place(
    transport: Transport,
    url: str,
    dest: Path,
    place: Callable[[Path], Path],
    *,
    retry: RetryPolicy,
    max_bytes: int,
    expected_size: int | None,
    refresh_url: Callable[[], Awaitable[str]] | None,
    on_retry: Callable[[Exception, float], None] | None,
) -> Path:
    """Fetch ``url`` into a fresh ``.part`` next to ``dest``, then ``place(part)`` (in a worker thread).

    The ``.part`` never outlives this call: it is renamed or linked by ``place``, or removed on any failure."""
    try:
        part = await anyio.to_thread.run_sync(_create_part, dest.parent, dest.name)
    except OSError as exc:
        raise DownloadError(f"cannot write into {os.fspath(dest.parent)!r}: {exc.strerror or exc}") from None
    try:
        await _fetch(
            transport,
            url,
            part,
            retry=retry,
            max_bytes=max_bytes,
            expected_size=expected_size,
            refresh_url=refresh_url,
            on_retry=on_retry,
        )
        return await anyio.to_thread.run_sync(place, part)
    except OSError as exc:  # disk full, folder removed, permissions changed...
        raise DownloadError(f"cannot write {os.fspath(dest)!r}: {exc.strerror or exc}") from None
    finally:
        await _remove_shielded(part)  # a no-op once placed


async def download_video(
    transport: Transport,
    url: str,
    dest: Path,
    *,
    retry: RetryPolicy,
    max_bytes: int = DEFAULT_MAX_BYTES,
    expected_size: int | None = None,
    refresh_url: Callable[[], Awaitable[str]] | None = None,
    on_retry: Callable[[Exception, float], None] | None = None,
) -> Path:
    """Download the video at ``url`` to ``dest`` and return ``dest``.

    Streams through ``transport.stream`` (no credentials) into a hidden ``.part`` file next to ``dest``,
    resumes interrupted transfers with ``Range``, backs off between attempts (``retry.max_attempts``; an
    interrupted attempt that still saved 256 KiB or more does not count), calls
    ``refresh_url`` once for a fresh URL when the old one answers 403/404/410, and checks the status,
    ``Content-Length``, ``max_bytes``, ``expected_size`` and the MP4 ``ftyp`` signature before the file gets
    its final name. An existing file at ``dest`` is never replaced: identical bytes are accepted as they are,
    different bytes raise :class:`DownloadError`. On any failure the ``.part`` file is removed.
    ``dest`` is used as given; build it with :func:`safe_destination`."""
    dest = Path(dest)

    def place(part: Path) -> Path:
        if _place(part, dest) == "conflict":
            raise DownloadError(f"{os.fspath(dest)!r} already exists with different content; not overwriting it")
        return dest

    return await _download_and_place(
        transport,
        url,
        dest,
        place,
        retry=retry,
        max_bytes=max_bytes,
        expected_size=expected_size,
        refresh_url=refresh_url,
        on_retry=on_retry,
    )


class Downloader:
    """Saves finished generations into folders, at most ``concurrency`` transfers at a time.

    ``on_retry(exception, delay)`` is called before each retry of a transfer (for logging or counting).

    Usage::

        downloader = Downloader(transport, retry=RetryPolicy(), concurrency=4)
        generation = await downloader.save(generation, "videos", index=0)
        generation.path  # '/home/me/videos/00000_a-cat-on-the-grass_106916112212032.mp4' (absolute)
    """

    def __init__(
        self,
        transport: Transport,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        concurrency: int = 4,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_retry: Callable[[Exception, float], None] | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidRequestError("download_concurrency", concurrency, "an integer >= 1")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 8:
            raise InvalidRequestError("max_download_bytes", max_bytes, "an integer number of bytes >= 8")
        self.transport = transport
        self.retry = retry
        self.max_bytes = max_bytes
        self.on_retry = on_retry
        self.limiter = anyio.CapacityLimiter(concurrency)

    async def save(
        self,
        generation: Generation,
        directory: Path | str,
        *,
        index: int | None = None,
        refresh: Callable[[], Awaitable[Generation]] | None = None,
    ) -> Generation:
        """Download ``generation``'s video into ``directory`` and return it with ``path`` set.

        The name comes from :func:`video_filename`. If that name holds a different file, ``-1``, ``-2``, …
        is added before ``.mp4`` until a free name (or an identical file) is found; nothing is overwritten.
        ``refresh`` is called at most once, when the URL has expired; the generation it returns (fresh URL
        and expiry) is the one returned."""
        filename = video_filename(index, generation.request.prompt, generation.task_id)
        dest = await anyio.to_thread.run_sync(safe_destination, directory, filename)
        latest = generation
        refresh_url: Callable[[], Awaitable[str]] | None = None
        if refresh is not None:
            fetch_fresh = refresh

            async def refresh_url() -> str:
                nonlocal latest
                latest = await fetch_fresh()
                return latest.video_url

        def place(part: Path) -> Path:
            for number in range(_MAX_CANDIDATES):
                name = filename if number == 0 else _numbered(filename, number)
                candidate = safe_destination(directory, name)
                if _place(part, candidate) != "conflict":
                    return candidate
            raise DownloadError(f"no free file name for {filename!r} in {os.fspath(directory)!r}")

        async with self.limiter:
            final = await _download_and_place(
                self.transport,
                generation.video_url,
                dest,
                place,
                retry=self.retry,
                max_bytes=self.max_bytes,
                expected_size=None,
                refresh_url=refresh_url,
                on_retry=self.on_retry,
            )
        return msgspec.structs.replace(latest, path=str(final))
