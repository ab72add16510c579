"""Sinusoidal position tables and the interleaved rotary position embedding (RoPE).

RoPE as Su Jianlin defined it (https://kexue.fm/archives/8265) and as every RoFormer
family checkpoint was trained: feature pairs are ADJACENT dimensions (2i, 2i+1), not
the two halves of the head as in GPT-NeoX/LLaMA. Swapping layouts silently breaks any
checkpoint, so this module offers only the interleaved one.
"""
import math

import keras
from keras import ops

from kerasformer.checks import check_integer
from kerasformer.layers.embeddings import MERGE_MODES, merge_embeddings

# Position scalings of RoPE for sequences longer than the training length
# (https://kexue.fm/archives/9675, /9706; transformers' modeling_rope_utils):
# "linear" (position interpolation), "ntk" (NTK-aware base), "dynamic_ntk" (the NTK
# base grown with the current length), "ntk_mixed" (Su's per-frequency schedule).
ROPE_SCALINGS = ("linear", "ntk", "dynamic_ntk", "ntk_mixed")
# Scalings of the relative position instead of the frequencies
# (https://kexue.fm/archives/9708): "rerope" clips `i − j` at a window w; "leaky_rerope"
# lets it grow by 1/k past the window. Attention then needs the positions themselves,
# not a table (see `rerope_logits`).
RELATIVE_SCALINGS = ("rerope", "leaky_rerope")
# ntk_mixed's exponent b in `exp(−a·m^b)` (bojone/rerope ntk_patch.py).
NTK_MIXED_EXPONENT = 0.75


def check_rope_scaling(scaling):
    """A `rope_scaling` option as a plain dict, or a clear error.

    `{"type": one of ROPE_SCALINGS, "factor": k ≥ 1}`, and for "dynamic_ntk" the
    training length `"original_max_position"`; "ntk_mixed" takes the exponent `"b"`
    (default 0.75). `{"type": "rerope", "window": w}` and
    `{"type": "leaky_rerope", "window": w, "factor": k > 1}` scale relative
    positions instead. None means plain RoPE.
    """
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise TypeError(f"rope_scaling must be a dict like {{'type': 'ntk', 'factor': 4}}, "
                        f"got {scaling!r}")
    allowed = {"type", "factor", "original_max_position", "b", "window"}
    unknown = sorted(set(scaling) - allowed)
    if unknown:
        raise ValueError(f"rope_scaling: unknown key(s) {unknown}; known: {sorted(allowed)}")
    kind = scaling.get("type")
    if kind not in ROPE_SCALINGS + RELATIVE_SCALINGS:
        raise ValueError(f"rope_scaling type must be one of {ROPE_SCALINGS + RELATIVE_SCALINGS},"
                         f" got {kind!r}")
    if kind in RELATIVE_SCALINGS:
        return _check_relative_scaling(scaling)
    if "window" in scaling:
        raise ValueError(f"window is an argument of rerope and leaky_rerope, not {kind}")
    factor = scaling.get("factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
        raise ValueError(f"rope_scaling factor must be a number >= 1, got {factor!r}")
    checked = {"type": kind, "factor": float(factor)}
    length = scaling.get("original_max_position")
    if kind == "dynamic_ntk":
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError("dynamic_ntk needs original_max_position, the training length "
                             f"(a positive integer), got {length!r}")
        checked["original_max_position"] = length
    elif length is not None:
        raise ValueError(f"original_max_position is an argument of dynamic_ntk, not {kind}")
    if "b" in scaling:
        if kind != "ntk_mixed":
            raise ValueError(f"b is an argument of ntk_mixed, not {kind}")
        b = scaling["b"]
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0:
            raise ValueError(f"ntk_mixed's b must be a positive number, got {b!r}")
        checked["b"] = float(b)
    return checked


def _check_relative_scaling(scaling):
    kind = scaling["type"]
    for key in ("original_max_position", "b"):
        if key in scaling:
            raise ValueError(f"{key} is not an argument of {kind}")
    window = scaling.get("window")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"{kind} needs window, the relative position where it starts "
                         f"(a positive integer), got {window!r}")
    checked = {"type": kind, "window": window}
    factor = scaling.get("factor")
    if kind == "rerope":
        if factor is not None:
            raise ValueError("rerope takes no factor (past the window every relative position "
                             "is the window); leaky_rerope grows it by 1/factor")
        return checked
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1:
        raise ValueError(f"leaky_rerope needs factor > 1 (relative positions past the window "
                         f"grow by 1/factor), got {factor!r}")
    checked["factor"] = float(factor)
    return checked


