"""Generates the bert4keras parity fixtures for kerasformer.data's text snippets.

Run it with the reference environment, where bert4keras 0.11.5 is installed
(both variables are needed, or bert4keras fails on import):

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \\
        tools/make_text_fixtures.py

It writes tests/fixtures/text/snippets.json with what bert4keras'
`text_segmentate` and `truncate_sequences` return on edge cases: Chinese and
mixed texts under the separator and strip sets that SimBERT and RoFormer-Sim
use, integer and float `maxlen`, runs of separators, pieces longer than
`maxlen`, and lists truncated at -2, 1, other indices and per-list indices,
with None and empty lists among them. A stored {"error": name} means
bert4keras raised that exception.

Every text is written into this file, so the fixtures do not depend on
../shared/data.
"""
import itertools
import json
import pathlib
import sys

import bert4keras
from bert4keras.snippets import text_segmentate, truncate_sequences

REPO = pathlib.Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "fixtures" / "text" / "snippets.json"

# RoFormer-Sim's generation and training scripts (bert4keras-spec.md §5).
ROFORMER_SIM_SEPS = "\n。！？!?；;，, "
ROFORMER_SIM_STRIPS = "；;，, "

SENTENCES = [
    "我还有几天过生日",
    "花呗每个月最低还款额怎么计算？",
    "你好！我之前有过贷款，现在还清了，能否给我一个书面的结清单？",
    "这座城市的一个吸引人的地方是围绕着达西和自由广场的购物中心，在那里你可以找到一些区域性美食。",
    "今天天气很好；我们去公园散步吧！好不好？",
    "女方提出离婚吃亏在哪",
]

PARAGRAPH = "".join(SENTENCES)
LINES = "\n".join(SENTENCES)
MIXED = "BERT4Keras is a clean Keras implementation of BERT, RoFormer and more. 它很好用！真的吗？是的。"

# (text, maxlen, seps, strips); seps None means the default "\n".
SEGMENTATE_CASES = [
    ("短句。", 10, "。", None),
    ("", 5, "。", None),
    ("   ", 5, "。", None),
    ("。。。", 1, "。", None),
    ("。。。", 1, "。", "。"),
    ("abcdefghij", 10, "。", None),  # exactly maxlen: kept whole
    ("abcdefghijk", 10, "。", None),  # longer, but no separator in it
    ("a。b。c。d。e。f。g。h", 4, "。", None),
    ("a。b。c。d。e。f。g。h", 4.5, "。", "。"),
    ("一二三四五，六七八九十。甲乙丙丁，戊己庚辛壬癸。", 6, "。，", None),
    ("一二三四五，六七八九十。甲乙丙丁，戊己庚辛壬癸。", 6, "。，", "。，"),
    ("一二三四五，，，六七八九十。。甲乙丙丁", 8, "。，", None),
    ("，开头的逗号。结尾的逗号，", 5, "。，", "，"),
    ("  前后有空白。  中间也有  。 ", 4, "。", None),
    ("\n\n第一行\n\n第二行很长很长很长很长很长很长\n第三行\n", 6, "\n。", None),
    (LINES, 20, None, None),
    (LINES, 20, "\n。！？", None),
    (PARAGRAPH, 16, "。！？；，", None),
    (PARAGRAPH, 16, "。！？；，", "；，"),
    (PARAGRAPH, 30, ROFORMER_SIM_SEPS, ROFORMER_SIM_STRIPS),
    (PARAGRAPH, 64 * 1.2, ROFORMER_SIM_SEPS, ROFORMER_SIM_STRIPS),
    (PARAGRAPH, 1, ROFORMER_SIM_SEPS, ROFORMER_SIM_STRIPS),
    (PARAGRAPH, 0, "。", None),
    (PARAGRAPH * 3, 100, "。！？", None),
    (PARAGRAPH, 2.5, "。！？；，", None),
    (MIXED, 20, ROFORMER_SIM_SEPS, ROFORMER_SIM_STRIPS),
    (MIXED, 12.0, ". ", None),
    (MIXED, 15, ["。", "！", "？", ". ", ", "], None),  # list of (multi-character) separators
    (MIXED, 15, "", None),  # no separators: returned whole
    ("问题一？问题二？问题三？", 5, "？", "？"),
    ("只有一个很长很长很长很长很长很长的片段", 5, "。", None),
]

