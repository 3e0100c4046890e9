"""Request validation: the documented provider matrix, asserted exhaustively, and the GenerationRequest rules.

The expected answer for every combination is computed here from the documented rules (docs/providers.md, A.2,
B.2 and C.2), not read back from the library, so a wrong rule in a codec shows up as a disagreement.
"""

from __future__ import annotations

import itertools
import pathlib
import re
from typing import Any, Literal

import pytest

from hailuo_async import CAMERA_DIRECTIVES, MAX_PROMPT_LENGTH, GenerationRequest, InvalidRequestError
from hailuo_async.providers import get_provider

from .test_rules import Violation, verdict

Mode = Literal["text-to-video", "image-to-video", "first-last-frame"]

FIRST = "https://example.com/first.jpg"
LAST = "https://example.com/last.png"
PNG_URI = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

PROVIDER_NAMES = ("apimart", "toapis", "minimax")
DURATIONS = (None, 5, 6, 10)
RESOLUTIONS = (None, "512p", "768p", "1080p")
MODES: tuple[Mode, ...] = ("text-to-video", "image-to-video", "first-last-frame")


def documented_violations(provider: str, duration: int | None, resolution: str | None, mode: Mode) -> list[Violation]:
    """Every documented rule the combination breaks (empty: the provider accepts it)."""
    short, long = (5, 10) if provider == "apimart" else (6, 10)
    found: list[Violation] = []
    if duration is not None and duration not in (short, long):
        found.append(Violation("duration", duration))
    if resolution == "1080p" and duration is not None and duration != short:
        found.append(Violation("duration", duration))
    if resolution == "512p":
        if provider == "toapis" and mode == "first-last-frame":
            found.append(Violation("resolution", "512p"))
        if provider == "minimax" and mode != "image-to-video":
            found.append(Violation("resolution", "512p"))
    return found


def build(duration: int | None, resolution: str | None, mode: Mode) -> GenerationRequest:
    first = FIRST if mode != "text-to-video" else None
    last = LAST if mode == "first-last-frame" else None
    return GenerationRequest(
        "A cat on the grass", duration=duration, resolution=resolution, first_frame=first, last_frame=last
    )


COMBOS = list(itertools.product(PROVIDER_NAMES, DURATIONS, RESOLUTIONS, MODES))
MATRIX = [pytest.param(p, d, r, m, id=f"{p}-{d}s-{r}-{m}") for p, d, r, m in COMBOS]


def allowed_text(provider: str) -> tuple[int, int]:
    return (5, 10) if provider == "apimart" else (6, 10)


@pytest.mark.parametrize(("provider_name", "duration", "resolution", "mode"), MATRIX)
def test_provider_matrix(provider_name: str, duration: int | None, resolution: str | None, mode: Mode) -> None:
    request = build(duration, resolution, mode)
    assert request.mode == mode
    error = verdict(provider_name, request, documented_violations(provider_name, duration, resolution, mode))
    if error is None:
        return
    assert isinstance(error, ValueError)
    message = str(error)
    assert str(error.value) in message
    short, long = allowed_text(provider_name)
    if error.parameter == "duration":
        if duration not in (short, long):
            assert f"{short} or {long}" in message
        else:  # 1080p at the long duration
            assert "1080p" in message.lower()
            assert str(short) in message
    else:
        assert "768p" in message.lower()  # says what to use instead of 512p


def test_matrix_is_exhaustive() -> None:
    assert len(MATRIX) == 3 * 4 * 4 * 3
    # This matrix is Hailuo-02's, the default model; the newer models' is in unit/test_rules.py.
    assert build(None, None, "text-to-video").model == "MiniMax-Hailuo-02"
    # Spot-check the computed expectations against the documented tables.
    assert not documented_violations("apimart", 5, "1080p", "first-last-frame")
    assert documented_violations("apimart", 10, "1080p", "text-to-video")
    assert documented_violations("apimart", 6, None, "text-to-video")
    assert not documented_violations("apimart", 10, "512p", "first-last-frame")
    assert documented_violations("toapis", 5, None, "text-to-video")
    assert not documented_violations("toapis", 6, "1080p", "first-last-frame")
    assert documented_violations("toapis", 10, "1080p", "image-to-video")
    assert documented_violations("toapis", None, "512p", "first-last-frame")
    assert not documented_violations("toapis", 10, "512p", "text-to-video")
    assert documented_violations("minimax", None, "512p", "text-to-video")
    assert not documented_violations("minimax", 10, "512p", "image-to-video")
    accepted = sum(1 for combo in COMBOS if not documented_violations(*combo))
    rejected = len(MATRIX) - accepted
    assert accepted > 0
    assert rejected > 0


