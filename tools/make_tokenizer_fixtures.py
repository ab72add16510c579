"""Generates the bert4keras parity fixtures for kerasformer's WordPiece tokenizer.

Run it with the reference environment, where bert4keras 0.11.5 is installed
(both variables are needed, or bert4keras fails on import):

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \\
        tools/make_tokenizer_fixtures.py

It writes, under tests/fixtures/tokenizer/:

- vocab.txt: a small deterministic vocabulary (special tokens, ASCII, the
  most frequent CJK characters of the SimCLUE sample corpus, CJK punctuation,
  full-width forms, English words and '##' pieces) that also contains the
  irregular lines bert4keras has to cope with: a duplicate token, a line with
  surrounding whitespace, multi-field lines and a whitespace-only line.
- expected.json: what bert4keras returns for edge-case texts under several
  tokenizer configurations (tokenize, encode, decode, rematch), text pairs,
  pre-tokenized input, hand-made token lists for decode, the vocabulary as
  load_vocab reads it (plain and simplified), and the Unicode ranges of the
  character classes.

The corpus files are read at run time from ../shared/data; only the handful of
sentences used as test texts end up in expected.json.
"""
import collections
import hashlib
import json
import pathlib
import re
import string
import sys
import unicodedata

import bert4keras
from bert4keras.tokenizers import Tokenizer, load_vocab

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUTPUT = REPO / "tests" / "fixtures" / "tokenizer"

# How many of the corpus' most frequent CJK characters go into the vocabulary.
CJK_VOCAB_SIZE = 2500

# Used by the 'pre_tokenize' configuration as re.split(PRE_TOKENIZE_PATTERN,
# text). The capturing group keeps the separators, and re.split also yields
# empty strings, which the vocabulary's whitespace-only line turns into the
# token ''.
PRE_TOKENIZE_PATTERN = r"(北京|我们|中国|今天|自然语言|\s+)"

TOKEN_TRANSLATE = {"hello": "[unused1]", "，": ",", "the": "", "abc": "xyz"}

# Keyword arguments of each tokenizer configuration (besides the vocabulary);
# 'pre_tokenize' is given as the pattern above and rebuilt by the tests.
CONFIGS = {
    "cased": {},
    "uncased": {"do_lower_case": True},
    "short_words": {"word_maxlen": 5},
    "pre_tokenize": {"do_lower_case": True, "pre_tokenize": PRE_TOKENIZE_PATTERN},
    "translate": {"token_translate": TOKEN_TRANSLATE},
    "no_start": {"token_start": None},
    "bare": {"token_start": None, "token_end": None},
    "custom_markers": {"token_start": "<S>", "token_end": "<T>"},
}


def build_vocab_lines():
    """Lines of the test vocabulary, in file order (without newlines)."""
    lines = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 6)]
    lines += ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>", "<T>"]
    lines += list(string.punctuation) + list(string.digits)
    lines += list(string.ascii_lowercase) + list(string.ascii_uppercase)

    # CJK and full-width punctuation; a few are left out on purpose so that
    # they become [UNK], and U+3000 because, being whitespace, its line would
    # read as the token ''.
    left_out = set("\uff5f\uff60\u301f\u2027\u3000")
    cjk_punctuation = Tokenizer._cjk_punctuation()
    lines += [ch for ch in cjk_punctuation if ch not in left_out]
    lines += list("ＡＢＣＨａｂｃｅｌｏ０１２３")  # some full-width forms
    lines += list("のかきくこんにちはアイウカタ한국")  # kana, two Hangul syllables
    lines += ["😊", "é", "ü", "##é", "\U0002000b"]  # emoji, accents, CJK ext. B

    corpus = (DATA / "SimCLUE" / "corpus_1w.txt").read_text(encoding="utf-8")
    counts = collections.Counter(
        ch for ch in corpus if Tokenizer._is_cjk_character(ch)
    )
    frequent = sorted(counts, key=lambda ch: (-counts[ch], ch))
    lines += frequent[:CJK_VOCAB_SIZE]
    lines += [ch for ch in "北京我们中国今天自然语言" if ch not in lines]

    # Multi-character CJK words and '##' CJK pieces: unreachable without
    # pre_tokenize, hence dropped by load_vocab(simplified=True).
    lines += ["北京", "我们", "中国", "今天", "自然语言", "##的", "##，"]
    lines += ["...", "!!", "##!", "e.g"]  # also redundant: contain punctuation

    words = (
        "the an it ll ve re don can we you they is was "
        "hello world Hello World NASA good morning very long "
        "internationalization un ##aff ##able play ##ing ##ed ##er ##s "
        "token ##izer ##ize ##es "
        "http https www example com org mail path python ##3 bert ##4 keras "
        "iphone iPhone ##phone gdp GDP ab ##ab abc "
        "cafe caf\u00e9 naive na\u00efve angstrom \u00c5NGSTR\u00d6M "
        "istanbul \u03c3\u03b9\u03c3\u03c5\u03c6\u03bf\u03c2 ##\u03c2 stra\u00dfe "
        "12 ##12 14 ##14 100 000 ##000 ##00 ##0 2021 999"
    )
    lines += words.split()

    # Irregular lines: a repeated token (it moves to a new id, which the next
    # token then shares), surrounding whitespace, extra fields separated by a
    # space or a tab, and a whitespace-only line (token '').
    lines += ["hello", "goodbye", "  spaced  ", "word 123", "field\tvalue"]
    lines += ["   ", "after_blank", "last"]

    first_fields = [line.split()[0] if line.split() else "" for line in lines]
    repeated = {t for t, n in collections.Counter(first_fields).items() if n > 1}
    assert repeated == {"hello"}, f"unintended duplicate tokens: {repeated!r}"
    return lines


