"""Generates the bert4keras parity fixtures for kerasformer's `SpTokenizer`.

Run it with the reference environment, where bert4keras 0.11.5 and sentencepiece
are installed (both variables are needed, or bert4keras fails on import):

    /tmp/bert4keras-ref/bin/pip install sentencepiece     # once
    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \\
        tools/make_sp_tokenizer_fixtures.py

It writes, under tests/fixtures/tokenizers/sp/:

- tiny.model: a unigram SentencePiece model of a few hundred pieces trained here on
  a few hundred short Chinese and English lines that this script composes from word
  lists. The special pieces follow T5/mT5 (`<pad>` 0, `</s>` 1, `<unk>` 2, no `<s>`),
  `<cls>` and `<sep>` are control pieces (CPM's newline/end id is `<cls>`), `[MASK]`,
  `▂` and `▃` are user-defined pieces (CPM writes spaces as ▂ and newlines as ▃), and
  one UNUSED piece, `<unused0>`, is appended to the trained model so that
  `_is_special` meets every kind of special piece. Normalisation uses a small
  rule table (full-width ASCII -> ASCII, U+3000 -> space) instead of the built-in
  nmt_nfkc, whose precompiled table alone is 240 KB.
- nopad.model: the same corpus with sentencepiece's default `pad_id=-1` (no pad
  piece) and identity normalisation; bert4keras cannot load such a model.
- expected.json: what bert4keras' `SpTokenizer` returns on tiny.model under several
  configurations (bert4keras' defaults, T5/mT5's `token_start=None, token_end='</s>'`,
  CPM's `token_start=None, token_end=None` with a pre-tokenizer and
  `token_translate={'▃': '<cls>'}`, and real start/end pieces): the special-token
  attributes, `tokenize` (with and without `maxlen`), `encode` (one text, a pair,
  token lists, `maxlen`, `truncate_from`, `pattern`), `decode` of encoded ids and of
  hand-made id lists with control, unknown, unused and out-of-range ids,
  `token_to_id`, `id_to_token`, `_is_special` and `_is_decodable` for every id, and
  the errors bert4keras raises.

Training is deterministic (one thread, no sampling or shuffling of the input, fixed
seed), so running this again reproduces tiny.model byte for byte; `--keep-models`
records expected.json against the models already on disk without retraining.
Nothing here imports kerasformer.
"""
import argparse
import hashlib
import itertools
import json
import pathlib
import re
import sys
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

import bert4keras
from bert4keras.tokenizers import SpTokenizer

REPO = pathlib.Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "fixtures" / "tokenizers" / "sp"

VOCAB_SIZE = 320
SEED = 20240611

# ------------------------------------------------------------------ corpus

_CN_SUBJECTS = ["我", "你", "他", "她", "我们", "他们", "老师", "学生", "小明", "妈妈", "朋友们", "这个模型"]
_CN_VERBS = ["喜欢", "想要", "正在学习", "看到了", "买了", "讨论", "研究", "记得"]
_CN_OBJECTS = ["中文", "英语", "苹果", "天气", "电影", "音乐", "数学", "机器学习", "自然语言处理",
               "北京的秋天", "一本新书", "这道题"]
_CN_ENDINGS = ["。", "！", "？", "，然后回家了。", "，觉得很有意思。", "吗？"]
_EN_SUBJECTS = ["I", "You", "We", "They", "The teacher", "My friend", "The model", "Everyone"]
_EN_VERBS = ["like", "study", "read", "want", "train", "build", "remember", "discuss"]
_EN_OBJECTS = ["books", "music", "language models", "the weather", "tokenizers", "Chinese",
               "new words", "the test"]
_EN_ENDINGS = [".", "!", "?", " today.", " every day.", " again, don't they?"]


