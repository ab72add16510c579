"""bert4keras' training-script layers: parity with bert4keras 0.11.5 and training.

Expected values come from bert4keras itself (tests/fixtures/compat/layers.npz, written
by tools/make_compat_layer_fixtures.py in the reference environment).
"""
import itertools
import os

import keras
import numpy as np
import pytest
from keras import ops

from kerasformer.backend import K
from kerasformer.layers import (
    Concatenate1D,
    ConditionalRandomField,
    EfficientGlobalPointer,
    GlobalPointer,
    Loss,
)
from kerasformer.layers.crf import _forward_backward
from tests.conftest import FIXTURES
from tests.helpers import assert_matches_bert4keras, run_layer_test, to_numpy

REFERENCE = np.load(FIXTURES / "compat" / "layers.npz")


def reference_crf():
    ref = REFERENCE
    crf = ConditionalRandomField(lr_multiplier=int(ref["crf_lr_multiplier"]))
    crf.build(ref["crf_emissions"].shape)
    crf.set_weights([ref["crf_trans_variable"]])
    return crf


@pytest.mark.backends
def test_crf_matches_bert4keras():
    ref = REFERENCE
    crf = reference_crf()
    output = crf(ref["crf_emissions"], mask=ref["crf_mask"])
    assert_matches_bert4keras(output, "crf_output")
    # The effective transitions, as ViterbiDecoder needs them (K.eval(CRF.trans)),
    # and the stored variable, trans / lr_multiplier as in bert4keras.
    assert_matches_bert4keras(ops.convert_to_numpy(crf.trans), "crf_trans")
    assert_matches_bert4keras(K.eval(crf.trans), "crf_trans")
    assert_matches_bert4keras(crf.get_weights()[0], "crf_trans_variable")
    assert_matches_bert4keras(crf.sparse_loss(ref["crf_sparse_labels"], output), "crf_sparse_loss")
    assert_matches_bert4keras(crf.dense_loss(ref["crf_dense_labels"], output), "crf_dense_loss")
    assert_matches_bert4keras(crf.sparse_accuracy(ref["crf_sparse_labels"], output), "crf_sparse_accuracy")
    assert_matches_bert4keras(crf.dense_accuracy(ref["crf_dense_labels"], output), "crf_dense_accuracy")


def test_crf_loss_is_the_negative_log_likelihood():
    """Brute force over every label path of a short sequence: exp(-loss) sums to 1."""
    rng = np.random.default_rng(1)
    crf = ConditionalRandomField()
    emissions = rng.normal(size=(1, 3, 3)).astype("float32")
    paths = np.array(np.meshgrid(*[range(3)] * 3, indexing="ij")).reshape(3, -1).T
    scores = crf(np.repeat(emissions, len(paths), axis=0))  # one row per label path
    losses = to_numpy(crf.sparse_loss(paths.astype("float32"), scores))
    np.testing.assert_allclose(np.exp(-losses).sum(), 1.0, rtol=1e-5)
    single = crf(emissions[:, :1])  # one position: no transitions, no recursion
    np.testing.assert_allclose(
        to_numpy(crf.sparse_loss(np.zeros((1, 1), "float32"), single)),
        np.log(np.exp(emissions[0, 0]).sum()) - emissions[0, 0, 0], rtol=1e-5)


@pytest.mark.backends
def test_crf_log_partition_gradient_is_the_marginals():
    """The forward-backward gradient: label marginals for the emissions, expected
    transition counts for `trans` (brute force over the paths; padding gets none)."""
    rng = np.random.default_rng(5)
    emissions = rng.normal(size=(2, 4, 3)).astype("float32")
    keep = np.ones((2, 4, 1), "float32")
    keep[1, 2:], emissions[1, 2:] = 0, 0
    trans = rng.normal(size=(3, 3)).astype("float32")
    upstream = np.array([1.0, 0.5], "float32")
    log_z, grad_fn = _forward_backward(emissions, keep, trans)
    grad_emissions, _, grad_trans = to_numpy(list(grad_fn(upstream)))
    expected_trans = np.zeros((3, 3))
    for row in range(2):
        length = int(keep[row].sum())
        paths = list(itertools.product(range(3), repeat=length))
        scores = np.array([emissions[row, np.arange(length), p].sum()
                           + sum(trans[p[t], p[t + 1]] for t in range(length - 1))
                           for p in paths])
        np.testing.assert_allclose(to_numpy(log_z)[row], np.log(np.exp(scores).sum()), rtol=1e-5)
        probabilities = np.exp(scores - np.log(np.exp(scores).sum()))
        marginals = np.zeros((4, 3))
        for path, p in zip(paths, probabilities):
            marginals[np.arange(length), path] += p
            for t in range(length - 1):
                expected_trans[path[t], path[t + 1]] += upstream[row] * p
        np.testing.assert_allclose(grad_emissions[row], upstream[row] * marginals, atol=1e-6)
    np.testing.assert_allclose(grad_trans, expected_trans, atol=1e-6)


