"""Saving finished videos to disk: the last step of the data flow.

``submit -> poll -> Generation(video_url) -> here -> Generation(path)``. A video URL comes from a third party (the
gateway or its CDN) and is usually signed and short-lived, so this module treats everything about it as hostile:

- the body streams through :meth:`Transport.stream`, the credential-less session, into a hidden ``.part`` file
  in the target folder, written from worker threads so the event loop keeps polling;
- the HTTP status, ``Content-Length`` / ``Content-Range``, a size cap and the MP4 signature (an ``ftyp`` box at
  offset 4) are checked before the file gets its final name;
- interrupted transfers resume with ``Range`` and back off between attempts (on the engine's clock); an expired
  signed URL (403/404/410) is refreshed once;
- error messages show URLs without their query string (signatures) via :func:`~hailuo_async._http.redact`.

Names, destination checks and the never-overwriting placement of the finished file live in :mod:`._files`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import msgspec
from anyio import AsyncFile

from ._clock import Clock, SystemClock
from ._config import DEFAULT_RETRY, RetryPolicy
from ._exceptions import DownloadError, InvalidRequestError, TransportError
from ._files import (
    check_destination,
    create_part,
    numbered,
    place,
    read_head,
    remove,
    safe_destination,
    video_filename,
)
from ._http import parse_retry_after, redact
from ._models import Generation
from ._retry import retry_delay
from ._transport import Transport

__all__ = ["Downloader", "check_destination", "download_video", "safe_destination", "video_filename"]

DEFAULT_MAX_BYTES = 2 * 1024**3
"""Largest video accepted by default (2 GiB); a Hailuo-02 1080p clip is a few tens of MB."""

_WRITE_BUFFER = 1024 * 1024  # gather chunks to ~1 MiB before handing a write to a worker thread
_PROGRESS = 256 * 1024  # an interrupted attempt that saved at least this much does not use up an attempt
_MAX_CANDIDATES = 1000
_EXPIRED = (403, 404, 410)
_TRANSIENT = (408, 425, 429)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class _Options:
    """How one download behaves: retries, limits, the URL refresh and where its waits are slept."""

    retry: RetryPolicy
    max_bytes: int
    expected_size: int | None
    refresh_url: Callable[[], Awaitable[str]] | None
    on_retry: Callable[[Exception, float], None] | None
    clock: Clock


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


async def _remove_shielded(path: Path) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(remove, path)


async def _fetch(transport: Transport, url: str, part: Path, options: _Options) -> None:
    """Download ``url`` into the existing ``part`` file, retrying and resuming; the caller removes ``part`` on error."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"refusing to download {_shown(url)}: not an http(s) URL")
    async with await anyio.open_file(part, "r+b") as file:
        transfer = _Transfer(url, part, file)
        await _transfer_with_retries(transport, transfer, options)
        await file.flush()
        await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
    head = await anyio.to_thread.run_sync(read_head, part)
    if head[4:8] != b"ftyp":
        raise DownloadError(f"download of {_shown(url)} is not an MP4 video (no ftyp box; starts {head[:8]!r})")


async def _transfer_with_retries(transport: Transport, transfer: _Transfer, options: _Options) -> None:
    retry = options.retry
    refreshed = False
    failures = attempts = 0
    while True:
        before = transfer.offset
        try:
            await _attempt(transport, transfer, max_bytes=options.max_bytes, expected_size=options.expected_size)
        except _Expired as exc:
            if options.refresh_url is None or refreshed:
                raise DownloadError(
                    str(exc) + ("" if options.refresh_url is None else " even after refreshing the URL")
                ) from None
            refreshed = True
            transfer.url = await options.refresh_url()
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
            hint = exc.retry_after if isinstance(exc, _Retryable) else None
            delay = retry_delay(max(failures - 1, 0), retry, hint)
            if options.on_retry is not None:
                options.on_retry(exc, delay)
            await options.clock.sleep(delay)
        else:
            return


async def _download_and_place(
    transport: Transport, url: str, dest: Path, claim: Callable[[Path], Path], options: _Options
) -> Path:
    """Fetch ``url`` into a fresh ``.part`` next to ``dest``, then ``claim(part)`` (in a worker thread).

    The ``.part`` never outlives this call: it is renamed or linked by ``claim``, or removed on any failure."""
    try:
        part = await anyio.to_thread.run_sync(create_part, dest.parent, dest.name)
    except OSError as exc:
        raise DownloadError(f"cannot write into {os.fspath(dest.parent)!r}: {exc.strerror or exc}") from None
    try:
        await _fetch(transport, url, part, options)
        return await anyio.to_thread.run_sync(claim, part)
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
    clock: Clock | None = None,
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

    def claim(part: Path) -> Path:
        if place(part, dest) == "conflict":
            raise DownloadError(f"{os.fspath(dest)!r} already exists with different content; not overwriting it")
        return dest

    options = _Options(retry, max_bytes, expected_size, refresh_url, on_retry, clock or SystemClock())
    return await _download_and_place(transport, url, dest, claim, options)


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
        clock: Clock | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidRequestError("download_concurrency", concurrency, "an integer >= 1")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 8:
            raise InvalidRequestError("max_download_bytes", max_bytes, "an integer number of bytes >= 8")
        self.transport = transport
        self.retry = retry
        self.max_bytes = max_bytes
        self.on_retry = on_retry
        self.clock: Clock = clock or SystemClock()
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

        def claim(part: Path) -> Path:
            for number in range(_MAX_CANDIDATES):
                name = filename if number == 0 else numbered(filename, number)
                candidate = safe_destination(directory, name)
                if place(part, candidate) != "conflict":
                    return candidate
            raise DownloadError(f"no free file name for {filename!r} in {os.fspath(directory)!r}")

        options = _Options(self.retry, self.max_bytes, None, refresh_url, self.on_retry, self.clock)
        async with self.limiter:
            final = await _download_and_place(self.transport, generation.video_url, dest, claim, options)
        return msgspec.structs.replace(latest, path=str(final))
