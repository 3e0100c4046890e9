"""Local first/last frame images: checked before anything is sent, then turned into what the provider takes.

A :class:`~hailuo_async._models.GenerationRequest` may name a local file as ``first_frame`` / ``last_frame``.
Before submitting, :class:`FrameResolver` reads each such file (:func:`inspect_image`: format, size, short side,
aspect ratio, decompression bombs), then replaces it by a ``data:`` URI (MiniMax, which has no upload endpoint)
or by the public URL the provider's upload endpoint returns (apimart, toapis). Uploads are cached per client by
content hash, so one image used by many items of a batch is uploaded once, until its URL gets close to expiring.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import math
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.to_thread
import msgspec
from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from ._clock import Clock
from ._config import RetryPolicy
from ._exceptions import DecodeError, InvalidRequestError
from ._http import HttpRequest, HttpResponse
from ._models import GenerationRequest, frame_kind
from ._retry import Retrier
from .providers._base import Provider

__all__ = ["UPLOAD_EXPIRY_MARGIN", "FrameResolver", "LocalImage", "data_uri", "inspect_image"]

MIN_SHORT_SIDE = 300
"""The short side must be strictly longer than this, in pixels."""

UPLOAD_EXPIRY_MARGIN = 3600.0
"""An uploaded image is not reused once its URL has less than this many seconds left: the provider fetches the
frame when the task runs, which can be well after the submit, so such an image is uploaded again."""

_FORMATS: dict[str, tuple[str, str, type[ImageFile.ImageFile]]] = {
    # Pillow format -> (MIME type, file extension, header parser)
    "JPEG": ("image/jpeg", ".jpg", JpegImagePlugin.JpegImageFile),
    "PNG": ("image/png", ".png", PngImagePlugin.PngImageFile),
    "WEBP": ("image/webp", ".webp", WebPImagePlugin.WebPImageFile),
}
_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}


@dataclasses.dataclass(frozen=True)
class LocalImage:
    """A local frame image that passed every check, with its bytes."""

    path: str
    """The path as given."""
    filename: str
    """Name to upload it under: the file's name, with the extension corrected if it did not match the format."""
    content_type: str
    """``image/jpeg``, ``image/png`` or ``image/webp``, from the content (not the extension)."""
    data: bytes = dataclasses.field(repr=False)
    """The file's bytes."""
    sha256: str
    """Hex SHA-256 of ``data``."""
    width: int
    """Width in pixels."""
    height: int
    """Height in pixels."""


def _sniff(head: bytes) -> str:
    """The image format by signature: ``JPEG``/``PNG``/``WEBP``, or a description of what the file is instead."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "a GIF image"
    if head[:2] == b"BM":
        return "a BMP image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF image"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace").strip()
        return f"an ISO media file ({brand}), such as HEIC/AVIF or video"
    return "not a recognised image"


def _read_limited(path: Path, limit: int) -> tuple[bytes, int]:
    """The file's bytes (at most ``limit + 1`` are read) and its size; ``b""`` when the size is over ``limit``."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: a FIFO would block the open
        raise IsADirectoryError(0, "not a regular file")
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            return b"", size
        data = file.read(limit + 1)
    return data, len(data)


