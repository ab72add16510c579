"""Multi-head self-attention with bert4keras' options, RoPE and a static KV cache."""
import math

import keras
from keras import ops

from kerasformer.checks import check_integer
from kerasformer.layers.rotary import apply_rotary_position_embeddings, check_rerope, rerope_logits

NORMALIZATIONS = ("softmax", "softmax_plus", "squared_relu")
# Key normalisations (https://kexue.fm/archives/9859): "key", L2-normalised keys and no
# 1/√d; "cosine" (CosA), cosine logits times λ = 4·ln(n), n the visible keys.
KEY_NORMS = (None, "key", "cosine")

# Masked logits are set to this instead of -inf: a row with every key masked then
# becomes uniform rather than NaN, and exp() of it is exactly 0 next to any real logit.
MASKED_LOGIT = -1e9


def attention_normalize(logits, mask=None, method="softmax", length_floor=1, bias=None,
                        log_scale_length=None):
    """Turns attention logits into weights, in float32.

    Args:
        logits: `(..., queries, keys)` scores.
        mask: bool, broadcastable to `logits`; False hides a key.
        method: "softmax"; "softmax_plus", the entropy-invariant softmax
            `softmax(a · ln(l) / ln(512))` (https://kexue.fm/archives/8823) with `l`
            the number of visible keys floored at `length_floor`; or "squared_relu",
            `relu(a)² / l` (https://arxiv.org/abs/2202.10447).
        length_floor: int. Lower bound on `l` for "softmax_plus". GAU-α was trained
            with 1; bert4keras 0.11.5 uses 16.
        bias: float, broadcastable to `logits`; added to the logits (an additive
            attention bias such as UniVAE's `-(1 - mask) * 1e12`).
        log_scale_length: int or None. log-n scaling past a training length L: each
            query's logits times `max(1, ln n / ln L)`, n its visible keys (in causal
            attention, its position + 1) — the identity up to L, then the
            entropy-invariant growth of https://kexue.fm/archives/8823.

    Returns:
        float32 weights with the shape of `logits`.
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {method!r}")
    logits = ops.cast(logits, "float32")
    if bias is not None:
        logits = logits + ops.cast(bias, "float32")
    if mask is not None:
        mask = ops.broadcast_to(mask, ops.shape(logits))
    if log_scale_length is not None:
        scale = ops.log(ops.maximum(visible_keys(logits, mask), 1.0)) / math.log(log_scale_length)
        logits = logits * ops.maximum(scale, 1.0)
    if method == "softmax":
        if mask is not None:
            logits = ops.where(mask, logits, MASKED_LOGIT)
        return _softmax(logits)
    visible = visible_keys(logits, mask)
    if method == "squared_relu":
        weights = ops.square(ops.relu(logits)) / ops.maximum(visible, 1.0)
        return weights if mask is None else ops.where(mask, weights, 0.0)
    # Scale first, then mask: with a single visible key ln(l) = 0, and masking after
    # the scaling keeps the masked keys at zero weight.
    scale = ops.log(ops.maximum(visible, float(length_floor))) / math.log(512.0)
    logits = logits * scale
    if mask is not None:
        logits = ops.where(mask, logits, MASKED_LOGIT)
    return _softmax(logits)


def visible_keys(logits, mask):
    """float32 count of the keys each query sees, broadcastable to `logits`."""
    if mask is None:
        return ops.cast(ops.shape(logits)[-1], "float32")
    return ops.sum(ops.cast(mask, "float32"), axis=-1, keepdims=True)


def _softmax(logits):
    # One key (the first step of an eager decode) gets weight 1, masked or not, as
    # with bert4keras' finite mask value; Keras would warn about a softmax over one.
    if logits.shape[-1] == 1:
        return ops.ones_like(logits)
    return ops.softmax(logits, axis=-1)


def _unit(x):
    """`x / ‖x‖` over the last axis, in float32 (then `x`'s dtype)."""
    norm = ops.sqrt(ops.sum(ops.square(ops.cast(x, "float32")), axis=-1, keepdims=True))
    return ops.cast(ops.cast(x, "float32") / ops.maximum(norm, 1e-12), x.dtype)


def update_cache(cache, index, key, value, axis=1, positions=None):
    """Writes this step's keys and values into a static KV cache at position `index`.

    Args:
        cache: `(key_cache, value_cache)`, or `(key_cache, value_cache,
            position_cache)` for ReRoPE, whose keys are cached before rotation
            next to their positions `(batch, max_len)`.
        index: int scalar, the sequence position of the first new key.
        key, value: the current tokens' keys and values, shaped like the caches
            except along the sequence `axis`.
        axis: int, the sequence axis of the caches.
        positions: `(batch or 1, new keys)` positions of the keys, for a cache
            with positions.

    Returns:
        The updated cache, which the current queries attend over.
    """
    key_cache, value_cache = cache[:2]
    start = [0] * len(key_cache.shape)
    start[axis] = index
    updated = (
        ops.slice_update(key_cache, start, ops.cast(key, key_cache.dtype)),
        ops.slice_update(value_cache, start, ops.cast(value, value_cache.dtype)),
    )
    if len(cache) == 2:
        return updated
    position_cache = cache[2]
    positions = ops.broadcast_to(ops.cast(positions, position_cache.dtype),
                                 (ops.shape(position_cache)[0], ops.shape(key)[axis]))
    return updated + (ops.slice_update(position_cache, [0, index], positions),)


def attended_keys(inputs, key, value, position_ids, cache, cache_update_index, positions,
                  axis=1):
    """What the queries of `inputs` attend over: their own keys and values, or the
    cache those were just written into (see `update_cache`).

    Args:
        inputs: `(batch, seq, ...)`, the layer's input.
        key, value: the current tokens' keys and values (sequence on `axis`).
        position_ids: `(batch or 1, seq)` positions of the inputs, or None (0…seq − 1).
        cache: the layer's cache, or None.
        cache_update_index: where the current tokens go in the cache.
        positions: bool. The layer reads positions (ReRoPE, a window): they are
            returned, and cached with the keys.
        axis: int, the sequence axis of keys, values and caches.

    Returns:
        `(key, value, query_positions, key_positions, cache)`: the positions None
        unless `positions`, the cache None without one.
    """
    query_positions = key_positions = None
    if positions:
        query_positions = position_ids
        if query_positions is None:
            query_positions = ops.arange(ops.shape(inputs)[1], dtype="float32")[None]
        key_positions = query_positions
    if cache is not None:
        cache = update_cache(cache, cache_update_index, key, value, axis, key_positions)
        key, value = cache[:2]
        if positions:
            key_positions = cache[2]  # (batch, max_len)
    return key, value, query_positions, key_positions, cache


@keras.saving.register_keras_serializable(package="kerasformer")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention in the layout of the original checkpoints.

    `q_dense`, `k_dense`, `v_dense`, `o_dense` are the sub-layers (and weight names);
    projections are head-major (columns `h·d:(h+1)·d` belong to head h), which is how
    TF BERT checkpoints store them.

    Args:
        heads: int. Number of heads.
        head_size: int. Size of each value head.
        out_dim: int. Output width; defaults to `heads * head_size`.
        key_size: int. Size of each query/key head; defaults to `head_size`
            (RoBERTa⁺ and GAU-style models enlarge it).
        use_bias: bool. Biases on the four projections.
        normalization: "softmax", "softmax_plus" or "squared_relu".
        attention_scale: bool. Divide logits by `sqrt(key_size)`.
        attention_dropout: float. Dropout rate on the attention weights.
        length_floor: int. `softmax_plus` floor on the visible-key count.
        log_scale_length: int or None. log-n scaling of the logits past this
            (training) length (see `attention_normalize`).
        key_norm: None, "key" (L2-normalised keys, no 1/√d: KeyNorm) or "cosine"
            (normalised queries and keys, logits times `4·ln n`: CosA). Keys are
            normalised before they are cached.
        num_key_value_heads: int dividing `heads`, or None (= heads). Grouped-query
            attention: each key/value head serves `heads / num_key_value_heads`
            consecutive query heads (1: multi-query), and the KV cache holds only
            these heads.
        rerope: None, or `{"window": w, "leak": l}`: ReRoPE (leak 0) or Leaky ReRoPE
            (leak 1/k) instead of a RoPE table (see
            `kerasformer.layers.rotary.rerope_logits`). Queries and keys are
            rotated by their clipped relative positions, from `position_ids`; the
            KV cache holds unrotated keys and their positions.
        window: int or None. Sliding-window attention: a query sees only the keys
            less than `window` positions away (by `position_ids`; a mask, so the
            same computation). The KV cache then keeps the keys' positions.
        kernel_initializer: initializer of the projections.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, seq, hidden)`.
        attention_mask: bool, broadcastable to `(batch, seq, keys)`; False hides a key.
        attention_bias: float, `(batch, seq, keys)` or `(batch, heads, seq, keys)`,
            added to the scaled logits.
        rotary_embeddings: `(batch or 1, seq, key_size)` sinusoid table; when given,
            queries and keys are rotated (RoPE) before the dot product.
        position_ids: `(batch or 1, seq)` positions of the inputs, for `rerope` and
            `window` (default `0…seq − 1`).
        cache: optional `(key_cache, value_cache)` of shapes
            `(batch, kv_heads, max_len, key_size)` and `(batch, kv_heads, max_len, head_size)`
            (head-major, so attending over the cache needs no transpose), and with
            `rerope` or `window` the keys' positions `(batch, max_len)`.
            The new keys/values are written at `cache_update_index` and the queries
            attend over the whole cache (mask what is not filled yet).
        cache_update_index: int scalar, where to write into the cache.
        training: bool, enables attention dropout.

    Returns:
        `(batch, seq, out_dim)`, and the updated cache when one was given.
    """

    def __init__(
        self,
        heads,
        head_size,
        out_dim=None,
        key_size=None,
        use_bias=True,
        normalization="softmax",
        attention_scale=True,
        attention_dropout=0.0,
        length_floor=1,
        log_scale_length=None,
        key_norm=None,
        num_key_value_heads=None,
        rerope=None,
        window=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        if key_norm not in KEY_NORMS:
            raise ValueError(f"key_norm must be one of {KEY_NORMS}, got {key_norm!r}")
        log_scale_length = check_integer(log_scale_length, "log_scale_length", 2, optional=True)
        kv_heads = heads if num_key_value_heads is None else num_key_value_heads
        if isinstance(kv_heads, bool) or not isinstance(kv_heads, int) or kv_heads < 1 \
                or heads % kv_heads:
            raise ValueError(f"num_key_value_heads must divide the {heads} heads, got "
                             f"{num_key_value_heads!r}")
        self.heads = heads
        self.num_key_value_heads = kv_heads
        self.head_size = head_size
        self.out_dim = out_dim or heads * head_size
        self.key_size = key_size or head_size
        self.use_bias = use_bias
        self.normalization = normalization
        self.attention_scale = attention_scale
        self.attention_dropout = attention_dropout or 0.0
        self.length_floor = length_floor
        self.log_scale_length = log_scale_length
        self.key_norm = key_norm
        self.rerope = check_rerope(rerope)
        self.window = check_integer(window, "window", optional=True)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

        def dense(units, name):
            return keras.layers.Dense(
                units,
                use_bias=use_bias,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.q_dense = dense(self.key_size * heads, "q_dense")
        self.k_dense = dense(self.key_size * kv_heads, "k_dense")
        self.v_dense = dense(self.head_size * kv_heads, "v_dense")
        self.o_dense = dense(self.out_dim, "o_dense")
        self.dropout = keras.layers.Dropout(
            self.attention_dropout, dtype=self.dtype_policy, name="attention_dropout"
        )

    def build(self, input_shape):
        for dense in (self.q_dense, self.k_dense, self.v_dense):
            dense.build(input_shape)
        self.o_dense.build(tuple(input_shape[:-1]) + (self.heads * self.head_size,))

    def init_cache(self, batch_size, max_length):
        """Zero `(key_cache, value_cache)` for decoding `max_length` positions (of the
        key/value heads only, under grouped-query attention)."""
        heads = self.num_key_value_heads
        cache = (
            ops.zeros((batch_size, heads, max_length, self.key_size), self.compute_dtype),
            ops.zeros((batch_size, heads, max_length, self.head_size), self.compute_dtype),
        )
        if not self.tracks_positions:
            return cache
        return cache + (ops.zeros((batch_size, max_length), "float32"),)

    @property
    def tracks_positions(self):
        """Whether attention reads positions (ReRoPE, a window), cached with the keys."""
        return self.rerope is not None or self.window is not None

    def _split_heads(self, x, size, heads):
        x = ops.reshape(x, tuple(ops.shape(x)[:-1]) + (heads, size))
        return ops.transpose(x, (0, 2, 1, 3))  # (batch, heads, seq, size)

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
        kv_heads = self.num_key_value_heads
        group = self.heads // kv_heads
        query = self._split_heads(self.q_dense(inputs), self.key_size, self.heads)  # (batch, heads, seq, key_size)
        key = self._split_heads(self.k_dense(inputs), self.key_size, kv_heads)  # (batch, kv_heads, seq, key_size)
        value = self._split_heads(self.v_dense(inputs), self.head_size, kv_heads)  # (batch, kv_heads, seq, head_size)
        if rotary_embeddings is not None:
            table = ops.expand_dims(rotary_embeddings, 1)  # over heads
            query, key = apply_rotary_position_embeddings(table, query, key)
        if self.key_norm is not None:  # a rotation keeps norms: before or after RoPE
            key = _unit(key)
            if self.key_norm == "cosine":
                query = _unit(query)
        key, value, position_ids, key_positions, cache = attended_keys(
            inputs, key, value, position_ids, cache, cache_update_index,
            self.tracks_positions, axis=2,
        )  # (batch, kv_heads, keys, key_size), (batch, kv_heads, keys, head_size)
        if self.window is not None:
            distance = ops.abs(ops.cast(position_ids, "float32")[:, :, None]
                               - ops.cast(key_positions, "float32")[:, None, :])
            near = ops.less(distance, self.window)  # (batch or 1, queries, keys)
            attention_mask = near if attention_mask is None else ops.logical_and(
                attention_mask, near)
        if group == 1 and self.rerope is None:
            logits = ops.einsum("bhqd,bhkd->bhqk", query, ops.cast(key, query.dtype))
        else:  # each key/value head serves `group` consecutive query heads, never repeated
            shape = tuple(ops.shape(query))
            grouped = ops.reshape(query, (shape[0], kv_heads, group) + shape[2:])
            if self.rerope is not None:
                logits = rerope_logits(grouped, key, position_ids, key_positions, **self.rerope)
            else:
                logits = ops.einsum("bgrqd,bgkd->bgrqk", grouped, ops.cast(key, query.dtype))
            logits = ops.reshape(logits, (shape[0], self.heads, shape[2], -1))
        # (batch, heads, queries, keys)
        if self.attention_scale and self.key_norm is None:
            logits = logits / self.key_size**0.5
        if attention_mask is not None:
            attention_mask = ops.expand_dims(attention_mask, 1)  # over heads
        if self.key_norm == "cosine":  # λ = 4·ln n (https://kexue.fm/archives/9859)
            visible = visible_keys(logits, None if attention_mask is None else
                                   ops.broadcast_to(attention_mask, ops.shape(logits)))
            logits = ops.cast(logits, "float32") * 4.0 * ops.log(ops.maximum(visible, 2.0))
        if attention_bias is not None and len(attention_bias.shape) == 3:
            attention_bias = ops.expand_dims(attention_bias, 1)
        weights = attention_normalize(
            logits, attention_mask, self.normalization, self.length_floor, attention_bias,
            self.log_scale_length,
        )  # (batch, heads, queries, keys), float32
        weights = self.dropout(ops.cast(weights, self.compute_dtype), training=training)
        if group == 1:
            outputs = ops.einsum("bhqk,bhkd->bqhd", weights, ops.cast(value, weights.dtype))
        else:
            shape = tuple(ops.shape(weights))
            grouped = ops.reshape(weights, (shape[0], kv_heads, group) + shape[2:])
            outputs = ops.einsum("bgrqk,bgkd->bqgrd", grouped, ops.cast(value, weights.dtype))
        outputs = ops.reshape(  # (batch, seq, heads · head_size)
            outputs, tuple(ops.shape(outputs)[:2]) + (self.heads * self.head_size,)
        )
        outputs = self.o_dense(outputs)
        if cache is not None:
            return outputs, cache
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "heads": self.heads,
                "head_size": self.head_size,
                "out_dim": self.out_dim,
                "key_size": self.key_size,
                "use_bias": self.use_bias,
                "normalization": self.normalization,
                "attention_scale": self.attention_scale,
                "attention_dropout": self.attention_dropout,
                "length_floor": self.length_floor,
                "log_scale_length": self.log_scale_length,
                "key_norm": self.key_norm,
                "num_key_value_heads": self.num_key_value_heads,
                "rerope": self.rerope,
                "window": self.window,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