def real_sentences():
    """A few real sentences from the shared corpora, mixing CJK and ASCII."""
    corpus = (DATA / "SimCLUE" / "corpus_1w.txt").read_text(encoding="utf-8")
    corpus_lines = [line.strip() for line in corpus.splitlines() if line.strip()]
    with_ascii = [s for s in corpus_lines if re.search("[A-Za-z]{2}", s)][:3]
    pure_cjk = corpus_lines[:2]

    titles_path = DATA / "THUCNews-titles" / "test.txt"
    titles = [
        line.split("\t")[0]
        for line in titles_path.read_text(encoding="utf-8").splitlines()
    ]
    mixed_titles = [t for t in titles if re.search(r"[A-Za-z]{2}.*\d|\d.*[A-Za-z]{2}", t)][:2]

    ocnli_path = DATA / "OCNLI" / "dev.json"
    with open(ocnli_path, encoding="utf-8") as reader:
        premise = json.loads(reader.readline())["sentence1"]
    return with_ascii + pure_cjk + mixed_titles + [premise]


def real_pairs():
    """Two sentence pairs from the SimCLUE pair sample."""
    pairs_path = DATA / "SimCLUE" / "train_pair_1w.json"
    with open(pairs_path, encoding="utf-8") as reader:
        rows = [json.loads(next(reader)) for _ in range(2)]
    return [[row["sentence1"], row["sentence2"]] for row in rows]


EDGE_TEXTS = [
    "",
    "   ",
    "今天天气不错，我们去北京玩吧！",
    "我在2021年买了iPhone 12，花了6,999元。",
    "Hello World! 你好，世界。",
    "HELLO world Good Morning",
    "Ｈｅｌｌｏ\u3000ＡＢＣ １２３ ａｂｃ",
    "caf\u00e9 na\u00efve \u00c5NGSTR\u00d6M",
    "cafe\u0301 nai\u0308ve \u0301abc",
    "“你好”，他说：「走吧」《书名》【注】……——〖括号〗",
    "😀😊👍🏽 emoji 表情🎉",
    "a\tb\nc\rd\u3000e\xa0f\u2003g",
    "x\x00y\x07z\u200bw\u200dv\ufeffu\ufffdt",
    "a\x0bb\x0cc\x1cd\x85e\u2028f\u2029g",
    "unaffable playing played player tokenizer tokenizes internationalizations",
    "xyzzy qwerty unknownword helloworld",
    "ab" * 100,
    "ab" * 101,
    "3.14 1,000 1.2.3 100% -5 +86 2021-05-01 12:30 3.",
    "don't it's I'm we've they'll you'd can't",
    "https://www.example.com/path?q=1&r=2 mail@example.org",
    "こんにちは、カタカナ。ひらがな がぎぐ",
    "한국어 텍스트",
    "\U00020000\U0002000b rare \u3400 \uf900 \U0002f800",
    "[CLS] [MASK] [unused1] literal brackets []",
    "\u0130stanbul \u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 Stra\u00dfe \ufb01 \u212a",
    'Mr. Smith (aged 42) said: "Hi!" [sic] {x} <tag> a/b=c #hash $5 ^_^ ~ | `code`',
    "2021年12月，GDP增长3.5%；NASA发射了火箭。",
    "我爱Python3和C++，你呢？自然语言处理",
    "  leading and trailing  ",
    "hello hello goodbye spaced word field after_blank last",
    "Ⅻ ① ½ ² ٣",
    "the abc hello，the end",
]

