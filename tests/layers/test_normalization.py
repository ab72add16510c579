import keras
import numpy as np
import pytest

from kerasformer.layers import LayerNormalization, ScaleOffset
from tests.conftest import FIXTURES
from tests.helpers import run_layer_test, run_model_saving_test, run_precision_test, to_numpy

X = np.random.default_rng(0).normal(2.0, 3.0, size=(2, 5, 8)).astype("float32")


@pytest.mark.backends
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"zero_mean": False, "scale": False, "offset": False, "epsilon": 1e-7},  # RoFormerV2 RMS norm
        {"offset": False},
        {"unit_variance": False},
    ],
)
def test_matches_numpy(options, tmp_path):
    layer = LayerNormalization(**options)
    layer(X)
    for weight in layer.weights:  # non-trivial gains and biases
        weight.assign(np.random.default_rng(1).normal(1.0, 0.5, weight.shape))
    expected = X.astype(np.float64)
    if options.get("zero_mean", True):
        expected = expected - expected.mean(-1, keepdims=True)
    if options.get("unit_variance", True):
        expected = expected / np.sqrt((expected**2).mean(-1, keepdims=True) + options.get("epsilon", 1e-12))
    if options.get("scale", True):
        expected = expected * to_numpy(layer.gamma)
    if options.get("offset", True):
        expected = expected + to_numpy(layer.beta)
    np.testing.assert_allclose(to_numpy(layer(X)), expected, atol=1e-5)
    run_layer_test(LayerNormalization, options, X, expected_shape=X.shape, tmp_path=tmp_path)


def test_scale_offset_bias_only(tmp_path):
    layer = ScaleOffset(scale=False)
    layer(X)
    assert [w.path for w in layer.weights] == ["scale_offset/beta"]
    run_layer_test(ScaleOffset, {"scale": False}, X, expected_shape=X.shape, tmp_path=tmp_path)


def test_reduced_precision_keeps_float32_statistics():
    run_precision_test(LayerNormalization, {}, X * 1000)


def test_epsilon_must_be_positive():
    with pytest.raises(ValueError, match="epsilon"):
        LayerNormalization(epsilon=0)


CONDITIONAL = np.load(FIXTURES / "compat" / "conditional_norm.npz")


@pytest.mark.backends
@pytest.mark.parametrize("case, options", [
    ("plain", {}),
    ("hidden", {"hidden_units": 6, "hidden_activation": "swish"}),
    ("rms", {"zero_mean": False, "epsilon": 1e-7, "hidden_units": 4}),
])
def test_conditional_matches_bert4keras(case, options, tmp_path):
    """bert4keras' Conditional Layer Normalization (tools/make_conditional_norm_fixtures.py),
    as task_relation_extraction.py calls it: `LayerNormalization(conditional=True)([x, c])`."""
    fixture = {key.split("/")[-1]: CONDITIONAL[key] for key in CONDITIONAL.files
               if key.startswith(f"layer/{case}/")}
    layer = LayerNormalization(conditional=True, **options)
    inputs = [fixture["x"], fixture["condition"]]
    before = to_numpy(layer(inputs))  # zero-initialised: the plain normalisation
    np.testing.assert_allclose(before, to_numpy(LayerNormalization(**{
        k: v for k, v in options.items() if k in ("zero_mean", "epsilon")})(fixture["x"])),
        atol=1e-5)
    for name in ("gamma", "beta"):
        getattr(layer, name).assign(fixture[name])
    for dense in ("hidden_dense", "beta_dense", "gamma_dense"):
        if dense in fixture:
            getattr(layer, dense).kernel.assign(fixture[dense])
    np.testing.assert_allclose(to_numpy(layer(inputs)), fixture["output"], rtol=1e-5, atol=1e-4)

    x, condition = keras.Input((3, 8)), keras.Input((5,))
    model = keras.Model([x, condition], LayerNormalization.from_config(layer.get_config())(
        [x, condition]))
    model.set_weights(layer.get_weights())
    run_model_saving_test(model, inputs, tmp_path)


def test_conditional_config_takes_functions_and_initializers():
    layer = LayerNormalization(conditional=True, hidden_units=3,
                               hidden_activation=keras.activations.swish,
                               hidden_initializer=keras.initializers.Orthogonal(seed=1))
    clone = LayerNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x, condition = X, np.ones((2, 4), "float32")
    layer([x, condition])
    clone([x, condition])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone([x, condition])), to_numpy(layer([x, condition])))


def test_conditional_input_errors():
    with pytest.raises(ValueError, match=r"call it on \[x, condition\]"):
        LayerNormalization(conditional=True)(X)
    with pytest.raises(ValueError, match=r"condition must be \(batch, features\)"):
        LayerNormalization(conditional=True)([X, X])
    with pytest.raises(ValueError, match="hidden_units must be a positive integer"):
        ScaleOffset(conditional=True, hidden_units=0)
