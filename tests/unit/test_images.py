"""Tests for hailuo_async._images: local frame checks (Pillow, generated at test time) and FrameResolver's
per-client upload cache, data URIs for MiniMax and upload answers in each gateway's documented shape."""

from __future__ import annotations

import base64
import os
import struct
import time
import zlib
from pathlib import Path
from typing import ClassVar

import anyio
import msgspec
import pytest
from PIL import Image

from hailuo_async._config import RetryPolicy
from hailuo_async._exceptions import BadRequestError, InvalidRequestError
from hailuo_async._http import HttpRequest, HttpResponse
from hailuo_async._images import UPLOAD_EXPIRY_MARGIN, FrameResolver, LocalImage, data_uri, inspect_image
from hailuo_async._models import GenerationRequest
from hailuo_async.providers import Apimart, Minimax, Provider, Toapis

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002, rate_limit_default=0.001)
APIMART, TOAPIS, MINIMAX = Apimart(), Toapis(), Minimax()


def make_image(path: Path, size: tuple[int, int] = (640, 360), fmt: str = "JPEG", color: str = "teal") -> Path:
    Image.new("RGB", size, color).save(path, fmt)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A structurally valid PNG claiming ``width`` x ``height`` pixels with almost no data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )
    return path


# -- inspect_image ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix", "content_type"),
    [("JPEG", ".jpg", "image/jpeg"), ("PNG", ".png", "image/png"), ("WEBP", ".webp", "image/webp")],
)
def test_valid_images_pass(tmp_path: Path, fmt: str, suffix: str, content_type: str) -> None:
    path = make_image(tmp_path / f"frame{suffix}", (1280, 720), fmt)
    for provider in (APIMART, TOAPIS, MINIMAX):
        image = inspect_image(path, parameter="first_frame", provider=provider)
        assert isinstance(image, LocalImage)
        assert (image.width, image.height) == (1280, 720)
        assert image.content_type == content_type
        assert image.filename == f"frame{suffix}"
        assert image.data == path.read_bytes()
        assert len(image.sha256) == 64
        assert image.path == str(path)
        assert "data=" not in repr(image)  # the bytes stay out of reprs and logs


def test_extension_is_corrected_for_upload(tmp_path: Path) -> None:
    path = make_image(tmp_path / "photo.png", fmt="JPEG")  # a JPEG under a .png name
    image = inspect_image(path, parameter="first_frame", provider=APIMART)
    assert image.content_type == "image/jpeg"
    assert image.filename == "photo.jpg"


@pytest.mark.parametrize("size", [(400, 1000), (1000, 400), (301, 301), (301, 752)])
def test_boundaries_accepted(tmp_path: Path, size: tuple[int, int]) -> None:
    image = inspect_image(make_image(tmp_path / "b.png", size, "PNG"), parameter="first_frame", provider=MINIMAX)
    assert (image.width, image.height) == size


def rejected(path: Path, provider: Provider = APIMART, parameter: str = "last_frame") -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        inspect_image(path, parameter=parameter, provider=provider)
    error = info.value
    assert error.parameter == parameter
    assert error.provider == provider.name
    assert path.name in str(error)
    return error


def test_gif_refused(tmp_path: Path) -> None:
    error = rejected(make_image(tmp_path / "anim.gif", fmt="GIF"))
    assert "JPEG, PNG or WebP" in str(error)
    assert "GIF" in str(error)


def test_bmp_refused(tmp_path: Path) -> None:
    assert "BMP" in str(rejected(make_image(tmp_path / "x.bmp", fmt="BMP")))


@pytest.mark.parametrize("size", [(300, 400), (400, 300), (300, 300), (120, 120)])
def test_short_side_must_exceed_300(tmp_path: Path, size: tuple[int, int]) -> None:
    error = rejected(make_image(tmp_path / "small.jpg", size))
    assert "short side more than 300 px" in str(error)
    assert f"{size[0]}x{size[1]}" in str(error)