# Texts used for the configurations other than 'cased' and 'uncased'.
SUBSET = [
    "",
    "今天天气不错，我们去北京玩吧！",
    "我在2021年买了iPhone 12，花了6,999元。",
    "Hello World! 你好，世界。",
    "caf\u00e9 na\u00efve \u00c5NGSTR\u00d6M",
    "unaffable playing played player tokenizer tokenizes internationalizations",
    "don't it's I'm we've they'll you'd can't",
    "3.14 1,000 1.2.3 100% -5 +86 2021-05-01 12:30 3.",
    "我爱Python3和C++，你呢？自然语言处理",
    "hello hello goodbye spaced word field after_blank last",
    "the abc hello，the end",
    "x\x00y\x07z\u200bw\u200dv\ufeffu\ufffdt",
]


def outcome(function, *args, **kwargs):
    """The result of a call, or {'error': exception type name}."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # recorded, not raised: errors are expected results
        return {"error": type(error).__name__}


def make_tokenizer(vocab_path, config):
    """A bert4keras Tokenizer for one entry of CONFIGS."""
    kwargs = dict(config)
    if "pre_tokenize" in kwargs:
        pattern = kwargs["pre_tokenize"]
        kwargs["pre_tokenize"] = lambda text: re.split(pattern, text)
    return Tokenizer(str(vocab_path), **kwargs)


def text_cases(tokenizers, texts_by_config):
    """Results of the single-text methods for every configuration and text."""
    cases = []
    for name, texts in texts_by_config.items():
        tokenizer = tokenizers[name]
        for text in texts:
            tokens = tokenizer.tokenize(text)
            token_ids, segment_ids = tokenizer.encode(text)
            cases.append({
                "config": name,
                "text": text,
                "tokenize": tokens,
                "tokenize_maxlen5": outcome(tokenizer.tokenize, text, maxlen=5),
                "encode": [token_ids, segment_ids],
                "encode_maxlen8": outcome(tokenizer.encode, text, maxlen=8),
                "encode_maxlen8_left": outcome(
                    tokenizer.encode, text, maxlen=8, truncate_from="left"
                ),
                "decode_ids": outcome(tokenizer.decode, token_ids),
                "decode_tokens": outcome(tokenizer.decode, None, tokens),
                "rematch": outcome(tokenizer.rematch, text, tokens),
            })
    return cases


def pair_cases(tokenizers, short_pairs, long_pairs):
    """encode() of text pairs under maxlen / pattern / truncate_from variants.

    Short pairs get every combination under the 'cased' configuration and the
    basic ones under the start/end variants; long (real) pairs only a few,
    which keeps the fixture small.
    """
    full = [{"pattern": pattern}
            for pattern in ("S*E*E", "S*ES*E")]
    full += [{"maxlen": maxlen, "pattern": pattern, "truncate_from": truncate_from}
             for pattern in ("S*E*E", "S*ES*E")
             for maxlen in (12, 5, 2)
             for truncate_from in ("right", "left", 2, -3)]
    basic = [{}, {"pattern": "S*ES*E"},
             {"maxlen": 5}, {"maxlen": 5, "truncate_from": "left"}, {"maxlen": 2},
             {"maxlen": 5, "pattern": "S*ES*E", "truncate_from": "left"}]
    plans = [("cased", short_pairs, full)]
    plans += [(name, short_pairs, basic) for name in ("no_start", "bare")]
    long_variants = [{}, {"maxlen": 12}, {"maxlen": 12, "truncate_from": "left"}]
    plans += [("cased", long_pairs, long_variants)]

    cases = []
    for name, pairs, variants in plans:
        tokenizer = tokenizers[name]
        for first, second in pairs:
            for kwargs in variants:
                cases.append({
                    "config": name, "first": first, "second": second, "kwargs": kwargs,
                    "expected": outcome(tokenizer.encode, first, second, **kwargs),
                })
    return cases


def pretokenized_cases(tokenizers):
    """encode() of token lists, alone or mixed with strings."""
    inputs = [
        (["[CLS]", "你", "好", "[SEP]"], None, {}),
        (["[CLS]", "你", "好", "[SEP]"], ["[CLS]", "世", "界", "[SEP]"], {"maxlen": 5}),
        (["a", "b", "c", "d", "e"], ["x", "y"],
         {"maxlen": 4, "pattern": "S*ES*E", "truncate_from": "left"}),
        (["a", "b", "c", "d", "e"], ["x", "y"], {"maxlen": 4}),
        ([], ["x", "y", "z"], {"maxlen": 2}),
        (["[CLS]", "hello", "[SEP]"], "世界和平", {"maxlen": 6}),
        ("世界和平", ["[CLS]", "unknownword", "##s", "[SEP]"], {}),
        (["not-in-vocab", "hello", "好"], None, {"maxlen": 2, "truncate_from": 0}),
    ]
    cases = []
    for name in ("cased", "bare"):
        for first, second, kwargs in inputs:
            # bert4keras truncates token lists in place, so give it copies.
            first_copy = list(first) if isinstance(first, list) else first
            second_copy = list(second) if isinstance(second, list) else second
            cases.append({
                "config": name, "first": first, "second": second, "kwargs": kwargs,
                "expected": outcome(
                    tokenizers[name].encode, first_copy, second_copy, **kwargs
                ),
            })
    return cases


def truncation_cases(tokenizers):
    """Very small maxlen values, where truncation eats the markers or fails."""
    cases = []
    for name in ("cased", "no_start", "bare"):
        tokenizer = tokenizers[name]
        for text in ("你好世界", ""):
            for maxlen in (3, 2, 1, 0):
                cases.append({
                    "config": name, "text": text, "maxlen": maxlen,
                    "tokenize": outcome(tokenizer.tokenize, text, maxlen=maxlen),
                    "encode_right": outcome(tokenizer.encode, text, maxlen=maxlen),
                    "encode_left": outcome(
                        tokenizer.encode, text, maxlen=maxlen, truncate_from="left"
                    ),
                })
    return cases


DECODE_TOKEN_LISTS = [
    ["don", "'", "t", "go"],
    ["it", "'", "s", "'", "ll", "be", "'", "x", "fine"],
    ["3", ".", "14", "and", "1", ".", "2", ".", "3", "and", "4", ".", "x"],
    ["(", "a", ")", "[", "b", "]", "{", "c", "}", "<", "d", ">"],
    ["a", "-", "b", "+", "c", "/", "d", "=", "e", "*", "f"],
    ["你", "好", "hello", "世", "world", "，", "ok", "。", "end"],
    ["“", "hi", "”", "「", "yo", "」", "《", "书", "》"],
    ["play", "##ing", "un", "##aff", "##able", "##", "x"],
    ["", "x", "", "你"],
    ["[CLS]", "[SEP]", "[PAD]"],
    ["[CLS]", "hello", "[unused1]", "world", "[SEP]"],
    ["Ⅻ", "½", "٣", ".", "٤"],
    ["the", "end", "…", "…", "——", "!", "?"],
    ["\u3000", "x", "·", "y"],
    ["北京", "hello", "我们", "##的", "x"],
]


def digest(value):
    """SHA-256 of a JSON-serialisable value, for long results."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vocab_facts(vocab_path):
    """load_vocab results and id_to_token around the irregular lines.

    The plain dictionary is stored in full (tokens joined by newlines, ids in
    the same order); the simplified ones as their SimBERT keep_tokens plus
    digests, which keeps the fixture small.
    """
    token_dict = load_vocab(str(vocab_path))
    simbert_dict, simbert_keep = load_vocab(
        str(vocab_path), simplified=True,
        startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
    )
    plain_dict, plain_keep = load_vocab(str(vocab_path), simplified=True)

    tokenizer = Tokenizer(str(vocab_path))
    last_id = max(token_dict.values())
    duplicate_id = token_dict["hello"]
    probe_ids = sorted(
        set(range(0, 15))
        | set(range(duplicate_id - 40, duplicate_id + 4))
        | set(range(last_id - 3, last_id + 3))
    )
    return {
        "load_vocab": {
            "tokens": "\n".join(token_dict), "ids": list(token_dict.values()),
        },
        "simplified_simbert": {
            "keep_tokens": simbert_keep,
            "size": len(simbert_dict),
            "digest": digest(list(simbert_dict.items())),
        },
        "simplified_plain": {
            "size": len(plain_dict),
            "digest": digest([list(plain_dict.items()), plain_keep]),
        },
        "vocab_size": tokenizer._vocab_size,
        "special_ids": {
            role: getattr(tokenizer, f"_token_{role}_id", None)
            for role in ("pad", "unk", "mask", "start", "end")
        },
        "id_to_token": [
            [i, outcome(tokenizer.id_to_token, i)] for i in probe_ids
        ],
    }


