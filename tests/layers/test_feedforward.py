import math

import numpy as np
import pytest

from kerasformer.layers import FeedForward, FirstToken
from tests.helpers import run_layer_test, to_numpy

X = np.random.default_rng(0).normal(size=(2, 3, 6)).astype("float32")
erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


@pytest.mark.backends
def test_gelu_feed_forward_matches_numpy(tmp_path):
    layer = FeedForward(units=10, activation="gelu", kernel_initializer="normal")
    output = to_numpy(layer(X))
    i0, o = layer.i0_dense, layer.o_dense
    hidden = gelu(X @ to_numpy(i0.kernel) + to_numpy(i0.bias))
    np.testing.assert_allclose(output, hidden @ to_numpy(o.kernel) + to_numpy(o.bias), atol=1e-5)
    run_layer_test(FeedForward, {"units": 10, "activation": "gelu"}, X, expected_shape=X.shape,
                   tmp_path=tmp_path)


def test_gated_linear_unit_and_aliases(tmp_path):
    init = {"units": 4, "activation": ["gelu_new", "linear"], "use_bias": False}
    layer = FeedForward(**init)
    output = to_numpy(layer(X))
    w0, w1, wo = (to_numpy(d.kernel) for d in (layer.i0_dense, layer.i1_dense, layer.o_dense))
    a = X @ w0
    tanh_gelu = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    np.testing.assert_allclose(output, (tanh_gelu * (X @ w1)) @ wo, atol=1e-5)
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [
        "i0_dense/kernel", "i1_dense/kernel", "o_dense/kernel"
    ]
    run_layer_test(FeedForward, init, X, expected_shape=X.shape, tmp_path=tmp_path)


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="gelu_exact"):
        FeedForward(units=4, activation="gelu_exact")


def test_first_token(tmp_path):
    output = run_layer_test(FirstToken, {}, X, expected_shape=(2, 6), tmp_path=tmp_path)
    np.testing.assert_array_equal(to_numpy(output), X[:, 0])
