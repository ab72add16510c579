"""kerasformer.backend: Keras 2's `K` and bert4keras.backend's helpers on Keras 3.

Expected values of bert4keras' helpers and of Keras 2's trickier `K` functions come
from the reference (tests/fixtures/compat/layers.npz, tools/make_compat_layer_fixtures.py).
"""
import re

import keras
import numpy as np
import pytest
from keras import ops

import kerasformer.backend as backend
from kerasformer.backend import (
    K,
    align,
    attention_normalize,
    multilabel_categorical_crossentropy,
    piecewise_linear,
    search_layer,
    sequence_masking,
    sparse_multilabel_categorical_crossentropy,
)
from kerasformer.layers import FeedForward, activations, rotary
from tests.conftest import FIXTURES
from tests.helpers import assert_matches_bert4keras, to_numpy

REFERENCE = np.load(FIXTURES / "compat" / "layers.npz")


@pytest.mark.backends
def test_bert4keras_helpers_match_bert4keras():
    ref = REFERENCE
    mask, x3, x4 = ref["seqmask_mask"], ref["seqmask_x3"], ref["seqmask_x4"]
    assert_matches_bert4keras(sequence_masking(x3, mask), "seqmask_default")
    assert_matches_bert4keras(sequence_masking(x3, mask, "-inf", 1), "seqmask_neg_inf_axis1")
    assert_matches_bert4keras(sequence_masking(x4, mask, -np.inf, [2, 3], ref["seqmask_bool_bias"]),
                   "seqmask_axes_2_3_bool_bias")
    assert_matches_bert4keras(sequence_masking(x4, mask, -1e4, -1, ref["seqmask_float_bias"]),
                   "seqmask_last_axis_float_bias")
    assert_matches_bert4keras(sequence_masking(x4, mask.astype("float32"), 0, 2), "seqmask_float_mask_axis2")
    assert_matches_bert4keras(sequence_masking(x4, None, -np.inf, None, ref["seqmask_float_bias"]),
                   "seqmask_no_mask_float_bias")

    assert_matches_bert4keras(multilabel_categorical_crossentropy(ref["mcce_y_true"], ref["mcce_y_pred"]),
                   "mcce_loss")
    for mask_zero in (False, True):
        assert_matches_bert4keras(
            sparse_multilabel_categorical_crossentropy(
                ref["smcce_y_true"], ref["smcce_y_pred"], mask_zero),
            f"smcce_loss_mask_zero_{mask_zero}")
    flat_scores = ref["gp_scores"].reshape(2, 3, -1)
    assert_matches_bert4keras(
        sparse_multilabel_categorical_crossentropy(ref["smcce_gp_y_true"], flat_scores, True),
        "smcce_gp_loss")

    for method in ("softmax", "softmax_plus", "squared_relu"):
        assert_matches_bert4keras(attention_normalize(ref["attn_logits"], mask, -1, method),
                       f"attn_{method}")

    steps = ref["pwl_steps"]
    assert_matches_bert4keras(piecewise_linear(steps, {1000: 1.0, 2000: 0.1}), "pwl_warmup_decay")
    assert_matches_bert4keras(piecewise_linear(steps, {1000: 1.0, 2000: 0.1}, False),
                   "pwl_warmup_decay_not_from_zero")
    assert_matches_bert4keras(piecewise_linear(steps, {0: 0.5, 100: 1.0, 1500: 0.0}), "pwl_from_key_zero")


