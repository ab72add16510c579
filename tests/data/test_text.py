"""Parity tests for kerasformer.data's text snippets against bert4keras 0.11.5.

The expected values in tests/fixtures/text/snippets.json were produced by the
real bert4keras (tools/make_text_fixtures.py). A stored {"error": name} means
bert4keras raised there; kerasformer must raise ValueError instead.
"""
import copy
import json
import pathlib

import pytest

from kerasformer.data import text_segmentate, truncate_sequences

FIXTURES = json.loads(
    (pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "text" / "snippets.json")
    .read_text(encoding="utf-8")
)


def segmentate_id(case):
    return f"{ascii(case['text'])[:24]}-{case['maxlen']}-{ascii(case['seps'])[:12]}"


@pytest.mark.parametrize("case", FIXTURES["text_segmentate"], ids=segmentate_id)
def test_text_segmentate_matches_bert4keras(case):
    if case["seps"] is None:  # the default separators
        result = text_segmentate(case["text"], case["maxlen"])
    else:
        result = text_segmentate(case["text"], case["maxlen"], case["seps"], case["strips"])
    assert result == case["expected"]


def truncate_id(case):
    lengths = [None if sequence is None else len(sequence) for sequence in case["sequences"]]
    return f"{case['maxlen']}-{case['indices']}-{lengths}"


@pytest.mark.parametrize("case", FIXTURES["truncate_sequences"], ids=truncate_id)
def test_truncate_sequences_matches_bert4keras(case):
    indices = case["indices"]
    if case["indices_type"] == "tuple":
        indices = tuple(indices)
    sequences = copy.deepcopy(case["sequences"])
    if isinstance(case["expected"], dict):
        with pytest.raises(ValueError):
            truncate_sequences(case["maxlen"], indices, *sequences)
        return
    returned = truncate_sequences(case["maxlen"], indices, *sequences)
    assert returned == case["expected"]
    assert sequences == case["after"]  # modified in place
    non_empty = [sequence for sequence in sequences if sequence]
    assert all(a is b for a, b in zip(returned, non_empty))


def test_fixtures_cover_the_cases_the_brief_names():
    segmentate = FIXTURES["text_segmentate"]
    assert any(isinstance(case["maxlen"], float) for case in segmentate)
    assert any(case["strips"] for case in segmentate)
    assert any("" in case["expected"] for case in segmentate)
    truncate = FIXTURES["truncate_sequences"]
    assert {-2, 1} <= {case["indices"] for case in truncate if isinstance(case["indices"], int)}
    assert any(isinstance(case["indices"], list) for case in truncate)
    assert any(None in case["sequences"] for case in truncate)


def test_truncate_sequences_negative_maxlen_raises():
    with pytest.raises(ValueError, match="maxlen"):
        truncate_sequences(-1, -2, [1, 2, 3])
