import math

import keras
import numpy as np
import pytest

from kerasformer.layers import GatedAttentionUnit, sinusoidal_embeddings
from tests.helpers import run_layer_test, run_precision_test, to_numpy
from tests.layers.test_attention import numpy_rope

RNG = np.random.default_rng(0)


def swish(x):
    return x / (1 + np.exp(-x))


def numpy_normalize(logits, mask, method, floor):
    """The three normalisations written out row by row."""
    weights = np.zeros_like(logits, dtype=np.float64)
    for index in np.ndindex(logits.shape[:-1]):
        row, keep = logits[index].astype(np.float64), mask[index]
        visible = keep.sum()
        if method == "squared_relu":
            weights[index] = np.where(keep, np.maximum(row, 0) ** 2, 0) / visible
            continue
        if method == "softmax_plus":
            row = row * math.log(max(visible, floor)) / math.log(512)
        exp = np.where(keep, np.exp(row - row[keep].max()), 0)
        weights[index] = exp / exp.sum()
    return weights


def numpy_gau(layer, x, mask, table):
    kernel_i = to_numpy(layer.i_dense.kernel)
    kernel_o = to_numpy(layer.o_dense.kernel)
    hidden = swish(x @ kernel_i)
    e = layer.units
    u, v, base = hidden[..., :e], hidden[..., e:2 * e], hidden[..., 2 * e:]
    q = numpy_rope(base * to_numpy(layer.q_scaleoffset.gamma), table)
    k = numpy_rope(base * to_numpy(layer.k_scaleoffset.gamma), table)
    logits = np.einsum("bqd,bkd->bqk", q, k) / math.sqrt(layer.key_size)
    weights = numpy_normalize(logits, mask, layer.normalization, layer.length_floor)
    return (u * np.einsum("bqk,bkd->bqd", weights, v)) @ kernel_o


@pytest.mark.backends
@pytest.mark.parametrize("normalization", ["softmax", "softmax_plus", "squared_relu"])
@pytest.mark.parametrize("length_floor", [1, 16])
def test_matches_numpy(normalization, length_floor):
    x = RNG.normal(size=(2, 6, 12)).astype("float32")
    # causal rows see 1..6 keys — fewer than a floor of 16 — and row 1 has padding
    mask = np.tril(np.ones((6, 6), bool))[None].repeat(2, 0)
    mask[1, :, 4:] = False
    mask[1, 4:, 0] = True
    table = to_numpy(sinusoidal_embeddings(np.arange(6)[None], 8))
    layer = GatedAttentionUnit(
        units=10, key_size=8, use_bias=False, normalization=normalization,
        length_floor=length_floor,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.4, seed=3),
    )
    output = layer(x, attention_mask=mask, rotary_embeddings=table)
    for gamma in (layer.q_scaleoffset.gamma, layer.k_scaleoffset.gamma):
        gamma.assign(RNG.normal(1.0, 0.3, gamma.shape))
    output = to_numpy(layer(x, attention_mask=mask, rotary_embeddings=table))
    np.testing.assert_allclose(output, numpy_gau(layer, x, mask, table), atol=2e-5)


@pytest.mark.backends
def test_cached_decoding_equals_full_pass():
    layer = GatedAttentionUnit(units=6, key_size=4, normalization="softmax_plus")
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    causal = np.tril(np.ones((5, 5), bool))[None]
    table = to_numpy(sinusoidal_embeddings(np.arange(5)[None], 4))
    full = to_numpy(layer(x, attention_mask=causal, rotary_embeddings=table))
    cache = layer.init_cache(batch_size=2, max_length=5)
    for step in range(5):
        out, cache = layer(
            x[:, step:step + 1], attention_mask=causal[:, step:step + 1],
            rotary_embeddings=table[:, step:step + 1], cache=cache, cache_update_index=step,
        )
        np.testing.assert_allclose(to_numpy(out)[:, 0], full[:, step], atol=1e-5)


def test_config_saving_and_precision(tmp_path):
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    mask = np.ones((2, 1, 5), bool)
    init = {"units": 6, "key_size": 4, "use_bias": True, "activation": "gelu_new"}
    run_layer_test(GatedAttentionUnit, init, x, {"attention_mask": mask}, (2, 5, 8), tmp_path)
    run_precision_test(GatedAttentionUnit, init, x, {"attention_mask": mask})
    layer = GatedAttentionUnit(**init)
    layer(x)
    assert sorted(w.path.split("/", 1)[1] for w in layer.weights) == [
        "i_dense/bias", "i_dense/kernel", "k_scaleoffset/beta", "k_scaleoffset/gamma",
        "o_dense/bias", "o_dense/kernel", "q_scaleoffset/beta", "q_scaleoffset/gamma",
    ]