def test_crf_config_and_lr_multiplier_initialisation():
    crf = run_layer_test(
        ConditionalRandomField, {"lr_multiplier": 100}, np.zeros((2, 4, 6), "float32"),
        expected_shape=(2, 4, 6))
    layer = ConditionalRandomField(lr_multiplier=100)
    layer.build((None, None, 6))
    stored = layer.get_weights()[0]
    assert layer._trans.path.endswith("trans")
    assert np.abs(stored).max() <= np.sqrt(6 / 12) / 100 + 1e-7  # Glorot limit / 100
    np.testing.assert_allclose(to_numpy(layer.trans), stored * 100, rtol=1e-6)
    del crf


@pytest.mark.backends
def test_global_pointer_matches_bert4keras():
    ref = REFERENCE
    heads, head_size = 3, 8
    for key, options, mask in [
        ("gp_scores", {}, ref["gp_mask"]),
        ("gp_scores_no_rope_no_tril", {"RoPE": False, "tril_mask": False}, ref["gp_mask"]),
        ("gp_scores_no_mask", {}, None),
    ]:
        layer = GlobalPointer(heads, head_size, **options)
        layer.build(ref["gp_inputs"].shape)
        layer.set_weights([ref["gp_kernel"], ref["gp_bias"]])
        assert_matches_bert4keras(layer(ref["gp_inputs"], mask=mask), key)


@pytest.mark.backends
def test_efficient_global_pointer_matches_bert4keras():
    ref = REFERENCE
    layer = EfficientGlobalPointer(3, 8)
    layer.build(ref["gp_inputs"].shape)
    layer.set_weights([ref[f"egp_{name}"] for name in ("p_kernel", "p_bias", "q_kernel", "q_bias")])
    assert_matches_bert4keras(layer(ref["gp_inputs"], mask=ref["gp_mask"]), "egp_scores")


@pytest.mark.parametrize("cls", [GlobalPointer, EfficientGlobalPointer])
def test_global_pointers_config_and_saving(cls, tmp_path):
    inputs = np.random.default_rng(2).normal(size=(2, 5, 8)).astype("float32")
    run_layer_test(cls, {"heads": 2, "head_size": 4, "RoPE": True, "use_bias": False},
                   inputs, expected_shape=(2, 2, 5, 5), tmp_path=tmp_path)
    with pytest.raises(ValueError, match="even head_size"):
        cls(2, 3)


def test_global_pointer_reads_the_keras_mask_of_its_input():
    token_ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(20, 8, mask_zero=True)(token_ids)
    scores = EfficientGlobalPointer(2, 4)(hidden)
    model = keras.Model(token_ids, scores)
    output = to_numpy(model(np.array([[3, 4, 5, 0], [6, 7, 0, 0]])))
    assert np.isneginf(output[1, :, 2:, :]).all() and np.isneginf(output[1, :, :, 2:]).all()
    assert np.isneginf(output[0, :, 1, 0]).all()  # start after end
    assert np.isfinite(output[0, :, 0, 2]).all() and np.isfinite(output[1, :, 1, 1]).all()


@pytest.mark.backends
def test_concatenate_1d_merges_masks():
    a = keras.Input((None,), dtype="int32")
    b = keras.Input((3, 4))
    masked = keras.layers.Embedding(10, 4, mask_zero=True)(a)
    joined = Concatenate1D()([masked, b])
    assert joined.shape == (None, None, 4)
    mask = Concatenate1D().compute_mask(
        [np.zeros((1, 2, 4)), np.zeros((1, 3, 4))], [np.array([[True, False]]), None])
    np.testing.assert_array_equal(to_numpy(mask), [[True, False, True, True, True]])
    assert Concatenate1D().compute_mask([np.zeros((1, 2, 4))] * 2, [None, None]) is None
    out = Concatenate1D()([np.ones((1, 2, 4)), np.zeros((1, 3, 4))])
    assert to_numpy(out).shape == (1, 5, 4)
    assert Concatenate1D().compute_output_shape([(None, 2, 4), (None, 3, 4)]) == (None, 5, 4)


class MaskedSquaredError(Loss):
    """A bert4keras-style loss layer: inputs `[y_true, y_mask, y_pred]`."""

    def compute_loss(self, inputs, mask=None):
        y_true, y_mask, y_pred = inputs
        loss = K.sum(K.square(y_pred[..., 0] - y_true), axis=1)
        return K.mean(loss * y_mask[:, 0])