@pytest.mark.backends
def test_keras2_semantics_match_tf_keras():
    ref = REFERENCE
    a, b, c, d, e, f = (ref[f"K_{n}"] for n in "abcdef")
    assert_matches_bert4keras(K.batch_dot(a, b), "K_batch_dot_default")
    assert_matches_bert4keras(K.batch_dot(c, d), "K_batch_dot_2d")
    assert_matches_bert4keras(K.batch_dot(c, d, axes=1), "K_batch_dot_axes_1")
    assert_matches_bert4keras(K.batch_dot(a, e, axes=(2, 2)), "K_batch_dot_axes_2_2")
    assert_matches_bert4keras(K.batch_dot(a, f), "K_batch_dot_3d_2d")
    assert_matches_bert4keras(K.batch_dot(a, c, axes=(1, 1)), "K_batch_dot_axes_1_1")
    assert_matches_bert4keras(K.dot(a, b[0]), "K_dot_3d_2d")
    assert_matches_bert4keras(K.dot(a, b), "K_dot_3d_3d")
    assert_matches_bert4keras(K.switch(ref["K_switch_condition"], a, -a), "K_switch_lower_rank")
    assert_matches_bert4keras(K.l2_normalize(a, axis=1), "K_l2_normalize_axis_1")
    assert_matches_bert4keras(K.l2_normalize(a), "K_l2_normalize_all")
    probabilities, one_hot = ref["K_probabilities"], ref["K_one_hot"]
    assert_matches_bert4keras(K.categorical_crossentropy(one_hot, probabilities), "K_categorical_crossentropy")
    assert_matches_bert4keras(K.categorical_crossentropy(one_hot, a, from_logits=True),
                   "K_categorical_crossentropy_logits")
    assert_matches_bert4keras(K.sparse_categorical_crossentropy(one_hot.argmax(-1).astype("float32"),
                                                     probabilities),
                   "K_sparse_categorical_crossentropy")
    targets = ref["K_binary_targets"]
    assert_matches_bert4keras(K.binary_crossentropy(targets, K.sigmoid(a)), "K_binary_crossentropy")
    assert_matches_bert4keras(K.binary_crossentropy(targets, a, from_logits=True),
                   "K_binary_crossentropy_logits")
    assert_matches_bert4keras(K.repeat_elements(a, 2, 1), "K_repeat_elements")
    assert_matches_bert4keras(K.cumsum(a), "K_cumsum_default")
    assert_matches_bert4keras(K.hard_sigmoid(a * 3), "K_hard_sigmoid")
    assert_matches_bert4keras(K.sqrt(a), "K_sqrt")
    assert_matches_bert4keras(K.relu(a, alpha=0.1, max_value=0.5, threshold=0.2), "K_relu_options")
    assert_matches_bert4keras(K.relu(a, alpha=0.3), "K_relu_leaky")
    assert_matches_bert4keras(K.logsumexp(a, axis=1), "K_logsumexp_axis_1")
    assert_matches_bert4keras(K.clip(a, -0.5, None), "K_clip_no_max")
    assert_matches_bert4keras(K.repeat(c, 3), "K_repeat")
    assert_matches_bert4keras(K.reshape(ref["K_reshape_pairs_input"], (2, -1), 2), "K_reshape_pairs")
    assert_matches_bert4keras(K.flatten(a, 1, 3), "K_flatten_range")
    assert_matches_bert4keras(K.where(a > 0, a, 0), "K_where_scalar")


