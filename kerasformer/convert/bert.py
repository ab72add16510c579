"""Weight maps of BERT-layout checkpoints (BERT, RoBERTa, SimBERT, RoFormer, RoFormer-Sim).

Tables read `Keras variable path: checkpoint tensor name`; `{i}` is the block index.
The original TF names are Google BERT's, which bert4keras wrote for every family built
on BERT's layout — RoFormer included (it only lacks the position table). The Hugging
Face names are those of `BertForMaskedLM` / JunnYu's `RoFormerForMaskedLM`, under
`bert.` or `roformer.`; torch `Linear` weights are `[out, in]` and get transposed.
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
                expanded[path.replace("{i}", str(i))] = name.replace("{i}", str(i))
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


HF_EMBEDDINGS = {
    "Embedding-Token/embeddings": "{model}.embeddings.word_embeddings.weight",
    "Embedding-Segment/embeddings": "{model}.embeddings.token_type_embeddings.weight",
    "Embedding-Position/embeddings": "{model}.embeddings.position_embeddings.weight",
    "Embedding-Norm/gamma": "{model}.embeddings.LayerNorm.weight",
    "Embedding-Norm/beta": "{model}.embeddings.LayerNorm.bias",
    "Embedding-Mapping/kernel": "{mapping}.weight",
    "Embedding-Mapping/bias": "{mapping}.bias",
}

HF_BLOCK = {
    "Transformer-{i}-MultiHeadSelfAttention/q_dense/kernel": "{model}.encoder.layer.{i}.attention.self.query.weight",
    "Transformer-{i}-MultiHeadSelfAttention/q_dense/bias": "{model}.encoder.layer.{i}.attention.self.query.bias",
    "Transformer-{i}-MultiHeadSelfAttention/k_dense/kernel": "{model}.encoder.layer.{i}.attention.self.key.weight",
    "Transformer-{i}-MultiHeadSelfAttention/k_dense/bias": "{model}.encoder.layer.{i}.attention.self.key.bias",
    "Transformer-{i}-MultiHeadSelfAttention/v_dense/kernel": "{model}.encoder.layer.{i}.attention.self.value.weight",
    "Transformer-{i}-MultiHeadSelfAttention/v_dense/bias": "{model}.encoder.layer.{i}.attention.self.value.bias",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/kernel": "{model}.encoder.layer.{i}.attention.output.dense.weight",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/bias": "{model}.encoder.layer.{i}.attention.output.dense.bias",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/gamma": "{model}.encoder.layer.{i}.attention.output.LayerNorm.weight",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/beta": "{model}.encoder.layer.{i}.attention.output.LayerNorm.bias",
    "Transformer-{i}-FeedForward/i0_dense/kernel": "{model}.encoder.layer.{i}.intermediate.dense.weight",
    "Transformer-{i}-FeedForward/i0_dense/bias": "{model}.encoder.layer.{i}.intermediate.dense.bias",
    "Transformer-{i}-FeedForward/o_dense/kernel": "{model}.encoder.layer.{i}.output.dense.weight",
    "Transformer-{i}-FeedForward/o_dense/bias": "{model}.encoder.layer.{i}.output.dense.bias",
    "Transformer-{i}-FeedForward-Norm/gamma": "{model}.encoder.layer.{i}.output.LayerNorm.weight",
    "Transformer-{i}-FeedForward-Norm/beta": "{model}.encoder.layer.{i}.output.LayerNorm.bias",
}

HF_HEADS = {
    "Pooler-Dense/kernel": "{model}.pooler.dense.weight",
    "Pooler-Dense/bias": "{model}.pooler.dense.bias",
    "NSP-Proba/kernel": "cls.seq_relationship.weight",
    "NSP-Proba/bias": "cls.seq_relationship.bias",
    "MLM-Dense/kernel": "cls.predictions.transform.dense.weight",
    "MLM-Dense/bias": "cls.predictions.transform.dense.bias",
    "MLM-Norm/gamma": "cls.predictions.transform.LayerNorm.weight",
    "MLM-Norm/beta": "cls.predictions.transform.LayerNorm.bias",
    "MLM-Bias/beta": "cls.predictions.bias",
}

# Where each family keeps the embedding-to-hidden projection of factorised embeddings.
HF_MAPPING_LAYER = {
    "bert": "bert.encoder.embedding_hidden_mapping_in",  # SimBERT small / tiny
    "roformer": "roformer.embeddings_project",
}

# The MLM decoder is the tied word embeddings (its bias the MLM bias again), position
# ids and RoFormer's sinusoid table are buffers: none of them is a weight to load.
HF_IGNORED = (
    r"^cls\.predictions\.decoder\.(weight|bias)$",
    r"\.position_ids$",
    r"\.embed_positions\.weight$",
)


def hf_names(model, num_layers, position_embeddings=True):
    """{variable path: HF tensor name} of a BERT-layout model named `model`."""
    names = {**HF_EMBEDDINGS, **expand(HF_BLOCK, num_layers), **HF_HEADS}
    if not position_embeddings:
        del names["Embedding-Position/embeddings"]
    return {
        path: name.format(model=model, mapping=HF_MAPPING_LAYER[model])
        for path, name in names.items()
    }


def hf_weight_map(model, num_layers, vocab_transform=None, position_embeddings=True):
    """Weight map of a BERT-layout Hugging Face checkpoint (`model` is its prefix,
    "bert" or "roformer")."""
    weight_map = {}
    for path, name in hf_names(model, num_layers, position_embeddings).items():
        transform = None
        if path in ("Embedding-Token/embeddings", "MLM-Bias/beta"):
            transform = vocab_transform
        elif path.endswith("/kernel"):
            transform = TRANSPOSE
        weight_map[path] = Source(name, transform)
    return weight_map
