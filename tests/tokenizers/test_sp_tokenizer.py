"""SpTokenizer against bert4keras 0.11.5's SpTokenizer.

tests/fixtures/tokenizers/sp/expected.json holds what bert4keras returned on the tiny
SentencePiece model beside it (tools/make_sp_tokenizer_fixtures.py, run in the
reference environment); these tests ask kerasformer the same questions.
"""
import builtins
import hashlib
import importlib.util
import json
import pathlib
import pickle
import re
import subprocess
import sys

import pytest

from kerasformer.tokenizers import SpTokenizer, Tokenizer, TokenizerBase

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "tokenizers" / "sp"
TINY = FIXTURES / "tiny.model"
NOPAD = FIXTURES / "nopad.model"

needs_sentencepiece = pytest.mark.skipif(
    importlib.util.find_spec("sentencepiece") is None,
    reason='needs sentencepiece: pip install "kerasformer[sentencepiece]"',
)


def cpm_pre_tokenize(text):
    """The fixture tool's stand-in for CPM's jieba pre-tokenizer (same code)."""
    words = re.findall(r"[\u4e00-\u9fff]{1,2}|[^\u4e00-\u9fff]+", text)
    return [word.translate(str.maketrans(" \n", "\u2582\u2583")) for word in words]


@pytest.fixture(scope="module")
def expected():
    return json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


_TOKENIZERS = {}


def make(expected, name):
    """The kerasformer tokenizer of the fixture's configuration `name` (cached)."""
    if name not in _TOKENIZERS:
        kwargs = dict(expected["configs"][name]["kwargs"])
        if kwargs.get("pre_tokenize") == "cpm":
            kwargs["pre_tokenize"] = cpm_pre_tokenize
        _TOKENIZERS[name] = SpTokenizer(TINY, **kwargs)
    return _TOKENIZERS[name]


CONFIGS = ["default", "t5", "cpm", "real_markers"]
parity = pytest.mark.parametrize("name", CONFIGS)


def check_outcome(function, record):
    """`function()` returns record['value'], or raises the recorded error class."""
    if "error" in record:
        with pytest.raises(getattr(builtins, record["error"])):
            function()
    else:
        assert function() == record["value"]


# ---------------------------------------------------------------- parity


@needs_sentencepiece
def test_fixture_matches_models(expected):
    assert expected["bert4keras"] == "0.11.5"
    assert sorted(expected["configs"]) == sorted(CONFIGS)
    for name, digest in expected["models"].items():
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == digest
    assert TINY.stat().st_size < 100_000


@needs_sentencepiece
@parity
def test_special_tokens(expected, name):
    tokenizer = make(expected, name)
    attributes = expected["configs"][name]["attributes"]
    for attribute, value in attributes.items():
        if attribute.endswith("_id") and value is None:
            assert not hasattr(tokenizer, attribute), attribute
        else:
            assert getattr(tokenizer, attribute) == value, attribute
    for role in ("pad", "unk", "mask", "start", "end"):
        assert getattr(tokenizer, f"{role}_id") == attributes[f"_token_{role}_id"]
    assert tokenizer.vocab_size == attributes["_vocab_size"]


@needs_sentencepiece
@parity
def test_tokenize(expected, name):
    tokenizer = make(expected, name)
    texts = expected["texts"]
    for case in expected["configs"][name]["tokenize"]:
        text = texts[case["text"]]
        tokens = tokenizer.tokenize(text, maxlen=case.get("maxlen"))
        assert tokens == case["tokens"], (text, case.get("maxlen"))


@needs_sentencepiece
@parity
def test_encode(expected, name):
    tokenizer = make(expected, name)
    texts, seconds = expected["texts"], expected["second_texts"]
    cases = expected["configs"][name]["encode"]
    for case in cases:
        if "first_tokens" in case:
            first, second = case["first_tokens"], case.get("second_tokens")
        else:
            first = texts[case["first"]]
            second = seconds[case["second"]] if "second" in case else None
        kwargs = {key: case[key] for key in ("maxlen", "pattern", "truncate_from") if key in case}
        token_ids, segment_ids = tokenizer.encode(first, second, **kwargs)
        assert [token_ids, segment_ids] == case["result"], (first, second, kwargs)
    assert len(cases) > 200


@needs_sentencepiece
@parity
def test_decode(expected, name):
    tokenizer = make(expected, name)
    config = expected["configs"][name]
    for case in config["decode"] + config["decode_errors"]:
        check_outcome(lambda: tokenizer.decode(case["ids"]), case)


