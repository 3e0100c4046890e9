"""Recording real answers (``record_to=``) and replaying every recorded fixture through the codecs.

A recorded run against the simulator must hold every request and answer and never the key; every file under
``tests/fixtures/<provider>/recorded/`` (captures users send in) must still be read by today's codecs."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from hailuo_async import APIError, Generation, HailuoClient, PollPolicy, RetryPolicy, TaskStatus
from hailuo_async._record import Recording, replay
from hailuo_async.providers import get_provider
from hailuo_async.simulator import Simulator

from ..conftest import SECRET

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parents[1] / "fixtures"
RECORDED = sorted(FIXTURES.glob("*/recorded/*.json"))
FAST_POLL = PollPolicy(max_lag=0.1, min_interval=0.05, max_interval=1.0, deadline=60)


def load(path: Path) -> Recording:
    return msgspec.json.decode(path.read_bytes(), type=Recording)


def check_replays(recording: Recording) -> object:
    """What the codec makes of a recorded answer: a value for a 2xx, the typed error otherwise."""
    if recording.status is None:  # no answer came: the transport's error is what was recorded
        assert recording.error
        return None
    result = replay(recording, get_provider(recording.provider))
    if 200 <= recording.status < 300 and recording.route == "status":
        assert isinstance(result, (TaskStatus, APIError)), result
    if recording.status >= 400:
        assert isinstance(result, APIError) and result.status_code == recording.status
    return result


@pytest.mark.parametrize("provider", ["apimart", "toapis", "minimax"])
async def test_a_recorded_run_holds_every_exchange_and_never_the_key(
    sim: Simulator, provider: str, tmp_path: Path
) -> None:
    async with HailuoClient(
        provider,
        api_key=SECRET,
        base_url=getattr(sim.urls, provider),
        poll=FAST_POLL,
        retry=RetryPolicy(base_delay=0.01, max_delay=0.2),
        submits_per_minute=None,
        record_to=tmp_path,
    ) as client:
        video = await client.generate("A lighthouse at dusk [Push in]", download_to=tmp_path / "videos")
        stats = client.statistics()
    assert isinstance(video, Generation)
    files = sorted((tmp_path / provider).glob("*.json"))
    assert len(files) == stats.requests  # one file per API request, the download not among them
    routes = [load(path).route for path in files]
    assert routes[0] == "submit" and "status" in routes
    for path in files:
        text = path.read_text()
        assert SECRET not in text and SECRET[3:] not in text
        assert "authorization" not in text.lower()
        recording = load(path)
        result = check_replays(recording)
        if recording.route == "submit":
            assert result == video.task_id


async def test_recording_never_overwrites_an_earlier_run(sim: Simulator, tmp_path: Path) -> None:
    for _ in range(2):
        async with HailuoClient(
            "apimart", api_key=SECRET, base_url=sim.urls.apimart, record_to=tmp_path, submits_per_minute=None
        ) as client:
            await client.submit("A paper boat")
    names = sorted(path.name for path in (tmp_path / "apimart").glob("*.json"))
    assert len([name for name in names if "-submit-" in name]) == 2
    assert len({name[:5] for name in names}) == len(names)  # the second run numbered on after the first


def test_recorded_fixtures_are_present() -> None:
    # The folder ships captures for every provider, so the replay test below is never empty.
    assert {path.parent.parent.name for path in RECORDED} == {"apimart", "toapis", "minimax"}


@pytest.mark.parametrize("path", RECORDED, ids=[f"{p.parent.parent.name}/{p.name}" for p in RECORDED])
def test_every_recorded_fixture_replays(path: Path) -> None:
    check_replays(load(path))
