"""GlobalPointer span scorers (https://kexue.fm/archives/8373, /8877), as in bert4keras.

Each head scores every span `(start, end)` of the sequence at once, so nested and
overlapping entities need no tagging scheme. Spans that touch padding, and (by default)
spans with `start > end`, score `-inf`; train with
`kerasformer.backend.sparse_multilabel_categorical_crossentropy` or
`multilabel_categorical_crossentropy`, and predict the spans whose score is > 0.
"""
import math

import keras
from keras import ops

from kerasformer.layers.rotary import apply_rotary_position_embeddings, sinusoidal_embeddings
from kerasformer.layers.sequence import sequence_masking


@keras.saving.register_keras_serializable(package="kerasformer")
class GlobalPointer(keras.layers.Layer):
    """Multi-head span scorer: `score_h(i, j) = q_h(i) · k_h(j) / sqrt(head_size)`.

    One Dense of width `heads · head_size · 2` (sub-layer `dense`) gives, per head,
    the query (first half) and key (second half) of every token; with `RoPE` both are
    rotated by their position (interleaved rotary embedding of width `head_size`), so
    the score depends on the span's length.

    Args:
        heads: int. Number of span types.
        head_size: int (even when `RoPE`). Query/key width per head.
        RoPE: bool. Rotary position embeddings on queries and keys.
        use_bias: bool. Bias in the projection.
        tril_mask: bool. Score `-inf` for spans whose start is after their end.
        kernel_initializer: initializer of the projection.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, seq, hidden)`.
        mask: optional `(batch, seq)` padding mask (the Keras mask of `inputs`).

    Returns:
        float32 `(batch, heads, seq, seq)` span scores, `-inf` where masked.
    """

    def __init__(
        self,
        heads,
        head_size,
        RoPE=True,
        use_bias=True,
        tril_mask=True,
        kernel_initializer="lecun_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if RoPE and head_size % 2:
            raise ValueError(f"RoPE needs an even head_size, got {head_size}")
        self.heads = heads
        self.head_size = head_size
        self.RoPE = RoPE
        self.use_bias = use_bias
        self.tril_mask = tril_mask
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        self._make_projections()

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _make_projections(self):
        self.dense = self._dense(self.heads * self.head_size * 2, "dense")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def _rotate(self, query, key):
        """RoPE on `(batch, seq, ..., head_size)` queries and keys."""
        if not self.RoPE:
            return query, key
        positions = ops.arange(ops.shape(query)[1], dtype="float32")[None]
        sinusoid = sinusoidal_embeddings(positions, self.head_size)
        return apply_rotary_position_embeddings(sinusoid, query, key)

    def _mask(self, logits, mask):
        """`-inf` on padded starts/ends and, with `tril_mask`, on start > end."""
        order = None
        if self.tril_mask:
            positions = ops.arange(ops.shape(logits)[-1])
            order = ops.less_equal(positions[:, None], positions[None, :])
        return sequence_masking(logits, mask, float("-inf"), [2, 3], order)

    def call(self, inputs, mask=None):
        projected = self.dense(inputs)
        projected = ops.reshape(
            projected, tuple(ops.shape(projected)[:2]) + (self.heads, 2 * self.head_size)
        )
        query, key = self._rotate(
            projected[..., : self.head_size], projected[..., self.head_size :]
        )
        logits = ops.einsum("bmhd,bnhd->bhmn", query, key) / math.sqrt(self.head_size)
        return self._mask(ops.cast(logits, "float32"), mask)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs, mask=None):
        batch, length = inputs.shape[:2]
        return keras.KerasTensor((batch, self.heads, length, length), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "heads": self.heads,
                "head_size": self.head_size,
                "RoPE": self.RoPE,
                "use_bias": self.use_bias,
                "tril_mask": self.tril_mask,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="kerasformer")
class EfficientGlobalPointer(GlobalPointer):
    """GlobalPointer with one query/key projection shared by all heads.

    `p_dense` (width `2 · head_size`) gives a shared query (even channels) and key
    (odd channels); the heads differ only by `q_dense` (width `2 · heads`, applied to
    the `p_dense` output), whose even channels add a per-head bias for the span's end
    and whose odd channels one for its start, both halved:
    `score_h(i, j) = q(i)·k(j)/sqrt(head_size) + (b_h^start(i) + b_h^end(j)) / 2`.
    Arguments, call and output are those of `GlobalPointer`.
    """

    def _make_projections(self):
        self.p_dense = self._dense(self.head_size * 2, "p_dense")
        self.q_dense = self._dense(self.heads * 2, "q_dense")

    def build(self, input_shape):
        self.p_dense.build(input_shape)
        self.q_dense.build(tuple(input_shape[:-1]) + (self.head_size * 2,))

    def call(self, inputs, mask=None):
        projected = self.p_dense(inputs)  # (batch, seq, 2 · head_size)
        batch_and_length = tuple(ops.shape(projected)[:2])
        pairs = ops.reshape(projected, batch_and_length + (self.head_size, 2))
        query, key = self._rotate(pairs[..., 0], pairs[..., 1])
        logits = ops.einsum("bmd,bnd->bmn", query, key) / math.sqrt(self.head_size)
        bias = ops.reshape(self.q_dense(projected), batch_and_length + (self.heads, 2))
        bias = ops.transpose(bias, (0, 2, 1, 3)) / 2  # (batch, heads, seq, 2)
        end_bias, start_bias = bias[..., 0], bias[..., 1]
        logits = logits[:, None] + end_bias[:, :, None, :] + start_bias[:, :, :, None]
        return self._mask(ops.cast(logits, "float32"), mask)
