"""Tests for kerasformer.snippets: parity with bert4keras 0.11.5, and batches for Keras 3.

The expected values in tests/fixtures/snippets/snippets.json were produced by the real
bert4keras (tools/make_snippets_fixtures.py). A stored {"error": name} means bert4keras
raised there; kerasformer raises ValueError instead, or works where bert4keras' failure
is a bug (noted at each test). The tests marked `backends` feed `model.fit` and
`model.predict` from a DataGenerator on every backend.
"""
import json
import multiprocessing
import pathlib

import numpy as np
import pytest

from kerasformer import snippets
from kerasformer.data import text_segmentate, truncate_sequences
from kerasformer.snippets import DataGenerator, ViterbiDecoder, sequence_padding

FIXTURES = json.loads(
    (pathlib.Path(__file__).parent / "fixtures" / "snippets" / "snippets.json")
    .read_text(encoding="utf-8")
)

# Keras warns that fit's default shuffle=True does nothing for generators: bert4keras
# scripts never pass shuffle, and the generators shuffle themselves.
IGNORE_SHUFFLE_WARNING = pytest.mark.filterwarnings("ignore:.shuffle=True. was passed")


def as_array(record):
    """A numpy array from a fixture's {"values", "dtype", "shape"} record."""
    return np.array(record["values"], dtype=record["dtype"]).reshape(record["shape"])


def assert_same_array(actual, record):
    assert actual.dtype == np.dtype(record["dtype"])
    assert actual.shape == tuple(record["shape"])
    np.testing.assert_array_equal(actual, as_array(record))


# ------------------------------------------------------------------ sequence_padding

@pytest.mark.parametrize("case", FIXTURES["sequence_padding"],
                         ids=lambda case: json.dumps(case["kwargs"]))
def test_sequence_padding_matches_bert4keras(case):
    inputs = [x if dtype is None else np.array(x, dtype)
              for x, dtype in zip(case["inputs"], case["input_dtypes"])]
    if "error" in case["expected"]:
        with pytest.raises(ValueError):
            sequence_padding(inputs, **case["kwargs"])
        return
    assert_same_array(sequence_padding(inputs, **case["kwargs"]), case["expected"])


def test_sequence_padding_beyond_bert4keras():
    # An int length with seq_dims=2, and a numpy int, fail in bert4keras (IndexError).
    pairs = [np.ones((1, 2), "int32"), np.ones((3, 1), "int32")]
    assert sequence_padding(pairs, length=2, seq_dims=2).shape == (2, 2, 2)
    assert sequence_padding([[1, 2, 3]], length=np.int64(2)).tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="at least one"):
        sequence_padding([])
    with pytest.raises(ValueError, match="lengths"):
        sequence_padding(pairs, length=[2], seq_dims=2)


def test_text_snippets_are_kerasformer_data():
    assert snippets.text_segmentate is text_segmentate
    assert snippets.truncate_sequences is truncate_sequences


# ------------------------------------------------------------------ ViterbiDecoder

@pytest.mark.parametrize("case", FIXTURES["viterbi"],
                         ids=lambda case: f"{len(case['nodes'])}x{len(case['trans'])}-"
                                          f"{case['starts']}-{case['ends']}")
def test_viterbi_matches_bert4keras(case):
    trans = np.array(case["trans"], case["dtype"])
    nodes = np.array(case["nodes"], case["dtype"])
    before = nodes.copy()
    path = ViterbiDecoder(trans, case["starts"], case["ends"]).decode(nodes)
    assert_same_array(path, case["expected"])
    np.testing.assert_array_equal(nodes, before)  # bert4keras masks it in place


def test_viterbi_reads_trans_when_decoding():
    decoder = ViterbiDecoder(np.zeros((2, 2)))
    nodes = np.zeros((3, 2))
    assert decoder.decode(nodes).tolist() == [0, 0, 0]
    decoder.trans = np.array([[0.0, 5.0], [5.0, 0.0]])  # scripts assign the trained CRF's
    assert decoder.decode(nodes).tolist() == [0, 1, 0]


# ------------------------------------------------------------------ search and arrays

@pytest.mark.parametrize("case", FIXTURES["common"],
                         ids=lambda case: f"{case['source']}-{case['target']}")
def test_longest_common_matches_bert4keras(case):
    length, span = snippets.longest_common_substring(case["source"], case["target"])
    assert [length, list(span)] == case["substring"]
    length, mapping = snippets.longest_common_subsequence(case["source"], case["target"])
    assert [length, [list(pair) for pair in mapping]] == case["subsequence"]


