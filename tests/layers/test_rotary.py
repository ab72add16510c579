import numpy as np
import pytest

from kerasformer.layers import (
    SinusoidalPositionEmbedding,
    apply_rotary_position_embeddings,
    sinusoidal_embeddings,
)
from kerasformer.layers.rotary import (
    check_rerope,
    check_rope_scaling,
    relative_position_options,
    rerope_logits,
    rope_inverse_frequencies,
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


# ------------------------------------------------------------------ RoPE scaling
# numpy, from the published formulas (training.md §3.8; kexue.fm/archives/9675, /9706)

def numpy_inverse_frequencies(dim, base, scaling=None, length=None):
    i = np.arange(dim // 2, dtype=np.float64)
    plain = base ** (-2 * i / dim)
    if scaling is None:
        return plain
    kind, k = scaling["type"], scaling["factor"]
    if kind == "linear":
        return plain / k
    if kind == "ntk":
        return (base * k ** (dim / (dim - 2))) ** (-2 * i / dim)
    if kind == "dynamic_ntk":
        trained = scaling["original_max_position"]
        if length <= trained:
            return plain
        grown = k * length / trained - (k - 1)
        return (base * grown ** (dim / (dim - 2))) ** (-2 * i / dim)
    b = scaling.get("b", 0.75)
    m = i + 1
    a = np.log(k) / (dim / 2) ** b
    return base ** (-2 * (m - 1) / dim) * np.exp(-a * m ** b)


SCALINGS = [
    {"type": "linear", "factor": 4},
    {"type": "ntk", "factor": 4},
    {"type": "dynamic_ntk", "factor": 2, "original_max_position": 16},
    {"type": "ntk_mixed", "factor": 12},
    {"type": "ntk_mixed", "factor": 8, "b": 0.5},
]


@pytest.mark.parametrize("scaling", SCALINGS, ids=lambda s: s["type"] + str(s.get("b", "")))
@pytest.mark.parametrize("length", [10, 64])
def test_scaled_tables_follow_the_formulas(scaling, length):
    dim = 16
    positions = np.arange(length)[None]
    table = to_numpy(sinusoidal_embeddings(positions, dim, 10000.0, check_rope_scaling(scaling)))
    angles = positions[..., None] * numpy_inverse_frequencies(dim, 10000.0, scaling, length)
    expected = np.stack([np.sin(angles), np.cos(angles)], -1).reshape(1, length, dim)
    np.testing.assert_allclose(table, expected, atol=2e-5)


def test_ntk_mixed_divides_the_lowest_frequency_by_the_factor():
    theta = to_numpy(rope_inverse_frequencies(64, 10000.0, check_rope_scaling(
        {"type": "ntk_mixed", "factor": 12})))
    plain = to_numpy(rope_inverse_frequencies(64, 10000.0))
    np.testing.assert_allclose(theta[-1] * 12, plain[-1], rtol=1e-5)
    assert theta[0] < plain[0] and np.all(np.diff(plain / theta) > 0)


@pytest.mark.parametrize("kind", ["linear", "ntk", "dynamic_ntk", "ntk_mixed"])
def test_factor_one_is_plain_rope(kind):
    scaling = {"type": kind, "factor": 1}
    if kind == "dynamic_ntk":
        # within the training length: past it, dynamic NTK grows the base as L/L_train
        # even at factor 1 (transformers' formula; the factor sets how fast)
        scaling["original_max_position"] = 40
    positions = np.arange(40)[None]
    np.testing.assert_allclose(
        to_numpy(sinusoidal_embeddings(positions, 16, 10000.0, check_rope_scaling(scaling))),
        to_numpy(sinusoidal_embeddings(positions, 16)), atol=1e-6)


def test_dynamic_ntk_is_plain_up_to_the_training_length():
    scaling = check_rope_scaling({"type": "dynamic_ntk", "factor": 4, "original_max_position": 32})
    positions = np.arange(32)[None]
    np.testing.assert_array_equal(to_numpy(sinusoidal_embeddings(positions, 16, 10000.0, scaling)),
                                  to_numpy(sinusoidal_embeddings(positions, 16)))


@pytest.mark.parametrize("scaling, message", [
    ("ntk", "must be a dict"),
    ({"type": "yarn", "factor": 2}, "type must be one of"),
    ({"type": "ntk", "factor": 0.5}, "factor must be a number >= 1"),
    ({"type": "ntk", "factor": 2, "windows": 3}, "unknown key"),
    ({"type": "ntk", "factor": 2, "window": 3}, "argument of rerope"),
    ({"type": "rerope"}, "needs window"),
    ({"type": "rerope", "window": 0}, "needs window"),
    ({"type": "rerope", "window": 8, "factor": 2}, "takes no factor"),
    ({"type": "leaky_rerope", "window": 8}, "needs factor > 1"),
    ({"type": "leaky_rerope", "window": 8, "factor": 1}, "needs factor > 1"),
    ({"type": "rerope", "window": 8, "b": 1}, "not an argument of rerope"),
    ({"type": "dynamic_ntk", "factor": 2}, "needs original_max_position"),
    ({"type": "ntk", "factor": 2, "original_max_position": 8}, "argument of dynamic_ntk"),
    ({"type": "linear", "factor": 2, "b": 0.5}, "argument of ntk_mixed"),
])
def test_bad_scalings(scaling, message):
    with pytest.raises((TypeError, ValueError), match=message):
        check_rope_scaling(scaling)


# ------------------------------------------------------------------ ReRoPE


def numpy_rerope_logits(q, k, query_positions, key_positions, window, leak):
    """Each pair's dot product with the query rotated by its clipped relative position
    `i − j` (https://kexue.fm/archives/9708), by explicit 2×2 rotations, in float64."""
    d = q.shape[-1]
    theta = 10000.0 ** (-2 * np.arange(d // 2) / d)
    logits = np.zeros(q.shape[:-1] + (k.shape[-2],))
    for i, p_i in enumerate(query_positions):
        for j, p_j in enumerate(key_positions):
            r = float(p_i - p_j)
            if abs(r) >= window:
                r = np.sign(r) * (window + (abs(r) - window) * leak)
            angle = r * theta
            qi = q[..., i, :].astype(np.float64)
            rotated = np.empty_like(qi)
            rotated[..., 0::2] = qi[..., 0::2] * np.cos(angle) - qi[..., 1::2] * np.sin(angle)
            rotated[..., 1::2] = qi[..., 0::2] * np.sin(angle) + qi[..., 1::2] * np.cos(angle)
            logits[..., i, j] = np.einsum("...d,...d->...", rotated, k[..., j, :])
    return logits


@pytest.mark.backends
@pytest.mark.parametrize("window, leak", [(3, 0.0), (3, 0.25), (1, 0.5), (20, 0.0)],
                         ids=["rerope", "leaky", "window-1", "wide"])
@pytest.mark.parametrize("queries", [7, 1], ids=["sequence", "one-query"])
def test_rerope_logits_follow_the_formula(window, leak, queries):
    """Bidirectional: keys before and after each query, both paths (several queries:
    three products; one query: each key rotated by its own distance)."""
    rng = np.random.default_rng(4)
    q = rng.normal(size=(2, 1, 2, queries, 8)).astype("float32")  # (batch, kv heads, group, q, d)
    k = rng.normal(size=(2, 1, 9, 8)).astype("float32")
    key_positions = np.array([0, 1, 2, 3, 4, 5, 6, 12, 30])
    query_positions = np.array([0, 2, 4, 5, 9, 13, 31])[:queries]
    logits = to_numpy(rerope_logits(q, k, query_positions[None], key_positions[None], window, leak))
    expected = numpy_rerope_logits(q, k[:, :, None], query_positions, key_positions, window, leak)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_causal_rerope_skips_only_the_scores_of_later_keys():
    rng = np.random.default_rng(6)
    q = rng.normal(size=(1, 1, 2, 9, 8)).astype("float32")
    k = rng.normal(size=(1, 1, 9, 8)).astype("float32")
    positions = np.arange(9)[None]
    for leak in (0.0, 0.25):
        both = to_numpy(rerope_logits(q, k, positions, positions, 3, leak))
        causal = to_numpy(rerope_logits(q, k, positions, positions, 3, leak, causal=True))
        earlier = np.tril(np.ones((9, 9), bool))
        np.testing.assert_allclose(causal[..., earlier], both[..., earlier], atol=1e-6)


def test_rerope_with_a_window_past_the_sequence_is_plain_rope():
    rng = np.random.default_rng(5)
    q = rng.normal(size=(1, 2, 1, 10, 16)).astype("float32")
    k = rng.normal(size=(1, 2, 10, 16)).astype("float32")
    positions = np.arange(10)[None]
    table = to_numpy(sinusoidal_embeddings(positions, 16))[:, None]
    plain = np.einsum("bhgqd,bhkd->bhgqk",
                      to_numpy(apply_rotary_position_embeddings(table[:, :, None], q)),
                      to_numpy(apply_rotary_position_embeddings(table, k)))
    for leak in (0.0, 0.125):
        logits = to_numpy(rerope_logits(q, k, positions, positions, window=10, leak=leak))
        np.testing.assert_allclose(logits, plain, atol=1e-5)


def test_relative_position_options():
    assert relative_position_options(None) is None
    assert relative_position_options(check_rope_scaling({"type": "ntk", "factor": 2})) is None
    assert relative_position_options(check_rope_scaling({"type": "rerope", "window": 16})) == {
        "window": 16, "leak": 0.0, "causal": False}
    assert relative_position_options(check_rope_scaling(
        {"type": "leaky_rerope", "window": 16, "factor": 8}), causal=True) == {
        "window": 16, "leak": 0.125, "causal": True}
    assert check_rerope({"window": 2, "leak": 0}) == {"window": 2, "leak": 0.0, "causal": False}
    for bad in ({"window": 2}, {"window": 0, "leak": 0.0}, {"window": 2, "leak": 1.0},
                {"window": 2, "leak": 0.0, "causal": 1}, {"window": 2, "leak": 0.0, "x": 1}):
        with pytest.raises(ValueError, match="rerope"):
            check_rerope(bad)
