"""Weight maps of RoFormerV2 checkpoints.

The original TF checkpoints use BERT's names minus every bias and norm parameter
(bert4keras derives RoFormerV2's map exactly so); the Hugging Face layout is JunnYu's
`junnyu/roformer_v2_chinese_char_*` (torch `Linear` weights are `[out, in]`).
"""
import re

from kerasformer.convert import bert
from kerasformer.convert.weights import TRANSPOSE, Source

# bert4keras builds an `Output-Mapping` when embedding_size ≠ hidden_size but never
# saves it; no released RoFormerV2 has one.
NOT_SAVED = Source("<not saved in RoFormerV2 checkpoints>")

HF_PREFIX = "roformer."

HF_IGNORED = bert.HF_IGNORED


def tf_names(num_layers):
    """BERT's original names without biases, norms and positions."""
    return {
        path: name
        for path, name in {**bert.TF_EMBEDDINGS, **bert.expand(bert.TF_BLOCK, num_layers)}.items()
        if not re.search("beta|gamma|bias|position", name)
    }


def hf_names(num_layers):
    """JunnYu's RoFormer names of the embeddings and blocks, without biases and norms."""
    return {
        path: name
        for path, name in bert.hf_names("roformer", num_layers, position_embeddings=False).items()
        if not path.startswith(("Pooler", "NSP", "MLM"))
        and not re.search(r"LayerNorm|\.bias$", name)
    }


def sources(names, layout, vocab_transform=None):
    """`Source`s for a {variable path: tensor name} table of a bias-free family:
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


def weight_map(layout, num_layers, vocab_transform=None):
    """Weight map for `layout` "tf" (original) or "hf" (JunnYu's PyTorch port)."""
    names = tf_names(num_layers) if layout == "tf" else hf_names(num_layers)
    result = sources(names, layout, vocab_transform)
    result["Output-Mapping/kernel"] = NOT_SAVED
    return result
