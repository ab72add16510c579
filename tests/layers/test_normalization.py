import numpy as np
import pytest

from kerasformer.layers import LayerNormalization, ScaleOffset
from tests.helpers import run_layer_test, run_precision_test, to_numpy

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
