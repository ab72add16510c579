"""GAU-α (https://kexue.fm/archives/9052): RoFormerV2 with Gated Attention Units.

Embeddings and MLM head are RoFormerV2's; each of the L blocks is one
`x = Norm(x + Dropout(GAU(x)))` with the parameter-free RMS norm and no feed-forward.
The GAU normalises attention with softmax_plus, `softmax(a · ln(l) / ln(512))`, `l` the
number of visible keys floored at `length_floor`.

Checkpoints: original TF names come from the `GAU_alpha` class of
ZhuiyiTechnology/GAU-alpha (its own map; the order of the names changed across
bert4keras versions, the names did not). The Hugging Face layout is JunnYu's
`junnyu/chinese_GAU-alpha-char_L-24_H-768`.
"""
import re

from kerasformer.architectures import register
from kerasformer.architectures.base import DATA, MODEL
from kerasformer.architectures.bert import EMBEDDING_LAYOUT, expand
from kerasformer.architectures.roformer_v2 import (
    OUTPUT_MAPPING_NOT_SAVED, RoFormerV2, bias_free_sources,
)
from kerasformer.convert.weights import NotSaved, WeightMap
from kerasformer.layers.gau import GatedAttentionUnit

TF_NAMES = {
    "Embedding-Token/embeddings": "bert/embeddings/word_embeddings",
    "Embedding-Segment/embeddings": "bert/embeddings/token_type_embeddings",
    "Transformer-{i}-GatedAttentionUnit/i_dense/kernel": "GAU_alpha/encoder/layer_{i}/gau/i_dense/kernel",
    "Transformer-{i}-GatedAttentionUnit/q_scaleoffset/gamma": "GAU_alpha/encoder/layer_{i}/gau/q_scaleoffset/gamma",
    "Transformer-{i}-GatedAttentionUnit/k_scaleoffset/gamma": "GAU_alpha/encoder/layer_{i}/gau/k_scaleoffset/gamma",
    "Transformer-{i}-GatedAttentionUnit/o_dense/kernel": "GAU_alpha/encoder/layer_{i}/gau/o_dense/kernel",
}

HF_NAMES = {
    "Embedding-Token/embeddings": "gau_alpha.embeddings.word_embeddings.weight",
    "Embedding-Segment/embeddings": "gau_alpha.embeddings.token_type_embeddings.weight",
    "Transformer-{i}-GatedAttentionUnit/i_dense/kernel": "gau_alpha.encoder.layer.{i}.gau.i_dense.weight",
    "Transformer-{i}-GatedAttentionUnit/q_scaleoffset/gamma": "gau_alpha.encoder.layer.{i}.gau.q_scaleoffset.weight",
    "Transformer-{i}-GatedAttentionUnit/k_scaleoffset/gamma": "gau_alpha.encoder.layer.{i}.gau.k_scaleoffset.weight",
    "Transformer-{i}-GatedAttentionUnit/o_dense/kernel": "gau_alpha.encoder.layer.{i}.gau.o_dense.weight",
}

# The MLM decoder of the HF port is the tied word embeddings.
HF_IGNORED = (r"^cls\.predictions\.decoder\.weight$",)

# No released GAU-α factorises its embeddings; neither format names the layer.
EMBEDDING_MAPPING_NOT_SAVED = NotSaved(
    "no GAU-α checkpoint factorises its embeddings (embedding_size ≠ hidden_size)"
)

GAU_SIGN = r"^GAU_alpha/encoder/layer_\d+/gau/|^(gau_alpha\.)?encoder\.layer\.\d+\.gau\."


@register
class GAUAlpha(RoFormerV2):
    """GAU-α; arguments as `RoFormerV2`, plus:

    Args:
        length_floor: int. softmax_plus floor on the visible-key count: 1, what the
            released checkpoint was trained with (bert4keras 0.11.3), by default;
            16 reproduces bert4keras 0.11.5.
        num_attention_heads: unused by the single-head GAU (configs may omit it).
    """

    architecture = "gau_alpha"
    aliases = ("gau-alpha", "gau")
    hf_model_types = ("gau_alpha", "gau-alpha")
    initializer_order = 3
    required_arguments = (
        "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
        "hidden_act", "attention_key_size",
    )

    def __init__(self, num_attention_heads=1, length_floor=1, **kwargs):
        super().__init__(num_attention_heads=num_attention_heads, **kwargs)
        self.length_floor = length_floor
        # the options of the multi-head attention layer, which GAU-α does not use
        for name, default in (("attention_normalization", "softmax"),
                              ("log_scale_length", None), ("key_norm", None),
                              ("num_key_value_heads", None), ("attention_window", None)):
            if getattr(self, name) != default:
                raise ValueError(f"{name} is an option of multi-head attention; GAU-α's "
                                 "gated attention units always use softmax_plus")

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
            rerope=self.rerope,
            kernel_initializer=self.initializer,
        )
        return self.residual(x, self.call_attention(unit, x, index, context), name)

    @classmethod
    def layout_rules(cls):
        """RoFormerV2's embedding and output rules; each GAU's input projection
        (u, v and the shared query/key base, fused) is split on its output axis and
        its output projection on its input axis, Megatron-style; the per-dimension
        query/key scales are replicated. (The fused projection's split does not
        follow the u / v / base boundaries: XLA moves the slices it needs.)"""
        block = r"Transformer-\d+-GatedAttentionUnit/"
        return {
            **EMBEDDING_LAYOUT,
            block + "i_dense/kernel": (DATA, MODEL),
            block + "[qk]_scaleoffset/gamma": (None,),
            block + "o_dense/kernel": (MODEL, DATA),
            "Output-Mapping/kernel": (DATA, MODEL),
        }

    def weight_map(self, layout="tf"):
        names = expand(TF_NAMES if layout == "tf" else HF_NAMES, self.num_hidden_layers)
        sources = bias_free_sources(names, layout, self.vocab_transform())
        sources["Embedding-Mapping/kernel"] = EMBEDDING_MAPPING_NOT_SAVED
        sources["Output-Mapping/kernel"] = OUTPUT_MAPPING_NOT_SAVED
        if layout == "hf":
            return WeightMap(sources, ignored=HF_IGNORED, prefix="gau_alpha.")
        return WeightMap(sources)

    @classmethod
    def recognises_checkpoint(cls, names):
        return any(re.search(GAU_SIGN, n) for n in names)

    @classmethod
    def recognises_config(cls, config):
        return str(config.get("model_type", "")).lower() in cls.hf_model_types