def test_k_functions_follow_keras2_signatures():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_allclose(to_numpy(K.sum(x)), x.sum())
    np.testing.assert_allclose(to_numpy(K.mean(x, 1, True)), x.mean(1, keepdims=True))
    np.testing.assert_allclose(to_numpy(K.max(x, axis=-1)), x.max(-1))
    np.testing.assert_allclose(to_numpy(K.min(x)), 0)
    np.testing.assert_allclose(to_numpy(K.pow(x, 2)), x ** 2)
    np.testing.assert_allclose(to_numpy(K.square(x)), x ** 2)
    np.testing.assert_allclose(to_numpy(K.exp(K.log(x + 1))), x + 1, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(K.abs(-x)), x)
    np.testing.assert_allclose(to_numpy(K.cumsum(x, 2)), x.cumsum(2))
    np.testing.assert_allclose(to_numpy(K.permute_dimensions(x, (2, 0, 1))), x.transpose(2, 0, 1))
    np.testing.assert_allclose(to_numpy(K.expand_dims(x)), x[..., None])
    np.testing.assert_allclose(to_numpy(K.squeeze(x[:, :1], 1)), x[:, 0])
    np.testing.assert_allclose(to_numpy(K.concatenate([x, x])), np.concatenate([x, x], -1))
    np.testing.assert_allclose(to_numpy(K.stack([x, x])), np.stack([x, x]))
    np.testing.assert_allclose(to_numpy(K.tile(x, [1, 2, 1])), np.tile(x, [1, 2, 1]))
    np.testing.assert_allclose(to_numpy(K.gather(x, [1, 0])), x[[1, 0]])
    np.testing.assert_allclose(to_numpy(K.one_hot(np.array([0, 2]), 3)), np.eye(3)[[0, 2]])
    assert K.dtype(K.one_hot(np.array([1]), 2)) == K.floatx() == "float32"
    np.testing.assert_array_equal(to_numpy(K.argmax(x)), x.argmax(-1))
    np.testing.assert_allclose(to_numpy(K.softmax(x)), to_numpy(ops.softmax(x)))
    np.testing.assert_allclose(to_numpy(K.clip(x, 2, 5)), np.clip(x, 2, 5))
    np.testing.assert_array_equal(to_numpy(K.not_equal(x, 3)), x != 3)
    np.testing.assert_array_equal(to_numpy(K.arange(3)), [0, 1, 2])
    assert K.dtype(K.arange(3)) == "int32"
    np.testing.assert_allclose(to_numpy(K.ones_like(x)), np.ones_like(x))
    np.testing.assert_allclose(to_numpy(K.zeros((2, 3))), np.zeros((2, 3)))
    np.testing.assert_allclose(to_numpy(K.cast(x > 3, "float32")), (x > 3).astype("float32"))
    assert K.epsilon() == 1e-7 and K.floatx() == "float32"
    assert K.int_shape(x) == (2, 3, 4) and K.ndim(x) == 3
    assert K.int_shape(keras.Input((None, 4))) == (None, None, 4)
    # K.shape is a tuple of static sizes, so shape arithmetic stays jit-compatible.
    shape = K.shape(x)
    assert shape == (2, 3, 4) and K.prod(shape[1:]) == 12 and isinstance(K.prod(shape), int)
    np.testing.assert_allclose(to_numpy(K.reshape(x, (shape[0], -1, K.prod(shape[2:])))), x)
    np.testing.assert_allclose(to_numpy(K.prod(x[0, 0] + 1)), 24)
    assert K.count_params(x) == 24
    losses = K.sparse_categorical_crossentropy(np.array([1]), np.array([[0.25, 0.75]]))
    np.testing.assert_allclose(to_numpy(losses), [-np.log(0.75)], rtol=1e-6)


def test_k_values_variables_and_phases():
    variable = K.variable(np.zeros((2, 2)))
    K.set_value(variable, np.ones((2, 2)))
    np.testing.assert_allclose(K.eval(variable), np.ones((2, 2)))
    K.batch_set_value([(variable, np.full((2, 2), 3.0))])
    np.testing.assert_allclose(K.batch_get_value([variable])[0], 3.0)
    np.testing.assert_allclose(K.get_value(K.constant(2.0, shape=(2,))), [2.0, 2.0])

    x, y = np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")
    np.testing.assert_allclose(to_numpy(K.in_train_phase(x, y, training=True)), x)
    np.testing.assert_allclose(to_numpy(K.in_train_phase(lambda: x, y, training=False)), y)
    np.testing.assert_allclose(to_numpy(K.in_test_phase(x, y, training=False)), x)
    np.testing.assert_allclose(to_numpy(K.switch(np.array([True, False]), x, y)),
                               [[1, 1, 1], [0, 0, 0]])  # a rank-1 condition picks rows
    with pytest.raises(ValueError, match="training="):
        K.in_train_phase(x, y)
    with pytest.raises(AttributeError, match="learning phase"):
        K.learning_phase()

    draws = to_numpy(K.random_uniform((1000,), 2.0, 3.0, seed=1))
    assert draws.min() >= 2.0 and draws.max() < 3.0
    coins = to_numpy(K.random_binomial((1000,), p=0.3, seed=2))
    assert set(np.unique(coins)) <= {0.0, 1.0} and 0.2 < coins.mean() < 0.4
    assert to_numpy(K.random_normal((3, 2), seed=3)).shape == (3, 2)