def inspect_image(path: str | os.PathLike[str], *, parameter: str, provider: Provider) -> LocalImage:
    """Read and check a local frame image against ``provider``'s rules; blocking (run it in a worker thread).

    Rules (docs/providers.md, B.2, C.2, A.6 and B.5): JPEG, PNG or WebP (by content); at most
    ``provider.image_limit`` bytes and, when the provider uploads images, at most ``provider.upload_limit``; short
    side more than 300 px; aspect ratio between 2:5 and 5:2 inclusive. Only the image header is parsed, never the
    pixels, and images with more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels are refused (decompression bombs).
    Every problem raises :class:`InvalidRequestError` naming ``parameter``, the file name and the broken rule with
    the actual value.
    """
    source = Path(path)
    name = source.name or os.fspath(path)

    def invalid(rule: str) -> InvalidRequestError:
        return InvalidRequestError(parameter, name, rule, provider=provider.name)

    limit = provider.image_limit
    limit_note = "for the model"
    if provider.upload_limit is not None and provider.upload_limit < limit:
        limit, limit_note = provider.upload_limit, "for the upload endpoint"
    try:
        data, size = _read_limited(source, limit)
    except FileNotFoundError:
        raise invalid(f"file not found: {os.fspath(path)!r}") from None
    except IsADirectoryError:
        raise invalid(f"not a regular file: {os.fspath(path)!r}") from None
    except PermissionError:
        raise invalid(f"file is not readable (permission denied): {os.fspath(path)!r}") from None
    except OSError as exc:
        raise invalid(f"file could not be read ({exc.strerror or type(exc).__name__}): {os.fspath(path)!r}") from None
    if size > limit:
        raise invalid(f"at most {limit} bytes ({limit / 1024 / 1024:g} MB) {limit_note} (file is {size} bytes)")
    if size == 0:
        raise invalid("an image file (the file is empty)")
    kind = _sniff(data[:16])
    if kind not in _FORMATS:
        raise invalid(f"a JPEG, PNG or WebP image (file is {kind})")
    content_type, extension, parser = _FORMATS[kind]
    try:
        # The format's own parser reads the header only. Image.open would also run Pillow's bomb check, which
        # warns through the process-wide warnings machinery; this runs in worker threads, so the pixel count is
        # checked here instead, without touching warning filters.
        with parser(io.BytesIO(data)) as image:
            width, height = image.size
            max_pixels = Image.MAX_IMAGE_PIXELS
            if max_pixels is not None and width * height > max_pixels:
                raise invalid(
                    f"at most {max_pixels} pixels, to be decoded safely (image is {width}x{height} = "
                    f"{width * height} pixels)"
                )
            image.verify()  # structural checks (PNG chunk CRCs, truncation) without decoding pixels
    except InvalidRequestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise invalid(f"an image small enough to decode safely ({exc})") from None
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, struct.error...)
        detail = str(exc)[:120] or type(exc).__name__
        raise invalid(f"a valid {kind} image (Pillow cannot read it: {detail})") from None
    if min(width, height) <= MIN_SHORT_SIDE:
        raise invalid(f"short side more than {MIN_SHORT_SIDE} px (image is {width}x{height})")
    if 2 * height > 5 * width or 2 * width > 5 * height:
        raise invalid(f"aspect ratio between 2:5 and 5:2 (image is {width}x{height}, {width / height:.3g}:1)")
    upload_name = name
    if _EXTENSIONS.get(source.suffix.lower()) != kind:
        upload_name = (source.stem or "image") + extension
    return LocalImage(
        path=os.fspath(path),
        filename=upload_name,
        content_type=content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
    )


def data_uri(image: LocalImage) -> str:
    """``data:image/<jpeg|png|webp>;base64,...`` for an inspected image."""
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


_FileKey = tuple[str, int, int, int, int]


