"""Weight maps of BERT-layout checkpoints (BERT, RoBERTa, SimBERT, RoFormer, RoFormer-Sim).

Tables read `Keras variable path: checkpoint tensor name`; `{i}` is the block index.
The original TF names are Google BERT's, which bert4keras wrote for every family built
on BERT's layout — RoFormer included (it only lacks the position table).
"""
from kerasformer.convert.weights import TRANSPOSE, Source

TF_EMBEDDINGS = {
    "Embedding-Token/embeddings": "bert/embeddings/word_embeddings",
    "Embedding-Segment/embeddings": "bert/embeddings/token_type_embeddings",
    "Embedding-Position/embeddings": "bert/embeddings/position_embeddings",
    "Embedding-Norm/gamma": "bert/embeddings/LayerNorm/gamma",
    "Embedding-Norm/beta": "bert/embeddings/LayerNorm/beta",
    "Embedding-Mapping/kernel": "bert/encoder/embedding_hidden_mapping_in/kernel",
    "Embedding-Mapping/bias": "bert/encoder/embedding_hidden_mapping_in/bias",
}

TF_BLOCK = {
    "Transformer-{i}-MultiHeadSelfAttention/q_dense/kernel": "bert/encoder/layer_{i}/attention/self/query/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/q_dense/bias": "bert/encoder/layer_{i}/attention/self/query/bias",
    "Transformer-{i}-MultiHeadSelfAttention/k_dense/kernel": "bert/encoder/layer_{i}/attention/self/key/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/k_dense/bias": "bert/encoder/layer_{i}/attention/self/key/bias",
    "Transformer-{i}-MultiHeadSelfAttention/v_dense/kernel": "bert/encoder/layer_{i}/attention/self/value/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/v_dense/bias": "bert/encoder/layer_{i}/attention/self/value/bias",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/kernel": "bert/encoder/layer_{i}/attention/output/dense/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/bias": "bert/encoder/layer_{i}/attention/output/dense/bias",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/gamma": "bert/encoder/layer_{i}/attention/output/LayerNorm/gamma",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/beta": "bert/encoder/layer_{i}/attention/output/LayerNorm/beta",
    "Transformer-{i}-FeedForward/i0_dense/kernel": "bert/encoder/layer_{i}/intermediate/dense/kernel",
    "Transformer-{i}-FeedForward/i0_dense/bias": "bert/encoder/layer_{i}/intermediate/dense/bias",
    "Transformer-{i}-FeedForward/o_dense/kernel": "bert/encoder/layer_{i}/output/dense/kernel",
    "Transformer-{i}-FeedForward/o_dense/bias": "bert/encoder/layer_{i}/output/dense/bias",
    "Transformer-{i}-FeedForward-Norm/gamma": "bert/encoder/layer_{i}/output/LayerNorm/gamma",
    "Transformer-{i}-FeedForward-Norm/beta": "bert/encoder/layer_{i}/output/LayerNorm/beta",
}

TF_HEADS = {
    "Pooler-Dense/kernel": "bert/pooler/dense/kernel",
    "Pooler-Dense/bias": "bert/pooler/dense/bias",
    "NSP-Proba/kernel": "cls/seq_relationship/output_weights",  # stored [2, hidden]
    "NSP-Proba/bias": "cls/seq_relationship/output_bias",
    "MLM-Dense/kernel": "cls/predictions/transform/dense/kernel",
    "MLM-Dense/bias": "cls/predictions/transform/dense/bias",
    "MLM-Norm/gamma": "cls/predictions/transform/LayerNorm/gamma",
    "MLM-Norm/beta": "cls/predictions/transform/LayerNorm/beta",
    "MLM-Bias/beta": "cls/predictions/output_bias",
}

# Tensors indexed by token id: keep_tokens / compound_tokens apply to their rows.
TF_VOCABULARY = {"bert/embeddings/word_embeddings", "cls/predictions/output_bias"}


def expand(table, num_layers):
    """Instantiates `{i}` templates for blocks 0..num_layers-1."""
    expanded = {}
    for path, name in table.items():
        if "{i}" in path:
            for i in range(num_layers):
                expanded[path.format(i=i)] = name.format(i=i)
        else:
            expanded[path] = name
    return expanded


def tf_weight_map(num_layers, vocab_transform=None, position_embeddings=True):
    """Weight map of a BERT-layout original TF checkpoint.

    Args:
        num_layers: number of blocks of the model.
        vocab_transform: `Transform` for vocabulary rows (keep/compound tokens).
        position_embeddings: False for RoFormer, whose checkpoints have no table.
    """
    names = {**TF_EMBEDDINGS, **expand(TF_BLOCK, num_layers), **TF_HEADS}
    if not position_embeddings:
        del names["Embedding-Position/embeddings"]
    weight_map = {}
    for path, name in names.items():
        transform = None
        if name in TF_VOCABULARY:
            transform = vocab_transform
        elif name == "cls/seq_relationship/output_weights":
            transform = TRANSPOSE
        weight_map[path] = Source(name, transform)
    return weight_map
