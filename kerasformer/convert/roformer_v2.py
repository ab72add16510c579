"""Weight maps of RoFormerV2 checkpoints.

The original TF checkpoints use BERT's names minus every bias and norm parameter
(bert4keras derives RoFormerV2's map exactly so); the Hugging Face layout is JunnYu's
`junnyu/roformer_v2_chinese_char_*` (torch `Linear` weights are `[out, in]`).
"""
import re

from kerasformer.convert.bert import TF_BLOCK, TF_EMBEDDINGS, expand
from kerasformer.convert.weights import TRANSPOSE, Source

# bert4keras builds an `Output-Mapping` when embedding_size ≠ hidden_size but never
# saves it; no released RoFormerV2 has one.
NOT_SAVED = Source("<not saved in RoFormerV2 checkpoints>")

HF_PREFIX = "roformer."

HF_NAMES = {
    "Embedding-Token/embeddings": "roformer.embeddings.word_embeddings.weight",
    "Embedding-Segment/embeddings": "roformer.embeddings.token_type_embeddings.weight",
    "Embedding-Mapping/kernel": "roformer.embeddings_project.weight",
    "Transformer-{i}-MultiHeadSelfAttention/q_dense/kernel": "roformer.encoder.layer.{i}.attention.self.query.weight",
    "Transformer-{i}-MultiHeadSelfAttention/k_dense/kernel": "roformer.encoder.layer.{i}.attention.self.key.weight",
    "Transformer-{i}-MultiHeadSelfAttention/v_dense/kernel": "roformer.encoder.layer.{i}.attention.self.value.weight",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/kernel": "roformer.encoder.layer.{i}.attention.output.dense.weight",
    "Transformer-{i}-FeedForward/i0_dense/kernel": "roformer.encoder.layer.{i}.intermediate.dense.weight",
    "Transformer-{i}-FeedForward/o_dense/kernel": "roformer.encoder.layer.{i}.output.dense.weight",
}

# The MLM decoder is a copy of the tied word embeddings; the sinusoid table is a
# cache that JunnYu's converter sometimes left in.
HF_IGNORED = (r"^cls\.predictions\.decoder\.weight$", r"\.embed_positions\.weight$")


def tf_names(num_layers):
    """BERT's original names without biases, norms and positions."""
    return {
        path: name
        for path, name in {**TF_EMBEDDINGS, **expand(TF_BLOCK, num_layers)}.items()
        if not re.search("beta|gamma|bias|position", name)
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
    names = tf_names(num_layers) if layout == "tf" else expand(HF_NAMES, num_layers)
    result = sources(names, layout, vocab_transform)
    result["Output-Mapping/kernel"] = NOT_SAVED
    return result