@pytest.mark.parametrize("case", FIXTURES["orthogonally_resize"],
                         ids=lambda case: f"{np.shape(case['a'])}-{case['new_shape']}")
def test_orthogonally_resize_matches_bert4keras(case):
    a = np.array(case["a"])
    if "error" in case["expected"]:  # bert4keras asserts
        with pytest.raises(ValueError):
            snippets.orthogonally_resize(a, case["new_shape"], case["window"])
        return
    resized = snippets.orthogonally_resize(a, case["new_shape"], case["window"])
    assert resized.shape == tuple(case["expected"]["shape"])
    np.testing.assert_allclose(resized, as_array(case["expected"]), rtol=1e-12)


def test_helpers_match_bert4keras():
    helpers = FIXTURES["helpers"]
    for text, expected in helpers["lowercase_and_normalize"]:
        assert snippets.lowercase_and_normalize(text) == expected
    for s, keywords, expected in helpers["string_matching"]:
        assert snippets.string_matching(s, keywords) is expected
    for hex_bytes, expected in helpers["convert_to_unicode"]:
        assert snippets.convert_to_unicode(bytes.fromhex(hex_bytes)) == expected
        assert snippets.convert_to_str(bytes.fromhex(hex_bytes)) == expected
    assert snippets.convert_to_unicode("中文") == "中文"
    assert [snippets.is_string(x) for x in ["a", b"a", 1, None]] == [
        expected for _, expected in helpers["is_string"]]
    for x, axis, expected in helpers["softmax"]:
        np.testing.assert_allclose(snippets.softmax(np.array(x), axis), as_array(expected),
                                   rtol=1e-15)
    assert_same_array(snippets.to_array([[1, 2], [3, 4]]), helpers["to_array"]["one"])
    for array, record in zip(snippets.to_array([[1, 2]], [[0, 0]], [0.5]),
                             helpers["to_array"]["several"]):
        assert_same_array(array, record)


def test_strQ2B():
    # bert4keras' strQ2B raises NameError (Python 2's unichr) on any non-empty text.
    assert FIXTURES["helpers"]["strQ2B"] == [["", ""], ["ＡＢＣ", {"error": "NameError"}]]
    assert snippets.strQ2B("") == ""
    assert snippets.strQ2B("ＡＢＣ１２３ａｂｃ，！？（）　～") == "ABC123abc,!?() ~"
    assert snippets.strQ2B("中文。、「」ｘ") == "中文。、「」x"  # CJK punctuation stays


def test_is_one_of_uses_identity():
    a, b = np.zeros(2), np.zeros(2)
    assert snippets.is_one_of(a, [b, a])
    assert not snippets.is_one_of(a, [b])  # `a in [b]` would raise: the truth of an array


def test_insert_and_delete_arguments():
    class Base:
        def __init__(self, size=1, **kwargs):
            self.size = size
            self.rest = kwargs

    class Child(Base):
        @snippets.insert_arguments(with_pool=False, pool_size=4)
        @snippets.delete_arguments("size")
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    child = Child(with_pool=True, other=1)
    assert (child.with_pool, child.pool_size, child.size, child.rest) == (True, 4, 1, {"other": 1})
    with pytest.raises(TypeError, match="Child got an unexpected keyword argument 'size'"):
        Child(size=3)


def test_names_not_provided():
    with pytest.raises(ImportError, match="does not provide WebServing.*web framework"):
        from kerasformer.snippets import WebServing  # noqa: F401
    with pytest.raises(AttributeError):
        snippets.NoSuchName
    assert not hasattr(snippets, "NoSuchName")
    from kerasformer.snippets import uniout  # a Python 2 printing fix: nothing to do

    assert uniout is None


# ------------------------------------------------------------------ parallel_apply

def square_plus_one(x):
    return x * x + 1


def fail_on_three(x):
    if x == 3:
        raise KeyError(f"item {x}")
    return x


def random_number(_):
    return float(np.random.random())


@pytest.mark.parametrize("case", FIXTURES["parallel_apply"],
                         ids=lambda case: "threads" if case["dummy"] else "processes")
def test_parallel_apply_matches_bert4keras(case):
    items, dummy = case["items"], case["dummy"]
    ordered = snippets.parallel_apply(square_plus_one, items, 3, 2, dummy=dummy, unordered=False)
    assert ordered == case["ordered"]
    unordered = snippets.parallel_apply(square_plus_one, iter(items), 3, 2, dummy=dummy)
    assert sorted(unordered) == case["unordered_sorted"]
    collected = []
    assert snippets.parallel_apply(square_plus_one, items, 3, 2, callback=collected.append,
                                   dummy=dummy) is None
    assert sorted(collected) == case["callback_sorted"]
    pairs = list(snippets.parallel_apply_generator(square_plus_one, items, 3, 2, dummy=dummy))
    assert sorted([list(pair) for pair in pairs]) == case["generator_sorted"]


