"""Token and learned position embeddings, as bert4keras builds them."""
import keras
from keras import ops

MERGE_MODES = ("add", "mul", "zero", "concat")


def merge_embeddings(inputs, embeddings, merge_mode):
    """Combines an input sequence with position embeddings (bert4keras merge modes).

    `add` sums, `mul` scales the input by `1 + embeddings`, `zero` returns the
    embeddings alone and `concat` appends them to the feature axis.
    """
    if merge_mode == "add":
        return inputs + embeddings
    if merge_mode == "mul":
        return inputs * (embeddings + 1.0)
    if merge_mode == "zero":
        return embeddings
    batch_shape = ops.shape(inputs)[:-1]
    embeddings = ops.broadcast_to(
        embeddings, tuple(batch_shape) + (ops.shape(embeddings)[-1],)
    )
    return ops.concatenate([inputs, embeddings], axis=-1)


@keras.saving.register_keras_serializable(package="kerasformer")
class TokenEmbedding(keras.layers.Embedding):
    """Token embedding that doubles as the tied output projection of the MLM head.

    Called on ids (`mode="embedding"`) it looks up rows; called on hidden states
    (`mode="dense"`) it returns `x @ embeddings.T`, the logits over the vocabulary.
    With `mask_zero=True` id 0 is padding, but the first position is never masked —
    bert4keras' convention, which keeps a sequence that starts with id 0 alive.

    Args:
        input_dim: int. Vocabulary size.
        output_dim: int. Embedding size.
        embeddings_initializer: initializer for the table.
        mask_zero: bool. Emit a Keras mask that hides id 0 after the first position.
        **kwargs: other `keras.layers.Embedding` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: int ids `(batch, seq)` in embedding mode, floats
            `(batch, seq, output_dim)` in dense mode.
        mode: `"embedding"` or `"dense"`.
    """

    def __init__(self, input_dim, output_dim, mask_zero=False, **kwargs):
        super().__init__(input_dim, output_dim, mask_zero=mask_zero, **kwargs)
        # Dense mode passes the incoming mask through, so masking is always on.
        self.supports_masking = True

    def call(self, inputs, mode="embedding"):
        if mode == "embedding":
            return super().call(inputs)
        if mode == "dense":
            kernel = ops.cast(self.embeddings, self.compute_dtype)
            return ops.matmul(inputs, ops.transpose(kernel))
        raise ValueError(f"mode must be 'embedding' or 'dense', got {mode!r}")

    def compute_mask(self, inputs, mask=None):
        if len(inputs.shape) != 2:
            return mask  # dense mode
        if not self.mask_zero:
            return None
        keep = ops.not_equal(inputs, 0)
        return ops.concatenate([ops.ones_like(keep[:, :1]), keep[:, 1:]], axis=1)

    def compute_output_spec(self, inputs, mode="embedding"):
        if mode == "dense":
            shape = tuple(inputs.shape[:-1]) + (self.input_dim,)
            return keras.KerasTensor(shape, dtype=self.compute_dtype)
        return super().compute_output_spec(inputs)


@keras.saving.register_keras_serializable(package="kerasformer")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embeddings (`Embedding-Position` of BERT).

    Args:
        input_dim: int. Number of positions (`max_position`).
        output_dim: int. Embedding size.
        merge_mode: one of "add", "mul", "zero", "concat".
        hierarchical: None, True or a float α in (0, 1). Hierarchical decomposition
            (https://kexue.fm/archives/7947) that extends a table of n positions to
            n² positions: with `u = (E − α·E[0]) / (1 − α)`, position p gets
            `α·u[p // n] + (1 − α)·u[p % n]`. True means α = 0.4.
        embeddings_initializer: initializer for the table.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, seq, output_dim)` embeddings to merge with.
        position_ids: optional int `(batch, seq)`; defaults to `0..seq-1`.
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        merge_mode="add",
        hierarchical=None,
        embeddings_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.merge_mode = merge_mode
        self.hierarchical = hierarchical
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_masking = True

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
        )

    def call(self, inputs, position_ids=None):
        if position_ids is None:
            seq_len = ops.shape(inputs)[1]
            if isinstance(seq_len, int):  # static: check now rather than clamp later
                self._check_length(seq_len)
            position_ids = ops.arange(seq_len, dtype="int32")[None]
        else:
            position_ids = ops.cast(position_ids, "int32")
        table = ops.cast(self.embeddings, self.compute_dtype)
        if self.hierarchical:
            alpha = 0.4 if self.hierarchical is True else float(self.hierarchical)
            table = (table - alpha * table[:1]) / (1.0 - alpha)
            embeddings = alpha * ops.take(
                table, position_ids // self.input_dim, axis=0
            ) + (1.0 - alpha) * ops.take(table, position_ids % self.input_dim, axis=0)
        else:
            embeddings = ops.take(table, position_ids, axis=0)
        return merge_embeddings(inputs, embeddings, self.merge_mode)

    def _check_length(self, seq_len):
        if self.hierarchical:
            if seq_len > self.input_dim**2:
                raise ValueError(
                    f"{self.name}: sequence length {seq_len} exceeds the "
                    f"{self.input_dim**2} hierarchical positions"
                )
        elif seq_len > self.input_dim:
            raise ValueError(
                f"{self.name}: sequence length {seq_len} exceeds the "
                f"{self.input_dim} learned positions; truncate the input "
                "(e.g. Tokenizer.encode(..., maxlen=...)) or build with "
                "hierarchical_position=True"
            )

    def compute_output_shape(self, input_shape):
        if self.merge_mode == "concat":
            return tuple(input_shape[:-1]) + (input_shape[-1] + self.output_dim,)
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "merge_mode": self.merge_mode,
                "hierarchical": self.hierarchical,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
