"""Generates the bert4keras parity fixtures for kerasformer.snippets.

Run it with the reference environment, where bert4keras 0.11.5 is installed
(both variables are needed, or bert4keras fails on import):

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \\
        tools/make_snippets_fixtures.py

It writes tests/fixtures/snippets/snippets.json with what bert4keras.snippets returns
on edge cases: `sequence_padding` (modes, lengths shorter and longer than the inputs,
padding values, dtypes, `seq_dims=2`), `ViterbiDecoder` (random scores, with and
without `starts` / `ends`, ties), `longest_common_substring` and
`longest_common_subsequence`, `orthogonally_resize`, `parallel_apply` (ordered,
unordered, callback, generator; threads and processes), the order in which
`DataGenerator.sample` draws samples from numpy's seeded global generator, the line
offsets of `open(..., indexable=True)`, and the small text and array helpers. A stored
{"error": name} means bert4keras raised that exception.

Every input is written into the fixture file: random arrays are drawn here, from fixed
seeds, and stored with the outputs.
"""
import json
import os
import pathlib
import sys
import tempfile

import numpy as np

import bert4keras
from bert4keras import snippets

REPO = pathlib.Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "fixtures" / "snippets" / "snippets.json"


def outcome(function, *args, **kwargs):
    """What `function(*args, **kwargs)` returns, or {"error": name} if it raises."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # any failure is recorded, not just the expected ones
        return {"error": type(error).__name__}


def array_record(array):
    """A numpy array as JSON: its values (nested lists), dtype and shape."""
    return {"values": array.tolist(), "dtype": str(array.dtype), "shape": list(array.shape)}


def counting(shape, dtype, start=1):
    """An array of `shape` holding start, start + 1, ... (easy to follow in a fixture)."""
    return (np.arange(int(np.prod(shape))) + start).reshape(shape).astype(dtype)


# (inputs, keyword arguments); inputs are lists, or arrays made by `counting`.
LISTS = [[1, 2, 3], [4], [5, 6]]
SEQUENCE_PADDING_CASES = [
    (LISTS, {}),
    (LISTS, {"mode": "pre"}),
    (LISTS, {"length": 2}),  # shorter: cut, keeping the first items even with "pre"
    (LISTS, {"length": 2, "mode": "pre"}),
    (LISTS, {"length": 5}),
    (LISTS, {"length": 5, "mode": "pre", "value": -1}),
    (LISTS, {"length": [3]}),
    (LISTS, {"length": 0}),
    (LISTS, {"mode": "middle"}),
    ([[7, 8]], {}),
    ([[1, 2], []], {}),  # an empty list is float64: so is the result
    ([[0.5, 1.5], [2.5]], {"value": 0.25}),
    ([[1, 2], [3]], {"value": 0.7}),  # cast to the int dtype: 0
    ([[[1, 0], [0, 1]], [[1, 1]]], {}),  # one label vector per position
    ([counting((3,), "int32"), counting((1,), "int32")], {}),
    ([counting((2, 4), "float32"), counting((3, 4), "float32")], {}),
    ([counting((2, 3), "int64"), counting((1, 2), "int64"), counting((3, 1), "int64")],
     {"seq_dims": 2}),
    ([counting((2, 3), "int64"), counting((1, 2), "int64"), counting((3, 1), "int64")],
     {"seq_dims": 2, "mode": "pre"}),
    ([counting((2, 3), "int64"), counting((1, 2), "int64"), counting((3, 1), "int64")],
     {"seq_dims": 2, "length": [2, 2]}),
    ([counting((2, 3), "int64"), counting((1, 2), "int64"), counting((3, 1), "int64")],
     {"seq_dims": 2, "length": (4, 3), "value": -1, "mode": "pre"}),
    ([counting((2, 2, 2), "float32"), counting((1, 3, 2), "float32")], {"seq_dims": 2}),
]


def sequence_padding_case(inputs, kwargs):
    arrays = [isinstance(x, np.ndarray) for x in inputs]
    result = outcome(snippets.sequence_padding, inputs, **kwargs)
    return {
        "inputs": [x.tolist() if is_array else x for x, is_array in zip(inputs, arrays)],
        "input_dtypes": [str(x.dtype) if is_array else None for x, is_array in zip(inputs, arrays)],
        "kwargs": {key: list(value) if isinstance(value, tuple) else value
                   for key, value in kwargs.items()},
        "expected": result if isinstance(result, dict) else array_record(result),
    }


# (num_labels, seq_len, starts, ends, dtype of the scores, seed)
VITERBI_CASES = [
    (4, 7, None, None, "float64", 0),
    (4, 1, None, None, "float64", 1),
    (4, 1, [1, 2], [2, 3], "float64", 2),
    (5, 10, [0, 1], None, "float64", 3),
    (5, 10, None, [0, 3], "float64", 4),
    (5, 12, [0], [0], "float64", 5),
    (3, 2, [2], [1], "float64", 6),
    (6, 20, [0, 2, 4], [1, 3, 5], "float32", 7),
    (7, 30, None, None, "float32", 8),
]


def viterbi_case(num_labels, seq_len, starts, ends, dtype, seed):
    rng = np.random.default_rng(seed)
    trans = rng.normal(size=(num_labels, num_labels)).astype(dtype)
    nodes = rng.normal(size=(seq_len, num_labels)).astype(dtype)
    decoder = snippets.ViterbiDecoder(trans, starts, ends)
    path = decoder.decode(nodes.copy())  # bert4keras masks its argument in place
    return {
        "trans": trans.tolist(), "nodes": nodes.tolist(), "dtype": dtype,
        "starts": starts, "ends": ends, "expected": array_record(path),
    }


def viterbi_tie_case(num_labels, seq_len, starts, ends):
    """All scores equal: the path is decided by how ties are broken."""
    trans = np.zeros((num_labels, num_labels))
    nodes = np.zeros((seq_len, num_labels))
    path = snippets.ViterbiDecoder(trans, starts, ends).decode(nodes.copy())
    return {
        "trans": trans.tolist(), "nodes": nodes.tolist(), "dtype": "float64",
        "starts": starts, "ends": ends, "expected": array_record(path),
    }


COMMON_CASES = [
    ("", "abc"),
    ("abc", ""),
    ("abc", "abc"),
    ("abc", "xyz"),
    ("abcde", "abfde"),
    ("aaaa", "aa"),
    ("abab", "baba"),
    ("ABCBDAB", "BDCABA"),
    ("我爱北京天安门", "北京天安门广场"),
    ("今天天气很好，我们去公园散步吧", "我们今天去公园散步，天气很好"),
    ([1, 2, 3, 2, 1], [3, 2, 1, 2, 3]),
    ([0, 1, 0, 1, 1, 0], [1, 0, 1, 1, 0, 1, 0]),
]


def common_case(source, target):
    return {
        "source": source, "target": target,
        "substring": snippets.longest_common_substring(source, target),
        "subsequence": snippets.longest_common_subsequence(source, target),
    }


# (shape, new_shape, window, seed)
RESIZE_CASES = [
    ((4, 6), (8, 6), 2, 0),
    ((4, 6), (6, 9), 2, 1),
    ((4,), (10,), 2, 2),
    ((6, 6), (3, 8), 2, 3),
    ((4, 4), (4, 4), 2, 4),
    ((2, 4, 6), (4, 8, 6), 2, 5),
    ((6,), (13,), 3, 6),
    ((4, 6), (8, 12), 1, 7),
    ((3,), (8,), 2, 8),  # 3 is not a multiple of the window
    ((4, 4), (8,), 2, 9),  # another rank
]


def resize_case(shape, new_shape, window, seed):
    a = np.random.default_rng(seed).normal(size=shape)
    result = outcome(snippets.orthogonally_resize, a, new_shape, window)
    return {
        "a": a.tolist(), "new_shape": list(new_shape), "window": window,
        "expected": result if isinstance(result, dict) else array_record(result),
    }


def square_plus_one(x):
    """The function mapped in the parallel_apply cases (module level: picklable)."""
    return x * x + 1


def parallel_case(dummy):
    items = list(range(40))
    collected = []
    common = {"workers": 3, "max_queue_size": 2, "dummy": dummy}
    snippets.parallel_apply(square_plus_one, items, callback=collected.append, **common)
    generated = list(snippets.parallel_apply_generator(
        square_plus_one, items, 3, 2, dummy=dummy))
    return {
        "items": items, "dummy": dummy,
        "ordered": snippets.parallel_apply(square_plus_one, items, unordered=False, **common),
        "unordered_sorted": sorted(snippets.parallel_apply(square_plus_one, items, **common)),
        "callback_sorted": sorted(collected),
        "generator_sorted": sorted(generated),
    }


class PassThrough(snippets.DataGenerator):
    """The smallest DataGenerator: its batches are the samples."""

    def __iter__(self, random=False):
        for is_end, sample in self.sample(random):
            yield sample


# (size of the data, as a list or as an iterator, batch_size, buffer_size, random, seed)
SAMPLE_CASES = [
    (10, "list", 3, None, False, 0),
    (10, "list", 3, None, True, 0),
    (10, "list", 3, None, True, 1),
    (25, "iterator", 2, 4, True, 1),
    (25, "iterator", 2, 1, True, 2),
    (25, "iterator", 2, None, True, 3),  # the default buffer holds everything
    (9, "iterator", 3, None, False, 0),
]


def sample_case(size, kind, batch_size, buffer_size, random, seed):
    data = list(range(size)) if kind == "list" else iter(range(size))
    generator = PassThrough(data, batch_size, buffer_size)
    np.random.seed(seed)
    samples = [[is_end, sample] for is_end, sample in generator.sample(random)]
    return {
        "size": size, "kind": kind, "batch_size": batch_size, "buffer_size": buffer_size,
        "random": random, "seed": seed, "steps": generator.steps,
        "buffer_size_used": generator.buffer_size, "expected": samples,
    }


def forfit_case(size, batch_size, seed, count):
    """The first `count` items of `forfit()`: several shuffled passes."""
    generator = PassThrough(list(range(size)), batch_size)
    np.random.seed(seed)
    stream = generator.forfit()
    return {"size": size, "batch_size": batch_size, "seed": seed,
            "expected": [next(stream) for _ in range(count)]}


OPEN_CONTENTS = [
    "第一行\n\nsecond line\n第四行，最后一行没有换行",
    "windows\r\nline endings\r\n\r\n中文\r\n",
    "",
]


def read_indexed(path, index_path):
    """The offsets, lines and index file of `open(path, indexable=index_path)`."""
    with snippets.open(path, encoding="utf-8", indexable=index_path) as file:
        lines = [file[i] for i in range(len(file))]
        last = file[-1] if len(file) else None
        offsets = file.offsets
    with open(index_path) as file:
        stored = json.load(file)
    return {"offsets": offsets, "index_file": stored, "length": len(lines), "lines": lines,
            "last": last}


def open_case(content):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "corpus.txt")
        with open(path, "wb") as file:
            file.write(content.encode("utf-8"))
        # bert4keras' progress bar fails on the huge positions `tell()` gives where the
        # decoder holds state, e.g. between "\r" and "\n": such files cannot be indexed.
        result = outcome(read_indexed, path, os.path.join(directory, "corpus.index.json"))
    return {"content": content, "expected": result}


def helpers():
    texts = ["Héllo WÖRLD", "Ça va? ÀÉÎÕÜ", "中文ＡＢＣ Straße", "ǅemal ﬁ", ""]
    return {
        "lowercase_and_normalize": [[text, snippets.lowercase_and_normalize(text)]
                                    for text in texts],
        "string_matching": [
            [s, keywords, snippets.string_matching(s, keywords)]
            for s, keywords in [
                ("今天天气很好", ["天气", "下雨"]),
                ("今天天气很好", ["下雨"]),
                ("abc123", [r"\d+$"]),
                ("abc123", [r"^\d"]),
                ("anything", []),
            ]
        ],
        "convert_to_unicode": [
            ["中文".encode("utf-8").hex(), snippets.convert_to_unicode("中文".encode("utf-8"))],
            [b"ab\xffcd".hex(), snippets.convert_to_unicode(b"ab\xffcd")],
        ],
        "is_string": [[repr(x), snippets.is_string(x)] for x in ["a", b"a", 1, None]],
        "softmax": [
            [x, axis, array_record(snippets.softmax(np.array(x, dtype="float64"), axis))]
            for x, axis in [([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], -1),
                            ([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], 0),
                            ([1000.0, 1001.0], -1)]
        ],
        "to_array": {
            "one": array_record(snippets.to_array([[1, 2], [3, 4]])),
            "several": [array_record(a) for a in snippets.to_array([[1, 2]], [[0, 0]], [0.5])],
        },
        # bert4keras calls Python 2's unichr: only the empty text gets through.
        "strQ2B": [[text, outcome(snippets.strQ2B, text)] for text in ["", "ＡＢＣ"]],
    }


def main():
    if bert4keras.__version__ != "0.11.5":
        sys.exit(f"bert4keras 0.11.5 expected, found {bert4keras.__version__}")
    fixtures = {
        "bert4keras_version": bert4keras.__version__,
        "numpy_version": np.__version__,
        "sequence_padding": [sequence_padding_case(*case) for case in SEQUENCE_PADDING_CASES],
        "viterbi": [viterbi_case(*case) for case in VITERBI_CASES] + [
            viterbi_tie_case(3, 4, None, None), viterbi_tie_case(3, 4, [2], [1]),
            viterbi_tie_case(3, 1, [2], [2])],
        "common": [common_case(*case) for case in COMMON_CASES],
        "orthogonally_resize": [resize_case(*case) for case in RESIZE_CASES],
        "parallel_apply": [parallel_case(dummy=True), parallel_case(dummy=False)],
        "sample": [sample_case(*case) for case in SAMPLE_CASES],
        "forfit": [forfit_case(7, 3, 4, 20)],
        "open": [open_case(content) for content in OPEN_CONTENTS],
        "helpers": helpers(),
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(fixtures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    counts = {key: len(value) for key, value in fixtures.items() if isinstance(value, list)}
    print(f"wrote {OUTPUT}: {counts}")


if __name__ == "__main__":
    main()
