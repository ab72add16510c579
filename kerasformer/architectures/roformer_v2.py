"""RoFormerV2 (https://kexue.fm/archives/8998): RoFormer without biases or norm parameters.

    token ids ─ Embedding-Token ─┐
  segment ids ─ Embedding-Segment ┴ Add ─ Dropout ─ Embedding-Norm (x / rms(x))
                                        [─ Embedding-Mapping, no bias]
  × L: x = Norm(x + Dropout(MHA_nobias(x, RoPE)));  x = Norm(x + Dropout(FFN_nobias(x)))
  MLM head: [Output-Mapping] ─ Output-MLM-Dropout ─ Embedding-Token (tied) ─ Output-MLM-Activation

Every Norm is the parameter-free RMS norm; there is no pooler, no MLM transform and no
output bias.

Checkpoints: the original TF names are BERT's minus every bias and norm parameter
(bert4keras derives RoFormerV2's map exactly so); the Hugging Face layout is JunnYu's
`junnyu/roformer_v2_chinese_char_*` (model_type "roformer" with RMS norms).
"""
import re

import keras

from kerasformer.architectures import bert, register
from kerasformer.architectures.base import DATA, MODEL, TruncatedNormal
from kerasformer.architectures.roformer import RoFormer, is_roformer_v2_config
from kerasformer.convert.weights import TRANSPOSE, NotSaved, Source, WeightMap
from kerasformer.layers.normalization import LayerNormalization


@keras.saving.register_keras_serializable(package="kerasformer")
class DepthScaledTruncatedNormal(TruncatedNormal):
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
        super().__init__(stddev=None, seed=seed)
        self.num_layers = num_layers
        self.order = order

    def scale(self, shape):
        fan = shape[1] if shape[0] > 10000 or shape[0] < 10 else shape[0]
        return 1.13684723 / fan**0.5 * self.num_layers ** (-1.0 / self.order)

    def get_config(self):
        return {"num_layers": self.num_layers, "order": self.order, "seed": self.seed}


@register
class RoFormerV2(RoFormer):
    """RoFormerV2 as bert4keras builds it; arguments as `BERT`, without heads other
    than the MLM (`with_pool` / `with_nsp` raise: the model has no pooler)."""

    architecture = "roformer_v2"
    aliases = ("roformerv2",)
    hf_model_types = ("roformer",)
    use_bias = False
    initializer_order = 2

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.with_pool:
            raise ValueError(
                f"{self.architecture} has no pooler (with_pool / with_nsp); take the first "
                "token of the sequence output instead"
            )

    @property
    def initializer(self):
        return DepthScaledTruncatedNormal(self.num_hidden_layers, self.initializer_order)

    def norm_layer(self, name):
        return self.layer(
            name, LayerNormalization, zero_mean=False, scale=False, offset=False,
            epsilon=self.layer_norm_epsilon, **self.norm_arguments(),
        )

    def apply_embeddings(self, inputs, context):
        x = self.token_embedding()(inputs["token_ids"])  # (batch, seq, embedding_size)
        x = self.add_segment_embeddings(x, inputs)
        x = self.dropout(x, "Embedding-Dropout")
        x = self.normalize(self.norm_layer("Embedding-Norm"), x)
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

    @classmethod
    def layout_rules(cls):
        """BERT's Megatron-style rules on the bias- and norm-free weights; the
        `Output-Mapping` splits its output like the tied token table."""
        return {**bert.EMBEDDING_LAYOUT, **bert.BLOCK_KERNEL_LAYOUT,
                "Output-Mapping/kernel": (DATA, MODEL)}

    def weight_map(self, layout="tf"):
        names = tf_names(self.num_hidden_layers) if layout == "tf" else hf_names(self.num_hidden_layers)
        sources = bias_free_sources(names, layout, self.vocab_transform())
        sources["Output-Mapping/kernel"] = OUTPUT_MAPPING_NOT_SAVED
        if layout == "hf":
            return WeightMap(sources, ignored=bert.HF_IGNORED, prefix="roformer.")
        return WeightMap(sources)

    @classmethod
    def recognises_checkpoint(cls, names):
        # BERT's query projections without any block norm (nor GAU's layers).
        return any(re.search(bert.QUERY_SIGN, n) for n in names) and not any(
            re.search(bert.BLOCK_NORM_SIGN, n) for n in names
        )

    @classmethod
    def recognises_config(cls, config):
        return str(config.get("model_type", "")).lower() in cls.hf_model_types and (
            is_roformer_v2_config(config)
        )


# bert4keras builds an `Output-Mapping` when embedding_size ≠ hidden_size but never
# saves it; no released RoFormerV2 has one.
OUTPUT_MAPPING_NOT_SAVED = NotSaved(
    "bert4keras never saves RoFormerV2's Output-Mapping (embedding_size ≠ hidden_size)"
)


def tf_names(num_layers):
    """BERT's original names without biases, norms and positions."""
    return {
        path: name
        for path, name in {**bert.TF_EMBEDDINGS, **bert.expand(bert.TF_BLOCK, num_layers)}.items()
        if not re.search("beta|gamma|bias|position", name)
    }


def hf_names(num_layers):
    """JunnYu's RoFormer names of the embeddings and blocks, without biases and norms."""
    names = bert.hf_names("roformer", "roformer.embeddings_project", num_layers,
                          position_embeddings=False)
    return {
        path: name
        for path, name in names.items()
        if not path.startswith(("Pooler", "NSP", "MLM"))
        and not re.search(r"LayerNorm|\.bias$", name)
    }


def bias_free_sources(names, layout, vocab_transform=None):
    """`Source`s for a {variable path: tensor name} table of a bias-free architecture:
    token-embedding rows go through `vocab_transform`, and in the HF layout every
    kernel is a torch `Linear` weight to transpose."""
    result = {}
    for path, name in names.items():
        if path.startswith("Embedding-Token/"):
            result[path] = Source(name, vocab_transform)
        elif layout == "hf" and path.endswith("/kernel"):
            result[path] = Source(name, TRANSPOSE)
        else:
            result[path] = Source(name)
    return result
