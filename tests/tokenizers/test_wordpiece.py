"""Parity tests for kerasformer's WordPiece tokenizer against bert4keras 0.11.5.

The expected values in tests/fixtures/tokenizer/expected.json were produced by
the real bert4keras (tools/make_tokenizer_fixtures.py) on the vocabulary in the
same folder. A stored {"error": name} means bert4keras raised there; kerasformer
must raise too, possibly with a clearer exception type.
"""
import functools
import hashlib
import json
import pathlib
import pickle
import re
import subprocess
import sys
import unicodedata

import pytest

from kerasformer.tokenizers import Tokenizer, load_vocab, save_vocab
from kerasformer.tokenizers import wordpiece

FIXTURE_DIR = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "tokenizer"
VOCAB_PATH = FIXTURE_DIR / "vocab.txt"
EXPECTED = json.loads((FIXTURE_DIR / "expected.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def tokenizer_for(config_name):
    """The tokenizer of one fixture configuration (see the generator)."""
    kwargs = dict(EXPECTED["configs"][config_name])
    if "pre_tokenize" in kwargs:
        pattern = kwargs["pre_tokenize"]
        kwargs["pre_tokenize"] = lambda text: re.split(pattern, text)
    return Tokenizer(str(VOCAB_PATH), **kwargs)


def as_json(value):
    """`value` with tuples turned into lists, as JSON stores it."""
    return json.loads(json.dumps(value))


def check(expected, function, *args, **kwargs):
    """Asserts that a call returns `expected`, or raises if bert4keras did."""
    if isinstance(expected, dict) and set(expected) == {"error"}:
        with pytest.raises(Exception):
            function(*args, **kwargs)
    else:
        assert as_json(function(*args, **kwargs)) == expected


def case_id(case):
    text = case.get("text", case.get("first"))
    return f"{case['config']}-{ascii(text)[:30]}"


# ------------------------------------------------------------------ parity


@pytest.mark.parametrize("case", EXPECTED["text_cases"], ids=case_id)
def test_single_text_matches_bert4keras(case):
    tokenizer = tokenizer_for(case["config"])
    text = case["text"]
    check(case["tokenize"], tokenizer.tokenize, text)
    check(case["tokenize_maxlen5"], tokenizer.tokenize, text, maxlen=5)
    check(case["encode"], tokenizer.encode, text)
    check(case["encode_maxlen8"], tokenizer.encode, text, maxlen=8)
    check(case["encode_maxlen8_left"], tokenizer.encode, text, maxlen=8,
          truncate_from="left")
    check(case["decode_ids"], tokenizer.decode, case["encode"][0])
    check(case["decode_tokens"], tokenizer.decode, None, case["tokenize"])
    check(case["rematch"], tokenizer.rematch, text, case["tokenize"])


@pytest.mark.parametrize("case", EXPECTED["pair_cases"], ids=case_id)
def test_text_pair_matches_bert4keras(case):
    tokenizer = tokenizer_for(case["config"])
    check(case["expected"], tokenizer.encode, case["first"], case["second"],
          **case["kwargs"])


@pytest.mark.parametrize("case", EXPECTED["pretokenized_cases"], ids=case_id)
def test_pretokenized_input_matches_bert4keras(case):
    tokenizer = tokenizer_for(case["config"])
    first, second = case["first"], case["second"]
    first_before, second_before = list(first), second and list(second)
    check(case["expected"], tokenizer.encode, first, second, **case["kwargs"])
    # Unlike bert4keras, the caller's token lists are never truncated in place.
    assert list(first) == first_before
    assert (second and list(second)) == second_before


@pytest.mark.parametrize("case", EXPECTED["truncation_cases"], ids=case_id)
def test_tiny_maxlen_matches_bert4keras(case):
    tokenizer = tokenizer_for(case["config"])
    text, maxlen = case["text"], case["maxlen"]
    check(case["tokenize"], tokenizer.tokenize, text, maxlen=maxlen)
    check(case["encode_right"], tokenizer.encode, text, maxlen=maxlen)
    check(case["encode_left"], tokenizer.encode, text, maxlen=maxlen,
          truncate_from="left")


@pytest.mark.parametrize("tokens, expected", EXPECTED["decode_token_cases"])
def test_decode_of_token_lists_matches_bert4keras(tokens, expected):
    check(expected, tokenizer_for("cased").decode, None, tokens)


def digest(value):
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_load_vocab_matches_bert4keras():
    expected = EXPECTED["vocab"]["load_vocab"]
    token_dict = load_vocab(VOCAB_PATH)
    assert list(token_dict) == expected["tokens"].split("\n")
    assert list(token_dict.values()) == expected["ids"]


def test_load_vocab_simplified_matches_bert4keras():
    expected = EXPECTED["vocab"]["simplified_simbert"]
    token_dict, keep_tokens = load_vocab(
        VOCAB_PATH, simplified=True,
        startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
    )
    assert keep_tokens == expected["keep_tokens"]
    assert len(token_dict) == expected["size"]
    assert digest(as_json(list(token_dict.items()))) == expected["digest"]

    expected = EXPECTED["vocab"]["simplified_plain"]
    token_dict, keep_tokens = load_vocab(VOCAB_PATH, simplified=True)
    assert len(token_dict) == expected["size"]
    assert digest(as_json([list(token_dict.items()), keep_tokens])) == expected["digest"]
    assert "北京" not in token_dict and "##的" not in token_dict


def test_ids_and_special_tokens_match_bert4keras():
    tokenizer = tokenizer_for("cased")
    facts = EXPECTED["vocab"]
    assert tokenizer.vocab_size == tokenizer._vocab_size == facts["vocab_size"]
    for role, token_id in facts["special_ids"].items():
        assert getattr(tokenizer, f"_token_{role}_id") == token_id
        assert getattr(tokenizer, f"{role}_id") == token_id
    for token_id, expected in facts["id_to_token"]:
        check(expected, tokenizer.id_to_token, token_id)


def test_duplicate_vocab_line_reproduces_bert4keras_ids():
    tokenizer = tokenizer_for("cased")
    # The repeated 'hello' line gives 'hello' a new id shared with 'goodbye'.
    assert tokenizer.token_to_id("hello") == tokenizer.token_to_id("goodbye")
    assert tokenizer.id_to_token(tokenizer.token_to_id("hello")) == "goodbye"
    assert tokenizer.token_to_id("spaced") == tokenizer.token_to_id("goodbye") + 1
    assert tokenizer.token_to_id("") == tokenizer.token_to_id("after_blank") - 1


def test_token_helpers_match_bert4keras():
    for token, stem, is_special, is_redundant in EXPECTED["token_helpers"]:
        assert Tokenizer.stem(token) == stem
        assert Tokenizer._is_special(token) is is_special
        assert bool(Tokenizer._is_redundant(token)) is is_redundant
    assert Tokenizer._cjk_punctuation() == EXPECTED["cjk_punctuation"]


@pytest.mark.skipif(
    unicodedata.unidata_version != EXPECTED["generator"]["unidata_version"],
    reason="fixture made with another Unicode database version",
)
@pytest.mark.parametrize("name, predicate", [
    ("space", Tokenizer._is_space),
    ("punctuation", Tokenizer._is_punctuation),
    ("cjk", Tokenizer._is_cjk_character),
    ("control", Tokenizer._is_control),
])
def test_character_classes_match_bert4keras(name, predicate):
    runs = EXPECTED["character_classes"][name]
    # Planes 0-2 and 14 hold nearly every assigned character; the edges of
    # every stored range cover whatever lies elsewhere.
    codes = set(range(0x30000)) | set(range(0xE0000, 0xE1000))
    for start, end in runs:
        codes.update(code for code in (start - 1, start, end, end + 1)
                     if 0 <= code <= sys.maxunicode)
    inside = set()
    for start, end in runs:
        inside.update(codes.intersection(range(start, end + 1)))
    mismatches = [hex(c) for c in sorted(codes) if predicate(chr(c)) != (c in inside)]
    assert not mismatches[:20]


# ---------------------------------------------------------- API behaviour


def test_dict_path_and_pathlike_give_the_same_tokenizer():
    text = "我在2021年买了iPhone 12，花了6,999元。"
    from_str = Tokenizer(str(VOCAB_PATH))
    from_path = Tokenizer(VOCAB_PATH)
    from_dict = Tokenizer(load_vocab(VOCAB_PATH))
    assert from_str.encode(text) == from_path.encode(text) == from_dict.encode(text)


def test_token_dict_is_a_read_only_copy():
    token_dict = {"[UNK]": 0, "a": 1}
    tokenizer = Tokenizer(token_dict)
    token_dict["b"] = 2
    assert "b" not in tokenizer.token_dict
    with pytest.raises(TypeError):
        tokenizer.token_dict["c"] = 3


def test_save_vocab_round_trips_a_simplified_vocab(tmp_path):
    token_dict, _ = load_vocab(VOCAB_PATH, simplified=True, startswith=["[PAD]", "[UNK]"])
    path = tmp_path / "vocab.txt"
    save_vocab(path, token_dict)
    assert load_vocab(path) == token_dict


def test_ids_and_tokens_convert_both_ways():
    tokenizer = tokenizer_for("cased")
    tokens = ["[CLS]", "你", "好", "not-a-token", "[SEP]"]
    ids = tokenizer.tokens_to_ids(tokens)
    assert ids[3] == tokenizer.unk_id == tokenizer.token_to_id("not-a-token")
    assert tokenizer.ids_to_tokens(ids) == ["[CLS]", "你", "好", "[UNK]", "[SEP]"]


@pytest.mark.parametrize("word, pieces", [
    ("abcdefgh", ["abcdef", "##gh"]),  # the longest token starts the word
    ("xbcdefgh", ["x", "##bcdefgh"]),  # the longest token continues it
    ("abcdefg", ["abcdefg"]),  # no split: an unknown word is kept whole
])
def test_word_pieces_can_be_as_long_as_the_longest_token(word, pieces):
    tokenizer = Tokenizer({"[UNK]": 0, "abcdef": 1, "##gh": 2, "x": 3, "##bcdefgh": 4})
    assert tokenizer.tokenize(word) == ["[CLS]"] + pieces + ["[SEP]"]


def test_numpy_ids_and_indices_are_accepted():
    numpy = pytest.importorskip("numpy")
    tokenizer = tokenizer_for("cased")
    ids, _ = tokenizer.encode("你好世界")
    assert tokenizer.decode(numpy.array(ids)) == "你好世界"
    numpy_args = tokenizer.encode("你好世界", maxlen=numpy.int64(4),
                                  truncate_from=numpy.int64(1))
    assert numpy_args == tokenizer.encode("你好世界", maxlen=4, truncate_from=1)


def test_tokenizer_can_be_pickled():
    tokenizer = Tokenizer(VOCAB_PATH, do_lower_case=True)
    tokenizer.tokenize("Hello 世界")  # fills the word cache
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.encode("Hello 世界") == tokenizer.encode("Hello 世界")


def test_word_cache_eviction_keeps_results_exact(monkeypatch):
    monkeypatch.setattr(wordpiece, "_WORD_CACHE_SIZE", 3)
    tokenizer = Tokenizer(VOCAB_PATH)
    text = "unaffable playing played player tokenizer tokenizes 你好"
    expected = tokenizer_for("cased").tokenize(text)
    for _ in range(3):
        assert tokenizer.tokenize(text) == expected
    assert len(tokenizer._word_cache) <= 3


def test_long_truncation_keeps_the_ends():
    tokenizer = tokenizer_for("cased")
    text = "你好" * 5000
    ids, _ = tokenizer.encode(text, maxlen=16, truncate_from="left")
    assert ids[0] == tokenizer.start_id and ids[-1] == tokenizer.end_id
    assert len(ids) == 16
    tokens = tokenizer.tokenize(text, maxlen=16)
    assert tokens == ["[CLS]"] + ["你", "好"] * 7 + ["[SEP]"]


def test_module_does_not_import_keras():
    # Load the module file on its own: the kerasformer package __init__ may
    # import the model code, but the tokenizer itself must not need keras.
    code = (
        "import importlib.util, sys\n"
        'spec = importlib.util.spec_from_file_location("wordpiece", %r)\n'
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        'module.Tokenizer({"[UNK]": 0, "a": 1}).encode("a b")\n'
        'assert not any(m.split(".")[0] in ("keras", "tensorflow", "jax", "numpy")\n'
        "               for m in sys.modules), sorted(sys.modules)\n"
    ) % wordpiece.__file__
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- errors


def test_missing_vocab_file_names_the_path(tmp_path):
    missing = tmp_path / "no-such-vocab.txt"
    with pytest.raises(FileNotFoundError, match="no-such-vocab.txt"):
        Tokenizer(str(missing))


def test_empty_vocab_is_rejected(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        Tokenizer(path)
    with pytest.raises(ValueError, match="empty"):
        Tokenizer({})


def test_token_dict_of_the_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="list"):
        Tokenizer(["[UNK]", "a"])


@pytest.mark.parametrize("text", [None, 42, b"bytes"])
def test_non_str_text_raises_type_error_naming_the_type(text):
    tokenizer = tokenizer_for("cased")
    name = type(text).__name__
    for method in (tokenizer.tokenize, tokenizer.encode):
        with pytest.raises(TypeError, match=name):
            method(text)
    with pytest.raises(TypeError, match=name):
        tokenizer.rematch(text, [])
    if text is not None:  # None is the default: no second text
        with pytest.raises(TypeError, match=name):
            tokenizer.encode("ok", text)


def test_token_lists_must_hold_str():
    with pytest.raises(TypeError, match="int"):
        tokenizer_for("cased").encode([101, 102])


def test_empty_text_is_valid():
    tokenizer = tokenizer_for("cased")
    assert tokenizer.tokenize("") == ["[CLS]", "[SEP]"]
    assert tokenizer.encode("") == ([tokenizer.start_id, tokenizer.end_id], [0, 0])


def test_unknown_token_without_unk_names_the_token():
    tokenizer = Tokenizer({"[CLS]": 0, "[SEP]": 1, "a": 2})
    assert tokenizer.unk_id is None and not hasattr(tokenizer, "_token_unk_id")
    assert tokenizer.encode("a") == ([0, 2, 1], [0, 0, 0])
    with pytest.raises(KeyError, match="zebra"):
        tokenizer.encode("a zebra")
    with pytest.raises(KeyError, match="zebra"):
        tokenizer.token_to_id("zebra")


@pytest.mark.parametrize("token_id", [-1, 10**6])
def test_unknown_id_names_the_id_and_vocab_size(token_id):
    tokenizer = tokenizer_for("cased")
    with pytest.raises(KeyError, match=rf"{token_id}.*vocab_size={tokenizer.vocab_size}"):
        tokenizer.id_to_token(token_id)
    with pytest.raises(KeyError, match=str(token_id)):
        tokenizer.decode([token_id])


def test_bad_truncation_arguments_are_reported():
    tokenizer = tokenizer_for("cased")
    with pytest.raises(ValueError, match="maxlen"):
        tokenizer.encode("你好", maxlen=-1)
    with pytest.raises(ValueError, match="truncate_from"):
        tokenizer.encode("你好", maxlen=2, truncate_from="middle")


def test_rematch_reports_tokens_missing_from_the_text():
    with pytest.raises(ValueError, match="zebra"):
        tokenizer_for("cased").rematch("你好", ["[CLS]", "zebra", "[SEP]"])


def test_the_word_cache_is_bounded_by_characters_too():
    tokenizer = Tokenizer(str(VOCAB_PATH))
    for i in range(300):  # 300 distinct 1,000-character words
        tokenizer.tokenize("a" * 999 + chr(0x61 + i % 26) + str(i))
    assert sum(len(word) for word in tokenizer._word_cache) <= wordpiece._WORD_CACHE_CHARACTERS
    assert all(len(word) <= wordpiece._CACHED_WORD_LENGTH for word in tokenizer._word_cache)