def test_unprovided_names_raise_clear_errors():
    for name, hint in [("rnn", "keras.ops.scan"), ("gradients", "train_step"),
                       ("function", "model"), ("placeholder", "keras.Input"),
                       ("update_add", "assign_add")]:
        with pytest.raises(AttributeError, match=rf"K\.{name} is not provided.*{hint}"):
            getattr(K, name)
    with pytest.raises(AttributeError, match=r"K\.top_k is not provided.*keras\.ops\.top_k"):
        K.top_k
    for name, hint in [("conv1d", "keras.ops.conv "), ("conv2d", "keras.ops.conv "),
                       ("conv2d_transpose", "keras.ops.conv_transpose"),
                       ("separable_conv2d", "keras.ops.separable_conv"),
                       ("depthwise_conv2d", "keras.ops.depthwise_conv"),
                       ("pool2d", "keras.ops.max_pool or keras.ops.average_pool"),
                       ("print_tensor", "jax.debug.print (JAX) or tf.print (TensorFlow)"),
                       ("recompute_grad", "remat=True")]:
        with pytest.raises(AttributeError, match=re.escape(hint)):
            getattr(K, name)
    assert backend._RECOMPUTE_HINT in backend._not_provided_message("recompute_grad")
    with pytest.raises(AttributeError, match=r"K\.no_such_thing is not provided"):
        K.no_such_thing
    assert not hasattr(K, "ctc_decode")
    assert "batch_dot" in dir(K) and "sequence_masking" in dir(K)
    with pytest.raises(AttributeError, match="list_devices"):
        backend.get_available_gpus
    with pytest.raises(ImportError):
        from kerasformer.backend import get_available_gpus  # noqa: F401


def _resolves(path):
    """Whether `keras<path>` (e.g. ".ops.conv") names something."""
    target = keras
    for part in path.strip(".").split("."):
        if not hasattr(target, part):
            return False
        target = getattr(target, part)
    return True


def test_every_keras_name_a_hint_suggests_exists():
    """`keras.ops.print` was suggested once and does not exist: every `keras.<name>` of
    the hints resolves, but those said not to exist ("has no keras.ops.print")."""
    hints = [*backend._NOT_PROVIDED.values(), *backend._MODULE_NOT_PROVIDED.values()]
    suggested = {path for hint in hints
                 for path in re.findall(r"(?<!no )\bkeras((?:\.\w+)+)", hint)}
    assert {".ops.conv", ".ops.max_pool", ".ops.image.resize", ".Input"} <= suggested
    assert [path for path in sorted(suggested) if not _resolves(path)] == []
    absent = {path for hint in hints for path in re.findall(r"\bno keras((?:\.\w+)+)", hint)}
    assert absent == {".ops.print"} and not _resolves(".ops.print")


