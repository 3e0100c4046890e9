"""The CDN app (its own port, so its own origin): signed, expiring MP4 URLs, expiring uploads, Range requests.

Every video is a small valid ISO-BMFF file: an ``ftyp`` box at offset 0, a ``free`` box naming the task, then an
``mdat`` box whose payload is derived from the task id, so each video is byte-distinct and reproducible.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import math
import re
import struct

from aiohttp import web

from ._state import SimState

__all__ = ["build_cdn_app", "mp4_bytes", "sign_video_url"]

_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "X-API-Key", "Api-Key")
_MIN_KEY_LEN = 6  # shorter "keys" would match ordinary header values
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@functools.lru_cache(maxsize=64)
def mp4_bytes(task_id: str, size: int) -> bytes:
    """The video of ``task_id``: exactly ``size`` bytes, ``ftyp`` + ``free`` + ``mdat`` boxes."""
    ftyp = struct.pack(">I4s4sI4s4s4s", 28, b"ftyp", b"isom", 0x200, b"isom", b"iso2", b"mp41")
    note = f"hailuo_async.simulator {task_id}".encode()
    free = struct.pack(">I4s", 8 + len(note), b"free") + note
    mdat_size = size - len(ftyp) - len(free)
    if mdat_size < 8:
        raise ValueError(f"video size {size} is too small")
    payload = hashlib.shake_256(task_id.encode()).digest(mdat_size - 8)
    return b"".join((ftyp, free, struct.pack(">I4s", mdat_size, b"mdat"), payload))


def _signature(secret: bytes, task_id: str, exp: int) -> str:
    return hmac.new(secret, f"{task_id}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]


def sign_video_url(state: SimState, task_id: str, provider: str) -> tuple[str, int]:
    """A fresh signed URL for a finished video and its expiry (unix seconds), valid for ``provider``'s lifetime."""
    exp = math.ceil(state.wall_now() + state.config.video_url_ttl(provider))
    return (
        f"{state.cdn_base}/videos/{task_id}.mp4?exp={exp}&sig={_signature(state.secret, task_id, exp)}",
        exp,
    )


def _carries_credentials(request: web.Request, state: SimState) -> bool:
    headers = request.headers
    if any(name in headers for name in _CREDENTIAL_HEADERS):
        return True
    keys = [k for k in (*state.seen_keys, *(state.config.keys or ())) if len(k) >= _MIN_KEY_LEN]
    return any(key in value for value in headers.values() for key in keys)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range into (first, last); None to serve the whole body; (-1, -1) if unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":  # suffix range: the last N bytes
        count = int(last_text)
        return (max(0, size - count), size - 1) if count > 0 else (-1, -1)
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        return (-1, -1)
    return first, last


class _Cdn:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def _count(self, request: web.Request, route: str) -> None:
        counters = self.state.counters
        counters.cdn_requests += 1
        counters.requests_by_route[route] += 1
        if _carries_credentials(request, self.state):
            counters.cdn_requests_with_credentials += 1

    async def _faults(self, request: web.Request) -> web.StreamResponse | None:
        """Latency, drop and 5xx faults, when ``"cdn"`` is in ``faults.routes``."""
        faults = self.state.config.faults
        if "cdn" not in faults.routes:
            return None
        rng = self.state.fault_rng
        latency = faults.latency
        delay = rng.uniform(*latency) if isinstance(latency, tuple) else latency
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.drop and rng.random() < faults.drop:
            return self._drop(request)
        if faults.error_5xx and rng.random() < faults.error_5xx:
            status = rng.choice((500, 502, 503))
            return web.Response(status=status, text=f"{status} simulated CDN error")
        return None

    def _drop(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.close()
        self.state.counters.dropped_connections += 1
        return web.Response()

    async def _send(
        self, request: web.Request, data: bytes, content_type: str, truncate: bool = False
    ) -> web.StreamResponse:
        size = len(data)
        headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
        status = 200
        byte_range = _byte_range(request.headers.get("Range", ""), size)
        if byte_range == (-1, -1):
            headers["Content-Range"] = f"bytes */{size}"
            return web.Response(status=416, headers=headers)
        if byte_range is not None:
            first, last = byte_range
            data = data[first : last + 1]
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if not truncate or request.method == "HEAD":
            return web.Response(status=status, body=data, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        self._drop(request)
        return response

    async def video(self, request: web.Request) -> web.StreamResponse:
        self._count(request, "cdn.video")
        faulted = await self._faults(request)
        if faulted is not None:
            return faulted
        state = self.state
        task_id = request.match_info["task_id"]
        try:
            exp = int(request.query.get("exp", ""))
        except ValueError:
            return web.Response(status=403, text="missing or invalid signature")
        if not hmac.compare_digest(request.query.get("sig", ""), _signature(state.secret, task_id, exp)):
            return web.Response(status=403, text="missing or invalid signature")
        if state.wall_now() > exp:
            return web.Response(status=403, text="URL expired")
        task = state.store.tasks.get(task_id)
        if task is None or task.state(state.timebase.now())[0] != "completed":
            return web.Response(status=404, text="not found")
        truncate = state.config.faults.cdn_truncate
        truncate_now = bool(truncate) and state.fault_rng.random() < truncate
        return await self._send(request, mp4_bytes(task_id, task.video_bytes), "video/mp4", truncate_now)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        self._count(request, "cdn.upload")
        faulted = await self._faults(request)
        if faulted is not None:
            return faulted
        stored = self.state.uploads.get(request.path)
        if stored is None:
            return web.Response(status=404, text="not found")
        data, content_type, expires = stored
        if self.state.wall_now() > expires:
            return web.Response(status=403, text="URL expired")
        return await self._send(request, data, content_type)

    async def other(self, request: web.Request) -> web.StreamResponse:
        self._count(request, "cdn.other")
        return web.Response(status=404, text="not found")


def build_cdn_app(state: SimState) -> web.Application:
    cdn = _Cdn(state)
    app = web.Application()
    app.router.add_get("/videos/{task_id}.mp4", cdn.video)
    app.router.add_get("/uploads/{name}", cdn.upload)
    app.router.add_route("*", "/{tail:.*}", cdn.other)
    return app
