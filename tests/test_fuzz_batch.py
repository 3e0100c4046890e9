"""Fuzzing the batch-file parsers: whatever the text, the CLI answers with its parsed lines or one UsageError."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hailuo_async._cli import BatchLine, UsageError, read_batch
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


def parse(text: str, fmt: str, provider: str) -> list[BatchLine] | UsageError:
    try:
        return read_batch("-", fmt=fmt, provider=PROVIDERS[provider], defaults={}, stdin=io.StringIO(text))
    except UsageError as error:
        return error


@FUZZ
@given(
    text=st.one_of(st.text(max_size=300), json_lines, csv_text),
    fmt=st.sampled_from(["txt", "jsonl", "csv"]),
    provider=st.sampled_from(sorted(PROVIDERS)),
)
def test_batch_parsers_answer_lines_or_one_usage_error(text: str, fmt: str, provider: str) -> None:
    result = parse(text, fmt, provider)
    if isinstance(result, UsageError):
        assert str(result)
        return
    for line in result:
        assert line.line >= 1
        PROVIDERS[provider].validate(line.request)  # every accepted line is valid for the provider


def test_a_bad_line_is_reported_with_its_number() -> None:
    result = parse('{"prompt": "fine"}\n{"prompt": "x", "duration": 7}\n', "jsonl", "toapis")
    assert isinstance(result, UsageError)
    assert "line 2" in str(result)
    assert "duration" in str(result)