# ---------------------------------------------------------------------------------------------------------------
# Frame sources per provider
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
@pytest.mark.parametrize("which", ["first_frame", "last_frame"])
def test_data_uri_frames(provider_name: str, which: str) -> None:
    frames: dict[str, Any] = {"first_frame": FIRST, which: PNG_URI}
    request = GenerationRequest("p", **frames)
    provider = get_provider(provider_name)
    if provider_name == "toapis":  # "Do not pass base64 image data directly" (docs/providers.md, B.2)
        with pytest.raises(InvalidRequestError) as info:
            provider.validate(request)
        assert info.value.parameter == which
        assert "URL" in str(info.value)
    else:
        provider.validate(request)


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
@pytest.mark.parametrize("frame", [FIRST, "http://example.com/a.webp", "HTTPS://EXAMPLE.COM/A.JPG", "start.jpg"])
def test_url_and_local_frames_pass_every_provider(provider_name: str, frame: str) -> None:
    get_provider(provider_name).validate(GenerationRequest("she turns", first_frame=frame, last_frame=frame))


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
def test_a_prompt_is_required_where_the_provider_documents_it(provider_name: str) -> None:
    provider = get_provider(provider_name)
    request = GenerationRequest(first_frame=FIRST)  # image-to-video without a prompt
    if provider_name == "apimart":  # "prompt ... required" on apimart's page, in every mode
        with pytest.raises(InvalidRequestError) as info:
            provider.validate(request)
        assert info.value.parameter == "prompt" and "apimart" in str(info.value)
    else:
        provider.validate(request)


# ---------------------------------------------------------------------------------------------------------------
# GenerationRequest rules
# ---------------------------------------------------------------------------------------------------------------


