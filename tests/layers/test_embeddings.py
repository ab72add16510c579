import keras
import numpy as np
import pytest

from kerasformer.layers import PositionEmbedding, TokenEmbedding
from tests.helpers import run_layer_test, to_numpy

IDS = np.array([[2, 7, 9, 3, 0, 0], [0, 4, 0, 5, 6, 3]], dtype="int32")


@pytest.mark.backends
def test_token_embedding_lookup_and_tied_projection(tmp_path):
    init = {"input_dim": 10, "output_dim": 4, "embeddings_initializer": "normal"}
    run_layer_test(TokenEmbedding, init, IDS, expected_shape=(2, 6, 4), tmp_path=tmp_path)
    layer = TokenEmbedding(**init)
    vectors = to_numpy(layer(IDS))
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(vectors, table[IDS], atol=0)
    logits = to_numpy(layer(vectors, mode="dense"))
    np.testing.assert_allclose(logits, vectors @ table.T, atol=1e-5)


def test_token_mask_keeps_the_first_position():
    layer = TokenEmbedding(10, 4, mask_zero=True)
    mask = to_numpy(layer.compute_mask(IDS))
    np.testing.assert_array_equal(
        mask, [[1, 1, 1, 1, 0, 0], [1, 1, 0, 1, 1, 1]]
    )
    # the mask reaches downstream Keras layers, e.g. mean pooling skips padding
    inputs = keras.Input((6,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    model = keras.Model(inputs, pooled)
    vectors = to_numpy(layer(IDS))
    expected = (vectors * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(to_numpy(model(IDS)), expected, atol=1e-6)


def test_dense_mode_needs_a_known_mode():
    layer = TokenEmbedding(10, 4)
    with pytest.raises(ValueError, match="mode"):
        layer(IDS, mode="reverse")


@pytest.mark.backends
def test_position_embedding(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    init = {"input_dim": 8, "output_dim": 4, "embeddings_initializer": "normal"}
    out = run_layer_test(PositionEmbedding, init, x, expected_shape=(2, 5, 4), tmp_path=tmp_path)
    layer = PositionEmbedding(**init)
    np.testing.assert_allclose(to_numpy(layer(x)), x + to_numpy(layer.embeddings)[:5], atol=1e-6)
    positions = np.array([[7, 6, 5, 4, 3], [0, 0, 1, 1, 2]])
    np.testing.assert_allclose(
        to_numpy(layer(x, position_ids=positions)), x + to_numpy(layer.embeddings)[positions], atol=1e-6
    )
    assert to_numpy(out).shape == (2, 5, 4)


def test_hierarchical_positions_extend_the_table():
    x = np.zeros((1, 16, 3), "float32")
    layer = PositionEmbedding(4, 3, hierarchical=True, embeddings_initializer="normal")
    table = to_numpy(layer(x))[0]
    e = to_numpy(layer.embeddings)
    u = (e - 0.4 * e[:1]) / 0.6
    expected = [0.4 * u[p // 4] + 0.6 * u[p % 4] for p in range(16)]
    np.testing.assert_allclose(table, expected, atol=1e-5)
    np.testing.assert_allclose(table[:4], e, atol=1e-5)  # the first n positions are unchanged


def test_too_long_input_is_a_clear_error():
    layer = PositionEmbedding(4, 3, name="Embedding-Position")
    with pytest.raises(ValueError, match="sequence length 6 exceeds the 4 learned positions"):
        layer(np.zeros((1, 6, 3), "float32"))
    layer = PositionEmbedding(4, 3, hierarchical=True)
    with pytest.raises(ValueError, match="sequence length 17 exceeds the 16 hierarchical"):
        layer(np.zeros((1, 17, 3), "float32"))