def test_module_surface():
    assert backend.keras is keras
    assert backend.is_tf_keras is False and backend.do_recompute is False
    assert backend.infinity() == K.infinity() == 1e12
    assert backend.apply_rotary_position_embeddings is rotary.apply_rotary_position_embeddings
    assert K.sequence_masking is sequence_masking and K.piecewise_linear is piecewise_linear
    from kerasformer.models import GAU_alpha, GAUAlpha  # the GAU-alpha repository's name
    assert GAU_alpha is GAUAlpha
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(to_numpy(backend.root_mean_square(x, axis=-1)),
                               np.sqrt((x ** 2).mean(-1)), rtol=1e-6)
    assert to_numpy(align(x, [0, 2], 4)).shape == (2, 1, 3, 1)
    assert to_numpy(align(x, [0, -1], 4)).shape == (2, 1, 1, 3)
    params = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_allclose(to_numpy(backend.batch_gather(params, np.array([[2, 0], [1, 1]]))),
                               params[[[0, 0], [1, 1]], [[2, 0], [1, 1]]])
    assert to_numpy(backend.divisible_temporal_padding(params, 4)).shape == (2, 4, 4)
    assert to_numpy(backend.pool1d(params, 2, 2)).shape == (2, 1, 4)
    table = to_numpy(backend.Sinusoidal()((4, 6)))
    np.testing.assert_allclose(table, to_numpy(rotary.sinusoidal_embeddings(np.arange(4), 6)))

    def call(self, inputs):
        return inputs

    assert backend.recompute_grad(call) is call


def test_recompute_requested_explains_remat(monkeypatch):
    monkeypatch.setenv("RECOMPUTE", "1")
    with pytest.raises(NotImplementedError, match="remat=True"):
        backend.recompute_grad(lambda self, inputs: inputs)


def test_set_gelu_switches_what_gelu_means():
    x = np.linspace(-3, 3, 7).astype("float32")
    exact = to_numpy(keras.activations.gelu(x, approximate=False))
    approximate = to_numpy(keras.activations.gelu(x, approximate=True))
    try:
        backend.set_gelu("tanh")
        assert activations.get_activation("gelu") is activations.gelu_tanh
        layer = FeedForward(4, activation="gelu")
        layer.build((None, 2))
        np.testing.assert_allclose(to_numpy(layer.i0_dense.activation(x)), approximate, rtol=1e-6)
        assert layer.get_config()["activation"] == "gelu"
    finally:
        backend.set_gelu("erf")
    assert activations.get_activation("gelu") == "gelu"
    np.testing.assert_allclose(to_numpy(backend.gelu_erf(x)), exact, rtol=1e-6)
    with pytest.raises(ValueError, match="erf' or 'tanh"):
        backend.set_gelu("fast")


def test_search_layer_walks_functional_graphs():
    token_ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, name="Embedding-Token")(token_ids)
    encoder = keras.Model(token_ids, keras.layers.Dense(4, name="encoder-dense")(embedded),
                          name="encoder")
    outer_ids = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Dense(2, name="head")(encoder(outer_ids))
    model = keras.Model(outer_ids, outputs)

    assert search_layer(model.outputs[0], "head").name == "head"
    assert search_layer(model.outputs[0], "Embedding-Token") is encoder.get_layer("Embedding-Token")
    assert search_layer(model.outputs[0], "encoder-dense") is encoder.get_layer("encoder-dense")
    assert search_layer(model.get_layer("head"), "encoder") is encoder
    assert search_layer(model.outputs[0], "missing") is None
    with pytest.raises(TypeError, match="symbolic tensor"):
        search_layer(np.zeros(2), "head")


def test_a_saved_model_loads_after_the_bert4keras_imports(tmp_path):
    """bert4keras registered its custom objects on import; `from kerasformer.backend
    import keras` does too, so a fresh process loads a saved model with nothing else."""
    import subprocess
    import sys

    from kerasformer.models import build_transformer_model

    config = FIXTURES / "models" / "roformer" / "bert_config.json"
    model = build_transformer_model(str(config), model="roformer", application="unilm")
    model.save(tmp_path / "model.keras")
    program = (
        "from kerasformer.backend import keras\n"
        f"model = keras.models.load_model({str(tmp_path / 'model.keras')!r})\n"
        "print(type(model).__name__, len(model.weights))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.split() == ["TransformerModel", str(len(model.weights))], result.stderr