# (maxlen, indices, sequences): the sequences are lists of ints, None or [].
TRUNCATE_CASES = [
    (10, -2, [list(range(4)), list(range(3))]),  # already short enough
    (6, -2, [list(range(5)), list(range(5))]),
    (6, 1, [list(range(5)), list(range(5))]),
    (7, -2, [list(range(9)), list(range(2))]),
    (7, 1, [list(range(2)), list(range(9))]),
    (5, -1, [list(range(6)), list(range(4)), list(range(7))]),
    (5, 0, [list(range(6)), list(range(4)), list(range(7))]),
    (3, 2, [list(range(5)), list(range(5))]),
    (8, [-2, 1], [list(range(7)), list(range(7))]),
    (8, (1, -2), [list(range(9)), list(range(3))]),
    (9, [1, -2, -1], [list(range(5)), list(range(6)), list(range(7))]),
    (5, -2, [list(range(8)), None]),
    (5, -2, [None, list(range(8)), None, list(range(3))]),
    (4, [-2, 1], [[], list(range(8)), list(range(6))]),  # indices pair with the non-empty lists
    (0, -1, [list(range(3)), list(range(2))]),
    (4.8, -2, [list(range(6)), list(range(6))]),
    (64 * 1.2, -2, [list(range(50)), list(range(50))]),
    (3, -2, [[], []]),
    (3, -2, []),
    # bert4keras raises here: a list gets too short to pop at its index.
    (0, -2, [list(range(3)), list(range(3))]),
    (1, 1, [list(range(2)), list(range(2))]),
    (2, [-1], [list(range(3)), list(range(3))]),
]


def outcome(function, *args):
    """What `function(*args)` returns, or {"error": name} if it raises."""
    try:
        return function(*args)
    except Exception as error:  # any failure is recorded, not just the expected ones
        return {"error": type(error).__name__}


def segmentate_case(text, maxlen, seps, strips):
    args = (text, maxlen) if seps is None else (text, maxlen, seps, strips)
    return {
        "text": text, "maxlen": maxlen, "seps": seps, "strips": strips,
        "expected": outcome(text_segmentate, *args),
    }


def truncate_case(maxlen, indices, sequences):
    before = [None if sequence is None else list(sequence) for sequence in sequences]
    returned = outcome(truncate_sequences, maxlen, indices, *sequences)
    case = {
        "maxlen": maxlen,
        "indices": list(indices) if isinstance(indices, (list, tuple)) else indices,
        "indices_type": type(indices).__name__,
        "sequences": before,
        "expected": returned,
    }
    if not isinstance(returned, dict):
        case["after"] = sequences
    return case


def main():
    if bert4keras.__version__ != "0.11.5":
        sys.exit(f"bert4keras 0.11.5 expected, found {bert4keras.__version__}")
    fixtures = {
        "bert4keras_version": bert4keras.__version__,
        "text_segmentate": [segmentate_case(*case) for case in SEGMENTATE_CASES],
        "truncate_sequences": [truncate_case(*case) for case in TRUNCATE_CASES],
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(fixtures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    errors = sum(isinstance(case["expected"], dict) for case in itertools.chain(
        fixtures["text_segmentate"], fixtures["truncate_sequences"]))
    print(f"wrote {OUTPUT} ({len(SEGMENTATE_CASES)} + {len(TRUNCATE_CASES)} cases, {errors} errors)")


if __name__ == "__main__":
    main()