def rejects(parameter: str, **fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        GenerationRequest(**fields)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.parameter == parameter
    assert parameter in str(error)
    return error


@pytest.mark.parametrize("prompt", [None, "", " ", "\n\t  "])
def test_prompt_required_for_text_to_video(prompt: str | None) -> None:
    error = rejects("prompt", prompt=prompt)
    assert "text-to-video" in error.allowed


@pytest.mark.parametrize("prompt", [None, "", "  "])
def test_prompt_optional_with_first_frame(prompt: str | None) -> None:
    request = GenerationRequest(prompt, first_frame=FIRST)
    assert request.mode == "image-to-video"
    assert request.prompt == prompt
    assert GenerationRequest(prompt, first_frame=FIRST, last_frame=LAST).mode == "first-last-frame"


def test_prompt_length() -> None:
    assert MAX_PROMPT_LENGTH == 2000
    assert GenerationRequest("x" * 2000).prompt == "x" * 2000
    assert GenerationRequest("é" * 2000).prompt == "é" * 2000  # characters, not bytes
    error = rejects("prompt", prompt="x" * 2001)
    assert "2000" in str(error)
    rejects("prompt", prompt="y" * 10_000, first_frame=FIRST)


@pytest.mark.parametrize("prompt", [123, b"bytes", ["a"]])
def test_prompt_must_be_a_string(prompt: object) -> None:
    rejects("prompt", prompt=prompt)


def test_last_frame_needs_first_frame() -> None:
    error = rejects("last_frame", prompt="p", last_frame=LAST)
    assert "first_frame" in str(error)


@pytest.mark.parametrize(
    ("given", "stored"),
    [("512p", "512p"), ("512P", "512p"), ("768P", "768p"), ("1080P", "1080p"), (" 1080p ", "1080p"), (None, None)],
)
def test_resolution_normalised(given: str | None, stored: str | None) -> None:
    assert GenerationRequest("p", resolution=given).resolution == stored


@pytest.mark.parametrize("resolution", ["720p", "1080", "4k", "", "768pp", 768, b"768p"])
def test_resolution_rejected(resolution: object) -> None:
    error = rejects("resolution", prompt="p", resolution=resolution)
    for allowed in ("512p", "768p", "1080p"):
        assert allowed in str(error)


@pytest.mark.parametrize("duration", [5, 6, 10, None])
def test_duration_accepted(duration: int | None) -> None:
    assert GenerationRequest("p", duration=duration).duration == duration


@pytest.mark.parametrize("duration", [True, False, 0, 4, 7, -5, 5.0, "5", 10.0])
def test_duration_rejected(duration: object) -> None:
    error = rejects("duration", prompt="p", duration=duration)
    assert repr(duration) in str(error)
    assert "10" in error.allowed


@pytest.mark.parametrize(
    "frame",
    [
        "https://example.com/a.jpg",
        "http://example.com/a.jpg",
        PNG_URI,
        "data:image/jpeg;base64," + "/9j/4AAQSkZJRgABAQ" * 5,
        "data:image/webp;base64," + "UklGRiQAAABXRUJQ" * 5,
        "start.jpg",
        "/abs/path/start.png",
        "frames/../start.png",
    ],
)
def test_frame_sources_accepted(frame: str) -> None:
    request = GenerationRequest(first_frame=frame, last_frame=frame)
    assert request.first_frame == frame
    assert request.last_frame == frame


def test_path_frames_stored_as_str(tmp_path: pathlib.Path) -> None:
    first = tmp_path / "first.png"
    last = pathlib.PurePosixPath("frames/last.jpg")
    request = GenerationRequest(first_frame=first, last_frame=last)
    assert type(request.first_frame) is str
    assert type(request.last_frame) is str
    assert request.first_frame == str(first)
    assert request.last_frame == "frames/last.jpg"


@pytest.mark.parametrize(
    "frame",
    [
        "data:image/png;base64,!!!not-base64!!!",
        "data:text/plain;base64,SGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=",
        "data:image/png,rawbytes-not-base64-encoded-at-all",
        "data:image/png;base64,",
        "data:",
    ],
)
def test_invalid_data_uri(frame: str) -> None:
    error = rejects("first_frame", first_frame=frame)
    assert "data" in error.allowed


@pytest.mark.parametrize("frame", ["", "   ", 42, b"https://example.com/a.jpg", ["https://example.com/a.jpg"]])
def test_frame_type_and_emptiness(frame: object) -> None:
    rejects("first_frame", prompt="p", first_frame=frame)


def test_nul_characters_rejected() -> None:
    rejects("prompt", prompt="a\x00b")
    rejects("first_frame", prompt="p", first_frame="start\x00.png")
    rejects("last_frame", prompt="p", first_frame=FIRST, last_frame="end\x00.png")


@pytest.mark.parametrize("flag", ["prompt_optimizer", "fast_pretreatment", "watermark"])
@pytest.mark.parametrize("value", [1, 0, "true", "false", 1.0, [True]])
def test_flags_must_be_bool(flag: str, value: object) -> None:
    fields: dict[str, Any] = {"prompt": "p", flag: value}
    error = rejects(flag, **fields)
    assert "True" in error.allowed
    assert "False" in error.allowed


@pytest.mark.parametrize("flag", ["prompt_optimizer", "fast_pretreatment", "watermark"])
@pytest.mark.parametrize("value", [True, False, None])
def test_flags_accept_bool_and_none(flag: str, value: bool | None) -> None:
    fields: dict[str, Any] = {flag: value}
    assert getattr(GenerationRequest("p", **fields), flag) is value


def test_request_is_frozen() -> None:
    request = GenerationRequest("p")
    with pytest.raises(AttributeError):
        request.prompt = "q"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------------
# Camera directives
# ---------------------------------------------------------------------------------------------------------------

DOCUMENTED_DIRECTIVES = (
    "Pan left", "Pan right", "Tilt up", "Tilt down", "Push in", "Pull out", "Pedestal up", "Pedestal down",
    "Truck left", "Truck right", "Zoom in", "Zoom out", "Shake", "Tracking shot", "Static shot",
)  # fmt: skip


def test_directive_list_matches_documentation() -> None:
    assert CAMERA_DIRECTIVES == DOCUMENTED_DIRECTIVES
    assert len(set(CAMERA_DIRECTIVES)) == 15


@pytest.mark.parametrize("directive", DOCUMENTED_DIRECTIVES)
def test_each_directive_accepted(directive: str) -> None:
    spaced = "  " + "   ".join(directive.split()) + " "
    for spelled in (directive, directive.lower(), directive.upper(), directive.swapcase(), spaced):
        prompt = f"A city street [{spelled}] at night"
        assert GenerationRequest(prompt).prompt == prompt  # stored untouched


@pytest.mark.parametrize(
    "prompt",
    [
        "[Pan left, Pedestal up]",
        "[Pan left,Pedestal up]",
        "[Truck left, Zoom in, Shake]",
        "[ tracking shot ,  STATIC SHOT,push in ]",
        "A man picks up a book [Pedestal up], then reads [Static shot]",
        "City night [Push in], then [Pull out]",
        "[Push in] [Pull out] [Zoom in] [Zoom out] [Shake]",
        "no brackets at all",
        "unbalanced [ bracket",
        "unbalanced ] bracket",
    ],
)
def test_directive_combinations_accepted(prompt: str) -> None:
    assert GenerationRequest(prompt).prompt == prompt


def test_four_directives_in_one_bracket_rejected() -> None:
    error = rejects("prompt", prompt="Go [Pan left, Tilt up, Zoom in, Shake] now")
    assert "3" in str(error)
    assert "[Pan left, Tilt up, Zoom in, Shake]" in str(error)


@pytest.mark.parametrize("bracket", ["[Fly over]", "[Pan up]", "[Pan left, Orbit]", "[Zoom]", "[Dolly zoom]"])
def test_unknown_directive_rejected_listing_all_valid(bracket: str) -> None:
    error = rejects("prompt", prompt=f"Scene {bracket} here")
    message = str(error)
    assert bracket in message
    listed = re.findall(r"\[([^\[\]]+)\]", error.allowed)
    assert tuple(listed) == DOCUMENTED_DIRECTIVES
    for directive in DOCUMENTED_DIRECTIVES:
        assert f"[{directive}]" in message


def test_directives_checked_even_with_a_first_frame() -> None:
    rejects("prompt", prompt="[Barrel roll]", first_frame=FIRST)