@needs_sentencepiece
@parity
def test_lookups(expected, name):
    tokenizer = make(expected, name)
    config = expected["configs"][name]
    vocab_size = tokenizer.vocab_size
    for token, token_id in config["token_to_id"].items():
        assert tokenizer.token_to_id(token) == token_id, token
    assert tokenizer.tokens_to_ids(list(config["token_to_id"])) == config["tokens_to_ids"]
    assert [tokenizer.id_to_token(i) for i in range(vocab_size + 3)] == config["id_to_token"]
    assert (tokenizer.ids_to_tokens([0, 1, 2, vocab_size - 1, vocab_size])
            == config["ids_to_tokens"])
    for i, record in config["id_to_token_errors"].items():
        check_outcome(lambda: tokenizer.id_to_token(int(i)), record)
    assert [bool(tokenizer._is_special(i)) for i in range(vocab_size)] == config["is_special"]
    assert ([bool(tokenizer._is_decodable(i)) for i in range(vocab_size + 3)]
            == config["is_decodable"])
    for i, record in config["is_special_errors"].items():
        check_outcome(lambda: tokenizer._is_special(int(i)), record)


# ------------------------------------------------------------ deviations


@needs_sentencepiece
def test_model_without_pad_piece_loads(expected):
    # bert4keras reads the pad piece with id_to_piece(-1) and fails; kerasformer
    # loads the model and has no padding token.
    assert expected["nopad"] == {"error": "IndexError"}
    tokenizer = SpTokenizer(NOPAD, token_start=None, token_end="</s>")
    assert tokenizer._token_pad is None and tokenizer.pad_id is None
    assert tokenizer.unk_id == tokenizer.sp_model.unk_id()
    assert tokenizer.end_id == tokenizer.sp_model.eos_id()
    ids, segments = tokenizer.encode("我们 like music")
    assert ids[-1] == tokenizer.end_id and segments == [0] * len(ids)
    assert tokenizer.decode(ids) == "我们 like music"


@needs_sentencepiece
def test_input_errors(tmp_path):
    tokenizer = SpTokenizer(TINY, token_start=None, token_end="</s>")
    with pytest.raises(TypeError, match="str"):
        tokenizer.tokenize(b"bytes")
    with pytest.raises(TypeError, match="decode bytes"):
        tokenizer.encode(b"bytes")
    with pytest.raises(TypeError, match="str tokens"):
        tokenizer.encode(["\u2581a", 3])
    with pytest.raises(TypeError):
        tokenizer.token_to_id(None)
    with pytest.raises(TypeError):
        tokenizer.id_to_token(1.0)
    with pytest.raises(FileNotFoundError, match="no-such.model"):
        SpTokenizer(tmp_path / "no-such.model")
    with pytest.raises(TypeError, match="path"):
        SpTokenizer(TINY.read_bytes())


@needs_sentencepiece
def test_numpy_ids_and_pickle():
    numpy = pytest.importorskip("numpy")
    tokenizer = SpTokenizer(TINY, token_start=None, token_end="</s>",
                            token_translate={"\u2583": "<cls>"})
    ids, _ = tokenizer.encode("第一行\n第二行 reads books")
    assert tokenizer.decode(numpy.array(ids)) == tokenizer.decode(ids)
    assert tokenizer.id_to_token(numpy.int64(ids[0])) == tokenizer.id_to_token(ids[0])
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert clone.encode("第一行\n第二行 reads books")[0] == ids
    assert clone.decode(ids) == tokenizer.decode(ids)


def test_class_hierarchy():
    assert issubclass(SpTokenizer, TokenizerBase) and issubclass(Tokenizer, TokenizerBase)


# ------------------------------------------------------- optional extra


def test_missing_sentencepiece_names_the_extra(monkeypatch):
    # A None entry in sys.modules makes `import sentencepiece` raise ImportError.
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(ImportError, match=re.escape('pip install "kerasformer[sentencepiece]"')):
        SpTokenizer(TINY)


def test_sentencepiece_is_imported_lazily():
    code = (
        "import sys\n"
        "from kerasformer.tokenizers import SpTokenizer\n"
        "assert 'sentencepiece' not in sys.modules\n"
        "assert not any(m.split('.')[0] in ('keras', 'tensorflow', 'jax', 'torch')\n"
        "               for m in sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
