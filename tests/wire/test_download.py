"""Tests for hailuo_async._download: safe names, verified and resumable transfers, never overwriting.

Logic runs against MockTransport (and a small streaming fake that can fail mid-body); wire behaviour runs
against a real aiohttp CDN on 127.0.0.1 through AiohttpTransport, which also checks that no credential ever
reaches the CDN."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hailuo_async._config import RetryPolicy
from hailuo_async._download import Downloader, download_video, safe_destination, video_filename
from hailuo_async._exceptions import ConnectError, DownloadError, InvalidRequestError, TransportError
from hailuo_async._http import HttpRequest, HttpResponse
from hailuo_async._models import Generation, GenerationRequest
from hailuo_async._transport import AiohttpTransport, MockTransport, StreamResponse, Transport

pytestmark = pytest.mark.anyio

SECRET = "sk-TEST-SECRET"
FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.005, rate_limit_default=0.001)
SIGNED = "https://cdn.example/videos/abc.mp4?exp=1700000000&sig=SIGNATURE-SECRET"


def mp4(size: int, seed: str = "video") -> bytes:
    """``size`` bytes that start like an MP4 file (``ftyp`` box at offset 0)."""
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    return ftyp + hashlib.shake_256(seed.encode()).digest(size - len(ftyp))


def parts_in(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def range_start(request: HttpRequest) -> int | None:
    value = dict(request.headers).get("Range")
    if value is None:
        return None
    match = re.fullmatch(r"bytes=(\d+)-", value)
    assert match is not None, value
    return int(match.group(1))


def ranged(body: bytes, request: HttpRequest) -> HttpResponse:
    """A CDN answer honouring ``Range: bytes=N-``."""
    start = range_start(request)
    if start is None:
        return HttpResponse(status=200, headers={"content-length": str(len(body))}, body=body)
    return HttpResponse(
        status=206,
        headers={
            "content-length": str(len(body) - start),
            "content-range": f"bytes {start}-{len(body) - 1}/{len(body)}",
        },
        body=body[start:],
    )


def generation(task_id: str, url: str, prompt: str = "A cat on the grass") -> Generation:
    return Generation(
        provider="apimart",
        task_id=task_id,
        request=GenerationRequest(prompt),
        video_url=url,
        expires_at=None,
        submitted_at=0.0,
        completed_at=1.0,
    )


class StreamingFake(Transport):
    """Streams ``body`` from ``offset`` (per ``Range``), raising TransportError after ``fail_after`` bytes
    on the first ``failures`` requests: a connection lost in the middle of the body."""

    def __init__(self, body: bytes, *, fail_after: int, failures: int = 1, stall: anyio.Event | None = None) -> None:
        self.body = body
        self.fail_after = fail_after
        self.failures = failures
        self.stall = stall
        self.ranges: list[int | None] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        raise AssertionError("downloads never use send()")

    @asynccontextmanager
    async def stream(self, url: str, *, headers: Mapping[str, str] | None = None) -> AsyncIterator[StreamResponse]:
        request = HttpRequest(method="GET", path=url, route="download", headers=tuple((headers or {}).items()))
        start = range_start(request) or 0
        self.ranges.append(range_start(request))
        failing = len(self.ranges) <= self.failures
        body = self.body[start:]

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            for i in range(0, len(body), 1000):
                if failing and sent >= self.fail_after:
                    if self.stall is not None:
                        self.stall.set()
                        await anyio.sleep_forever()
                    raise TransportError("download: connection failed after the request was sent", maybe_sent=True)
                yield body[i : i + 1000]
                sent += 1000

        status, extra = (200, {}) if start == 0 else (206, {"content-range": f"bytes {start}-{len(self.body) - 1}/*"})
        yield StreamResponse(
            status=status, headers={"content-length": str(len(body)), **extra}, url=url, chunks=chunks()
        )


# -- names ----------------------------------------------------------------------------------------------------

HOSTILE = [
    "../../x",
    "..\\x",
    "/etc/passwd",
    "%2e%2e%2f",
    "%252e%252e%252fetc",
    "a/b",
    "a\x00b",
    "x" * 300,
    "日本語のタスク",
    "..",
    ".",
    "",
    "C:\\Windows\\win.ini",
    "CON",
    "task\r\nSet-Cookie: x",
]


def test_video_filename_template() -> None:
    assert video_filename(3, "A Cat on the Grass [Push in]", "106916112212032") == (
        "00003_a-cat-on-the-grass-push-in_106916112212032.mp4"
    )
    assert video_filename(None, None, "vid_01K8SGYN") == "video_vid_01K8SGYN.mp4"
    assert video_filename(0, "Café déjà vu — ünïcode", "t") == "00000_cafe-deja-vu-unicode_t.mp4"
    assert video_filename(1, "日本語", "t") == "00001_video_t.mp4"
    assert video_filename(1, "x" * 300, "t") == "00001_" + "x" * 40 + "_t.mp4"


@pytest.mark.parametrize("value", HOSTILE)
def test_video_filename_is_always_a_plain_short_name(tmp_path: Path, value: str) -> None:
    for name in (video_filename(12, value, value), video_filename(None, value, "ok"), video_filename(None, "p", value)):
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.mp4", name), name
        assert len(name.encode()) <= 200
        assert ".." not in name
        assert safe_destination(tmp_path, name).parent == Path(os.path.realpath(tmp_path))


def test_video_filename_hostile_ids_never_collide() -> None:
    ids = ["a/b", "a\\b", "a b", "a-b", "a\x00b", "a%2fb", "x" * 300, "x" * 301, "", "..", "."]
    names = {video_filename(None, "p", task_id) for task_id in ids}
    assert len(names) == len(ids)


def test_video_filename_rejects_bad_index() -> None:
    with pytest.raises(InvalidRequestError):
        video_filename(-1, "p", "t")
    with pytest.raises(InvalidRequestError):
        video_filename(True, "p", "t")


@pytest.mark.parametrize(
    "name",
    [
        "../x.mp4",
        "..",
        ".",
        "",
        "a/b.mp4",
        "a\\b.mp4",
        "/etc/passwd",
        "%2e%2e%2fx.mp4",
        "%2e%2e",
        "%252e%252e%252fx",
        "a\x00b.mp4",
        "C:evil.mp4",
        "x" * 201,
        "video.mp4.",
        "NUL.mp4",
    ],
)
def test_safe_destination_rejects(tmp_path: Path, name: str) -> None:
    with pytest.raises(DownloadError):
        safe_destination(tmp_path, name)
    with pytest.raises(InvalidRequestError) as info:
        safe_destination(tmp_path, name, parameter="filename")
    assert info.value.parameter == "filename"


def test_safe_destination_creates_folder_and_stays_inside(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    dest = safe_destination(out, "ok.mp4")
    assert out.is_dir()
    assert dest.parent == Path(os.path.realpath(out))
    assert dest.name == "ok.mp4"


def test_safe_destination_refuses_symlink_escape(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"precious")
    (out / "evil.mp4").symlink_to(outside)
    with pytest.raises(DownloadError, match="outside"):
        safe_destination(out, "evil.mp4")


# -- transfers over MockTransport -----------------------------------------------------------------------------


async def test_full_download(tmp_path: Path) -> None:
    body = mp4(200_000)
    transport = MockTransport(lambda request: ranged(body, request))
    dest = tmp_path / "v.mp4"
    assert await download_video(transport, SIGNED, dest, retry=FAST) == dest
    assert dest.read_bytes() == body
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert len(transport.requests) == 1
    assert range_start(transport.requests[0]) is None


async def test_short_body_resumes_with_range(tmp_path: Path) -> None:
    body = mp4(150_000)

    def handler(request: HttpRequest) -> HttpResponse:
        if len(transport.requests) == 1:  # announces everything, delivers 60%
            return HttpResponse(status=200, headers={"content-length": str(len(body))}, body=body[:90_000])
        return ranged(body, request)

    transport = MockTransport(handler)
    dest = tmp_path / "v.mp4"
    retries: list[tuple[Exception, float]] = []
    await download_video(transport, SIGNED, dest, retry=FAST, on_retry=lambda e, d: retries.append((e, d)))
    assert dest.read_bytes() == body
    assert [range_start(r) for r in transport.requests] == [None, 90_000]
    assert len(retries) == 1
    assert "90000 of 150000" in str(retries[0][0])
    assert parts_in(tmp_path) == []


async def test_progress_does_not_use_up_attempts(tmp_path: Path) -> None:
    # A CDN that serves at most 300 kB per answer: six answers, though only two attempts are allowed.
    body = mp4(1_600_000)
    step = 300_000

    def handler(request: HttpRequest) -> HttpResponse:
        start = range_start(request) or 0
        end = min(start + step, len(body))
        return HttpResponse(
            status=206,
            headers={"content-range": f"bytes {start}-{end - 1}/{len(body)}", "content-length": str(end - start)},
            body=body[start:end],
        )

    transport = MockTransport(handler)
    dest = tmp_path / "v.mp4"
    await download_video(transport, SIGNED, dest, retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001))
    assert dest.read_bytes() == body
    assert len(transport.requests) == 6


async def test_connection_lost_mid_body_resumes(tmp_path: Path) -> None:
    body = mp4(50_000)
    transport = StreamingFake(body, fail_after=20_000, failures=2)
    dest = tmp_path / "v.mp4"
    await download_video(transport, SIGNED, dest, retry=FAST)
    assert dest.read_bytes() == body
    assert transport.ranges == [None, 20_000, 40_000]


async def test_server_ignoring_range_restarts_from_zero(tmp_path: Path) -> None:
    body = mp4(100_000)

    def handler(request: HttpRequest) -> HttpResponse:
        size = 30_000 if len(transport.requests) == 1 else len(body)
        return HttpResponse(status=200, headers={"content-length": str(len(body))}, body=body[:size])

    transport = MockTransport(handler)
    dest = tmp_path / "v.mp4"
    await download_video(transport, SIGNED, dest, retry=FAST)
    assert dest.read_bytes() == body
    assert [range_start(r) for r in transport.requests] == [None, 30_000]


async def test_content_range_mismatch_restarts_without_range(tmp_path: Path) -> None:
    body = mp4(100_000)

    def handler(request: HttpRequest) -> HttpResponse:
        n = len(transport.requests)
        if n == 1:
            return HttpResponse(status=200, headers={"content-length": str(len(body))}, body=body[:40_000])
        if n == 2:  # answers a different range than asked
            return HttpResponse(status=206, headers={"content-range": f"bytes 10-99999/{len(body)}"}, body=body[10:])
        return ranged(body, request)

    transport = MockTransport(handler)
    dest = tmp_path / "v.mp4"
    await download_video(transport, SIGNED, dest, retry=FAST)
    assert dest.read_bytes() == body
    assert [range_start(r) for r in transport.requests] == [None, 40_000, None]


async def test_missing_ftyp_is_rejected_without_retry(tmp_path: Path) -> None:
    page = b"<html><body>Access denied</body></html>" * 10
    transport = MockTransport(lambda request: HttpResponse(status=200, headers={}, body=page))
    with pytest.raises(DownloadError, match="not an MP4"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST)
    assert len(transport.requests) == 1
    assert list(tmp_path.iterdir()) == []


async def test_tiny_body_is_rejected(tmp_path: Path) -> None:
    transport = MockTransport(lambda request: HttpResponse(status=200, body=b"ok"))
    with pytest.raises(DownloadError, match="not an MP4"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST)
    assert list(tmp_path.iterdir()) == []


async def test_size_cap_from_content_length(tmp_path: Path) -> None:
    body = mp4(10_000)
    transport = MockTransport(lambda request: ranged(body, request))
    with pytest.raises(DownloadError, match="limit of 5000 bytes"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST, max_bytes=5000)
    assert len(transport.requests) == 1
    assert list(tmp_path.iterdir()) == []


async def test_size_cap_while_streaming(tmp_path: Path) -> None:
    body = mp4(300_000)
    transport = MockTransport(lambda request: HttpResponse(status=200, body=body), chunk_size=1000)
    with pytest.raises(DownloadError, match="limit of 5000 bytes"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST, max_bytes=5000)
    assert list(tmp_path.iterdir()) == []


async def test_expected_size_mismatch(tmp_path: Path) -> None:
    body = mp4(10_000)
    transport = MockTransport(lambda request: ranged(body, request))
    with pytest.raises(DownloadError, match="expected 9999"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST, expected_size=9999)
    assert list(tmp_path.iterdir()) == []
    await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST, expected_size=10_000)


async def test_server_errors_are_retried(tmp_path: Path) -> None:
    body = mp4(10_000)

    def handler(request: HttpRequest) -> HttpResponse:
        if len(transport.requests) == 1:
            return HttpResponse(status=503, headers={"retry-after": "0"}, body=b"busy")
        if len(transport.requests) == 2:
            return HttpResponse(status=429, body=b"slow down")
        if len(transport.requests) == 3:
            raise ConnectError("download: request not sent (connection refused)")
        return ranged(body, request)

    transport = MockTransport(handler)
    delays: list[float] = []
    await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST, on_retry=lambda e, d: delays.append(d))
    assert (tmp_path / "v.mp4").read_bytes() == body
    assert len(delays) == 3
    assert all(0 <= d <= FAST.max_delay for d in delays)


async def test_retries_exhausted_cleans_up_and_redacts(tmp_path: Path) -> None:
    transport = MockTransport(lambda request: HttpResponse(status=502, body=b"bad gateway"))
    with pytest.raises(DownloadError) as info:
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST)
    assert len(transport.requests) == FAST.max_attempts
    assert list(tmp_path.iterdir()) == []
    for text in (str(info.value), repr(info.value), repr(info.value.args)):
        assert "SIGNATURE-SECRET" not in text
        assert "sig=" not in text
    assert "cdn.example/videos/abc.mp4" in str(info.value)


async def test_other_client_errors_are_not_retried(tmp_path: Path) -> None:
    transport = MockTransport(lambda request: HttpResponse(status=400, body=b"nope"))
    with pytest.raises(DownloadError, match="HTTP 400"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST)
    assert len(transport.requests) == 1


async def test_refused_url_is_not_retried(tmp_path: Path) -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        raise TransportError("download: refusing http URL http://cdn.example/x (https required)", maybe_sent=False)

    transport = MockTransport(handler)
    with pytest.raises(DownloadError, match="refused"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST)
    assert len(transport.requests) == 1


async def test_non_http_url_is_refused(tmp_path: Path) -> None:
    transport = MockTransport(lambda request: HttpResponse(status=200, body=mp4(100)))
    with pytest.raises(DownloadError, match="not an http"):
        await download_video(transport, "file:///etc/passwd", tmp_path / "v.mp4", retry=FAST)
    assert transport.requests == []


async def test_expired_url_is_refreshed_once(tmp_path: Path) -> None:
    body = mp4(10_000)
    fresh = "https://cdn.example/videos/abc.mp4?exp=1800000000&sig=FRESH"

    def handler(request: HttpRequest) -> HttpResponse:
        if request.path != fresh:
            return HttpResponse(status=403, body=b"<Error>Request has expired</Error>")
        return ranged(body, request)

    calls = 0

    async def refresh() -> str:
        nonlocal calls
        calls += 1
        return fresh

    transport = MockTransport(handler)
    await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST, refresh_url=refresh)
    assert calls == 1
    assert [r.path for r in transport.requests] == [SIGNED, fresh]
    assert (tmp_path / "v.mp4").read_bytes() == body


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_expired_url_without_refresh_fails_fast(tmp_path: Path, status: int) -> None:
    transport = MockTransport(lambda request: HttpResponse(status=status))
    with pytest.raises(DownloadError, match=f"HTTP {status}"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST)
    assert len(transport.requests) == 1
    assert list(tmp_path.iterdir()) == []


async def test_refresh_happens_only_once(tmp_path: Path) -> None:
    transport = MockTransport(lambda request: HttpResponse(status=403))
    calls = 0

    async def refresh() -> str:
        nonlocal calls
        calls += 1
        return SIGNED + "&n=" + str(calls)

    with pytest.raises(DownloadError, match="even after refreshing"):
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST, refresh_url=refresh)
    assert calls == 1
    assert len(transport.requests) == 2


async def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    body = mp4(10_000)
    transport = MockTransport(lambda request: ranged(body, request))
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"someone else's file")
    with pytest.raises(DownloadError, match="already exists"):
        await download_video(transport, SIGNED, dest, retry=FAST)
    assert dest.read_bytes() == b"someone else's file"
    assert parts_in(tmp_path) == []

    same = tmp_path / "same.mp4"
    same.write_bytes(body)
    assert await download_video(transport, SIGNED, same, retry=FAST) == same
    assert same.read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.mp4", "v.mp4"]


async def test_without_hard_links_still_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    body = mp4(10_000)
    transport = MockTransport(lambda request: ranged(body, request))
    dest = tmp_path / "v.mp4"
    await download_video(transport, SIGNED, dest, retry=FAST)
    assert dest.read_bytes() == body
    assert await download_video(transport, SIGNED, dest, retry=FAST) == dest  # identical: accepted
    other = tmp_path / "other.mp4"
    other.write_bytes(b"keep me")
    with pytest.raises(DownloadError, match="already exists"):
        await download_video(transport, SIGNED, other, retry=FAST)
    assert other.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mp4", "v.mp4"]


async def test_cancellation_removes_the_part_file(tmp_path: Path) -> None:
    stalled = anyio.Event()
    transport = StreamingFake(mp4(50_000), fail_after=5000, stall=stalled)

    async def run() -> None:
        await download_video(transport, SIGNED, tmp_path / "v.mp4", retry=FAST)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await stalled.wait()
        assert parts_in(tmp_path) != []
        tg.cancel_scope.cancel()
    assert list(tmp_path.iterdir()) == []


# -- Downloader -------------------------------------------------------------------------------------------------


async def test_downloader_names_files_and_never_overwrites(tmp_path: Path) -> None:
    bodies = {"one": mp4(5000, "one"), "two": mp4(5000, "two"), "three": mp4(6000, "three")}

    def handler(request: HttpRequest) -> HttpResponse:
        return ranged(bodies[request.path.rsplit("/", 1)[1]], request)

    downloader = Downloader(MockTransport(handler), retry=FAST)
    root = Path(os.path.realpath(tmp_path))
    first = await downloader.save(generation("T1", "https://cdn.example/one"), tmp_path, index=7)
    expected = root / "00007_a-cat-on-the-grass_T1.mp4"
    assert first.path == str(expected)
    assert expected.read_bytes() == bodies["one"]

    # The same task id and prompt but different bytes: a new name, the first file untouched.
    second = await downloader.save(generation("T1", "https://cdn.example/two"), tmp_path, index=7)
    assert second.path == str(root / "00007_a-cat-on-the-grass_T1-1.mp4")
    third = await downloader.save(generation("T1", "https://cdn.example/three"), tmp_path, index=7)
    assert third.path == str(root / "00007_a-cat-on-the-grass_T1-2.mp4")
    assert expected.read_bytes() == bodies["one"]
    assert Path(second.path).read_bytes() == bodies["two"]

    # Saving the same video again is idempotent: the identical file is returned.
    again = await downloader.save(generation("T1", "https://cdn.example/two"), tmp_path, index=7)
    assert again.path == second.path
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00007_a-cat-on-the-grass_T1-1.mp4",
        "00007_a-cat-on-the-grass_T1-2.mp4",
        "00007_a-cat-on-the-grass_T1.mp4",
    ]


async def test_downloader_refresh_returns_the_fresh_generation(tmp_path: Path) -> None:
    body = mp4(5000)
    fresh = "https://cdn.example/fresh.mp4?sig=NEW"

    def handler(request: HttpRequest) -> HttpResponse:
        return ranged(body, request) if request.path == fresh else HttpResponse(status=410)

    original = generation("T9", SIGNED)

    async def refresh() -> Generation:
        return msgspec.structs.replace(original, video_url=fresh, expires_at=123.0)

    saved = await Downloader(MockTransport(handler), retry=FAST).save(original, str(tmp_path), refresh=refresh)
    assert saved.video_url == fresh
    assert saved.expires_at == 123.0
    assert saved.path is not None
    assert Path(saved.path).read_bytes() == body


async def test_downloader_bounds_concurrency(tmp_path: Path) -> None:
    in_flight = 0
    peak = 0

    async def handler(request: HttpRequest) -> HttpResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return ranged(mp4(3000, request.path), request)

    downloader = Downloader(MockTransport(handler), retry=FAST, concurrency=2)
    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(downloader.save, generation(f"T{i}", f"https://cdn.example/{i}"), tmp_path)
    assert peak == 2
    assert len(list(tmp_path.iterdir())) == 8


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_task_ids_and_prompts_stay_inside(tmp_path: Path, hostile: str) -> None:
    out = tmp_path / "out"
    body = mp4(2000)
    downloader = Downloader(MockTransport(lambda request: ranged(body, request)), retry=FAST)
    prompt = hostile if "\x00" not in hostile and hostile.strip() else "p"
    saved = await downloader.save(generation(hostile, "https://cdn.example/v.mp4", prompt=prompt), out, index=1)
    assert saved.path is not None
    path = Path(saved.path)
    assert Path(os.path.realpath(path)).parent == Path(os.path.realpath(out))
    assert len(path.name.encode()) <= 200
    assert path.read_bytes() == body
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in out.iterdir()] == [path.name]


def test_downloader_rejects_bad_settings() -> None:
    transport = MockTransport(lambda request: HttpResponse(status=200))
    with pytest.raises(InvalidRequestError):
        Downloader(transport, concurrency=0)
    with pytest.raises(InvalidRequestError):
        Downloader(transport, max_bytes=0)


# -- over the wire: a real aiohttp CDN on 127.0.0.1 ------------------------------------------------------------

WIRE_BODY = mp4(300_000, "wire")


class Cdn:
    """A loopback CDN recording every request and any credential it carries."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []  # (path, Range)
        self.leaks: list[str] = []
        self.calls: dict[str, int] = {}
        self.server: TestServer | None = None
        self.transport: AiohttpTransport | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("Range")))
        self.calls[request.path] = self.calls.get(request.path, 0) + 1
        for name in ("Authorization", "Cookie", "X-API-Key", "Api-Key", "Proxy-Authorization"):
            if name in request.headers:
                self.leaks.append(f"{request.path}: {name} header")
        for name, value in request.headers.items():
            if SECRET in value or SECRET in name:
                self.leaks.append(f"{request.path}: secret in {name}")
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        app.router.add_get("/v/{name}", self.video)
        app.router.add_get("/half/{name}", self.half)
        app.router.add_get("/norange/{name}", self.norange)
        app.router.add_get("/html", self.html)
        app.router.add_get("/expired", self.expired)
        app.router.add_get("/redirect-out", self.redirect_out)
        app.router.add_get("/redirect-in", self.redirect_in)
        return app

    @staticmethod
    def ranged(request: web.Request, body: bytes) -> web.Response:
        header = request.headers.get("Range")
        cookie = {"Set-Cookie": "session=cdn-cookie; Path=/"}
        if header is None:
            return web.Response(body=body, content_type="video/mp4", headers=cookie)
        match = re.fullmatch(r"bytes=(\d+)-", header)
        assert match is not None
        start = int(match.group(1))
        return web.Response(
            status=206,
            body=body[start:],
            content_type="video/mp4",
            headers={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}", **cookie},
        )

    async def video(self, request: web.Request) -> web.Response:
        return self.ranged(request, WIRE_BODY)

    async def cut_short(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "video/mp4"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        # Let the client read the first half: aiohttp drops buffered data once it sees the payload error.
        await anyio.sleep(0.1)
        assert request.transport is not None
        request.transport.close()  # Content-Length promised more: the client sees a truncated payload
        return response

    async def half(self, request: web.Request) -> web.StreamResponse:
        if self.calls[request.path] == 1:
            return await self.cut_short(request, WIRE_BODY)
        return self.ranged(request, WIRE_BODY)

    async def norange(self, request: web.Request) -> web.StreamResponse:
        if self.calls[request.path] == 1:
            return await self.cut_short(request, WIRE_BODY)
        return web.Response(body=WIRE_BODY, content_type="video/mp4")  # Range ignored

    async def html(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not a video</html>", content_type="text/html")

    async def expired(self, request: web.Request) -> web.Response:
        return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")

    async def redirect_out(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("http://example.invalid/videos/abc.mp4?sig=X")

    async def redirect_in(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/v/moved.mp4")


@pytest.fixture
async def cdn() -> AsyncIterator[Cdn]:
    state = Cdn()
    server = TestServer(state.app(), host="127.0.0.1")
    await server.start_server()
    state.server = server
    # The API origin is the CDN's own origin: even there, downloads must carry no credentials.
    transport = AiohttpTransport(base_url=str(server.make_url("/")).rstrip("/"), api_key=SECRET)
    try:
        await transport.open()
        state.transport = transport
        yield state
    finally:
        await transport.aclose()
        await server.close()
    assert state.leaks == []


async def test_wire_full_download_without_credentials(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    for name in ("a.mp4", "b.mp4"):  # the second request would carry the CDN's cookie if a jar kept it
        dest = tmp_path / name
        await download_video(cdn.transport, cdn.url(f"/v/{name}") + "?sig=abc", dest, retry=FAST)
        assert dest.read_bytes() == WIRE_BODY
    assert cdn.leaks == []
    assert parts_in(tmp_path) == []


async def test_wire_truncated_transfer_resumes_with_range(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    dest = tmp_path / "v.mp4"
    retries: list[Exception] = []
    await download_video(
        cdn.transport, cdn.url("/half/x.mp4"), dest, retry=FAST, on_retry=lambda e, d: retries.append(e)
    )
    assert dest.read_bytes() == WIRE_BODY
    ranges = [r for p, r in cdn.requests if p == "/half/x.mp4"]
    assert len(ranges) == 2
    assert ranges[0] is None
    assert ranges[1] is not None
    assert re.fullmatch(r"bytes=\d+-", ranges[1])
    assert 0 < int(ranges[1][6:-1]) <= len(WIRE_BODY) // 2
    assert len(retries) == 1
    assert isinstance(retries[0], DownloadError)
    assert parts_in(tmp_path) == []


async def test_wire_server_ignoring_range(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    dest = tmp_path / "v.mp4"
    await download_video(cdn.transport, cdn.url("/norange/x.mp4"), dest, retry=FAST)
    assert dest.read_bytes() == WIRE_BODY
    assert [r is not None for p, r in cdn.requests] == [False, True]


async def test_wire_not_a_video(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    with pytest.raises(DownloadError, match="not an MP4"):
        await download_video(cdn.transport, cdn.url("/html"), tmp_path / "v.mp4", retry=FAST)
    assert list(tmp_path.iterdir()) == []
    assert len(cdn.requests) == 1


async def test_wire_size_cap(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    with pytest.raises(DownloadError, match="limit"):
        await download_video(cdn.transport, cdn.url("/v/x.mp4"), tmp_path / "v.mp4", retry=FAST, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []


async def test_wire_expired_url_refreshed(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    fresh = cdn.url("/v/fresh.mp4") + "?sig=new"

    async def refresh() -> str:
        return fresh

    dest = tmp_path / "v.mp4"
    await download_video(cdn.transport, cdn.url("/expired") + "?sig=old", dest, retry=FAST, refresh_url=refresh)
    assert dest.read_bytes() == WIRE_BODY
    assert [p for p, _ in cdn.requests] == ["/expired", "/v/fresh.mp4"]


async def test_wire_same_origin_redirect_followed(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    dest = tmp_path / "v.mp4"
    await download_video(cdn.transport, cdn.url("/redirect-in"), dest, retry=FAST)
    assert dest.read_bytes() == WIRE_BODY
    assert [p for p, _ in cdn.requests] == ["/redirect-in", "/v/moved.mp4"]


async def test_wire_redirect_to_plain_http_is_refused(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    with pytest.raises(DownloadError, match="refus") as info:
        await download_video(cdn.transport, cdn.url("/redirect-out"), tmp_path / "v.mp4", retry=FAST)
    assert "sig=X" not in str(info.value)
    assert [p for p, _ in cdn.requests] == ["/redirect-out"]  # refused before connecting, and not retried
    assert list(tmp_path.iterdir()) == []


async def test_wire_plain_http_url_is_refused(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    with pytest.raises(DownloadError, match="refus"):
        await download_video(cdn.transport, "http://example.invalid/v.mp4", tmp_path / "v.mp4", retry=FAST)
    assert cdn.requests == []


async def test_wire_downloader_end_to_end(cdn: Cdn, tmp_path: Path) -> None:
    assert cdn.transport is not None
    downloader = Downloader(cdn.transport, retry=FAST, concurrency=3)
    results: list[Generation] = []

    async def save(i: int) -> None:
        results.append(await downloader.save(generation(f"task/{i}", cdn.url(f"/v/{i}.mp4")), tmp_path, index=i))

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(save, i)
    assert len(results) == 6
    for saved in results:
        assert saved.path is not None
        assert Path(saved.path).parent == Path(os.path.realpath(tmp_path))
        assert Path(saved.path).read_bytes() == WIRE_BODY
    assert parts_in(tmp_path) == []