def corpus_lines():
    """A few hundred short lines: Chinese, English, mixed, numbers and dates."""
    lines = []
    for i, (s, v, o) in enumerate(itertools.product(_CN_SUBJECTS, _CN_VERBS, _CN_OBJECTS)):
        if i % 7 == 0:
            lines.append(s + v + o + _CN_ENDINGS[i % len(_CN_ENDINGS)])
    for i, (s, v, o) in enumerate(itertools.product(_EN_SUBJECTS, _EN_VERBS, _EN_OBJECTS)):
        if i % 5 == 0:
            lines.append(f"{s} {v} {o}{_EN_ENDINGS[i % len(_EN_ENDINGS)]}")
    for i in range(60):
        s = _CN_SUBJECTS[i % len(_CN_SUBJECTS)]
        v = _CN_VERBS[i % len(_CN_VERBS)]
        o = _EN_OBJECTS[(3 * i) % len(_EN_OBJECTS)]
        lines.append(f"{s}{v} {o}，{_EN_SUBJECTS[i % 8]} {_EN_VERBS[i % 8]} it。")
    for i in range(40):
        date = f"{2000 + 3 * i}年{1 + i % 12}月{1 + (7 * i) % 28}日"
        lines.append(f"{date}，价格是 {i}.{(13 * i) % 100:02d} 元。")
        lines.append(f"Chapter {i + 1}: {100 * i + 7} tokens, {i % 10}.5% of the data.")
    return lines


# Full-width ASCII (U+FF01-FF5E) to ASCII and the ideographic space to a space:
# a tiny stand-in for nmt_nfkc, enough to see normalisation at work.
def normalization_rules():
    rules = [f"{code:04X}\t{code - 0xFEE0:X}" for code in range(0xFF01, 0xFF5F)]
    rules.append("3000\t20")
    return "\n".join(rules) + "\n"


def _train(workdir, prefix, **options):
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    spm.set_random_generator_seed(SEED)
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(workdir / prefix),
        model_type="unigram",
        character_coverage=1.0,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
        **options,
    )
    # The model records the paths it was trained from; drop the temporary
    # directory so that every run writes the same bytes.
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((workdir / f"{prefix}.model").read_bytes())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.input.append("corpus.txt")
    proto.trainer_spec.model_prefix = prefix
    if proto.normalizer_spec.normalization_rule_tsv:
        proto.normalizer_spec.normalization_rule_tsv = "rules.tsv"
    return proto


