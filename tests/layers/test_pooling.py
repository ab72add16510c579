"""Pooling layers: the [CLS] token, and bert4keras' masked GlobalMaxPooling1D."""
import keras
import numpy as np
import pytest

from kerasformer.layers import GlobalAveragePooling1D, GlobalMaxPooling1D
from tests.helpers import run_layer_test, run_model_saving_test, to_numpy

X = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)


@pytest.mark.backends
def test_masked_max_ignores_padding():
    x = X.copy()
    x[~MASK] = 100.0  # padding holds the largest values: it must never win
    got = to_numpy(GlobalMaxPooling1D()(x, mask=MASK))
    expected = np.stack([x[i][MASK[i]].max(0) for i in range(len(x))])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # no mask: the plain max; channels_first pools axis 2; keepdims keeps it
    np.testing.assert_allclose(to_numpy(GlobalMaxPooling1D()(x)), x.max(1), rtol=1e-6)
    first = GlobalMaxPooling1D(data_format="channels_first", keepdims=True)
    got = to_numpy(first(np.swapaxes(x, 1, 2), mask=MASK))
    np.testing.assert_allclose(got[..., 0], expected, rtol=1e-6)
    # a sequence with every step masked pools to -inf, as in bert4keras
    empty = to_numpy(GlobalMaxPooling1D()(X[:1], mask=np.zeros((1, 5), bool)))
    assert np.isneginf(empty).all()


def test_masks_flow_from_an_embedding_and_the_layer_saves(tmp_path):
    run_layer_test(GlobalMaxPooling1D, {}, X, expected_shape=(3, 4), tmp_path=tmp_path)
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(ids)  # id 0 is padding
    pooled = [GlobalMaxPooling1D()(x), GlobalAveragePooling1D()(x)]
    model = keras.Model(ids, pooled)
    batch = np.array([[3, 4, 0, 0], [5, 6, 7, 8]])
    table = to_numpy(model.layers[1].embeddings)
    maximum, mean = (to_numpy(y) for y in model(batch))
    np.testing.assert_allclose(maximum[0], table[[3, 4]].max(0), rtol=1e-6)
    np.testing.assert_allclose(mean[0], table[[3, 4]].mean(0), rtol=1e-6)  # masked mean
    np.testing.assert_allclose(maximum[1], table[[5, 6, 7, 8]].max(0), rtol=1e-6)
    run_model_saving_test(model, batch, tmp_path)