def _file_key(source: str) -> _FileKey | None:
    """Identity of a file's current content for caching: real path, device, inode, size, mtime (ns)."""
    try:
        real = os.path.realpath(source)
        info = os.stat(real)
    except (OSError, ValueError):
        return None
    return real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class FrameResolver:
    """Turns local frame files into what the provider accepts, uploading each distinct image once.

    One instance per client. ``send`` carries API requests (the client's counted transport call); uploads are
    retried under ``retry`` (an upload creates nothing billable). ``uploads`` counts images uploaded.

    Usage::

        frames = FrameResolver(provider, transport.send, RetryPolicy())
        await frames.validate(request)  # checks only; raises InvalidRequestError
        request = await frames.resolve(request)  # local paths replaced by URLs or data URIs
    """

    upload_ttl: float = 12 * 3600.0
    """Longest time an uploaded image's URL is reused, in seconds. A provider that says when the URL expires
    (apimart: 72 h) shortens it to :data:`UPLOAD_EXPIRY_MARGIN` before that; toapis does not say."""

    def __init__(
        self,
        provider: Provider,
        send: Callable[[HttpRequest], Awaitable[HttpResponse]],
        retry: RetryPolicy,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.provider = provider
        self.retry = retry
        self._retrier = Retrier(retry, clock=clock)
        self._send = send
        self.uploads = 0
        """Images uploaded so far (one per distinct content)."""
        self._by_hash: dict[str, tuple[str, float]] = {}  # sha256 -> (URL or data URI, monotonic expiry)
        self._by_file: dict[_FileKey, str] = {}  # unchanged file -> sha256
        self._file_locks: dict[object, anyio.Lock] = {}
        self._hash_locks: dict[str, anyio.Lock] = {}

    def _frames(self, request: GenerationRequest) -> list[tuple[str, str]]:
        return [
            (parameter, str(source))
            for parameter, source in (("first_frame", request.first_frame), ("last_frame", request.last_frame))
            if source is not None and frame_kind(str(source)) == "file"
        ]

    async def _inspect(self, parameter: str, source: str) -> LocalImage:
        return await anyio.to_thread.run_sync(
            lambda: inspect_image(source, parameter=parameter, provider=self.provider)
        )

    def _cached(self, sha256: str) -> str | None:
        entry = self._by_hash.get(sha256)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    async def validate(self, request: GenerationRequest) -> None:
        """Check every local frame of ``request`` (nothing is sent); raises :class:`InvalidRequestError`."""
        for parameter, source in self._frames(request):
            await self._inspect(parameter, source)

    async def resolve(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with each local frame replaced by a data URI (MiniMax) or an uploaded image's URL."""
        replaced: dict[str, str] = {}
        for parameter, source in self._frames(request):
            replaced[parameter] = await self._resolve_file(parameter, source)
        if not replaced:
            return request
        return msgspec.structs.replace(request, **replaced)

    async def _resolve_file(self, parameter: str, source: str) -> str:
        key = await anyio.to_thread.run_sync(_file_key, source)
        known = self._by_file.get(key) if key is not None else None
        value = self._cached(known) if known is not None else None
        if value is not None:
            return value
        lock = self._file_locks.setdefault(key if key is not None else source, anyio.Lock())
        async with lock:  # items sharing a file wait for one read and one upload
            known = self._by_file.get(key) if key is not None else None
            value = self._cached(known) if known is not None else None
            if value is not None:
                return value
            image = await self._inspect(parameter, source)
            value = await self._materialize(parameter, image)
            if key is not None and key == await anyio.to_thread.run_sync(_file_key, source):
                self._by_file[key] = image.sha256  # unchanged while we read it: later items skip the read
            return value

    async def _materialize(self, parameter: str, image: LocalImage) -> str:
        cached = self._cached(image.sha256)
        if cached is not None:
            return cached
        async with self._hash_locks.setdefault(image.sha256, anyio.Lock()):  # same bytes under two paths
            cached = self._cached(image.sha256)
            if cached is not None:
                return cached
            provider = self.provider
            if "data_uri" in provider.frame_sources and provider.upload_limit is None:
                value = await anyio.to_thread.run_sync(data_uri, image)  # ~30 ms for 20 MB: off the loop
                expiry = math.inf
            elif provider.upload_limit is not None:
                value, expires_at = await self._upload(image)
                expiry = time.monotonic() + self._reuse_seconds(expires_at)
            else:
                raise InvalidRequestError(
                    parameter,
                    image.filename,
                    f"{provider.name} takes only public image URLs; host the file and pass its URL",
                    provider=provider.name,
                )
            self._by_hash[image.sha256] = (value, expiry)
            return value

    def _reuse_seconds(self, expires_at: float | None) -> float:
        """How long a fresh upload may be reused: :attr:`upload_ttl`, cut to end :data:`UPLOAD_EXPIRY_MARGIN`
        before the URL's expiry (Unix time, ``None`` when unknown). Zero or less means "do not reuse"."""
        if expires_at is None:
            return self.upload_ttl
        return min(self.upload_ttl, expires_at - time.time() - UPLOAD_EXPIRY_MARGIN)

    async def _upload(self, image: LocalImage) -> tuple[str, float | None]:
        """Upload ``image``: its URL and when that URL expires (Unix time, ``None`` when unknown)."""
        provider = self.provider
        http = provider.build_upload(image.filename, image.content_type, image.data)

        async def attempt() -> tuple[str, float | None]:
            return provider.parse_upload(await self._send(http))

        url, expires_at = await self._retrier(attempt)
        if frame_kind(url) != "url":
            raise DecodeError(f"{provider.name}: the image upload answered a non-URL location", provider=provider.name)
        self.uploads += 1
        return url, expires_at