def train_models():
    """Trains tiny.model and nopad.model and writes them to OUTPUT."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        rules = workdir / "rules.tsv"
        rules.write_text(normalization_rules(), encoding="utf-8")
        tiny = _train(
            workdir, "tiny",
            vocab_size=VOCAB_SIZE,
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            control_symbols=["<cls>", "<sep>"],
            user_defined_symbols=["[MASK]", "\u2582", "\u2583"],
            normalization_rule_tsv=str(rules),
        )
        nopad = _train(workdir, "nopad", vocab_size=200, normalization_rule_name="identity")

    # Append one UNUSED piece: the trainer never makes one.
    piece = tiny.pieces.add()
    piece.piece = "<unused0>"
    piece.score = 0.0
    piece.type = sentencepiece_model_pb2.ModelProto.SentencePiece.UNUSED
    (OUTPUT / "tiny.model").write_bytes(tiny.SerializeToString(deterministic=True))
    (OUTPUT / "nopad.model").write_bytes(nopad.SerializeToString(deterministic=True))


# ----------------------------------------------------------- configurations


def cpm_pre_tokenize(text):
    """CPM's pre-tokenizer with a trivial word split in place of jieba.

    Runs of CJK characters are cut into pairs, any other run of characters is a
    word; in each word a space becomes ▂ and a newline ▃ (CPM's
    str.maketrans(' \\n', '\\u2582\\u2583')). tests/tokenizers/test_sp_tokenizer.py
    holds the same function.
    """
    words = re.findall(r"[\u4e00-\u9fff]{1,2}|[^\u4e00-\u9fff]+", text)
    return [word.translate(str.maketrans(" \n", "\u2582\u2583")) for word in words]


# Keyword arguments of each configuration; "pre_tokenize": "cpm" stands for the
# function above.
CONFIGS = {
    "default": {},
    "t5": {"token_start": None, "token_end": "</s>"},
    "cpm": {"token_start": None, "token_end": None, "pre_tokenize": "cpm",
            "token_translate": {"\u2583": "<cls>"}},
    "real_markers": {"token_start": "<cls>", "token_end": "</s>"},
}

TEXTS = [
    "",
    " ",
    "我喜欢机器学习。",
    "The model likes tokenizers today.",
    "小明在北京 reads books, don't they?",
    "  extra   spaces\tand\ttabs  ",
    "第一行\n第二行\n\nThird line",
    "ＦＵＬＬ－ｗｉｄｔｈ　ＡＢＣ１２３",
    "Emoji 😀 and unseen 龘 characters ∑",
    "[MASK] 是一个 [MASK] 词",
    "<cls> and <sep> and </s> and <unused0> as text",
    "▂▃ already translated ▃",
    "2024年3月15日，价格是 3.14 元。",
    "Chapter 12: 1207 tokens, 2.5% of the data.",
    "他们研究自然语言处理，觉得很有意思。" * 3,
]

SECOND_TEXTS = ["", "我们讨论音乐！", "They train language models every day."]

# Indices of the TEXTS that encode pairs with each of SECOND_TEXTS.
PAIR_TEXTS = [0, 2, 3, 4, 6, 9, 14]

TOKEN_SAMPLES = [
    "", " ", "▁", "<pad>", "</s>", "<unk>", "<s>", "<cls>", "<sep>", "[MASK]", "[CLS]",
    "[SEP]", "[PAD]", "[UNK]", "<unused0>", "\u2582", "\u2583", "▁the", "the", "我", "▁我",
    "not-a-piece", "ＡＢＣ",
]


def make_tokenizer(path, config):
    kwargs = dict(config)
    if kwargs.get("pre_tokenize") == "cpm":
        kwargs["pre_tokenize"] = cpm_pre_tokenize
    return SpTokenizer(str(path), **kwargs)


def outcome(function, *args, **kwargs):
    """{'value': result} or {'error': exception class name}."""
    try:
        return {"value": function(*args, **kwargs)}
    except Exception as error:  # noqa: BLE001 - recorded, not handled
        return {"error": type(error).__name__}


def record_config(path, config):
    tokenizer = make_tokenizer(path, config)
    vocab_size = tokenizer._vocab_size
    result = {"kwargs": config, "attributes": {}}
    for role in ("pad", "unk", "mask", "start", "end"):
        result["attributes"][f"_token_{role}"] = getattr(tokenizer, f"_token_{role}")
        result["attributes"][f"_token_{role}_id"] = getattr(tokenizer, f"_token_{role}_id", None)
    result["attributes"]["_vocab_size"] = vocab_size
    result["attributes"]["_token_translate_inv"] = tokenizer._token_translate_inv

    # Texts are referred to by their index in TEXTS / SECOND_TEXTS.
    tokenize, encode = [], []
    for t, text in enumerate(TEXTS):
        tokenize.append({"text": t, "tokens": tokenizer.tokenize(text)})
        for maxlen in (1, 3, 8):
            tokenize.append({"text": t, "maxlen": maxlen,
                             "tokens": tokenizer.tokenize(text, maxlen=maxlen)})
        encode.append({"first": t, "result": tokenizer.encode(text)})
        for maxlen in (2, 5):
            encode.append({"first": t, "maxlen": maxlen,
                           "result": tokenizer.encode(text, maxlen=maxlen)})
    for t in PAIR_TEXTS:
        text = TEXTS[t]
        for s, second in enumerate(SECOND_TEXTS):
            encode.append({"first": t, "second": s, "result": tokenizer.encode(text, second)})
            for maxlen, truncate_from in ((4, "right"), (10, "right"), (10, "left"), (7, 1)):
                encode.append({
                    "first": t, "second": s, "maxlen": maxlen, "truncate_from": truncate_from,
                    "result": tokenizer.encode(text, second, maxlen=maxlen,
                                               truncate_from=truncate_from),
                })
            encode.append({"first": t, "second": s, "pattern": "S*E",
                           "result": tokenizer.encode(text, second, pattern="S*E")})
            encode.append({"first": t, "second": s, "maxlen": 6, "pattern": "S*E",
                           "result": tokenizer.encode(text, second, maxlen=6, pattern="S*E")})
    # Token lists are taken as they are (bert4keras pops from them in place, so
    # each call gets fresh copies).
    for text, second in itertools.product(TEXTS[2:6], SECOND_TEXTS[1:]):
        first_tokens, second_tokens = tokenizer.tokenize(text), tokenizer.tokenize(second)
        encode.append({"first_tokens": list(first_tokens), "second_tokens": list(second_tokens),
                       "maxlen": 9,
                       "result": tokenizer.encode(list(first_tokens), list(second_tokens),
                                                  maxlen=9)})
        encode.append({"first_tokens": list(first_tokens),
                       "result": tokenizer.encode(list(first_tokens))})
    result["tokenize"], result["encode"] = tokenize, encode

    special = [tokenizer.sp_model.piece_to_id(p)
               for p in ("<pad>", "</s>", "<unk>", "<cls>", "<sep>", "[MASK]", "\u2583",
                         "\u2582", "<unused0>")]
    id_lists = [[], special, [vocab_size, vocab_size + 5], list(range(vocab_size + 3))]
    for entry in encode[::8]:
        id_lists.append(entry["result"][0])
    for text in TEXTS:
        ids = tokenizer.encode(text)[0]
        id_lists.append(ids)
        # Special and out-of-range ids spliced into real text.
        id_lists.append(special[:3] + ids[: len(ids) // 2] + [vocab_size + 1] + special[3:]
                        + ids[len(ids) // 2:])
    result["decode"] = [{"ids": ids, **outcome(tokenizer.decode, ids)} for ids in id_lists]
    result["decode_errors"] = [{"ids": ids, **outcome(tokenizer.decode, ids)}
                               for ids in ([-1], [5, -3])]

    result["token_to_id"] = {token: tokenizer.token_to_id(token) for token in TOKEN_SAMPLES}
    result["tokens_to_ids"] = tokenizer.tokens_to_ids(TOKEN_SAMPLES)
    result["id_to_token"] = [tokenizer.id_to_token(i) for i in range(vocab_size + 3)]
    result["ids_to_tokens"] = tokenizer.ids_to_tokens([0, 1, 2, vocab_size - 1, vocab_size])
    result["id_to_token_errors"] = {str(i): outcome(tokenizer.id_to_token, i) for i in (-1, -5)}
    result["is_special"] = [bool(tokenizer._is_special(i)) for i in range(vocab_size)]
    result["is_decodable"] = [bool(tokenizer._is_decodable(i))
                              for i in range(vocab_size + 3)]
    result["is_special_errors"] = {str(i): outcome(tokenizer._is_special, i)
                                   for i in (-1, vocab_size, vocab_size + 2)}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-models", action="store_true",
                        help="record expected.json against the models on disk")
    args = parser.parse_args(argv)
    if not args.keep_models:
        train_models()
    tiny = OUTPUT / "tiny.model"

    fixture = {
        "generator": "TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python "
                     "tools/make_sp_tokenizer_fixtures.py",
        "bert4keras": bert4keras.__version__,
        "sentencepiece": spm.__version__,
        "python": sys.version.split()[0],
        "models": {name: hashlib.sha256((OUTPUT / name).read_bytes()).hexdigest()
                   for name in ("tiny.model", "nopad.model")},
        "texts": TEXTS,
        "second_texts": SECOND_TEXTS,
        "configs": {name: record_config(tiny, config) for name, config in CONFIGS.items()},
        # bert4keras reads the pad piece with id_to_piece(pad_id()), which fails when the
        # model has no pad piece (pad_id -1).
        "nopad": outcome(lambda: SpTokenizer(str(OUTPUT / "nopad.model")) and None),
    }
    path = OUTPUT / "expected.json"
    text = json.dumps(fixture, ensure_ascii=False, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")
    sizes = {p.name: p.stat().st_size for p in sorted(OUTPUT.iterdir())}
    print(f"wrote {OUTPUT}: {sizes}")


if __name__ == "__main__":
    main()
