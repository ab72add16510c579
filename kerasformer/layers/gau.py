"""The Gated Attention Unit (https://arxiv.org/abs/2202.10447), as GAU-α uses it."""
import keras
from keras import ops

from kerasformer.layers.activations import get_activation, serialize_activation
from kerasformer.layers.attention import NORMALIZATIONS, attention_normalize, attended_keys
from kerasformer.layers.normalization import ScaleOffset
from kerasformer.layers.rotary import apply_rotary_position_embeddings, check_rerope, rerope_logits


@keras.saving.register_keras_serializable(package="kerasformer")
class GatedAttentionUnit(keras.layers.Layer):
    """Single-head gated attention that replaces both attention and feed-forward.

    `h = act(i_dense(x))` is split into `u` and `v` (`units` each) and a shared
    query/key base `z` (`key_size`); queries and keys are per-dimension scalings of
    `z` (`q_scaleoffset`, `k_scaleoffset`, with offsets when `use_bias`), rotated by
    RoPE when a table is given; the output is `o_dense(u ⊙ (A · v))` with `A` the
    normalised attention (https://kexue.fm/archives/8934, /9052).

    Args:
        units: int. Width of `u` and `v` (`intermediate_size`).
        key_size: int. Width of queries and keys (`attention_key_size`).
        activation: activation of `i_dense`, applied to all its outputs.
        use_bias: bool. Biases on the projections and offsets on q/k.
        normalization: "softmax", "softmax_plus" (GAU-α) or "squared_relu" (paper).
        attention_scale: bool. Divide logits by `sqrt(key_size)`.
        attention_dropout: float. Dropout on the attention weights.
        length_floor: int. `softmax_plus` floor on the visible-key count: 1 is what
            GAU-α was trained with; bert4keras 0.11.5 uses 16.
        rerope: None, or `{"window": w, "leak": l}`: ReRoPE / Leaky ReRoPE instead
            of a RoPE table, as in `MultiHeadAttention`.
        kernel_initializer: initializer of the projections.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, seq, hidden)`.
        attention_mask: bool, broadcastable to `(batch, seq, keys)`.
        attention_bias: float, broadcastable to `(batch, seq, keys)`.
        rotary_embeddings: `(batch or 1, seq, key_size)` RoPE table, or None.
        position_ids: `(batch or 1, seq)` positions, for `rerope` (default 0…seq − 1).
        cache: optional `(key_cache (batch, max_len, key_size),
            value_cache (batch, max_len, units))`, written at `cache_update_index`
            (and with `rerope`, the keys' positions `(batch, max_len)`).
        cache_update_index: int scalar.
        training: bool, enables attention dropout.

    Returns:
        `(batch, seq, hidden)`, and the updated cache when one was given.
    """

    def __init__(
        self,
        units,
        key_size,
        activation="swish",
        use_bias=True,
        normalization="squared_relu",
        attention_scale=True,
        attention_dropout=0.0,
        length_floor=1,
        rerope=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        self.units = units
        self.key_size = key_size
        self.activation = activation
        self.use_bias = use_bias
        self.normalization = normalization
        self.attention_scale = attention_scale
        self.attention_dropout = attention_dropout or 0.0
        self.length_floor = length_floor
        self.rerope = check_rerope(rerope)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        self.i_dense = keras.layers.Dense(
            2 * units + key_size,
            activation=get_activation(activation),
            use_bias=use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="i_dense",
        )
        self.q_scaleoffset = ScaleOffset(offset=use_bias, dtype=self.dtype_policy, name="q_scaleoffset")
        self.k_scaleoffset = ScaleOffset(offset=use_bias, dtype=self.dtype_policy, name="k_scaleoffset")
        self.o_dense = None  # its width is the input width, known in build
        self.dropout = keras.layers.Dropout(
            self.attention_dropout, dtype=self.dtype_policy, name="attention_dropout"
        )

    def build(self, input_shape):
        self.i_dense.build(input_shape)
        base_shape = tuple(input_shape[:-1]) + (self.key_size,)
        self.q_scaleoffset.build(base_shape)
        self.k_scaleoffset.build(base_shape)
        self.o_dense = keras.layers.Dense(
            input_shape[-1],
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="o_dense",
        )
        self.o_dense.build(tuple(input_shape[:-1]) + (self.units,))

    def init_cache(self, batch_size, max_length):
        """Zero `(key_cache, value_cache)` for decoding `max_length` positions."""
        cache = (
            ops.zeros((batch_size, max_length, self.key_size), self.compute_dtype),
            ops.zeros((batch_size, max_length, self.units), self.compute_dtype),
        )
        if self.rerope is None:
            return cache
        return cache + (ops.zeros((batch_size, max_length), "float32"),)

    def call(
        self,
        inputs,
        attention_mask=None,
        attention_bias=None,
        rotary_embeddings=None,
        position_ids=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        hidden = self.i_dense(inputs)  # (batch, seq, 2 * units + key_size)
        u, v, base = ops.split(hidden, [self.units, 2 * self.units], axis=-1)
        query, key = self.q_scaleoffset(base), self.k_scaleoffset(base)  # (batch, seq, key_size)
        if rotary_embeddings is not None:
            query, key = apply_rotary_position_embeddings(rotary_embeddings, query, key)
        key, v, position_ids, key_positions, cache = attended_keys(
            inputs, key, v, position_ids, cache, cache_update_index, self.rerope is not None
        )  # (batch, keys, key_size), (batch, keys, units)

        if self.rerope is not None:  # as one head of one group
            logits = rerope_logits(query[:, None, None], key[:, None], position_ids,
                                   key_positions, **self.rerope)[:, 0, 0]
        else:
            logits = ops.einsum("bqd,bkd->bqk", query, ops.cast(key, query.dtype))
        if self.attention_scale:
            logits = logits / self.key_size**0.5
        weights = attention_normalize(
            logits, attention_mask, self.normalization, self.length_floor, attention_bias
        )  # (batch, queries, keys), float32
        weights = self.dropout(ops.cast(weights, self.compute_dtype), training=training)
        outputs = self.o_dense(u * ops.einsum("bqk,bkd->bqd", weights, ops.cast(v, weights.dtype)))
        if cache is not None:
            return outputs, cache
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "key_size": self.key_size,
                "activation": serialize_activation(self.activation),
                "use_bias": self.use_bias,
                "normalization": self.normalization,
                "attention_scale": self.attention_scale,
                "attention_dropout": self.attention_dropout,
                "length_floor": self.length_floor,
                "rerope": self.rerope,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
