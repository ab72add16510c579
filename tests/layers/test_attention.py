import math

import keras
import numpy as np
import pytest

from kerasformer.layers import MultiHeadAttention, attention_normalize, sinusoidal_embeddings
from tests.helpers import assert_all_close, run_layer_test, run_precision_test, to_numpy

RNG = np.random.default_rng(0)


def numpy_rope(x, table):
    """RoPE by an explicit 2×2 rotation of each adjacent pair."""
    out = np.empty_like(x)
    for i in range(x.shape[-1] // 2):
        sin, cos = table[..., 2 * i], table[..., 2 * i + 1]
        out[..., 2 * i] = x[..., 2 * i] * cos - x[..., 2 * i + 1] * sin
        out[..., 2 * i + 1] = x[..., 2 * i] * sin + x[..., 2 * i + 1] * cos
    return out


def numpy_normalize(logits, mask, method, floor, log_scale_length=None):
    visible = mask.sum(-1, keepdims=True).astype(np.float64)
    if log_scale_length is not None:  # max(1, ln n / ln L), n the visible keys
        logits = logits * np.maximum(np.log(visible) / np.log(log_scale_length), 1.0)
    logits = np.where(mask, logits, -np.inf)
    if method == "squared_relu":
        return np.maximum(np.where(mask, logits, 0), 0) ** 2 / visible
    if method == "softmax_plus":
        scale = np.log(np.maximum(visible, floor)) / math.log(512)
        logits = np.where(mask, np.where(mask, logits, 0) * scale, -np.inf)
    logits = logits - logits.max(-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(-1, keepdims=True)


def numpy_attention(layer, x, mask, table=None, bias=0.0):
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = [
        (to_numpy(d.kernel), to_numpy(d.bias) if d.use_bias else 0)
        for d in (layer.q_dense, layer.k_dense, layer.v_dense, layer.o_dense)
    ]
    b, n, _ = x.shape
    h, dk, dv = layer.heads, layer.key_size, layer.head_size
    g = layer.num_key_value_heads
    q = (x @ wq + bq).reshape(b, n, h, dk)
    # grouped-query attention: query head i reads key/value head i // (h / g)
    k = np.repeat((x @ wk + bk).reshape(b, n, g, dk), h // g, axis=2)
    v = np.repeat((x @ wv + bv).reshape(b, n, g, dv), h // g, axis=2)
    if table is not None:
        q, k = numpy_rope(q, table[:, :, None]), numpy_rope(k, table[:, :, None])
    if layer.key_norm is None:
        logits = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dk) + bias
    else:  # KeyNorm: unit keys, no 1/√d; CosA: unit queries too, times 4 ln n
        k = k / np.linalg.norm(k, axis=-1, keepdims=True)
        if layer.key_norm == "cosine":
            q = q / np.linalg.norm(q, axis=-1, keepdims=True)
        logits = np.einsum("bqhd,bkhd->bhqk", q, k) + bias
        if layer.key_norm == "cosine":
            visible = mask[:, None].sum(-1, keepdims=True)
            logits = logits * 4 * np.log(np.maximum(visible, 2))
    weights = numpy_normalize(logits, mask[:, None], layer.normalization, layer.length_floor,
                              layer.log_scale_length)
    out = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, h * dv)
    return out @ wo + bo


@pytest.mark.backends
@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_numpy(rotary, use_bias, tmp_path):
    x = RNG.normal(size=(2, 7, 16)).astype("float32")
    mask = np.tril(np.ones((7, 7), bool))[None].repeat(2, 0)
    mask[1, :, 5:] = False  # padding in the second row
    table = to_numpy(sinusoidal_embeddings(np.arange(7)[None], 8)) if rotary else None
    kwargs = {"attention_mask": mask}
    if rotary:
        kwargs["rotary_embeddings"] = table
    init = dict(heads=2, head_size=6, key_size=8, out_dim=16, use_bias=use_bias,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=1))
    output = run_layer_test(MultiHeadAttention, init, x, kwargs, (2, 7, 16), tmp_path)
    layer = MultiHeadAttention(**init)
    layer(x, **kwargs)
    assert_all_close(layer(x, **kwargs), numpy_attention(layer, x, mask, table), atol=1e-5)
    assert to_numpy(output).shape == (2, 7, 16)


@pytest.mark.parametrize("options", [
    {"key_norm": "key"}, {"key_norm": "cosine"}, {"log_scale_length": 3},
    {"log_scale_length": 3, "key_norm": "key", "normalization": "softmax_plus"},
    {"num_key_value_heads": 1},
], ids=["keynorm", "cosa", "logn", "all", "mqa"])
def test_length_options_match_numpy(options, tmp_path):
    """KeyNorm, CosA and log-n scaling, causal with padding, against the formulas."""
    x = RNG.normal(size=(2, 7, 16)).astype("float32")
    mask = np.tril(np.ones((7, 7), bool))[None].repeat(2, 0)
    mask[1, :, 5:] = False
    table = to_numpy(sinusoidal_embeddings(np.arange(7)[None], 8))
    kwargs = {"attention_mask": mask, "rotary_embeddings": table}
    init = dict(heads=2, head_size=6, key_size=8, out_dim=16, **options,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=1))
    run_layer_test(MultiHeadAttention, init, x, kwargs, (2, 7, 16), tmp_path)
    layer = MultiHeadAttention(**init)
    assert_all_close(layer(x, **kwargs), numpy_attention(layer, x, mask, table), atol=1e-5)