def character_class_ranges():
    """Inclusive code point ranges where each character class is true."""
    classes = {
        "space": Tokenizer._is_space,
        "punctuation": Tokenizer._is_punctuation,
        "cjk": Tokenizer._is_cjk_character,
        "control": Tokenizer._is_control,
    }
    ranges = {}
    for name, predicate in classes.items():
        runs, start = [], None
        for code in range(sys.maxunicode + 2):
            inside = code <= sys.maxunicode and bool(predicate(chr(code)))
            if inside and start is None:
                start = code
            elif not inside and start is not None:
                runs.append([start, code - 1])
                start = None
        ranges[name] = runs
    return ranges


def token_helpers():
    """stem, _is_special and _is_redundant on a few tokens."""
    tokens = ["", "#", "##", "###", "##ab", "ab", "[CLS]", "[", "]", "[]", "[x",
              "北京", "##北", "北", "a.b", "##.", ".", "e.g", "...", "ab#"]
    return [
        [t, Tokenizer.stem(t), Tokenizer._is_special(t), bool(Tokenizer._is_redundant(t))]
        for t in tokens
    ]


def dump_lines(path, payload):
    """Writes a JSON object with one top-level list item per line."""
    def compact(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    parts = []
    for key, value in payload.items():
        if isinstance(value, list) and value:
            items = ",\n  ".join(compact(item) for item in value)
            parts.append(f"{compact(key)}: [\n  {items}\n]")
        else:
            parts.append(f"{compact(key)}: {compact(value)}")
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n", encoding="utf-8")


def main():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    vocab_path = OUTPUT / "vocab.txt"
    with open(vocab_path, "w", encoding="utf-8", newline="\n") as writer:
        writer.write("".join(line + "\n" for line in build_vocab_lines()))

    sentences = real_sentences()
    texts_by_config = {
        "cased": EDGE_TEXTS + sentences,
        # The 200-piece word adds little beyond the 'cased' case.
        "uncased": [text for text in EDGE_TEXTS if text != "ab" * 100] + sentences,
    }
    for name in CONFIGS:
        texts_by_config.setdefault(name, SUBSET + sentences[:2])
    tokenizers = {name: make_tokenizer(vocab_path, config)
                  for name, config in CONFIGS.items()}
    short_pairs = [
        ["今天天气不错，我们去北京玩吧！", "Hello World! 你好，世界。"],
        ["", "你好"],
        ["你好", ""],
        ["一二三四五六七八九十", "甲乙"],
    ]

    payload = {
        "generator": {
            "bert4keras": bert4keras.__version__,
            "python": sys.version.split()[0],
            "unidata_version": unicodedata.unidata_version,
        },
        "configs": CONFIGS,
        "vocab": vocab_facts(vocab_path),
        "cjk_punctuation": Tokenizer._cjk_punctuation(),
        "token_helpers": token_helpers(),
        "character_classes": character_class_ranges(),
        "text_cases": text_cases(tokenizers, texts_by_config),
        "pair_cases": pair_cases(tokenizers, short_pairs, real_pairs()),
        "pretokenized_cases": pretokenized_cases(tokenizers),
        "truncation_cases": truncation_cases(tokenizers),
        "decode_token_cases": [
            [tokens, outcome(tokenizers["cased"].decode, None, tokens)]
            for tokens in DECODE_TOKEN_LISTS
        ],
    }
    dump_lines(OUTPUT / "expected.json", payload)
    for path in sorted(OUTPUT.iterdir()):
        print(f"{path.relative_to(REPO)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