def relative_position_options(scaling, causal=False):
    """The `rerope` option of attention layers for a checked `rope_scaling`:
    `{"window": w, "leak": 1/k, "causal": causal}` (leak 0 for ReRoPE), or None for
    the scalings of frequencies, which reach attention as a table. `causal`: the
    attention never sees a later key (a causal LM), so the mirrored scores are skipped."""
    if scaling is None or scaling["type"] not in RELATIVE_SCALINGS:
        return None
    leak = 1.0 / scaling["factor"] if scaling["type"] == "leaky_rerope" else 0.0
    return {"window": scaling["window"], "leak": leak, "causal": bool(causal)}


def rope_inverse_frequencies(dim, base=10000.0, scaling=None, length=None):
    """RoPE's `θ_i = base^(−2i/dim)`, `i < dim/2`, under a position scaling.

    Args:
        dim: even int, the head size.
        base: float.
        scaling: a `check_rope_scaling` dict, or None.
        length: the current sequence length (a scalar tensor), for "dynamic_ntk".

    Returns:
        float32 `(dim/2,)`.
    """
    indices = ops.arange(0, dim // 2, dtype="float32")
    exponents = -2 * indices / dim
    base = ops.cast(base, "float32")
    kind = None if scaling is None else scaling["type"]
    if kind == "ntk":
        base = base * scaling["factor"] ** (dim / (dim - 2))
    elif kind == "dynamic_ntk":
        # unchanged up to the training length, then NTK for k·L/L_train − (k − 1)
        factor = scaling["factor"]
        ratio = ops.cast(length, "float32") / scaling["original_max_position"]
        base = base * ops.power(ops.maximum(factor * ratio - (factor - 1.0), 1.0),
                                dim / (dim - 2))
    frequencies = ops.power(base, exponents)
    if kind == "linear":  # positions divided by k, i.e. every frequency
        return frequencies / scaling["factor"]
    if kind == "ntk_mixed":
        # θ_m = base^(−2(m−1)/d)·exp(−a·m^b), m = 1…d/2: the lowest divided by exactly k
        b = scaling.get("b", NTK_MIXED_EXPONENT)
        a = math.log(scaling["factor"]) / (dim / 2) ** b
        return frequencies * ops.exp(-a * ops.power(indices + 1.0, b))
    return frequencies


def sinusoidal_embeddings(position_ids, dim, base=10000.0, scaling=None):
    """Interleaved sinusoid `[sin θ0, cos θ0, sin θ1, cos θ1, ...]` of positions.

    `θ_i = p · base^(−2i/dim)` for `i < dim/2`, computed in float32 in the same order
    of operations as bert4keras so that tables agree to the last bit.

    Args:
        position_ids: positions of any shape (cast to float32).
        dim: even int, the table width (the head size for RoPE).
        base: float, the wavelength base.
        scaling: a `check_rope_scaling` dict (RoPE scaling), or None. "dynamic_ntk"
            takes the current length as the largest position + 1.

    Returns:
        float32 tensor of shape `position_ids.shape + (dim,)`.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embeddings need an even size, got {dim}")
    position_ids = ops.cast(position_ids, "float32")
    length = None  # dynamic NTK's current length: the largest position + 1
    if scaling is not None and scaling["type"] == "dynamic_ntk":
        length = ops.max(position_ids) + 1.0
    return sinusoid(position_ids, rope_inverse_frequencies(dim, base, scaling, length))


def sinusoid(positions, inverse_frequencies):
    """The interleaved `[sin θ0, cos θ0, ...]` table, `θ_i = p · inverse_frequencies[i]`,
    of float32 `positions` of any shape: `positions.shape + (2 · frequencies,)`."""
    angles = ops.einsum("...,d->...d", positions, inverse_frequencies)
    table = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return ops.reshape(table, tuple(ops.shape(angles)[:-1]) + (2 * angles.shape[-1],))


def apply_rotary_position_embeddings(sinusoid, *tensors):
    """Rotates each adjacent pair of features of `tensors` by its position's angle.

    Args:
        sinusoid: `(batch or 1, seq, dim)` table from `sinusoidal_embeddings`.
        *tensors: tensors of shape `(batch, seq, ..., dim)`, typically queries and
            keys `(batch, seq, heads, head_dim)`.

    Returns:
        The rotated tensor, or a list of them when several are given:
        `x'_{2i} = x_{2i} cos θ_i − x_{2i+1} sin θ_i`,
        `x'_{2i+1} = x_{2i+1} cos θ_i + x_{2i} sin θ_i`.
    """
    outputs = []
    for x in tensors:
        table = sinusoid
        while len(table.shape) < len(x.shape):
            table = ops.expand_dims(table, -2)  # broadcast over heads
        table = ops.cast(table, x.dtype)
        half = x.shape[-1] // 2
        table = ops.reshape(table, tuple(ops.shape(table)[:-1]) + (half, 2))
        sin, cos = table[..., 0], table[..., 1]
        pairs = ops.reshape(x, tuple(ops.shape(x)[:-1]) + (half, 2))
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = ops.stack([even * cos - odd * sin, odd * cos + even * sin], axis=-1)
        outputs.append(ops.reshape(rotated, ops.shape(x)))
    return outputs[0] if len(outputs) == 1 else outputs


def check_rerope(options):
    """An attention layer's `rerope` option (`{"window": w ≥ 1, "leak": 0 ≤ l < 1}`
    and optionally `"causal": bool`, from `relative_position_options`) as a plain
    dict, or a clear error."""
    if options is None:
        return None
    if not isinstance(options, dict) or not {"window", "leak"} <= set(options) \
            or not set(options) <= {"window", "leak", "causal"}:
        raise ValueError(f"rerope must be a dict with window and leak (and causal), got "
                         f"{options!r}")
    window = check_integer(options["window"], "rerope window")
    leak = options["leak"]
    if isinstance(leak, bool) or not isinstance(leak, (int, float)) or not 0 <= leak < 1:
        raise ValueError(f"rerope leak must be a number in [0, 1), got {leak!r}")
    causal = options.get("causal", False)
    if not isinstance(causal, bool):
        raise ValueError(f"rerope causal must be True or False, got {causal!r}")
    return {"window": window, "leak": float(leak), "causal": causal}


def rerope_relative_positions(relative, window, leak):
    """ReRoPE's relative position of `relative = i − j`: itself inside the window
    (|i − j| < w), else `±(w + (|i − j| − w)·leak)` — the window for ReRoPE (leak 0),
    growing by 1/k for Leaky ReRoPE (leak 1/k)."""
    magnitude = ops.abs(relative)
    outside = ops.sign(relative) * (window + (magnitude - window) * leak)
    return ops.where(magnitude < window, relative, outside)


def rerope_logits(query, key, query_positions, key_positions, window, leak, causal=False,
                  base=10000.0):
    """Query-key dot products at ReRoPE's relative positions
    (https://kexue.fm/archives/9708), for bidirectional and causal attention.

    Neither queries nor keys come rotated: a KV cache holds keys before rotation, and
    their positions. One query per row (a decoding step) rotates each key by its
    own clipped distance `rerope_relative_positions(i − j)`: one product. More
    queries take bojone's form instead of a rotated key per pair: plain RoPE scores
    where `|i − j| < w`, and past the window the scores of queries at
    `i·leak ± w(1 − leak)` against keys at `j·leak` (at 0 for ReRoPE), whose
    relative position is exactly the clipped one.

    Args:
        query: `(batch, kv_heads, group, queries, d)` (group: query heads per
            key/value head).
        key: `(batch, kv_heads, keys, d)`.
        query_positions: `(batch or 1, queries)`.
        key_positions: `(batch or 1, keys)`.
        window: int, w. Relative positions from w on are scaled.
        leak: float in [0, 1): 0 for ReRoPE, 1/k for Leaky ReRoPE.
        causal: bool. The mask hides every later key: the scores of keys w or more
            positions after a query (masked anyway) are not computed.
        base: float, RoPE's wavelength base.

    Returns:
        `(batch, kv_heads, group, queries, keys)` logits, unscaled.
    """
    inverse_frequencies = rope_inverse_frequencies(query.shape[-1], base)
    query_positions = ops.cast(query_positions, "float32")
    key_positions = ops.cast(key_positions, "float32")
    key = ops.cast(key, query.dtype)
    if query.shape[3] == 1:  # one query: rotate each key to its distance from it
        relative = query_positions - key_positions  # (batch or 1, keys)
        clipped = rerope_relative_positions(relative, window, leak)
        key = _rotate(key, -clipped, inverse_frequencies)
        return ops.einsum("bhgqd,bhkd->bhgqk", query, key)

    def product(query_at, key):
        return ops.einsum("bhgqd,bhkd->bhgqk",
                          _rotate(query, query_at, inverse_frequencies), key)

    inside = product(query_positions, _rotate(key, key_positions, inverse_frequencies))
    scaled_keys = key if not leak else _rotate(key, key_positions * leak, inverse_frequencies)
    shift = window * (1.0 - leak)
    after = product(query_positions * leak + shift, scaled_keys)  # i − j ≥ w
    relative = query_positions[:, :, None] - key_positions[:, None, :]  # (batch or 1, q, k)
    relative = relative[:, None, None]  # over heads and groups
    if causal:
        return ops.where(relative >= window, after, inside)
    before = product(query_positions * leak - shift, scaled_keys)  # i − j ≤ −w
    return ops.where(relative >= window, after, ops.where(relative <= -window, before, inside))


def _rotate(x, positions, inverse_frequencies):
    """`x` `(batch, ..., n, d)` rotated by `positions` `(batch or 1, n)`."""
    table = sinusoid(positions, inverse_frequencies)
    while len(table.shape) < len(x.shape):
        table = ops.expand_dims(table, 1)  # over the head axes
    return apply_rotary_position_embeddings(table, x)


@keras.saving.register_keras_serializable(package="kerasformer")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sinusoidal position embeddings, merged into the input or returned alone.

    With `merge_mode="zero"` it yields the table that RoFormer feeds to every
    attention layer for RoPE (`Embedding-Rotary-Position`).

    Args:
        output_dim: even int. Table width.
        merge_mode: one of "add", "mul", "zero", "concat".
        base: float. Wavelength base (10000 in every released checkpoint).
        scaling: a RoPE position scaling (see `check_rope_scaling`), or None.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, seq, ...)` tensor whose sequence axis gives the positions.
        position_ids: optional `(batch, seq)` positions; defaults to `0..seq-1`.
    """

    def __init__(self, output_dim, merge_mode="add", base=10000.0, scaling=None, **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.output_dim = output_dim
        self.merge_mode = merge_mode
        self.base = float(base)
        self.scaling = check_rope_scaling(scaling)
        self.supports_masking = True

    def call(self, inputs, position_ids=None):
        if position_ids is None:
            position_ids = ops.arange(ops.shape(inputs)[1], dtype="float32")[None]
        table = sinusoidal_embeddings(position_ids, self.output_dim, self.base, self.scaling)
        if self.merge_mode == "zero":
            return table
        return merge_embeddings(
            inputs, ops.cast(table, inputs.dtype), self.merge_mode
        )

    def compute_mask(self, inputs, mask=None):
        # A bare table has no padding of its own.
        return None if self.merge_mode == "zero" else mask

    def compute_output_spec(self, inputs, position_ids=None):
        batch = 1 if position_ids is None else inputs.shape[0]
        if self.merge_mode == "zero":
            return keras.KerasTensor(
                (batch, inputs.shape[1], self.output_dim), dtype="float32"
            )
        width = self.output_dim
        if self.merge_mode == "concat":
            width += inputs.shape[-1]
        return keras.KerasTensor(tuple(inputs.shape[:-1]) + (width,), dtype=inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "merge_mode": self.merge_mode,
                "base": self.base,
                "scaling": self.scaling,
            }
        )
        return config
