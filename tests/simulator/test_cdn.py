"""The CDN origin: MP4 bytes, Range, signed URLs that expire and refresh, truncation, credentials, uploads."""

from __future__ import annotations

import io
import logging
import struct
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
import pytest
from PIL import Image

from hailuo_async.simulator import Faults, Simulator

pytestmark = pytest.mark.anyio

KEY = "sk-test-cdn-0001"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "MiniMax-Hailuo-02"


async def finished_video_url(http: aiohttp.ClientSession, sim: Simulator, prompt: str = "a bird") -> str:
    async with http.post(
        f"{sim.urls.toapis}/v1/videos/generations",
        json={"model": MODEL, "prompt": prompt + " {{sim:time=0.05}}"},
        headers=AUTH,
    ) as response:
        task_id = (await response.json())["id"]
    with anyio.fail_after(5):
        while True:
            async with http.get(f"{sim.urls.toapis}/v1/videos/generations/{task_id}", headers=AUTH) as response:
                task = await response.json()
            if task["status"] == "completed":
                return str(task["result"]["data"][0]["url"])
            await anyio.sleep(0.02)


def boxes(content: bytes) -> list[tuple[bytes, int]]:
    found, offset = [], 0
    while offset < len(content):
        size, kind = struct.unpack(">I4s", content[offset : offset + 8])
        found.append((kind, size))
        offset += size
    assert offset == len(content)
    return found


