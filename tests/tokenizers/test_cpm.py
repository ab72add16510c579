"""CPM-LM's tokenizer against TsinghuaAI CPM-Generate's own (its real SentencePiece
model; tests/fixtures/tokenizers/cpm, tools/make_cpm_tokenizer_fixtures.py), and
against what Hugging Face's CPM tokenizers make of the same texts (hf.json, recorded by
the same tool: transformers is not imported here). HF's fast tokenizer is the one to
compare with: its slow one skips jieba and loses whitespace."""
import json
import unicodedata

import pytest

from kerasformer.tokenizers import CpmTokenizer
from tests.conftest import FIXTURES

CPM = FIXTURES / "tokenizers" / "cpm"
EXPECTED = json.loads((CPM / "expected.json").read_text(encoding="utf-8"))
HF = json.loads((CPM / "hf.json").read_text(encoding="utf-8"))
TEXT_CASES = [(case, hf) for case, hf in zip(EXPECTED["cases"], HF["cases"], strict=True)
              if "text" in case]


def case_id(case):
    return case.get("text", "ids")[:12]


TEXT_IDS = [case_id(case) for case, _ in TEXT_CASES]


@pytest.fixture(scope="module")
def tokenizer():
    return CpmTokenizer(CPM / "chinese_vocab.model")


@pytest.mark.parametrize("case", EXPECTED["cases"], ids=case_id)
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


def hf_fast_differs(text):
    """Whether HF's CpmTokenizerFast cuts `text` into other pieces than CPM-Generate:
    it runs jieba with its HMM off (so words the HMM finds stay apart characters) and
    strips accents before SentencePiece."""
    import jieba

    hmm_finds_words = jieba.lcut(text) != jieba.lcut(text, HMM=False)
    accented = any(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", text))
    return hmm_finds_words or accented


@pytest.mark.parametrize("case, hf", TEXT_CASES, ids=TEXT_IDS)
def test_ids_are_hf_fasts_but_where_its_jieba_hmm_or_accents_differ(tokenizer, case, hf):
    """HF fast's ids without its special tokens (add_special_tokens=False): the same
    as ours and CPM-Generate's on every text but those `hf_fast_differs` names, where
    ours stay CPM-Generate's (previous tests) and HF's are not."""
    token_ids = tokenizer.encode(case["text"])[0]
    if hf_fast_differs(case["text"]):
        assert token_ids != hf["fast_ids"]
    else:
        assert token_ids == hf["fast_ids"]


@pytest.mark.parametrize("hf", HF["cases"], ids=case_id)
def test_decodes_as_hf_fast_but_unknown_pieces(tokenizer, hf):
    """The same ids decode to the same text, but that HF writes an unknown piece
    `<unk>` and SentencePiece (so CPM-Generate, and we) ⁇."""
    ids = hf["fast_ids"] if "text" in hf else hf["ids"]
    assert tokenizer.decode(ids) == hf["fast_decoded"].replace("<unk>", "\u2047")


def test_hf_fast_special_tokens_are_not_cpms(tokenizer):
    """Asked for special tokens, HF fast ends a text XLNet's way, `<sep> <cls>`, where
    CPM-Generate adds none; and `<cls>` is no piece of CPM's model (HF adds it past the
    model's 30,000 embeddings), hence ids recorded without them."""
    sep, cls = HF["special_suffix"]
    assert HF["special_suffix_tokens"] == ["<sep>", "<cls>"]
    assert sep == tokenizer.token_to_id("<sep>")
    assert cls >= tokenizer.vocab_size


@pytest.mark.parametrize("case, hf", TEXT_CASES, ids=TEXT_IDS)
def test_hf_slow_is_not_cpm_generates(case, hf):
    """transformers' slow CpmTokenizer never calls jieba, so none of its ids are
    CPM-Generate's; and it collapses whitespace into SentencePiece's word boundaries,
    which decoding drops, so spaces and newlines do not come back."""
    assert hf["slow_ids"] != case["ids"]
    if any(c.isspace() for c in case["text"]):
        assert not any(c.isspace() for c in hf["slow_decoded"])
        assert any(c.isspace() for c in case["decoded"])