def test_log_n_scaling_is_the_identity_up_to_the_training_length():
    logits = RNG.normal(size=(1, 1, 6, 6)).astype("float32")
    mask = np.tril(np.ones((6, 6), bool))[None, None]
    assert_all_close(attention_normalize(logits, mask, log_scale_length=6),
                     attention_normalize(logits, mask), atol=1e-7)
    longer = attention_normalize(logits, mask, log_scale_length=3)
    assert_all_close(to_numpy(longer)[..., :3, :], to_numpy(attention_normalize(logits, mask))[..., :3, :],
                     atol=1e-7)
    assert np.abs(to_numpy(longer) - to_numpy(attention_normalize(logits, mask))).max() > 1e-3


def with_plain_weights(x, init, *variants):
    """A plain `MultiHeadAttention(**init)` and each of `variants` (option dicts), all
    built on `x` and holding the plain layer's weights."""
    plain = MultiHeadAttention(**init)
    plain(x)
    layers = [plain]
    for options in variants:
        layer = MultiHeadAttention(**options, **init)
        layer(x)
        for a, b in zip(plain.weights, layer.weights):
            b.assign(a)
        layers.append(layer)
    return layers


def test_grouped_query_attention():
    """As many key/value heads as heads is multi-head attention; fewer shrink the
    projections and the cache, and cached decoding still equals the full pass."""
    x = RNG.normal(size=(2, 6, 16)).astype("float32")
    init = dict(heads=4, head_size=4, kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.3, seed=3))
    plain, grouped = with_plain_weights(x, init, {"num_key_value_heads": 4})
    assert_all_close(grouped(x), plain(x), atol=1e-6)
    gqa = MultiHeadAttention(num_key_value_heads=2, **init)
    gqa(x)
    assert tuple(gqa.k_dense.kernel.shape) == (16, 8) and tuple(gqa.q_dense.kernel.shape) == (16, 16)
    cache = gqa.init_cache(batch_size=2, max_length=6)
    assert tuple(cache[0].shape) == (2, 2, 6, 4)  # half the heads of a 4-head cache
    causal = np.tril(np.ones((6, 6), bool))[None]
    full = to_numpy(gqa(x, attention_mask=causal))
    for step in range(6):
        out, cache = gqa(x[:, step:step + 1], attention_mask=causal[:, step:step + 1],
                         cache=cache, cache_update_index=step)
        np.testing.assert_allclose(to_numpy(out)[:, 0], full[:, step], atol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("rerope", [{"window": 3, "leak": 0.0}, {"window": 2, "leak": 0.25}],
                         ids=["rerope", "leaky"])
def test_rerope_matches_numpy(rerope, tmp_path):
    """Bidirectional ReRoPE with padding and custom positions, against the formula."""
    from tests.layers.test_rotary import numpy_rerope_logits

    x = RNG.normal(size=(2, 7, 16)).astype("float32")
    mask = np.ones((2, 7, 7), bool)
    mask[1, :, 5:] = False
    positions = np.array([[0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 0, 0]])
    init = dict(heads=2, head_size=6, key_size=8, out_dim=16, rerope=rerope,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=1))
    kwargs = {"attention_mask": mask, "position_ids": positions}
    run_layer_test(MultiHeadAttention, init, x, kwargs, (2, 7, 16), tmp_path)
    layer = MultiHeadAttention(**init)
    output = to_numpy(layer(x, **kwargs))
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = [
        (to_numpy(d.kernel), to_numpy(d.bias))
        for d in (layer.q_dense, layer.k_dense, layer.v_dense, layer.o_dense)]
    for row in range(2):
        q = (x[row] @ wq + bq).reshape(7, 2, 8).transpose(1, 0, 2)
        k = (x[row] @ wk + bk).reshape(7, 2, 8).transpose(1, 0, 2)
        v = (x[row] @ wv + bv).reshape(7, 2, 6)
        logits = numpy_rerope_logits(q, k, positions[row], positions[row], **rerope) / math.sqrt(8)
        weights = numpy_normalize(logits, mask[row][None], "softmax", 1)
        expected = np.einsum("hqk,khd->qhd", weights, v).reshape(7, 12) @ wo + bo
        np.testing.assert_allclose(output[row], expected, atol=1e-5)