@pytest.mark.parametrize("size", [(400, 1200), (1200, 400), (399, 1000), (1001, 400)])
def test_aspect_ratio_between_2_5_and_5_2(tmp_path: Path, size: tuple[int, int]) -> None:
    error = rejected(make_image(tmp_path / "narrow.png", size, "PNG"))
    assert "aspect ratio between 2:5 and 5:2" in str(error)
    assert f"{size[0]}x{size[1]}" in str(error)


def test_text_file_named_jpg_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n" * 10)
    assert "not a recognised image" in str(rejected(path))


def test_truncated_image_refused(tmp_path: Path) -> None:
    good = make_image(tmp_path / "good.png", (640, 480), "PNG").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(good[: len(good) // 2])
    assert "Pillow cannot read it" in str(rejected(path))


def test_corrupt_png_crc_refused(tmp_path: Path) -> None:
    data = bytearray(make_image(tmp_path / "good.png", (640, 480), "PNG").read_bytes())
    data[data.index(b"IDAT") + 6] ^= 0xFF  # inside the IDAT data: the chunk's CRC no longer matches
    path = tmp_path / "crc.png"
    path.write_bytes(bytes(data))
    rejected(path)


def test_empty_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.webp"
    path.write_bytes(b"")
    assert "empty" in str(rejected(path))


def test_missing_file(tmp_path: Path) -> None:
    error = rejected(tmp_path / "nowhere.jpg", parameter="first_frame")
    assert "file not found" in str(error)


def test_directory_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert "not a regular file" in str(rejected(folder))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)
    assert "not a regular file" in str(rejected(pipe))


class TinyModel(Minimax):
    image_limit: ClassVar[int] = 2000


class TinyUpload(Toapis):
    upload_limit: ClassVar[int | None] = 1500


def test_oversize_for_the_model(tmp_path: Path) -> None:
    path = make_image(tmp_path / "big.png", (800, 600), "PNG", color="red")
    Image.effect_noise((800, 600), 64).convert("RGB").save(path, "PNG")  # noise compresses badly
    size = path.stat().st_size
    error = rejected(path, TinyModel())
    assert "at most 2000 bytes" in str(error)
    assert f"file is {size} bytes" in str(error)
    assert "for the model" in str(error)


def test_oversize_for_the_upload_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.effect_noise((800, 600), 64).convert("RGB").save(path, "JPEG")
    error = rejected(path, TinyUpload())
    assert "at most 1500 bytes" in str(error)
    assert "upload endpoint" in str(error)


def test_decompression_bomb_header_refused(tmp_path: Path) -> None:
    path = png_header_only(tmp_path / "bomb.png", 50_000, 50_000)
    error = rejected(path)
    assert "pixels" in str(error)
    assert "50000x50000" in str(error)


def test_pixel_cap_follows_pillow_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_image(tmp_path / "normal.jpg", (640, 360))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    assert "at most 100000 pixels" in str(rejected(path))


def test_data_uri(tmp_path: Path) -> None:
    image = inspect_image(make_image(tmp_path / "f.webp", fmt="WEBP"), parameter="first_frame", provider=MINIMAX)
    uri = data_uri(image)
    prefix = "data:image/webp;base64,"
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix) :]) == image.data
    # The request model accepts it as a frame source.
    assert GenerationRequest("x", first_frame=uri).first_frame == uri


# -- FrameResolver -------------------------------------------------------------------------------------------------


UPLOAD_URL_HOURS = 72  # apimart's uploaded URLs work 72 h from their created_at (docs/providers.md, A.6)


class FakeApi:
    """An async ``send`` recording requests and answering uploads in a provider's documented shape; apimart's
    answers say the image was stored ``age`` seconds ago."""

    def __init__(self, provider: str, *, failures: int = 0, status: int = 200, age: float = 0.0) -> None:
        self.provider = provider
        self.failures = failures
        self.status = status
        self.age = age
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        await anyio.sleep(0.01)  # let concurrent items pile up behind the first upload
        if len(self.requests) <= self.failures:
            return HttpResponse(status=503, body=b'{"error":{"message":"upload service busy"}}')
        if self.status != 200:
            return HttpResponse(status=self.status, body=b'{"success":false,"message":"Unsupported image type"}')
        url = f"https://files.example/{self.provider}/{len(self.requests)}.jpg"
        if self.provider == "apimart":
            created_at = int(time.time() - self.age)
            body = {"url": url, "filename": "x.jpg", "content_type": "image/jpeg", "bytes": 1, "created_at": created_at}
        else:
            body = {"success": True, "message": "", "data": {"id": "upload_1", "url": url, "mime_type": "image/jpeg"}}
        return HttpResponse(status=200, headers={"content-type": "application/json"}, body=msgspec.json.encode(body))


