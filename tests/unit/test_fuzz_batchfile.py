"""Fuzzing the batch-file parsers: whatever the text, load_requests answers with requests or one BatchFileError."""

from __future__ import annotations

import io
import json
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hailuo_async import BatchFileError, GenerationRequest, load_requests
from hailuo_async.providers import PROVIDERS

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELDS = ["prompt", "duration", "resolution", "first_frame", "last_frame", "prompt_optimizer", "watermark", "x"]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["768p", "1080P", "[Push in] a cat", "https://example.com/a.jpg", "data:image/png;base64,AA=="]),
)
json_lines = st.lists(
    st.one_of(st.dictionaries(st.sampled_from(FIELDS), values, max_size=5), values, st.lists(values, max_size=3)),
    max_size=6,
).map(lambda rows: "\n".join(json.dumps(r) for r in rows))
csv_text = st.lists(
    st.lists(st.one_of(st.text(max_size=12), st.sampled_from([*FIELDS, "true", "6", "512p", '"', ","])), max_size=5),
    max_size=6,
).map(lambda rows: "\n".join(",".join(cells) for cells in rows))


Format = Literal["txt", "jsonl", "csv"]


def parse(text: str, fmt: Format, provider: str) -> list[GenerationRequest] | BatchFileError:
    try:
        return load_requests("-", format=fmt, provider=provider, stdin=io.StringIO(text))
    except BatchFileError as error:
        return error


@FUZZ
@given(
    text=st.one_of(st.text(max_size=300), json_lines, csv_text),
    fmt=st.sampled_from(["txt", "jsonl", "csv"]),
    provider=st.sampled_from(sorted(PROVIDERS)),
)
def test_batch_parsers_answer_requests_or_one_batch_file_error(text: str, fmt: Format, provider: str) -> None:
    result = parse(text, fmt, provider)
    requests = result.requests if isinstance(result, BatchFileError) else result
    for request in requests:
        PROVIDERS[provider].validate(request)  # every accepted line is valid for the provider
    if not isinstance(result, BatchFileError):
        return
    assert str(result)
    assert "Expected `" not in str(result)  # msgspec's wording is always rephrased
    assert result.source == "<stdin>"
    assert result.provider == provider
    assert result.bad_lines
    for bad in result.bad_lines:
        assert bad.line >= 1
        assert str(bad).startswith(f"line {bad.line}")
        assert "Expected `" not in bad.message


def test_a_bad_line_is_reported_with_its_number() -> None:
    result = parse('{"prompt": "fine"}\n{"prompt": "x", "duration": 7}\n', "jsonl", "toapis")
    assert isinstance(result, BatchFileError)
    assert "line 2" in str(result)
    assert "duration" in str(result)


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ('{"prompt": "x", "duration": "ten"}', "duration", "invalid duration='ten': a whole number of seconds"),
        ('{"prompt": "x", "duration": 7.5}', "duration", "invalid duration=7.5: a whole number of seconds"),
        ('{"prompt": "x", "duration": true}', "duration", "invalid duration=True: a whole number of seconds"),
        ('{"prompt": 5}', "prompt", "invalid prompt=5: text"),
        ('{"prompt": "x", "watermark": "yes"}', "watermark", "invalid watermark='yes': true or false"),
        ('{"prompt": "x", "resolution": 768}', "resolution", "invalid resolution=768: one of 512p, 768p, 1080p"),
        ('{"prompt": "x", "first_frame": [1]}', "first_frame", "invalid first_frame=[1]: a URL, a data: URI or a"),
    ],
)
def test_a_value_of_the_wrong_type_is_reported_in_the_library_s_words(line: str, field: str, expected: str) -> None:
    result = parse('{"prompt": "a first line"}\n' + line + "\n", "jsonl", "apimart")
    assert isinstance(result, BatchFileError)
    assert f"line 2, field {field!r}: {expected}" in str(result)
    assert "Expected" not in str(result)
    (bad,) = result.bad_lines
    assert (bad.line, bad.field) == (2, field)


def test_the_error_keeps_the_valid_lines_and_names_the_others() -> None:
    text = '{"prompt": "one"}\n{"prompt": "two", "duration": 7}\n\n{"prompt": "three"}\n{"prompt": 3}\n'
    result = parse(text, "jsonl", "apimart")
    assert isinstance(result, BatchFileError)
    assert [r.prompt for r in result.requests] == ["one", "three"]
    assert [str(bad).split(":")[0] for bad in result.bad_lines] == [
        "line 2, field 'duration'",
        "line 5, field 'prompt'",
    ]
    everything_bad = parse('{"prompt": 3}\n', "jsonl", "apimart")
    assert isinstance(everything_bad, BatchFileError)
    assert everything_bad.requests == []