async def test_video_is_a_deterministic_mp4_on_its_own_origin(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = await finished_video_url(http, sim)
    api, cdn = urlsplit(sim.urls.apimart), urlsplit(url)
    assert (cdn.scheme, cdn.hostname) == (api.scheme, api.hostname)
    assert cdn.port != api.port
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "65536"
        assert response.headers["Accept-Ranges"] == "bytes"
        content = await response.read()
    assert [kind for kind, _ in boxes(content)] == [b"ftyp", b"free", b"mdat"]
    assert content[8:12] == b"isom"
    async with http.get(url) as response:
        assert await response.read() == content
    other = await finished_video_url(http, sim, "another bird")
    async with http.get(other) as response:
        assert await response.read() != content

    sim.update_config(video_bytes=4096)
    small = await finished_video_url(http, sim, "a small bird")
    async with http.get(small) as response:
        assert len(await response.read()) == 4096
    stats = sim.stats()
    assert stats.requests_by_route["cdn.video"] == 4
    assert stats.cdn_requests == 4


async def test_range_requests(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = await finished_video_url(http, sim)
    async with http.get(url) as response:
        full = await response.read()
    async with http.get(url, headers={"Range": "bytes=100-"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 100-65535/65536"
        assert response.headers["Content-Length"] == str(65536 - 100)
        assert await response.read() == full[100:]
    async with http.get(url, headers={"Range": "bytes=0-9"}) as response:
        assert response.status == 206
        assert await response.read() == full[:10]
    async with http.get(url, headers={"Range": "bytes=-16"}) as response:
        assert await response.read() == full[-16:]
    async with http.get(url, headers={"Range": "bytes=70000-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == "bytes */65536"


async def test_expired_url_then_fresh_url_from_status(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession
) -> None:
    sim, now = clocked
    sim.update_config(url_ttl=60)
    async with http.post(
        f"{sim.urls.apimart}/v1/videos/generations", json={"model": MODEL, "prompt": "x"}, headers=AUTH
    ) as response:
        task_id = (await response.json())["data"][0]["task_id"]
    now[0] += 10

    async def poll() -> dict[str, Any]:
        async with http.get(f"{sim.urls.apimart}/v1/tasks/{task_id}", headers=AUTH) as response:
            video: dict[str, Any] = (await response.json())["data"]["result"]["videos"][0]
            return video

    first = await poll()
    async with http.get(first["url"][0]) as response:
        assert response.status == 200
    now[0] += 61
    async with http.get(first["url"][0]) as response:
        assert response.status == 403
        assert "expired" in await response.text()
    second = await poll()
    assert second["expires_at"] >= first["expires_at"] + 61
    assert second["url"] != first["url"]
    async with http.get(second["url"][0]) as response:
        assert response.status == 200


async def test_bad_signature_and_unknown_video(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = await finished_video_url(http, sim)
    async with http.get(url.replace("sig=", "sig=0")) as response:
        assert response.status == 403
    async with http.get(url.split("?")[0]) as response:
        assert response.status == 403
    async with http.get(f"{sim.urls.cdn}/nothing/here") as response:
        assert response.status == 404


async def test_cdn_truncate(sim: Simulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    url = await finished_video_url(http, sim)
    sim.update_config(faults=Faults(cdn_truncate=1.0))
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "65536"
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert sim.stats().dropped_connections == 1
    assert [record for record in caplog.records if record.levelno >= logging.INFO] == []


async def test_cdn_faults_need_the_cdn_route(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = await finished_video_url(http, sim)
    sim.update_config(faults=Faults(error_5xx=1.0, routes=frozenset({"cdn"})))
    async with http.get(url) as response:
        assert response.status in (500, 502, 503)
    sim.update_config(faults=Faults(drop=1.0, routes=frozenset({"cdn"})))
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(url):
            pass


async def test_credentials_sent_to_the_cdn_are_recorded(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = await finished_video_url(http, sim)
    async with aiohttp.ClientSession() as clean, clean.get(url) as response:
        assert response.status == 200
    assert sim.stats().cdn_requests_with_credentials == 0
    for headers in (AUTH, {"Cookie": "session=1"}, {"X-API-Key": "abc"}, {"X-Custom": f"token {KEY}"}):
        async with http.get(url, headers=headers) as response:
            assert response.status == 200
    stats = sim.stats()
    assert stats.cdn_requests == 5
    assert stats.cdn_requests_with_credentials == 4


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 320), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def form(data: bytes, filename: str = "photo.png", field: str = "file") -> aiohttp.FormData:
    payload = aiohttp.FormData()
    # Wrapped in BytesIO: aiohttp warns about large raw bytes bodies (and warnings are errors here).
    payload.add_field(field, io.BytesIO(data), filename=filename, content_type="application/octet-stream")
    return payload


async def test_apimart_upload_and_serving(sim: Simulator, http: aiohttp.ClientSession) -> None:
    image = png_bytes()
    async with http.post(f"{sim.urls.apimart}/v1/uploads/images", data=form(image), headers=AUTH) as response:
        assert response.status == 200
        answer = await response.json()
    assert set(answer) == {"url", "filename", "content_type", "bytes", "created_at"}
    assert answer["filename"] == "photo.png"
    assert answer["content_type"] == "image/png"
    assert answer["bytes"] == len(image)
    assert answer["url"].startswith(f"{sim.urls.cdn}/uploads/")
    async with http.get(answer["url"]) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert await response.read() == image
    stats = sim.stats()
    assert stats.requests_by_route["apimart.upload"] == 1
    assert stats.requests_by_route["cdn.upload"] == 1


async def test_toapis_upload_and_serving(sim: Simulator, http: aiohttp.ClientSession) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(2000)
    async with http.post(
        f"{sim.urls.toapis}/v1/uploads/images", data=form(jpeg, "a b/../c.jpg"), headers=AUTH
    ) as response:
        answer = await response.json()
    assert answer["success"] is True
    assert answer["message"] == ""
    data = answer["data"]
    assert data["id"].startswith("upload_")
    assert (data["mime_type"], data["size"]) == ("image/jpeg", len(jpeg))
    assert data["url"].endswith(".jpg")
    async with http.get(data["url"]) as response:
        assert await response.read() == jpeg


@pytest.mark.parametrize("webp_or_gif", [b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a\x01\x00"])
async def test_other_accepted_types(sim: Simulator, http: aiohttp.ClientSession, webp_or_gif: bytes) -> None:
    async with http.post(
        f"{sim.urls.apimart}/v1/uploads/images", data=form(webp_or_gif + bytes(64)), headers=AUTH
    ) as response:
        assert response.status == 200


async def test_upload_errors(sim: Simulator, http: aiohttp.ClientSession) -> None:
    apimart, toapis = f"{sim.urls.apimart}/v1/uploads/images", f"{sim.urls.toapis}/v1/uploads/images"
    async with http.post(apimart, data=form(b"%PDF-1.7 not an image"), headers=AUTH) as response:
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"
    async with http.post(toapis, data=form(b"%PDF-1.7 not an image"), headers=AUTH) as response:
        assert response.status == 400
        assert await response.json() == {
            "success": False,
            "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF",
        }
    async with http.post(toapis, data=form(png_bytes(), field="image"), headers=AUTH) as response:
        assert response.status == 400
        assert (await response.json())["success"] is False
    async with http.post(apimart, json={"file": "x"}, headers=AUTH) as response:
        assert response.status == 400
    big = b"\x89PNG\r\n\x1a\n" + bytes(10 * 1024 * 1024)
    async with http.post(toapis, data=form(big), headers=AUTH) as response:
        assert response.status == 400
        assert await response.json() == {"success": False, "message": "Image too large. Maximum size is 10MB"}
    async with http.post(apimart, data=form(big), headers=AUTH) as response:
        assert response.status == 200
    async with http.post(apimart, data=form(big * 2), headers=AUTH) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == 413
    async with http.post(apimart, data=form(png_bytes())) as response:
        assert response.status == 401


# -- documented lifetimes ---------------------------------------------------------------------------------------


async def submit_on(http: aiohttp.ClientSession, sim: Simulator, provider: str) -> str:
    """Submit a task to ``provider``; returns its id."""
    body = {"model": MODEL, "prompt": "lifetime"}
    path = "/v1/video_generation" if provider == "minimax" else "/v1/videos/generations"
    async with http.post(getattr(sim.urls, provider) + path, json=body, headers=AUTH) as response:
        answer = await response.json()
    if provider == "apimart":
        return str(answer["data"][0]["task_id"])
    return str(answer["id"] if provider == "toapis" else answer["task_id"])


async def finished_url(http: aiohttp.ClientSession, sim: Simulator, provider: str, task_id: str) -> tuple[str, int]:
    """A finished task's video URL and its expiry (unix seconds), as ``provider`` gives them."""
    if provider == "apimart":
        async with http.get(f"{sim.urls.apimart}/v1/tasks/{task_id}", headers=AUTH) as response:
            video = (await response.json())["data"]["result"]["videos"][0]
        return str(video["url"][0]), int(video["expires_at"])
    if provider == "toapis":
        async with http.get(f"{sim.urls.toapis}/v1/videos/generations/{task_id}", headers=AUTH) as response:
            task = await response.json()
        return str(task["result"]["data"][0]["url"]), int(task["expires_at"])
    file_id = sim.task(task_id).file_id
    url = f"{sim.urls.minimax}/v1/files/retrieve"
    async with http.get(url, params={"file_id": str(file_id)}, headers=AUTH) as response:
        download_url = str((await response.json())["file"]["download_url"])
    return download_url, int(parse_qs(urlsplit(download_url).query)["exp"][0])


@pytest.mark.parametrize(("provider", "hours"), [("apimart", 72), ("toapis", 24), ("minimax", 9)])
async def test_video_urls_live_as_long_as_each_provider_documents(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession, provider: str, hours: int
) -> None:
    sim, now = clocked
    task_id = await submit_on(http, sim, provider)
    now[0] += 10
    url, expires_at = await finished_url(http, sim, provider, task_id)
    assert expires_at - time.time() == pytest.approx(hours * 3600 + 10, abs=5)
    now[0] += hours * 3600 - 30
    async with http.get(url) as response:
        assert response.status == 200
    now[0] += 60
    async with http.get(url) as response:
        assert response.status == 403
        assert "expired" in await response.text()


@pytest.mark.parametrize(("provider", "hours"), [("apimart", 72), ("toapis", 24)])
async def test_upload_urls_expire(
    clocked: tuple[Simulator, list[float]], http: aiohttp.ClientSession, provider: str, hours: int
) -> None:
    sim, now = clocked
    image = png_bytes()
    base: str = getattr(sim.urls, provider)
    async with http.post(f"{base}/v1/uploads/images", data=form(image), headers=AUTH) as response:
        answer = await response.json()
    url = answer["url"] if provider == "apimart" else answer["data"]["url"]
    now[0] += hours * 3600 - 30
    async with http.get(url) as response:
        assert await response.read() == image
    now[0] += 60
    async with http.get(url) as response:
        assert response.status == 403
        assert "expired" in await response.text()

    sim.update_config(upload_ttl=5.0)  # fixed when uploaded: only later uploads get the new lifetime
    async with http.post(f"{base}/v1/uploads/images", data=form(image), headers=AUTH) as response:
        answer = await response.json()
    short = answer["url"] if provider == "apimart" else answer["data"]["url"]
    now[0] += 6
    async with http.get(short) as response:
        assert response.status == 403