@pytest.mark.parametrize(("provider", "expected"), [(APIMART, "https://files.example/apimart/1.jpg"), (TOAPIS, None)])
async def test_upload_once_for_many_concurrent_items(tmp_path: Path, provider: Provider, expected: str | None) -> None:
    frame = make_image(tmp_path / "start.jpg")
    api = FakeApi(provider.name)
    resolver = FrameResolver(provider, api, FAST)
    results: list[GenerationRequest] = []

    async def item(i: int) -> None:
        results.append(await resolver.resolve(GenerationRequest(f"item {i}", first_frame=frame)))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(item, i)
    assert len(api.requests) == 1
    assert resolver.uploads == 1
    url = f"https://files.example/{provider.name}/1.jpg"
    assert expected in (None, url)
    assert {r.first_frame for r in results} == {url}
    assert sorted(r.prompt or "" for r in results) == sorted(f"item {i}" for i in range(10))
    upload = api.requests[0]
    assert upload.method == "POST"
    assert upload.route == "upload"
    assert upload.path == "/v1/uploads/images"
    assert upload.body is not None
    assert frame.read_bytes() in upload.body
    assert b'filename="start.jpg"' in upload.body

    # Later items reuse the URL without reading or uploading again.
    again = await resolver.resolve(GenerationRequest("later", first_frame=str(frame), last_frame=frame))
    assert again.first_frame == url
    assert again.last_frame == url
    assert len(api.requests) == 1


async def test_same_bytes_under_two_names_upload_once(tmp_path: Path) -> None:
    first = make_image(tmp_path / "a.jpg")
    copy = tmp_path / "b.jpg"
    copy.write_bytes(first.read_bytes())
    api = FakeApi("apimart")
    resolver = FrameResolver(APIMART, api, FAST)
    request = await resolver.resolve(GenerationRequest("x", first_frame=first, last_frame=copy))
    assert request.first_frame == request.last_frame
    assert len(api.requests) == 1


async def test_different_frames_upload_separately_and_changes_are_seen(tmp_path: Path) -> None:
    first = make_image(tmp_path / "first.png", fmt="PNG", color="red")
    last = make_image(tmp_path / "last.png", fmt="PNG", color="blue")
    api = FakeApi("toapis")
    resolver = FrameResolver(TOAPIS, api, FAST)
    request = await resolver.resolve(GenerationRequest("x", first_frame=first, last_frame=last))
    assert request.first_frame != request.last_frame
    assert resolver.uploads == 2
    make_image(first, (800, 450), "PNG", color="green")  # edited in place: new content, new upload
    again = await resolver.resolve(GenerationRequest("x", first_frame=first))
    assert again.first_frame not in (request.first_frame, request.last_frame)
    assert resolver.uploads == 3


async def test_minimax_inlines_a_data_uri(tmp_path: Path) -> None:
    frame = make_image(tmp_path / "start.png", fmt="PNG")
    api = FakeApi("minimax")
    resolver = FrameResolver(MINIMAX, api, FAST)
    request = await resolver.resolve(GenerationRequest("x", first_frame=frame, last_frame=frame))
    uri = str(request.first_frame)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == frame.read_bytes()
    assert request.last_frame == request.first_frame
    assert api.requests == []
    assert resolver.uploads == 0


async def test_urls_and_text_only_requests_pass_through(tmp_path: Path) -> None:
    api = FakeApi("apimart")
    resolver = FrameResolver(APIMART, api, FAST)
    text = GenerationRequest("just text")
    assert await resolver.resolve(text) is text
    remote = GenerationRequest("x", first_frame="https://example.com/a.jpg")
    assert await resolver.resolve(remote) is remote
    await resolver.validate(remote)
    assert api.requests == []


