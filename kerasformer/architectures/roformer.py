"""RoFormer (https://kexue.fm/archives/8265): BERT with rotary instead of learned positions.

Embeddings are token + segment → Embedding-Norm → Dropout (no position table); every
attention layer rotates its queries and keys by the `Embedding-Rotary-Position`
sinusoid (interleaved RoPE at the key head size). Blocks, heads and checkpoint names
are BERT's. RoFormer-Sim (SimBERTv2) is this family with `application="unilm",
with_pool="linear"`.
"""
from kerasformer.layers.rotary import SinusoidalPositionEmbedding
from kerasformer.models.bert import BERT


class RoFormer(BERT):
    """RoFormer v1 as bert4keras builds it; arguments as `BERT` (no `max_position`
    limit applies: rotary positions extend to any length)."""

    family = "roformer"
    hf_prefix = "roformer"
    has_position_table = False

    def rotary_embeddings(self, token_ids, position_ids=None):
        """The RoPE table of the positions of `token_ids` (or of `position_ids`)."""
        table = self.layer(
            "Embedding-Rotary-Position",
            SinusoidalPositionEmbedding,
            output_dim=self.attention_key_size,
            merge_mode="zero",
        )
        return table(token_ids, position_ids=position_ids)  # (batch or 1, seq, key_size)

    def add_positions(self, context, inputs):
        context.rotary_embeddings = self.rotary_embeddings(
            inputs["token_ids"], inputs.get("position_ids")
        )
        return context

    def apply_embeddings(self, inputs, context):
        x = self.token_embedding()(inputs["token_ids"])  # (batch, seq, embedding_size)
        x = self.add_segment_embeddings(x, inputs)
        x = self.norm_layer("Embedding-Norm")(x)
        x = self.dropout(x, "Embedding-Dropout")
        return self.map_embeddings(x)  # (batch, seq, hidden_size)