@pytest.mark.parametrize("dummy", [True, False], ids=["threads", "processes"])
def test_parallel_apply_raises_what_func_raised(dummy):
    children = len(multiprocessing.active_children())
    with pytest.raises(KeyError, match="item 3") as raised:
        snippets.parallel_apply(fail_on_three, range(10), 2, 1, dummy=dummy)
    assert "fail_on_three" in str(raised.value.__cause__)  # the worker's traceback
    assert len(multiprocessing.active_children()) == children  # the workers are gone


def test_parallel_apply_seeds_worker_processes():
    # Both processes start from seed 5: every result is among seed 5's first numbers.
    results = snippets.parallel_apply(random_number, range(8), 2, 4, random_seeds=[5, 5])
    first_numbers = np.random.RandomState(5).random_sample(8).tolist()
    assert len(results) == 8 and set(results) <= set(first_numbers)


def test_parallel_apply_generator_stops_workers_when_closed_early():
    children = len(multiprocessing.active_children())
    results = snippets.parallel_apply_generator(square_plus_one, range(1000), 2, 4)
    next(results)
    results.close()
    assert len(multiprocessing.active_children()) == children


# ------------------------------------------------------------------ open

@pytest.mark.parametrize("case", FIXTURES["open"], ids=lambda case: ascii(case["content"][:12]))
def test_open_indexable_matches_bert4keras(case, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(case["content"].encode("utf-8"))
    index_path = tmp_path / "corpus.index.json"
    expected = case["expected"]
    if "error" in expected:
        # bert4keras' progress bar overflows on the position tell() gives between "\r"
        # and "\n"; the position itself is valid, and here there is no progress bar.
        lines = case["content"].replace("\r\n", "\n").splitlines(keepends=True)
        expected = {"lines": lines, "length": len(lines), "last": lines[-1]}
    with snippets.open(str(path), encoding="utf-8", indexable=str(index_path)) as corpus:
        assert len(corpus) == expected["length"]
        assert [corpus[i] for i in range(len(corpus))] == expected["lines"]
        assert (corpus[-1] if len(corpus) else None) == expected["last"]
        if "offsets" in expected:
            assert corpus.offsets == expected["offsets"]
        offsets = corpus.offsets
    assert corpus.file.closed
    assert json.loads(index_path.read_text()) == offsets


def test_open_reads_an_existing_index_and_is_a_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a\nbb\nccc\n", encoding="utf-8")
    index_path = tmp_path / "index.json"
    index_path.write_text("[5, 2]")  # read as it is: lines 2 and 1
    corpus = snippets.open(str(path), encoding="utf-8", indexable=str(index_path))
    assert (len(corpus), corpus[0], corpus[1]) == (2, "ccc\n", "bb\n")
    corpus.seek(0)
    assert corpus.next() == "a\n"
    assert list(corpus) == ["bb\n", "ccc\n"]
    corpus.close()

    plain = snippets.open(str(path), encoding="utf-8")
    assert plain.readlines() == ["a\n", "bb\n", "ccc\n"]
    with pytest.raises(TypeError, match="without indexable"):
        len(plain)
    assert DataGenerator(plain).steps is None  # streamed, not sampled by line number
    plain.close()

    with snippets.open(str(path), "rb", indexable=True) as binary:
        assert (len(binary), binary[2]) == (3, b"ccc\n")
    with snippets.open(str(tmp_path / "out.txt"), "w", encoding="utf-8") as out:
        out.write("中".encode("utf-8"))  # bytes are decoded, as in bert4keras
        out.write("文\n")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "中文\n"


# ------------------------------------------------------------------ DataGenerator

class PassThrough(DataGenerator):
    """The smallest DataGenerator: its batches are the samples."""

    def __iter__(self, random=False):
        for is_end, sample in self.sample(random):
            yield sample


@pytest.mark.parametrize("case", FIXTURES["sample"],
                         ids=lambda case: f"{case['kind']}-{case['random']}-{case['seed']}")
def test_sample_matches_bert4keras(case):
    data = list(range(case["size"])) if case["kind"] == "list" else iter(range(case["size"]))
    generator = PassThrough(data, case["batch_size"], case["buffer_size"])
    assert (generator.steps, generator.buffer_size) == (case["steps"], case["buffer_size_used"])
    np.random.seed(case["seed"])
    assert [[is_end, sample] for is_end, sample in generator.sample(case["random"])] == \
        case["expected"]


def test_forfit_matches_bert4keras():
    case = FIXTURES["forfit"][0]
    generator = PassThrough(list(range(case["size"])), case["batch_size"])
    np.random.seed(case["seed"])
    stream = generator.forfit()
    assert [next(stream) for _ in range(len(case["expected"]))] == case["expected"]


def test_data_generator_errors():
    assert len(PassThrough(list(range(10)), 3)) == 4
    with pytest.raises(TypeError, match="no length"):
        len(PassThrough(iter(range(10)), 3))
    with pytest.raises(ValueError, match="no data"):
        list(PassThrough([]).sample())
    with pytest.raises(NotImplementedError, match="__iter__"):
        list(DataGenerator([1]))

    class Nothing(DataGenerator):
        def __iter__(self, random=False):
            return iter(())

    with pytest.raises(ValueError, match="yielded no batch"):  # not an endless empty loop
        next(Nothing([1]).forfit())


# Token id lists of four different lengths: two batches of two differ in length, which
# the TensorFlow backend needs (see DataGenerator.forfit); few shapes keep JAX's
# compilations few.
SAMPLES = [(list(range(1, n + 1)), n % 3) for n in range(1, 5)]


class Batches(DataGenerator):
    """bert4keras' usual generator: padded batches of `([token_ids, segment_ids], labels)`."""

    def __init__(self, data, batch_size, targets_as_inputs=False):
        super().__init__(data, batch_size)
        self.targets_as_inputs = targets_as_inputs

    def __iter__(self, random=False):
        token_ids, segment_ids, labels = [], [], []
        for is_end, (ids, label) in self.sample(random):
            token_ids.append(ids)
            segment_ids.append([0] * len(ids))
            labels.append([label])
            if len(token_ids) == self.batch_size or is_end:
                inputs = [sequence_padding(token_ids), sequence_padding(segment_ids)]
                if self.targets_as_inputs:  # the model computes its own loss
                    yield inputs + [sequence_padding(labels)], None
                else:
                    yield inputs, sequence_padding(labels)
                token_ids, segment_ids, labels = [], [], []


class Samples(DataGenerator):
    """For `to_dataset`: one `([token_ids, segment_ids], [[label]])` sample at a time."""

    def __iter__(self, random=False):
        for is_end, (ids, label) in self.sample(random):
            yield [ids, [0] * len(ids)], [[label]]


def classifier():
    """A tiny two-input classifier with bert4keras' layer names."""
    import keras

    token_ids = keras.Input((None,), name="Input-Token")
    segment_ids = keras.Input((None,), name="Input-Segment")
    hidden = keras.layers.Embedding(10, 4)(token_ids) + keras.layers.Embedding(2, 4)(segment_ids)
    probas = keras.layers.Dense(3, activation="softmax", name="Probas")(
        keras.layers.GlobalAveragePooling1D()(hidden))
    return keras.Model([token_ids, segment_ids], probas)


def trained_steps(history):
    return len(history.history["loss"])


@pytest.mark.backends
@IGNORE_SHUFFLE_WARNING
def test_forfit_and_fortest_feed_fit_and_predict():
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    train = Batches(SAMPLES, 2)
    batch = next(train.forfit())
    assert isinstance(batch, tuple) and isinstance(batch[0], tuple)  # lists became tuples
    history = model.fit(train.forfit(), steps_per_epoch=len(train), epochs=2, verbose=0)
    assert trained_steps(history) == 2 and np.isfinite(history.history["loss"]).all()

    test = Batches(SAMPLES, 4)
    batch = next(test.fortest())
    assert len(batch) == 1 and len(batch[0]) == 2  # (inputs,): read whole as the inputs
    probas = model.predict(test.fortest(), steps=len(test), verbose=0)
    assert probas.shape == (len(SAMPLES), 3)


@pytest.mark.backends
@IGNORE_SHUFFLE_WARNING
def test_forfit_with_none_targets_trains_on_the_model_loss():
    import keras

    from kerasformer.layers import Loss

    class CrossEntropy(Loss):
        def compute_loss(self, inputs, mask=None):
            labels, probas = inputs
            return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probas))

    base = classifier()
    labels = keras.Input((1,), name="Input-Label")
    probas = CrossEntropy(output_axis=1)([labels, base.output])
    model = keras.Model(base.inputs + [labels], probas)
    model.compile(optimizer="sgd")
    train = Batches(SAMPLES, 2, targets_as_inputs=True)
    assert next(train.forfit())[1] is None
    history = model.fit(train.forfit(), steps_per_epoch=len(train), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


class FloatLabels(DataGenerator):
    """Padded token ids with float64 labels, as `np.zeros` and `sequence_padding` make them
    (the GlobalPointer recipe's `(batch, heads, length, length)` labels)."""

    def __iter__(self, random=False):
        token_ids, labels = [], []
        for is_end, ids in self.sample(random):
            token_ids.append(ids)
            labels.append(np.zeros((len(ids), 2)))
            if len(token_ids) == self.batch_size or is_end:
                yield sequence_padding(token_ids), sequence_padding(labels)
                token_ids, labels = [], []


def test_forfit_yields_float_arrays_as_floatx():
    token_ids, labels = next(FloatLabels([[1, 2], [3]], 2).forfit())
    assert token_ids.dtype == np.int64 and labels.dtype == np.float32


@pytest.mark.backends
@IGNORE_SHUFFLE_WARNING
def test_forfit_float64_targets_meet_float32_predictions_in_a_metric():
    # Keras 3 hands a generator's targets to metrics uncast; on TensorFlow a float64
    # y_true times a float32 y_pred fails (Keras 2's placeholders were float32).
    import keras

    from kerasformer.backend import K

    def f1_score(y_true, y_pred):
        y_pred = K.cast(K.greater(y_pred, 0), K.floatx())
        return 2 * K.sum(y_true * y_pred) / K.sum(y_true + y_pred)

    token_ids = keras.Input((None,))
    scores = keras.layers.Dense(2)(keras.layers.Embedding(10, 4)(token_ids))
    model = keras.Model(token_ids, scores)
    model.compile(optimizer="sgd", loss="mse", metrics=[f1_score])
    train = FloatLabels([[1, 2], [3], [4, 5, 6], [7]], 2)
    history = model.fit(train.forfit(), steps_per_epoch=len(train), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def first_batch(dataset):
    """The first batch of what `to_dataset` returned, as numpy arrays."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return next(dataset.as_numpy_iterator())
    assert isinstance(dataset, keras.utils.PyDataset)
    return dataset[0]


@pytest.mark.backends
@IGNORE_SHUFFLE_WARNING
def test_to_dataset_feeds_fit_with_named_padded_batches():
    # bert4keras' task_iflytek_multigpu.py, as written there.
    arguments = dict(
        types=[("float32", "float32"), ("float32",)],
        shapes=[([None], [None]), ([1],)],
        names=[("Input-Token", "Input-Segment"), ("Probas",)],
        padded_batch=True,
    )
    train, valid = Samples(SAMPLES, 2), Samples(SAMPLES[2:], 2)
    inputs, labels = first_batch(train.to_dataset(**arguments))
    assert set(inputs) == {"Input-Token", "Input-Segment"}
    tokens = inputs["Input-Token"]
    assert tokens.dtype == np.float32 and tokens.shape[0] == 2
    lengths = (tokens > 0).sum(axis=1)
    assert tokens.shape[1] == lengths.max()
    for row, length in zip(tokens, lengths):  # padded with 0 at the end
        assert row[:length].tolist() == list(range(1, length + 1))
    assert labels.shape == (2, 1)  # one target: bare, as a single-output model needs it

    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(
        train.to_dataset(**arguments), steps_per_epoch=len(train), epochs=2,
        validation_data=valid.to_dataset(**arguments), validation_steps=len(valid), verbose=0,
    )
    assert trained_steps(history) == 2 and np.isfinite(history.history["val_loss"]).all()


@pytest.mark.backends
def test_to_dataset_fixed_shapes_and_errors():
    fixed = [([1, 2, 3], 0), ([4, 5, 6], 1), ([7, 8, 9], 2)]
    dataset = Samples(fixed, 2).to_dataset(
        types=(("int32", "int32"), ("int32",)), shapes=(([3], [3]), ([1],)))
    (tokens, segments), (labels,) = first_batch(dataset)  # types' nesting, lists as tuples
    assert tokens.shape == segments.shape == (2, 3) and tokens.dtype == np.int32
    assert labels.shape == (2, 1)

    padded = Samples(SAMPLES, 2).to_dataset(
        types=[("int32", "int32"), ("int32",)], shapes=[([12], [12]), ([1],)], padded_batch=True)
    (tokens, _), _ = first_batch(padded)
    assert tokens.shape == (2, 12)  # an int dimension: padded to that size

    with pytest.raises(Exception, match="padded_batch=True"):  # TensorFlow wraps it
        first_batch(Samples(SAMPLES, 2).to_dataset(
            types=[("int32", "int32"), ("int32",)], shapes=[([None], [None]), ([1],)]))
