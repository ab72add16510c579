"""RoFormer (https://kexue.fm/archives/8265): BERT with rotary instead of learned positions.

Embeddings are token + segment → Embedding-Norm → Dropout (no position table); every
attention layer rotates its queries and keys by the `Embedding-Rotary-Position`
sinusoid (interleaved RoPE at the key head size). Blocks, heads and checkpoint names
are BERT's (`kerasformer.architectures.bert`), under `roformer.` in Hugging Face files. RoFormer-Sim (SimBERTv2) is this family with `application="unilm",
with_pool="linear"`.
"""
import re

from kerasformer.architectures import register
from kerasformer.architectures.bert import BERT, BLOCK_NORM_SIGN, POSITION_TABLE_SIGN
from kerasformer.layers.rotary import (
    SinusoidalPositionEmbedding,
    check_rope_scaling,
    relative_position_options,
)


@register
class RoFormer(BERT):
    """RoFormer v1 as bert4keras builds it; arguments as `BERT` (no `max_position`
    limit applies: rotary positions extend to any length), and:

    Args:
        rope_scaling: None (the checkpoints' RoPE), or a position scaling for texts
            longer than the training length, applied to any checkpoint without
            retraining: `{"type": "linear" | "ntk" | "dynamic_ntk" | "ntk_mixed",
            "factor": k}` (`dynamic_ntk` also `"original_max_position"`, the
            training length; see `kerasformer.layers.rotary.rope_inverse_frequencies`),
            or relative positions clipped at a window: `{"type": "rerope",
            "window": w}`, `{"type": "leaky_rerope", "window": w, "factor": k}`
            (see `kerasformer.layers.rotary.rerope_logits`).
        **kwargs: `BERT` arguments.
    """

    architecture = "roformer"
    aliases = ()
    hf_model_types = ("roformer",)
    hf_prefix = "roformer"
    hf_mapping_layer = "roformer.embeddings_project"
    has_position_table = False

    @classmethod
    def recognises_checkpoint(cls, names):
        # BERT's layout with block norms and without a position table.
        return any(re.search(BLOCK_NORM_SIGN, n) for n in names) and not any(
            re.search(POSITION_TABLE_SIGN, n) for n in names
        )

    @classmethod
    def recognises_config(cls, config):
        # JunnYu's RoFormerV2 configs share model_type "roformer".
        return super().recognises_config(config) and not is_roformer_v2_config(config)

    def __init__(self, rope_scaling=None, **kwargs):
        super().__init__(**kwargs)
        self.rope_scaling = check_rope_scaling(rope_scaling)
        self.rerope = relative_position_options(self.rope_scaling,
                                                causal=self.application == "lm")

    def max_positions(self):
        return None

    def rotary_embeddings(self, token_ids, position_ids=None):
        """The RoPE table of the positions of `token_ids` (or of `position_ids`)."""
        table = self.layer(
            "Embedding-Rotary-Position",
            SinusoidalPositionEmbedding,
            output_dim=self.attention_key_size,
            merge_mode="zero",
            scaling=self.rope_scaling,
        )
        return table(token_ids, position_ids=position_ids)  # (batch or 1, seq, key_size)

    def add_positions(self, context, inputs):
        if self.rerope is not None:  # attention rotates by position_ids itself
            return context
        context.rotary_embeddings = self.rotary_embeddings(
            inputs["token_ids"], inputs.get("position_ids")
        )
        return context

    def apply_embeddings(self, inputs, context):
        x = self.token_embedding()(inputs["token_ids"])  # (batch, seq, embedding_size)
        x = self.add_segment_embeddings(x, inputs)
        x = self.normalize(self.norm_layer("Embedding-Norm"), x)
        x = self.dropout(x, "Embedding-Dropout")
        return self.map_embeddings(x)  # (batch, seq, hidden_size)


def is_roformer_v2_config(config):
    """JunnYu's RoFormerV2 configs: model_type "roformer" with RMS norms, no biases."""
    return config.get("norm_type") == "rms_norm" or config.get("use_bias") is False