def test_rerope_with_a_window_past_the_sequence_is_plain_rope():
    x = RNG.normal(size=(2, 6, 16)).astype("float32")
    init = dict(heads=4, head_size=4, num_key_value_heads=2,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=3))
    plain, rerope, narrow = with_plain_weights(x, init, {"rerope": {"window": 6, "leak": 0.5}},
                                               {"rerope": {"window": 2, "leak": 0.0}})
    table = to_numpy(sinusoidal_embeddings(np.arange(6)[None], 4))
    assert_all_close(rerope(x), plain(x, rotary_embeddings=table), atol=1e-5)
    assert np.abs(to_numpy(narrow(x)) - to_numpy(plain(x, rotary_embeddings=table))).max() > 1e-3


@pytest.mark.backends
@pytest.mark.parametrize("leak", [0.0, 0.25], ids=["rerope", "leaky"])
def test_cached_rerope_decoding_equals_full_pass(leak):
    """A prefix of three rows of different lengths fills the cache (several queries),
    then one token per step (one query per row): every output equals the causal
    full pass's, under grouped-query attention and KeyNorm."""
    layer = MultiHeadAttention(heads=4, head_size=4, num_key_value_heads=2, key_norm="key",
                               rerope={"window": 2, "leak": leak},
                               kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=4))
    x = RNG.normal(size=(1, 8, 8)).astype("float32")
    positions = np.arange(8)
    causal = positions[None, :, None] >= positions[None, None, :]
    full = to_numpy(layer(x, attention_mask=causal))
    cache = layer.init_cache(batch_size=1, max_length=8)
    assert len(cache) == 3 and tuple(cache[2].shape) == (1, 8)  # keys' positions
    out, cache = layer(x[:, :3], attention_mask=causal[:, :3], position_ids=positions[None, :3],
                       cache=cache, cache_update_index=0)
    np.testing.assert_allclose(to_numpy(out), full[:, :3], atol=1e-5)
    for step in range(3, 8):
        out, cache = layer(x[:, step:step + 1], attention_mask=causal[:, step:step + 1],
                           position_ids=positions[None, step:step + 1], cache=cache,
                           cache_update_index=step)
        np.testing.assert_allclose(to_numpy(out)[:, 0], full[:, step], atol=1e-5)


def test_sliding_window_is_a_band_mask():
    """A window hides the keys `window` or more positions away (by position ids, so
    padding positions count as theirs); cached decoding equals the full pass."""
    x = RNG.normal(size=(2, 7, 16)).astype("float32")
    init = dict(heads=2, head_size=4, kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.3, seed=5))
    plain, windowed = with_plain_weights(x, init, {"window": 3})
    positions = np.array([[0, 1, 2, 3, 4, 5, 6], [4, 5, 6, 7, 8, 9, 10]])
    causal = np.tril(np.ones((7, 7), bool))[None].repeat(2, 0)
    band = np.abs(positions[:, :, None] - positions[:, None, :]) < 3
    assert_all_close(windowed(x, attention_mask=causal, position_ids=positions),
                     plain(x, attention_mask=causal & band), atol=1e-6)
    assert_all_close(windowed(x), plain(x, attention_mask=band[:1]), atol=1e-6)
    full = to_numpy(windowed(x, attention_mask=causal))
    cache = windowed.init_cache(batch_size=2, max_length=7)
    for step in range(7):
        out, cache = windowed(x[:, step:step + 1], attention_mask=causal[:, step:step + 1],
                              position_ids=np.array([[step]]), cache=cache,
                              cache_update_index=step)
        np.testing.assert_allclose(to_numpy(out)[:, 0], full[:, step], atol=1e-5)


