import numpy as np
import pytest

from kerasformer.layers import (
    SinusoidalPositionEmbedding,
    apply_rotary_position_embeddings,
    sinusoidal_embeddings,
)
from tests.helpers import run_layer_test, to_numpy


def test_sinusoid_is_interleaved_sin_cos():
    positions = np.array([[0, 1, 5, 37]])
    table = to_numpy(sinusoidal_embeddings(positions, 8))
    theta = positions[..., None] * 10000.0 ** (-2 * np.arange(4) / 8)
    np.testing.assert_allclose(table[..., 0::2], np.sin(theta), atol=1e-5)
    np.testing.assert_allclose(table[..., 1::2], np.cos(theta), atol=1e-5)


@pytest.mark.backends
def test_rope_rotates_adjacent_pairs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3, 8)).astype("float32")  # (batch, seq, heads, dim)
    table = to_numpy(sinusoidal_embeddings(np.arange(5)[None], 8))
    rotated = to_numpy(apply_rotary_position_embeddings(table, x))
    for i in range(4):
        sin, cos = table[0, :, 2 * i], table[0, :, 2 * i + 1]
        rotation = np.array([[[c, -s], [s, c]] for s, c in zip(sin, cos)])  # (seq, 2, 2)
        expected = np.einsum("sij,bshj->bshi", rotation, x[..., 2 * i:2 * i + 2])
        np.testing.assert_allclose(rotated[..., 2 * i:2 * i + 2], expected, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(2, 16)).astype("float32")
    positions = np.arange(40)[None]
    table = to_numpy(sinusoidal_embeddings(positions, 16))
    queries = to_numpy(apply_rotary_position_embeddings(table, np.tile(q, (1, 40, 1))))[0]
    keys = to_numpy(apply_rotary_position_embeddings(table, np.tile(k, (1, 40, 1))))[0]
    assert np.isclose(queries[10] @ keys[7], queries[33] @ keys[30], atol=1e-4)


def test_layer_modes(tmp_path):
    x = np.random.default_rng(2).normal(size=(2, 6, 8)).astype("float32")
    table = run_layer_test(
        SinusoidalPositionEmbedding, {"output_dim": 8, "merge_mode": "zero"}, x,
        expected_shape=(1, 6, 8), tmp_path=tmp_path,
    )
    added = run_layer_test(SinusoidalPositionEmbedding, {"output_dim": 8}, x, expected_shape=(2, 6, 8))
    np.testing.assert_allclose(to_numpy(added), x + to_numpy(table), atol=1e-6)
    positions = np.array([[3, 4, 5, 6, 7, 8], [0, 0, 1, 1, 2, 2]])
    custom = to_numpy(SinusoidalPositionEmbedding(8, "zero")(x, position_ids=positions))
    np.testing.assert_allclose(custom, to_numpy(sinusoidal_embeddings(positions, 8)), atol=1e-6)


def test_odd_size_is_rejected():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embeddings(np.arange(3), 7)
