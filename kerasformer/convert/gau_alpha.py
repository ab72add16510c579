"""Weight maps of GAU-α checkpoints.

Original TF names come from the `GAU_alpha` class of ZhuiyiTechnology/GAU-alpha (its
own map; the order of the names changed across bert4keras versions, the names did
not). The Hugging Face layout is JunnYu's `junnyu/chinese_GAU-alpha-char_L-24_H-768`.
"""
from kerasformer.convert.bert import expand
from kerasformer.convert.roformer_v2 import NOT_SAVED, sources
from kerasformer.convert.weights import Source

TF_NAMES = {
    "Embedding-Token/embeddings": "bert/embeddings/word_embeddings",
    "Embedding-Segment/embeddings": "bert/embeddings/token_type_embeddings",
    "Transformer-{i}-GatedAttentionUnit/i_dense/kernel": "GAU_alpha/encoder/layer_{i}/gau/i_dense/kernel",
    "Transformer-{i}-GatedAttentionUnit/q_scaleoffset/gamma": "GAU_alpha/encoder/layer_{i}/gau/q_scaleoffset/gamma",
    "Transformer-{i}-GatedAttentionUnit/k_scaleoffset/gamma": "GAU_alpha/encoder/layer_{i}/gau/k_scaleoffset/gamma",
    "Transformer-{i}-GatedAttentionUnit/o_dense/kernel": "GAU_alpha/encoder/layer_{i}/gau/o_dense/kernel",
}

HF_PREFIX = "gau_alpha."

HF_NAMES = {
    "Embedding-Token/embeddings": "gau_alpha.embeddings.word_embeddings.weight",
    "Embedding-Segment/embeddings": "gau_alpha.embeddings.token_type_embeddings.weight",
    "Transformer-{i}-GatedAttentionUnit/i_dense/kernel": "gau_alpha.encoder.layer.{i}.gau.i_dense.weight",
    "Transformer-{i}-GatedAttentionUnit/q_scaleoffset/gamma": "gau_alpha.encoder.layer.{i}.gau.q_scaleoffset.weight",
    "Transformer-{i}-GatedAttentionUnit/k_scaleoffset/gamma": "gau_alpha.encoder.layer.{i}.gau.k_scaleoffset.weight",
    "Transformer-{i}-GatedAttentionUnit/o_dense/kernel": "gau_alpha.encoder.layer.{i}.gau.o_dense.weight",
}

HF_IGNORED = (r"^cls\.predictions\.decoder\.weight$",)


def weight_map(layout, num_layers, vocab_transform=None):
    """Weight map for `layout` "tf" (original) or "hf" (JunnYu's PyTorch port)."""
    names = expand(TF_NAMES if layout == "tf" else HF_NAMES, num_layers)
    result = sources(names, layout, vocab_transform)
    # No released GAU-α factorises its embeddings; neither format names the layers.
    result["Embedding-Mapping/kernel"] = Source("<not saved in GAU-α checkpoints>")
    result["Output-Mapping/kernel"] = NOT_SAVED
    return result
