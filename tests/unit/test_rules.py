"""Models: ``GenerationRequest.model``, the per-provider, per-model rules, and the model in every submit body.

The expected verdict for every (provider, model, duration, resolution, mode) is computed here from the documented
rules (docs/providers.md, "Newer models per provider"), not read back from the library's table, so that a wrong
row in ``providers/_rules.py`` shows up as a disagreement. Refusals happen before anything is sent: the client
tests below count the requests its transport saw.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal, NamedTuple

import msgspec
import pytest

from hailuo_async import (
    DEFAULT_MODEL,
    MODELS,
    GenerationRequest,
    HailuoClient,
    HttpRequest,
    HttpResponse,
    InvalidRequestError,
    MockTransport,
    load_requests,
)
from hailuo_async._journal import canonical_request, item_key
from hailuo_async.providers import RULES, get_provider, rules_for

pytestmark = pytest.mark.anyio

Mode = Literal["text-to-video", "image-to-video", "first-last-frame"]
FIRST = "https://example.com/first.jpg"
LAST = "https://example.com/last.jpg"
PROVIDER_NAMES = ("apimart", "toapis", "minimax")
MODES: tuple[Mode, ...] = ("text-to-video", "image-to-video", "first-last-frame")
HAILUO_02, HAILUO_23, HAILUO_23_FAST = "MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast"


class Violation(NamedTuple):
    parameter: str
    value: object


def documented(provider: str, model: str, duration: int | None, resolution: str | None, mode: Mode) -> list[Violation]:
    """Every documented rule the combination breaks (empty: accepted)."""
    newer = model != HAILUO_02
    short, long = (5, 10) if (provider == "apimart" and not newer) else (6, 10)
    last = LAST if mode == "first-last-frame" else None
    found: list[Violation] = []
    if model == HAILUO_23_FAST and mode == "text-to-video":
        found.append(Violation("first_frame", None))  # image-to-video only
    if newer and mode == "first-last-frame":
        found.append(Violation("last_frame", last))  # only Hailuo-02 does first+last frame
    if duration is not None and duration not in (short, long):
        found.append(Violation("duration", duration))
    if newer and resolution == "512p":
        found.append(Violation("resolution", "512p"))  # 768p or 1080p only
    if resolution == "1080p" and duration not in (None, short):
        found.append(Violation("duration", duration))
    if not newer and resolution == "512p":
        if provider == "toapis" and mode == "first-last-frame":
            found.append(Violation("resolution", "512p"))
        if provider == "minimax" and mode != "image-to-video":
            found.append(Violation("resolution", "512p"))
    return found


def build(model: str, duration: int | None, resolution: str | None, mode: Mode) -> GenerationRequest:
    return GenerationRequest(
        "A red kite over dunes",
        model=model,
        duration=duration,
        resolution=resolution,
        first_frame=FIRST if mode != "text-to-video" else None,
        last_frame=LAST if mode == "first-last-frame" else None,
    )


COMBOS = list(itertools.product(PROVIDER_NAMES, MODELS, (None, 5, 6, 10), (None, "512p", "768p", "1080p"), MODES))


def verdict(provider_name: str, request: GenerationRequest, violations: list[Violation]) -> InvalidRequestError | None:
    """The provider's verdict on ``request``, checked against the documented ``violations``: ``None`` when it
    accepts it (as it must without a violation), else its error, which names one of them."""
    provider = get_provider(provider_name)
    if not violations:
        provider.validate(request)
        return None
    with pytest.raises(InvalidRequestError) as info:
        provider.validate(request)
    error = info.value
    assert (error.parameter, error.value) in violations
    assert error.provider == provider_name
    assert error.parameter in str(error)
    return error


@pytest.mark.parametrize(("provider_name", "model", "duration", "resolution", "mode"), COMBOS)
def test_every_combination_against_the_documented_rules(
    provider_name: str, model: str, duration: int | None, resolution: str | None, mode: Mode
) -> None:
    request = build(model, duration, resolution, mode)
    verdict(provider_name, request, documented(provider_name, model, duration, resolution, mode))


def test_the_matrix_holds_both_verdicts_for_every_model() -> None:
    assert len(COMBOS) == 3 * 3 * 4 * 4 * 3
    for provider, model in itertools.product(PROVIDER_NAMES, MODELS):
        verdicts = {not documented(p, m, d, r, mode) for p, m, d, r, mode in COMBOS if (p, m) == (provider, model)}
        assert verdicts == {True, False}, (provider, model)


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
def test_the_three_refusals_of_the_issue_name_what_is_allowed(provider_name: str) -> None:
    provider = get_provider(provider_name)
    cases: list[tuple[GenerationRequest, str, list[str]]] = [
        (
            GenerationRequest("p", model=HAILUO_23, resolution="512p", first_frame=FIRST),
            "resolution",
            ["768p or 1080p"],
        ),
        (GenerationRequest("p", model=HAILUO_23_FAST), "first_frame", ["image-to-video only", "first_frame"]),
        (
            GenerationRequest("p", model=HAILUO_23, first_frame=FIRST, last_frame=LAST),
            "last_frame",
            ["does not take a last frame", HAILUO_02, "text-to-video or image-to-video"],
        ),
        (
            GenerationRequest("p", model=HAILUO_23, resolution="1080p", duration=10),
            "duration",
            ["1080p is only available at 6 seconds", "768p for 10 seconds"],
        ),
    ]
    for request, parameter, words in cases:
        with pytest.raises(InvalidRequestError) as info:
            provider.validate(request)
        assert info.value.parameter == parameter
        message = str(info.value)
        for word in words:
            assert word in message, message
        assert request.model in message or parameter == "duration"


def test_hailuo_02_messages_are_unchanged_in_substance() -> None:
    with pytest.raises(InvalidRequestError) as info:
        get_provider("minimax").validate(GenerationRequest("p", resolution="512p"))
    assert "512p is only available for image-to-video" in str(info.value)
    assert "768p or 1080p" in str(info.value)
    with pytest.raises(InvalidRequestError) as info:
        get_provider("apimart").validate(GenerationRequest("p", duration=6))
    assert "5 or 10 seconds" in str(info.value)


# -- GenerationRequest.model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("MiniMax-Hailuo-02", HAILUO_02),
        ("minimax-hailuo-2.3", HAILUO_23),
        ("MINIMAX-HAILUO-2.3-FAST", HAILUO_23_FAST),
        ("  MiniMax-Hailuo-2.3-fast ", HAILUO_23_FAST),
    ],
)
def test_the_model_is_accepted_in_any_case_and_stored_canonically(given: str, stored: str) -> None:
    request = GenerationRequest("p", model=given, first_frame=FIRST)
    assert request.model == stored
    assert msgspec.json.decode(msgspec.json.encode(request), type=GenerationRequest) == request


def test_the_default_model_is_hailuo_02() -> None:
    assert DEFAULT_MODEL == HAILUO_02 == GenerationRequest("p").model
    assert MODELS == (HAILUO_02, HAILUO_23, HAILUO_23_FAST)


@pytest.mark.parametrize("model", ["MiniMax-Hailuo-2.4", "hailuo-02", "", None, 2.3, ["MiniMax-Hailuo-02"]])
def test_an_unknown_model_is_refused_listing_the_models(model: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        GenerationRequest("p", model=model)  # type: ignore[arg-type]
    assert info.value.parameter == "model"
    for name in MODELS:
        assert name in info.value.allowed


def test_every_provider_has_rules_for_every_model() -> None:
    assert set(RULES) == set(PROVIDER_NAMES)
    for provider, models in RULES.items():
        assert set(models) == set(MODELS)
        for model, rules in models.items():
            assert (rules.provider, rules.model) == (provider, model)
            assert rules.durations == tuple(sorted(rules.durations))
            assert rules.default_resolution in rules.resolutions
            assert set(rules.short_only) <= set(rules.resolutions)
            assert rules.source.startswith("docs/providers.md, ")
            assert get_provider(provider).rules(model) is rules is rules_for(provider, model)


def test_rules_are_frozen_data() -> None:
    rules = rules_for("minimax", HAILUO_23)
    with pytest.raises(AttributeError):
        rules.durations = (6,)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("apimart", HAILUO_02, (5, "768p")),
        ("apimart", HAILUO_23, (6, "768p")),
        ("toapis", HAILUO_02, (6, "768p")),
        ("minimax", HAILUO_23_FAST, (6, "768p")),
    ],
)
def test_effective_duration_and_resolution_are_the_provider_defaults(
    provider: str, model: str, expected: tuple[int, str]
) -> None:
    rules = rules_for(provider, model)
    assert rules.effective(GenerationRequest("p", model=model, first_frame=FIRST)) == expected
    own = GenerationRequest("p", model=model, first_frame=FIRST, duration=10, resolution="768P")
    assert rules.effective(own) == (10, "768p")


def test_provider_durations_stay_hailuo_02s() -> None:
    assert get_provider("apimart").durations == (5, 10)
    assert get_provider("toapis").durations == (6, 10)
    assert get_provider("minimax").durations == (6, 10)


# -- the model on the wire -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
@pytest.mark.parametrize("model", MODELS)
def test_every_submit_body_carries_the_model(provider_name: str, model: str) -> None:
    request = GenerationRequest("A kite", model=model, first_frame=FIRST, duration=10)
    get_provider(provider_name).validate(request)
    body = msgspec.json.decode(get_provider(provider_name).build_submit(request, idempotency_key="k").body or b"")
    assert body["model"] == model
    assert next(iter(body)) == "model"


SEED_BODIES = {
    "apimart": b'{"model":"MiniMax-Hailuo-02","prompt":"A cat [Push in]","duration":5,"resolution":"768p"}',
    "toapis": b'{"model":"MiniMax-Hailuo-02","prompt":"A cat [Push in]","duration":6,"resolution":"768P",'
    b'"client_business_id":"k"}',
    "minimax": b'{"model":"MiniMax-Hailuo-02","prompt":"A cat [Push in]","duration":6,"resolution":"768P"}',
}


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
def test_a_hailuo_02_body_keeps_its_exact_bytes(provider_name: str) -> None:
    provider = get_provider(provider_name)
    request = GenerationRequest("A cat [Push in]", duration=provider.durations[0], resolution="768p")
    assert provider.build_submit(request, idempotency_key="k").body == SEED_BODIES[provider_name]


def test_a_journal_written_before_models_keeps_its_item_ids() -> None:
    # canonical_request as it was before requests named a model: the same text, so the same item id on resume.
    before = (
        '{"duration":null,"fast_pretreatment":null,"first_frame":null,"last_frame":null,"prompt":"x",'
        '"prompt_optimizer":null,"resolution":null,"watermark":null}'
    )
    assert canonical_request(GenerationRequest("x")) == before
    newer = GenerationRequest("x", model=HAILUO_23)
    assert '"model":"MiniMax-Hailuo-2.3"' in canonical_request(newer)
    assert item_key("minimax", newer, 0) != item_key("minimax", GenerationRequest("x"), 0)


# -- refused before anything is sent ---------------------------------------------------------------------------


def counting_transport() -> tuple[MockTransport, list[HttpRequest]]:
    seen: list[HttpRequest] = []

    def handler(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(status=500, headers={}, body=b"{}")

    return MockTransport(handler), seen


@pytest.mark.parametrize("provider_name", PROVIDER_NAMES)
async def test_the_client_refuses_each_models_rules_before_sending(provider_name: str) -> None:
    transport, seen = counting_transport()
    bad: list[dict[str, Any]] = [
        {"model": HAILUO_23, "resolution": "512p", "first_frame": FIRST},
        {"model": HAILUO_23_FAST},
        {"model": HAILUO_23, "first_frame": FIRST, "last_frame": LAST},
    ]
    async with HailuoClient(provider_name, api_key="k", transport=transport) as client:
        for options in bad:
            with pytest.raises(InvalidRequestError):
                await client.submit("A kite", **options)
        results = await client.gather_generations(
            [GenerationRequest("A kite", **options) for options in bad], return_exceptions=True
        )
    assert all(isinstance(result, InvalidRequestError) for result in results)
    assert seen == []


def test_load_requests_checks_each_lines_model(tmp_path: Any) -> None:
    path = tmp_path / "models.jsonl"
    path.write_text(
        '{"prompt": "a", "model": "minimax-hailuo-2.3", "resolution": "1080P"}\n'
        '{"prompt": "b", "first_frame": "https://example.com/f.jpg"}\n'
    )
    first, second = load_requests(path, provider="toapis", defaults={"model": HAILUO_23_FAST})
    assert (first.model, first.resolution) == (HAILUO_23, "1080p")
    assert second.model == HAILUO_23_FAST