@pytest.mark.parametrize("options, message", [
    ({"key_norm": "l2"}, "key_norm must be one of"),
    ({"log_scale_length": 1}, "log_scale_length must be an integer >= 2"),
    ({"num_key_value_heads": 3}, "num_key_value_heads must divide the 2 heads"),
    ({"window": 0}, "window must be a positive integer"),
    ({"rerope": {"window": 4}}, "rerope must be a dict with window and leak"),
])
def test_bad_length_options(options, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(heads=2, head_size=4, **options)


@pytest.mark.backends
def test_additive_bias(tmp_path):
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    keep = RNG.random((2, 5, 5)) > 0.3
    keep[:, :, 0] = True
    bias = (-(1.0 - keep) * 1e12).astype("float32")  # UniVAE's additive form of a mask
    init = dict(heads=2, head_size=4, kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=2))
    layer = MultiHeadAttention(**init)
    with_bias = layer(x, attention_bias=bias)
    assert_all_close(with_bias, layer(x, attention_mask=keep), atol=1e-6)
    soft = RNG.normal(size=(2, 2, 5, 5)).astype("float32")  # per-head bias
    ones = np.ones((2, 5, 5), bool)
    assert_all_close(layer(x, attention_bias=soft), numpy_attention(layer, x, ones, bias=soft), atol=1e-5)
    run_layer_test(MultiHeadAttention, init, x, {"attention_bias": soft}, (2, 5, 8), tmp_path)


@pytest.mark.backends
def test_cached_decoding_equals_full_pass():
    """Feeding tokens one by one through the KV cache reproduces the causal pass."""
    layer = MultiHeadAttention(heads=2, head_size=4)
    x = RNG.normal(size=(2, 6, 8)).astype("float32")
    positions = np.arange(6)
    causal = positions[None, :, None] >= positions[None, None, :]
    table = to_numpy(sinusoidal_embeddings(positions[None], 4))
    full = to_numpy(layer(x, attention_mask=causal, rotary_embeddings=table))
    cache = layer.init_cache(batch_size=2, max_length=6)
    for step in range(6):
        out, cache = layer(
            x[:, step:step + 1],
            attention_mask=causal[:, step:step + 1],
            rotary_embeddings=table[:, step:step + 1],
            cache=cache,
            cache_update_index=step,
        )
        np.testing.assert_allclose(to_numpy(out)[:, 0], full[:, step], atol=1e-5)


@pytest.mark.parametrize("method", ["softmax", "softmax_plus", "squared_relu"])
@pytest.mark.parametrize("floor", [1, 16])
def test_attention_normalize_matches_numpy(method, floor):
    logits = RNG.normal(size=(2, 5, 5)).astype("float32") * 3
    mask = np.tril(np.ones((5, 5), bool))[None].repeat(2, 0)  # row i sees i + 1 keys
    mask[1, 3:, 1:] = False
    got = to_numpy(attention_normalize(logits, mask, method, floor))
    np.testing.assert_allclose(got, numpy_normalize(logits, mask, method, floor), atol=1e-6)
    assert (got[~mask] == 0).all()


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16", "bfloat16"])
def test_fully_masked_rows_stay_finite(policy):
    layer = MultiHeadAttention(heads=2, head_size=4, dtype=policy)
    x = RNG.normal(size=(1, 3, 8)).astype("float32")
    mask = np.zeros((1, 3, 3), bool)  # nothing visible at all
    output = to_numpy(keras.ops.cast(layer(x, attention_mask=mask), "float32"))
    assert np.isfinite(output).all()
    for method in ("softmax", "softmax_plus", "squared_relu"):
        weights = to_numpy(attention_normalize(np.zeros((1, 3, 3), "float32"), mask, method))
        assert np.isfinite(weights).all()


def test_reduced_precision():
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    mask = np.ones((2, 1, 5), bool)
    run_precision_test(MultiHeadAttention, dict(heads=2, head_size=4), x, {"attention_mask": mask})


def test_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="normalization"):
        MultiHeadAttention(heads=1, head_size=4, normalization="sparsemax")
