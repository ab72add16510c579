"""Character vocabularies from a corpus: the layout, the order, the caps, the file, and
that `Tokenizer` and bert4keras' `load_vocab(simplified=True)` take them whole and
round-trip the corpus."""
import os

import pytest

from kerasformer.tokenizers import Tokenizer, load_vocab
from kerasformer.tokenizers.vocab import SPECIAL_TOKENS, build_vocab, count_tokens, write_vocab

CORPUS = [
    "今天天气不错，我们去公园散步。",
    "我的iPhone12坏了！去哪里修？",
    "Café au lait costs 3.50 euros, doesn't it?",
    "他说：“明天见”……",
    "",
    "ＡＢＣ全角字母和 tabs\tand\nnewlines",
]


def lines():
    """The corpus as a one-shot generator, as a file would be read."""
    yield from CORPUS


def test_layout_and_order():
    tokens = build_vocab(lines())
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] == list(SPECIAL_TOKENS)
    assert len(set(tokens)) == len(tokens)
    counts = count_tokens(CORPUS)
    ranked = tokens[5:]
    keys = [(-counts[t], t) for t in ranked]
    assert keys == sorted(keys)  # by count, ties by text
    assert ranked[0] == "去" or counts[ranked[0]] >= counts["去"]
    # Latin words: a first character and ## continuations; CJK and punctuation alone
    assert {"i", "##p", "##h", "##o", "##n", "##e", "##1", "##2"} <= set(tokens)
    assert "café" not in tokens and "c" in tokens and "##a" in tokens  # lowercased,
    assert "##f" in tokens and "é" not in tokens and "##é" not in tokens  # accent stripped
    assert "，" in tokens and "。" in tokens and "“" in tokens and "##，" not in tokens
    assert build_vocab(lines()) == tokens  # deterministic


def test_cased():
    tokens = build_vocab(lines(), do_lower_case=False)
    assert "C" in tokens and "##é" in tokens and "I" not in tokens and "i" in tokens


def test_caps():
    counts = count_tokens(CORPUS)
    tokens = build_vocab(lines(), max_size=12)
    assert len(tokens) == 12 and tokens == build_vocab(lines())[:12]
    frequent = build_vocab(lines(), min_count=3)
    assert all(counts[t] >= 3 for t in frequent[5:])
    assert set(frequent[5:]) == {t for t, c in counts.items() if c >= 3}
    with pytest.raises(ValueError, match="max_size"):
        build_vocab(lines(), max_size=4)
    with pytest.raises(TypeError, match="text 1"):
        build_vocab(["a", b"b"])


def test_tokenizer_and_load_vocab_take_it_whole_and_round_trip(tmp_path):
    path = write_vocab(build_vocab(lines()), tmp_path / "vocab.txt")
    tokens = (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert tokens == build_vocab(lines())
    tokenizer = Tokenizer(path, do_lower_case=True)
    assert tokenizer.vocab_size == len(tokens)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id,
            tokenizer.mask_id) == (0, 1, 2, 3, 4)
    simplified, keep = load_vocab(path, simplified=True, startswith=list(SPECIAL_TOKENS))
    assert list(simplified) == tokens and keep == list(range(len(tokens)))
    for text in filter(None, CORPUS):
        ids = tokenizer.encode(text)[0]
        assert tokenizer.unk_id not in ids, text
        decoded = tokenizer.decode(ids)
        assert tokenizer.tokenize(decoded) == tokenizer.tokenize(text), (text, decoded)
    assert tokenizer.decode(tokenizer.encode(CORPUS[0])[0]) == CORPUS[0]
    assert tokenizer.decode(tokenizer.encode(CORPUS[1])[0]) == "我的iphone12坏了！去哪里修？"
    # a character that was capped away is unknown; in a Latin word, the whole word is
    capped_tokens = build_vocab(lines(), max_size=25)
    assert "i" in capped_tokens and "##p" not in capped_tokens
    capped = Tokenizer(write_vocab(capped_tokens, tmp_path / "c.txt"), do_lower_case=True)
    assert capped.encode("iphone 天")[0] == [2, 1, capped.token_to_id("天"), 3]


def test_write_vocab_is_atomic_and_checks_tokens(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeated"):
        write_vocab(["[PAD]", "a", "a"], path)
    with pytest.raises(ValueError, match="whitespace"):
        write_vocab(["[PAD]", "a b"], path)
    assert path.read_text(encoding="utf-8") == "old\n"  # untouched on error
    write_vocab(iter(["[PAD]", "a"]), path)
    assert path.read_text(encoding="utf-8") == "[PAD]\na\n"
    assert os.listdir(tmp_path) == ["vocab.txt"]  # no temporary file left
    assert os.stat(path).st_mode & 0o444 == 0o444
