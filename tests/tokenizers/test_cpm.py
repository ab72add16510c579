"""CPM-LM's tokenizer against TsinghuaAI CPM-Generate's own (its real SentencePiece
model; tests/fixtures/tokenizers/cpm, tools/make_cpm_tokenizer_fixtures.py)."""
import json

import pytest

from kerasformer.tokenizers import CpmTokenizer
from tests.conftest import FIXTURES

CPM = FIXTURES / "tokenizers" / "cpm"
EXPECTED = json.loads((CPM / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer():
    return CpmTokenizer(CPM / "chinese_vocab.model")


@pytest.mark.parametrize("case", EXPECTED["cases"], ids=lambda case: case.get("text", "ids")[:12])
def test_ids_and_texts_are_cpm_generates(tokenizer, case):
    if "text" in case:
        token_ids, segment_ids = tokenizer.encode(case["text"])
        assert token_ids == case["ids"]  # no start or end token
        assert segment_ids == [0] * len(token_ids)
    assert tokenizer.decode(case["ids"]) == case["decoded"]


def test_special_ids(tokenizer):
    assert tokenizer.eod_id == EXPECTED["eod_id"] == 7
    assert tokenizer.newline_id == 3 and tokenizer.id_to_token(3) == "\u2583"
    # a newline is the ▃ piece, so a generated line ends at it
    assert tokenizer.newline_id in tokenizer.encode("第一行\n第二行")[0]
