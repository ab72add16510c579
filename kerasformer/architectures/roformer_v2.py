"""RoFormerV2 (https://kexue.fm/archives/8998): RoFormer without biases or norm parameters.

    token ids ─ Embedding-Token ─┐
  segment ids ─ Embedding-Segment ┴ Add ─ Dropout ─ Embedding-Norm (x / rms(x))
                                        [─ Embedding-Mapping, no bias]
  × L: x = Norm(x + Dropout(MHA_nobias(x, RoPE)));  x = Norm(x + Dropout(FFN_nobias(x)))
  MLM head: [Output-Mapping] ─ Output-MLM-Dropout ─ Embedding-Token (tied) ─ Output-MLM-Activation

Every Norm is the parameter-free RMS norm; there is no pooler, no MLM transform and no
output bias.
"""
import keras

from kerasformer.convert import roformer_v2
from kerasformer.convert.checkpoints import canonical_hf_names
from kerasformer.layers.normalization import LayerNormalization
from kerasformer.models.roformer import RoFormer


@keras.saving.register_keras_serializable(package="kerasformer")
class DepthScaledTruncatedNormal(keras.initializers.Initializer):
    """RoFormerV2 / GAU-α initializer: truncated normal (±2σ) with
    `σ = 1.13684723 / √fan · L^(−1/order)`.

    `fan` is the second dimension for embedding-like tables (first dimension above
    10000 or below 10) and the first otherwise; 1.13684723 compensates for the
    truncation, and `L^(−1/order)` keeps deep post-norm stacks trainable
    (https://kexue.fm/archives/8978).

    Args:
        num_layers: int. Depth L.
        order: int. 2 for RoFormerV2, 3 for GAU-α.
        seed: optional int.
    """

    def __init__(self, num_layers, order=2, seed=None):
        self.num_layers = num_layers
        self.order = order
        self.seed = seed

    def __call__(self, shape, dtype=None):
        fan = shape[1] if shape[0] > 10000 or shape[0] < 10 else shape[0]
        stddev = 1.13684723 / fan**0.5 * self.num_layers ** (-1.0 / self.order)
        return keras.random.truncated_normal(shape, stddev=stddev, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"num_layers": self.num_layers, "order": self.order, "seed": self.seed}


class RoFormerV2(RoFormer):
    """RoFormerV2 as bert4keras builds it; arguments as `BERT`, without heads other
    than the MLM (`with_pool` / `with_nsp` raise: the model has no pooler)."""

    family = "roformer_v2"
    use_bias = False
    initializer_order = 2
    weight_maps = roformer_v2  # the convert module with this family's layouts

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.with_pool:
            raise ValueError(
                f"{self.family} has no pooler (with_pool / with_nsp); take the first "
                "token of the sequence output instead"
            )

    @property
    def initializer(self):
        return DepthScaledTruncatedNormal(self.num_hidden_layers, self.initializer_order)

    def norm_layer(self, name):
        return self.layer(
            name, LayerNormalization, zero_mean=False, scale=False, offset=False,
            epsilon=self.layer_norm_epsilon,
        )

    def apply_embeddings(self, inputs, context):
        x = self.token_embedding()(inputs["token_ids"])  # (batch, seq, embedding_size)
        x = self.add_segment_embeddings(x, inputs)
        x = self.dropout(x, "Embedding-Dropout")
        x = self.norm_layer("Embedding-Norm")(x)
        return self.map_embeddings(x)  # (batch, seq, hidden_size)

    def mlm_logits(self, x):
        if self.embedding_size != self.hidden_size:
            x = self.layer(
                "Output-Mapping", keras.layers.Dense, units=self.embedding_size,
                use_bias=False, kernel_initializer=self.initializer,
            )(x)
        x = self.dropout(x, "Output-MLM-Dropout")
        return self.token_embedding()(x, mode="dense")  # (batch, seq, vocab_size)

    def apply_mlm(self, x):
        activation = "softmax" if self.with_mlm is True else self.with_mlm
        return self.layer(
            "Output-MLM-Activation", keras.layers.Activation, activation=activation,
            dtype="float32",
        )(self.mlm_logits(x))

    def weight_map(self, layout="tf"):
        return self.weight_maps.weight_map(layout, self.num_hidden_layers, self.vocab_transform())

    def ignored_sources(self, layout="tf"):
        return self.weight_maps.HF_IGNORED if layout == "hf" else ()

    def prepare_checkpoint(self, checkpoint, layout):
        if layout == "hf":
            return canonical_hf_names(checkpoint, self.weight_maps.HF_PREFIX)
        return checkpoint