async def test_upload_retried_after_server_error(tmp_path: Path) -> None:
    api = FakeApi("apimart", failures=1)
    resolver = FrameResolver(APIMART, api, FAST)
    request = await resolver.resolve(GenerationRequest("x", first_frame=make_image(tmp_path / "a.jpg")))
    assert request.first_frame == "https://files.example/apimart/2.jpg"
    assert len(api.requests) == 2
    assert resolver.uploads == 1


async def test_upload_refusal_is_not_retried(tmp_path: Path) -> None:
    api = FakeApi("toapis", status=400)
    resolver = FrameResolver(TOAPIS, api, FAST)
    with pytest.raises(BadRequestError, match="Unsupported image type"):
        await resolver.resolve(GenerationRequest("x", first_frame=make_image(tmp_path / "a.jpg")))
    assert len(api.requests) == 1
    assert resolver.uploads == 0


async def test_validate_fails_before_anything_is_sent(tmp_path: Path) -> None:
    api = FakeApi("apimart")
    resolver = FrameResolver(APIMART, api, FAST)
    good = make_image(tmp_path / "good.jpg")
    small = make_image(tmp_path / "small.jpg", (200, 200))
    await resolver.validate(GenerationRequest("x", first_frame=good))
    with pytest.raises(InvalidRequestError) as info:
        await resolver.validate(GenerationRequest("x", first_frame=good, last_frame=small))
    assert info.value.parameter == "last_frame"
    assert "small.jpg" in str(info.value)
    with pytest.raises(InvalidRequestError, match="short side"):
        await resolver.resolve(GenerationRequest("x", first_frame=small))
    assert api.requests == []


async def test_uploaded_urls_are_reused_only_while_fresh(tmp_path: Path) -> None:
    frame = make_image(tmp_path / "a.jpg")
    api = FakeApi("apimart")
    resolver = FrameResolver(APIMART, api, FAST)
    resolver.upload_ttl = 0.0  # every upload is already stale: the next item uploads again
    first = await resolver.resolve(GenerationRequest("x", first_frame=frame))
    second = await resolver.resolve(GenerationRequest("y", first_frame=frame))
    assert first.first_frame != second.first_frame
    assert resolver.uploads == 2


@pytest.mark.parametrize(
    ("left", "reused"),
    [
        (UPLOAD_URL_HOURS * 3600.0, True),  # just uploaded
        (UPLOAD_EXPIRY_MARGIN + 600.0, True),  # still outside the margin
        (UPLOAD_EXPIRY_MARGIN - 600.0, False),  # expires within the margin: uploaded again
        (-60.0, False),  # already expired by this machine's clock
    ],
)
async def test_uploads_close_to_expiry_are_not_reused(tmp_path: Path, left: float, reused: bool) -> None:
    frame = make_image(tmp_path / "a.jpg")
    api = FakeApi("apimart", age=UPLOAD_URL_HOURS * 3600.0 - left)
    resolver = FrameResolver(APIMART, api, FAST)
    resolver.upload_ttl = 10 * 24 * 3600.0  # longer than the URL lives: only the expiry decides
    first = await resolver.resolve(GenerationRequest("x", first_frame=frame))
    second = await resolver.resolve(GenerationRequest("y", first_frame=frame))
    assert first.first_frame == "https://files.example/apimart/1.jpg"  # a fresh upload is always used once
    assert (first.first_frame == second.first_frame) is reused
    assert resolver.uploads == (1 if reused else 2)


async def test_unknown_expiry_falls_back_to_upload_ttl(tmp_path: Path) -> None:
    frame = make_image(tmp_path / "a.jpg")
    api = FakeApi("toapis")  # toapis does not say when its uploads expire
    resolver = FrameResolver(TOAPIS, api, FAST)
    await resolver.resolve(GenerationRequest("x", first_frame=frame))
    await resolver.resolve(GenerationRequest("y", first_frame=frame))
    assert resolver.uploads == 1
    resolver.upload_ttl = 0.0
    await resolver.resolve(GenerationRequest("z", first_frame=make_image(tmp_path / "b.jpg", color="red")))
    await resolver.resolve(GenerationRequest("w", first_frame=tmp_path / "b.jpg"))
    assert resolver.uploads == 3