def test_loss_layer_selects_outputs_and_masks():
    x = np.ones((2, 3), "float32")
    for axis, expected in [(None, 3), (1, None), ([0, 2], 2)]:
        layer = MaskedSquaredError(output_axis=axis)
        out = layer([x, np.ones((2, 1), "float32"), np.zeros((2, 3, 1), "float32")])
        if expected is None:
            assert to_numpy(out).shape == (2, 1)
        else:
            assert len(out) == expected
    config = MaskedSquaredError(output_axis=[0, 2]).get_config()
    assert config["output_axis"] == [0, 2]
    assert Loss(2).compute_mask([1, 2, 3], ["a", "b", "c"]) == "c"
    with pytest.raises(NotImplementedError, match="compute_loss"):
        Loss()(np.zeros((1, 2)))


def jit_compile():
    # Keras' torch trainer compiles with torch.compile (inductor): it works, but costs
    # ~40 s per model on CPU; KERASFORMER_TORCH_JIT=1 runs it (see the report).
    if keras.config.backend() == "torch" and not os.environ.get("KERASFORMER_TORCH_JIT"):
        return "auto"
    return True


@pytest.mark.backends
def test_loss_layer_trains_with_compile_without_loss():
    rng = np.random.default_rng(3)
    features, targets = rng.normal(size=(16, 4, 3)), rng.normal(size=(16, 4))
    weights = np.ones((16, 1))
    x, y_true, y_mask = keras.Input((4, 3)), keras.Input((4,)), keras.Input((1,))
    y_pred = keras.layers.Dense(1)(x)
    output = MaskedSquaredError(output_axis=2)([y_true, y_mask, y_pred])
    model = keras.Model([x, y_true, y_mask], output)
    model.compile(keras.optimizers.SGD(0.05), jit_compile=jit_compile())
    data = [a.astype("float32") for a in (features, targets, weights)]
    history = model.fit(data, None, batch_size=16, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    assert to_numpy(model.predict(data, verbose=0)).shape == (16, 4, 1)


class Seq2SeqCrossEntropy(Loss):
    """bert4keras' UniLM loss (task_seq2seq_autotitle.py): the segment ids, int32 here
    and float32 in bert4keras, multiply the loss as they are."""

    def compute_loss(self, inputs, mask=None):
        y_true, y_mask, y_pred = inputs
        loss = K.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
        return K.sum(loss * y_mask[:, 1:]) / K.sum(y_mask[:, 1:])


@pytest.mark.backends
def test_loss_layer_gives_integer_ids_to_compute_loss_as_floats():
    # TensorFlow refuses float32 * int32: without the cast this loss fails there.
    token_ids = keras.Input((None,), dtype="int32")
    segment_ids = keras.Input((None,), dtype="int32")
    probas = keras.layers.Dense(6, activation="softmax")(keras.layers.Embedding(6, 4)(token_ids))
    output = Seq2SeqCrossEntropy(output_axis=2)([token_ids, segment_ids, probas])
    model = keras.Model([token_ids, segment_ids], output)
    model.compile(keras.optimizers.SGD(0.1))
    ids = np.array([[1, 2, 3, 4, 5]] * 4, "int32")
    segments = np.array([[0, 0, 1, 1, 1]] * 4, "int32")
    history = model.fit([ids, segments], None, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # The layer's outputs are its inputs, integer ones not cast.
    selected = Seq2SeqCrossEntropy(output_axis=[0, 1])([ids, segments, np.ones((4, 5, 6))])
    assert [keras.backend.standardize_dtype(x.dtype) for x in selected] == ["int32", "int32"]


@pytest.mark.backends
def test_crf_trains_with_fit_and_the_transitions_learn():
    """bert4keras' NER recipe; batches of varying length as from a DataGenerator (on
    TensorFlow the XLA-compiled step then sees an unknown sequence length)."""
    rng = np.random.default_rng(4)
    labels = 3
    token_ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(12, 8, mask_zero=True)(token_ids)
    crf = ConditionalRandomField(lr_multiplier=10)
    scores = crf(keras.layers.Dense(labels)(hidden))
    model = keras.Model(token_ids, scores)
    model.compile(keras.optimizers.Adam(0.05), loss=crf.sparse_loss,
                  metrics=[crf.sparse_accuracy], jit_compile=jit_compile())
    ids = rng.integers(1, 12, size=(8, 6))
    ids[:4, 4:] = 0  # padding
    tags = (ids % labels).astype("float32")

    def batches():
        for step in itertools.count():
            length = 5 + step % 2
            yield ids[:, :length], tags[:, :length]

    before = K.eval(crf.trans)
    history = model.fit(batches(), steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    assert "sparse_accuracy" in history.history
    assert not np.allclose(K.eval(crf.trans), before)  # the loss reaches `trans`
