"""Sinusoidal position tables and the interleaved rotary position embedding (RoPE).

RoPE as Su Jianlin defined it (https://kexue.fm/archives/8265) and as every RoFormer
family checkpoint was trained: feature pairs are ADJACENT dimensions (2i, 2i+1), not
the two halves of the head as in GPT-NeoX/LLaMA. Swapping layouts silently breaks any
checkpoint, so this module offers only the interleaved one.
"""
import keras
from keras import ops

from kerasformer.layers.embeddings import MERGE_MODES, merge_embeddings


def sinusoidal_embeddings(position_ids, dim, base=10000.0):
    """Interleaved sinusoid `[sin θ0, cos θ0, sin θ1, cos θ1, ...]` of positions.

    `θ_i = p · base^(−2i/dim)` for `i < dim/2`, computed in float32 in the same order
    of operations as bert4keras so that tables agree to the last bit.

    Args:
        position_ids: positions of any shape (cast to float32).
        dim: even int, the table width (the head size for RoPE).
        base: float, the wavelength base.

    Returns:
        float32 tensor of shape `position_ids.shape + (dim,)`.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embeddings need an even size, got {dim}")
    position_ids = ops.cast(position_ids, "float32")
    indices = ops.arange(0, dim // 2, dtype="float32")
    inverse_frequencies = ops.power(ops.cast(base, "float32"), -2 * indices / dim)
    angles = ops.einsum("...,d->...d", position_ids, inverse_frequencies)
    table = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return ops.reshape(table, tuple(ops.shape(angles)[:-1]) + (dim,))


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


@keras.saving.register_keras_serializable(package="kerasformer")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Fixed sinusoidal position embeddings, merged into the input or returned alone.

    With `merge_mode="zero"` it yields the table that RoFormer feeds to every
    attention layer for RoPE (`Embedding-Rotary-Position`).

    Args:
        output_dim: even int. Table width.
        merge_mode: one of "add", "mul", "zero", "concat".
        base: float. Wavelength base (10000 in every released checkpoint).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, seq, ...)` tensor whose sequence axis gives the positions.
        position_ids: optional `(batch, seq)` positions; defaults to `0..seq-1`.
    """

    def __init__(self, output_dim, merge_mode="add", base=10000.0, **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.output_dim = output_dim
        self.merge_mode = merge_mode
        self.base = float(base)
        self.supports_masking = True

    def call(self, inputs, position_ids=None):
        if position_ids is None:
            position_ids = ops.arange(ops.shape(inputs)[1], dtype="float32")[None]
        table = sinusoidal_embeddings(position_ids, self.output_dim, self.base)
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
            }
        )
        return config
