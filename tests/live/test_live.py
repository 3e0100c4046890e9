"""Live checks against the real providers: ``pytest -m live`` (never part of the default run or CI).

Each provider whose key is in the environment (``APIMART_API_KEY``, ``TOAPIS_API_KEY``, ``MINIMAX_API_KEY``) makes
**one paid generation**, the cheapest the model allows for text-to-video (shortest duration, lowest resolution),
waits for it, downloads it and checks the decoded result and the file. Every request and answer is recorded under
``live-recordings/`` (key masked) so the answers can become fixtures in ``tests/fixtures/<provider>/recorded/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hailuo_async import Generation, GenerationRequest, HailuoClient, InvalidRequestError
from hailuo_async.providers import get_provider

# Read at import: the suite's autouse fixture hides every *_API_KEY from the tests themselves.
KEYS = {name: os.environ.get(get_provider(name).env_var) for name in ("apimart", "toapis", "minimax")}
RECORDINGS = Path(os.environ.get("HAILUO_LIVE_RECORD_TO", "live-recordings"))

pytestmark = [pytest.mark.live, pytest.mark.anyio]


def cheapest(provider: str) -> GenerationRequest:
    """The cheapest text-to-video request the provider's rules allow."""
    codec = get_provider(provider)
    short = codec.durations[0]
    for resolution in ("512p", "768p"):
        request = GenerationRequest(
            "A paper boat drifting on a calm pond [Static shot]", duration=short, resolution=resolution
        )
        try:
            codec.validate(request)
        except InvalidRequestError:
            continue
        return request
    raise AssertionError(f"{provider}: no short text-to-video request passes validation")


@pytest.mark.parametrize("provider", sorted(KEYS))
async def test_one_cheapest_generation_end_to_end(provider: str, tmp_path: Path) -> None:
    key = KEYS[provider]
    if not key:
        pytest.skip(f"{get_provider(provider).env_var} is not set: no live check for {provider}")
    request = cheapest(provider)
    async with HailuoClient(provider, api_key=key, record_to=RECORDINGS) as client:
        video = await client.generate(request, timeout=1800, download_to=tmp_path)
    assert isinstance(video, Generation)
    assert video.provider == provider and video.task_id
    assert video.video_url.startswith("https://")
    assert video.request == request
    assert video.path is not None
    data = Path(video.path).read_bytes()
    assert len(data) > 10_000 and data[4:8] == b"ftyp"  # an MP4 file, verified again here
    for recorded in (RECORDINGS / provider).glob("*.json"):
        assert key not in recorded.read_text()
