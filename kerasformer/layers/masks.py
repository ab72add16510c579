"""Attention masks as pure functions, and the layer that puts them in a model.

Every mask is boolean, True where a query may attend to a key, shaped
`(batch, queries, keys)` or broadcastable to it. Padding is judged on keys only, as in
bert4keras: padded query rows are computed normally and simply never read.
"""
import keras
from keras import ops

APPLICATIONS = ("encoder", "lm", "unilm")


def padding_mask(token_ids):
    """`(batch, seq)`: keys that are not padding (id 0).

    The first position always counts as real: bert4keras never masks it, so a
    sequence that starts with id 0 still has one key to attend to.
    """
    keep = ops.not_equal(token_ids, 0)
    return ops.concatenate([ops.ones_like(keep[:, :1]), keep[:, 1:]], axis=1)


def causal_mask(query_positions, key_positions):
    """Key j is visible to query i iff `key_positions[j] <= query_positions[i]`.

    Args:
        query_positions: int `(..., queries)`.
        key_positions: int `(..., keys)`.

    Returns:
        bool `(..., queries, keys)`.
    """
    return ops.less_equal(
        ops.expand_dims(key_positions, -2), ops.expand_dims(query_positions, -1)
    )


def unilm_mask(segment_ids):
    """UniLM seq2seq mask from segment ids (https://arxiv.org/abs/1905.03197).

    With `c = cumsum(segment_ids)`, key j is visible to query i iff `c_j <= c_i`:
    source tokens (segment 0) see the whole source and no target; each target token
    (segment 1) sees the source and the target up to itself.

    Returns:
        bool `(batch, seq, seq)`.
    """
    level = ops.cumsum(ops.cast(segment_ids, "int32"), axis=1)
    return causal_mask(level, level)


def uniae_mask(segment_ids, see_first=False):
    """UniVAE's "UniAE" mask from segment ids (bojone/univae, kexue.fm/archives/8475).

    The input is a sentence twice, `[x ; x]`, with segment ids `[0…0 ; 1…1]`. With
    `c = cumsum(segment_ids)`, key j is visible to query i iff `s_i == s_j` and
    `c_j <= c_i`: the first copy (segment 0) attends bidirectionally within itself,
    the second (segment 1) causally within itself, and neither sees the other.
    `see_first=True` also makes key 0 visible to every query: UniVAE's last layers,
    where position 0 carries the latent vector, the only path from the first copy
    to the second.

    Returns:
        bool `(batch, seq, seq)`; padding is not applied (see `uniae_attention_mask`).
    """
    segments = ops.cast(segment_ids, "int32")
    level = ops.cumsum(segments, axis=1)
    same = ops.equal(ops.expand_dims(segments, -2), ops.expand_dims(segments, -1))
    mask = ops.logical_and(same, causal_mask(level, level))
    if see_first:
        mask = ops.concatenate([ops.ones_like(mask[..., :1]), mask[..., 1:]], axis=-1)
    return mask


def uniae_attention_mask(token_ids, segment_ids, see_first=False):
    """`uniae_mask(segment_ids, see_first)` with padded keys (id 0) never visible.

    Args:
        token_ids: int `(batch, seq)`; id 0 is padding (position 0 always counts as
            real, as in `padding_mask`).
        segment_ids: int `(batch, seq)`.
        see_first: bool. Key 0 visible to every query.

    Returns:
        bool `(batch, seq, seq)`.
    """
    if segment_ids is None:
        raise ValueError("the UniAE mask needs segment ids")
    keys = ops.expand_dims(padding_mask(token_ids), 1)
    return ops.logical_and(keys, uniae_mask(segment_ids, see_first))


def attention_mask(token_ids, segment_ids=None, application="encoder"):
    """The full self-attention mask of a model application.

    Args:
        token_ids: int `(batch, seq)`; id 0 is padding.
        segment_ids: int `(batch, seq)`; required by "unilm".
        application: "encoder" (padding only), "lm" (causal) or "unilm".

    Returns:
        bool `(batch, 1, seq)` for "encoder", `(batch, seq, seq)` otherwise.
    """
    keys = ops.expand_dims(padding_mask(token_ids), 1)
    if application == "encoder":
        return keys
    if application == "lm":
        positions = ops.arange(ops.shape(token_ids)[1], dtype="int32")
        return ops.logical_and(keys, causal_mask(positions, positions)[None])
    if application == "unilm":
        if segment_ids is None:
            raise ValueError("the 'unilm' mask needs segment ids")
        return ops.logical_and(keys, unilm_mask(segment_ids))
    raise ValueError(f"application must be one of {APPLICATIONS}, got {application!r}")


@keras.saving.register_keras_serializable(package="kerasformer")
class AttentionMask(keras.layers.Layer):
    """Computes `attention_mask(token_ids, segment_ids, application)` in a model.

    Args:
        application: "encoder", "lm" or "unilm".
        **kwargs: base layer arguments.

    Call arguments:
        token_ids: int `(batch, seq)`.
        segment_ids: int `(batch, seq)`, used by "unilm".
    """

    def __init__(self, application="encoder", **kwargs):
        super().__init__(**kwargs)
        if application not in APPLICATIONS:
            raise ValueError(
                f"application must be one of {APPLICATIONS}, got {application!r}"
            )
        self.application = application

    def call(self, token_ids, segment_ids=None):
        return attention_mask(token_ids, segment_ids, self.application)

    def compute_output_spec(self, token_ids, segment_ids=None):
        batch, seq = token_ids.shape[:2]
        queries = 1 if self.application == "encoder" else seq
        return keras.KerasTensor((batch, queries, seq), dtype="bool")

    def get_config(self):
        config = super().get_config()
        config.update({"application": self.application})
        return config


@keras.saving.register_keras_serializable(package="kerasformer")
class UniAEMask(keras.layers.Layer):
    """Computes `uniae_attention_mask(token_ids, segment_ids, see_first)` in a model.

    UniVAE uses two: `see_first=False` in its first layers, `see_first=True` in the
    last ones, where position 0 carries the latent. Not an `application` of
    `AttentionMask`: a model needs both masks, one per group of layers.

    Args:
        see_first: bool. Key 0 is visible to every query.
        **kwargs: base layer arguments.

    Call arguments:
        token_ids: int `(batch, seq)`.
        segment_ids: int `(batch, seq)`.
    """

    def __init__(self, see_first=False, **kwargs):
        super().__init__(**kwargs)
        self.see_first = bool(see_first)

    def call(self, token_ids, segment_ids=None):
        return uniae_attention_mask(token_ids, segment_ids, self.see_first)

    def compute_output_spec(self, token_ids, segment_ids=None):
        batch, seq = token_ids.shape[:2]
        return keras.KerasTensor((batch, seq, seq), dtype="bool")

    def get_config(self):
        config = super().get_config()
        config.update({"see_first": self.see_first})
        return config


@keras.saving.register_keras_serializable(package="kerasformer")
class MaskedAdd(keras.layers.Add):
    """`keras.layers.Add` that keeps the padding mask as tf.keras did.

    Keras 3's Add drops the mask as soon as one input has none (the segment
    embeddings, say); bert4keras models relied on the token mask reaching the
    sequence output, where mean pooling and losses use it. This Add returns the
    logical AND of the masks that exist.
    """

    def compute_mask(self, inputs, mask=None):
        masks = [m for m in (mask or []) if m is not None]
        if not masks:
            return None
        output_mask = masks[0]
        for m in masks[1:]:
            output_mask = ops.logical_and(output_mask, m)
        return output_mask
