"""GAU-α (https://kexue.fm/archives/9052): RoFormerV2 with Gated Attention Units.

Embeddings and MLM head are RoFormerV2's; each of the L blocks is one
`x = Norm(x + Dropout(GAU(x)))` with the parameter-free RMS norm and no feed-forward.
The GAU normalises attention with softmax_plus, `softmax(a · ln(l) / ln(512))`, `l` the
number of visible keys floored at `length_floor`.
"""
from kerasformer.convert import gau_alpha
from kerasformer.layers.gau import GatedAttentionUnit
from kerasformer.models.roformer_v2 import RoFormerV2


class GAUAlpha(RoFormerV2):
    """GAU-α; arguments as `RoFormerV2`, plus:

    Args:
        length_floor: int. softmax_plus floor on the visible-key count: 1, what the
            released checkpoint was trained with (bert4keras 0.11.3), by default;
            16 reproduces bert4keras 0.11.5.
        num_attention_heads: unused by the single-head GAU (configs may omit it).
    """

    family = "gau_alpha"
    initializer_order = 3
    weight_maps = gau_alpha
    required_arguments = (
        "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
        "hidden_act", "attention_key_size",
    )

    def __init__(self, num_attention_heads=1, length_floor=1, **kwargs):
        super().__init__(num_attention_heads=num_attention_heads, **kwargs)
        self.length_floor = length_floor

    def apply_main_layers(self, x, index, context):
        name = f"Transformer-{index}-GatedAttentionUnit"
        unit = self.layer(
            name,
            GatedAttentionUnit,
            units=self.intermediate_size,
            key_size=self.attention_key_size,
            activation=self.hidden_act,
            use_bias=False,
            normalization="softmax_plus",
            attention_dropout=self.attention_dropout_rate,
            length_floor=self.length_floor,
            kernel_initializer=self.initializer,
        )
        return self.residual(x, self.call_attention(unit, x, index, context), name)
