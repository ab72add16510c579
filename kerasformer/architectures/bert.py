"""BERT (and RoBERTa, SimBERT): the post-LN encoder all the other families start from.

    token ids ─ Embedding-Token ─┐
  segment ids ─ Embedding-Segment ┴ Add ─ Embedding-Position ─ Embedding-Norm ─ Dropout
                                        [─ Embedding-Mapping when embedding_size ≠ hidden_size]
  × L: x = Norm(x + Dropout(MultiHeadSelfAttention(x)));  x = Norm(x + Dropout(FeedForward(x)))
  heads: Pooler ─ Pooler-Dense [─ NSP-Proba];  MLM-Dense ─ MLM-Norm ─ Embedding-Token (tied) ─ MLM-Bias ─ MLM-Activation

Output rule (bert4keras'): no head → the sequence output; one head → that head only;
pooler and MLM → `[pooled, mlm]`.

Checkpoints: the original TF names are Google BERT's, which bert4keras wrote for every
architecture built on BERT's layout (RoFormer included: it only lacks the position
table). The Hugging Face names are those of `BertForMaskedLM` / JunnYu's
`RoFormerForMaskedLM`, under `bert.` or `roformer.`; torch `Linear` weights are
`[out, in]` and get transposed. Tables read `Keras variable path: tensor name`; `{i}`
is the block index.
"""
import re

import keras

from kerasformer.architectures import register
from kerasformer.architectures.base import DATA, MODEL, Transformer
from kerasformer.checks import check_integer
from kerasformer.convert.weights import TRANSPOSE, Source, WeightMap
from kerasformer.layers.attention import MultiHeadAttention
from kerasformer.layers.embeddings import PositionEmbedding, TokenEmbedding
from kerasformer.layers.feedforward import FeedForward
from kerasformer.layers.masks import MaskedAdd
from kerasformer.layers.normalization import LayerNormalization, ScaleOffset
from kerasformer.layers.pooling import FirstToken

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

# The MLM decoder is the tied word embeddings (its bias the MLM bias again), position
# ids and RoFormer's sinusoid table are buffers: none of them is a weight to load.
HF_IGNORED = (
    r"^cls\.predictions\.decoder\.(weight|bias)$",
    r"\.position_ids$",
    r"\.embed_positions\.weight$",
)


def hf_names(model, mapping, num_layers, position_embeddings=True):
    """{variable path: HF tensor name} of a BERT-layout model under prefix `model`,
    whose factorised-embedding projection is the module `mapping`."""
    names = {**HF_EMBEDDINGS, **expand(HF_BLOCK, num_layers), **HF_HEADS}
    if not position_embeddings:
        del names["Embedding-Position/embeddings"]
    return {
        path: name.format(model=model, mapping=mapping)
        for path, name in names.items()
    }


def hf_weight_map(model, mapping, num_layers, vocab_transform=None, position_embeddings=True):
    """Weight map of a BERT-layout Hugging Face checkpoint (`model` is its prefix,
    "bert" or "roformer"; `mapping` as in `hf_names`)."""
    weight_map = {}
    for path, name in hf_names(model, mapping, num_layers, position_embeddings).items():
        transform = None
        if path in ("Embedding-Token/embeddings", "MLM-Bias/beta"):
            transform = vocab_transform
        elif path.endswith("/kernel"):
            transform = TRANSPOSE
        weight_map[path] = Source(name, transform)
    return weight_map


# bert4keras hard-codes this epsilon for the MLM head's norm in every family.
MLM_NORM_EPSILON = 1e-12


# Megatron-style layout rules of the embedding tables and of each block's kernels:
# first projections (query/key/value, feed-forward input) split on their output axis,
# output projections on their input axis; shared by the BERT-layout architectures.
EMBEDDING_LAYOUT = {
    "Embedding-Token/embeddings": (None, MODEL),
    "Embedding-Segment/embeddings": (None, MODEL),
    "Embedding-Mapping/kernel": (DATA, MODEL),
}
BLOCK_KERNEL_LAYOUT = {
    r"Transformer-\d+-MultiHeadSelfAttention/[qkv]_dense/kernel": (DATA, MODEL),
    r"Transformer-\d+-MultiHeadSelfAttention/o_dense/kernel": (MODEL, DATA),
    r"Transformer-\d+-FeedForward/i\d+_dense/kernel": (DATA, MODEL),
    r"Transformer-\d+-FeedForward/o_dense/kernel": (MODEL, DATA),
}


@register
class BERT(Transformer):
    """BERT as bert4keras builds it.

    Args:
        max_position: int. Rows of the learned position table.
        segment_vocab_size: int. Segment types; 0 drops the segment input.
        with_pool: bool or str. Add the pooler on [CLS]: True for tanh, or the name of
            its activation ("linear" for SimBERT / RoFormer-Sim sentence vectors).
        with_nsp: bool. Add next-sentence prediction on the pooler (implies it).
        with_mlm: bool or str. Add the MLM head: True for softmax probabilities, or
            the name of its activation ("linear" for logits). Forced on for the "lm"
            and "unilm" applications.
        hierarchical_position: None, True or float. Hierarchical position
            decomposition to exceed `max_position` (see `PositionEmbedding`).
        custom_position_ids: bool. Add an `Input-Position` input of position ids.
        shared_segment_embeddings: bool. Embed segment ids with the token table.
        layer_norm_epsilon: float. Epsilon of the embedding and block norms.
        attention_normalization: "softmax", or "softmax_plus" (bert4keras' entropy-
            invariant softmax, `softmax(a·ln n/ln 512)`, https://kexue.fm/archives/8823).
        log_scale_length: int or None. Scale each query's logits by
            `max(1, ln n / ln L)` past this training length L (n its visible keys):
            log-n scaling for texts longer than the model was trained on.
        key_norm: None, "key" (KeyNorm: unit keys, no 1/√d) or "cosine" (CosA), for
            models trained with it (https://kexue.fm/archives/9859).
        num_key_value_heads: int dividing `num_attention_heads`, or None.
            Grouped-query attention (1: multi-query) for new models: smaller key and
            value projections and a KV cache of only these heads.
        attention_window: int or None. Sliding-window attention in every block but
            the last `full_attention_layers`: a token sees the tokens less than
            `attention_window` positions away. With the last block full, this is
            HWFA (https://kexue.fm/archives/9603): the window blocks never meet a
            relative position they were not trained on.
        full_attention_layers: int. How many of the last blocks attend to the whole
            sequence when `attention_window` is set (default 1).
        **kwargs: `Transformer` arguments.
    """

    architecture = "bert"
    aliases = ("roberta",)
    hf_model_types = ("bert",)
    use_bias = True  # on every projection
    hf_prefix = "bert"  # of the tensor names in Hugging Face files
    # The factorised embeddings' projection in Hugging Face files (SimBERT small / tiny).
    hf_mapping_layer = "bert.encoder.embedding_hidden_mapping_in"
    has_position_table = True
    # ReRoPE's options for the attention layers (`RoFormer` sets them from its
    # `rope_scaling`); None is attention by the position table or a RoPE table.
    rerope = None

    def __init__(
        self,
        max_position=512,
        segment_vocab_size=2,
        with_pool=False,
        with_nsp=False,
        with_mlm=False,
        hierarchical_position=None,
        custom_position_ids=False,
        shared_segment_embeddings=False,
        layer_norm_epsilon=1e-12,
        attention_normalization="softmax",
        log_scale_length=None,
        key_norm=None,
        num_key_value_heads=None,
        attention_window=None,
        full_attention_layers=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_position = max_position
        self.segment_vocab_size = segment_vocab_size
        self.with_pool = with_pool or with_nsp
        self.with_nsp = with_nsp
        self.with_mlm = with_mlm or self.application in ("lm", "unilm")
        self.hierarchical_position = hierarchical_position
        self.custom_position_ids = custom_position_ids
        self.shared_segment_embeddings = shared_segment_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon
        self.attention_normalization = attention_normalization
        self.log_scale_length = log_scale_length
        self.key_norm = key_norm
        self.num_key_value_heads = num_key_value_heads
        attention_window = check_integer(attention_window, "attention_window", optional=True)
        if isinstance(full_attention_layers, bool) or not isinstance(full_attention_layers, int) \
                or not 0 <= full_attention_layers <= self.num_hidden_layers:
            raise ValueError(f"full_attention_layers must be an integer from 0 to the "
                             f"{self.num_hidden_layers} blocks, got {full_attention_layers!r}")
        self.attention_window = attention_window
        self.full_attention_layers = full_attention_layers
        if self.application == "unilm" and not segment_vocab_size:
            raise ValueError(
                "application='unilm' separates source and target by segment ids, "
                "so segment_vocab_size must be > 0"
            )

    # ---------------------------------------------------------------- inputs

    def get_inputs(self):
        shape = (self.sequence_length,)
        inputs = {"token_ids": keras.Input(shape, dtype="int32", name="Input-Token")}
        if self.segment_vocab_size > 0:
            inputs["segment_ids"] = keras.Input(shape, dtype="int32", name="Input-Segment")
        if self.custom_position_ids:
            inputs["position_ids"] = keras.Input(shape, dtype="int32", name="Input-Position")
        return inputs

    # ------------------------------------------------------------ embeddings

    def token_embedding(self):
        return self.layer(
            "Embedding-Token",
            TokenEmbedding,
            input_dim=self.vocab_size,
            output_dim=self.embedding_size,
            embeddings_initializer=self.initializer,
            mask_zero=True,
        )

    def add_segment_embeddings(self, x, inputs):
        """Adds the segment embeddings to the token embeddings `x`."""
        if self.segment_vocab_size <= 0:
            return x
        if self.shared_segment_embeddings:
            embedding = self.token_embedding()
        else:
            embedding = self.layer(
                "Embedding-Segment",
                keras.layers.Embedding,
                input_dim=self.segment_vocab_size,
                output_dim=self.embedding_size,
                embeddings_initializer=self.initializer,
            )
        segments = embedding(inputs["segment_ids"])
        return self.layer("Embedding-Token-Segment", MaskedAdd)([x, segments])

    def map_embeddings(self, x):
        """Projects embeddings to the hidden width when they differ."""
        if self.embedding_size == self.hidden_size:
            return x
        return self.layer(
            "Embedding-Mapping",
            keras.layers.Dense,
            units=self.hidden_size,
            use_bias=self.use_bias,
            kernel_initializer=self.initializer,
        )(x)

    def add_position_embeddings(self, x, inputs):
        """Adds the learned position embeddings (of `inputs["position_ids"]` if given)."""
        return self.layer(
            "Embedding-Position",
            PositionEmbedding,
            input_dim=self.max_position,
            output_dim=self.embedding_size,
            merge_mode="add",
            hierarchical=self.hierarchical_position,
            embeddings_initializer=self.initializer,
        )(x, position_ids=inputs.get("position_ids"))

    def apply_embeddings(self, inputs, context):
        x = self.token_embedding()(inputs["token_ids"])  # (batch, seq, embedding_size)
        x = self.add_segment_embeddings(x, inputs)
        x = self.add_position_embeddings(x, inputs)
        x = self.normalize(self.norm_layer("Embedding-Norm"), x)
        x = self.dropout(x, "Embedding-Dropout")
        return self.map_embeddings(x)  # (batch, seq, hidden_size)

    # ---------------------------------------------------------------- blocks

    def attention_layer(self, index):
        return self.layer(
            f"Transformer-{index}-MultiHeadSelfAttention",
            MultiHeadAttention,
            heads=self.num_attention_heads,
            head_size=self.attention_head_size,
            out_dim=self.hidden_size,
            key_size=self.attention_key_size,
            use_bias=self.use_bias,
            attention_dropout=self.attention_dropout_rate,
            normalization=self.attention_normalization,
            log_scale_length=self.log_scale_length,
            key_norm=self.key_norm,
            num_key_value_heads=self.num_key_value_heads,
            rerope=self.rerope,
            window=self.window_of(index),
            kernel_initializer=self.initializer,
        )

    def window_of(self, index):
        """The attention window of block `index`: None in the full-attention blocks."""
        if index >= self.num_hidden_layers - self.full_attention_layers:
            return None
        return self.attention_window

    def feed_forward_layer(self, index):
        return self.layer(
            f"Transformer-{index}-FeedForward",
            FeedForward,
            units=self.intermediate_size,
            activation=self.hidden_act,
            use_bias=self.use_bias,
            kernel_initializer=self.initializer,
        )

    def norm_layer(self, name):
        """The normalisation of the embeddings and of each residual."""
        return self.layer(
            name, LayerNormalization, epsilon=self.layer_norm_epsilon, **self.norm_arguments()
        )

    def residual(self, x, update, name):
        """`Norm(x + Dropout(update))`, the post-norm residual, named after `name`."""
        update = self.dropout(update, f"{name}-Dropout")
        x = self.layer(f"{name}-Add", MaskedAdd)([x, update])
        return self.normalize(self.norm_layer(f"{name}-Norm"), x)

    def apply_main_layers(self, x, index, context):
        attention = self.attention_layer(index)
        x = self.residual(
            x,
            self.call_attention(attention, x, index, context),
            f"Transformer-{index}-MultiHeadSelfAttention",
        )
        return self.residual(
            x, self.feed_forward_layer(index)(x), f"Transformer-{index}-FeedForward"
        )

    # ----------------------------------------------------------------- heads

    def apply_pooler(self, x):
        x = self.layer("Pooler", FirstToken)(x)  # (batch, hidden_size)
        activation = "tanh" if self.with_pool is True else self.with_pool
        x = self.layer(
            "Pooler-Dense",
            keras.layers.Dense,
            units=self.hidden_size,
            activation=activation,
            kernel_initializer=self.initializer,
        )(x)
        if self.with_nsp:
            x = self.layer(
                "NSP-Proba",
                keras.layers.Dense,
                units=2,
                activation="softmax",
                kernel_initializer=self.initializer,
                dtype="float32",
            )(x)
        return x

    def mlm_logits(self, x):
        """Vocabulary logits of hidden states `x` through the (tied) MLM head."""
        x = self.layer(
            "MLM-Dense",
            keras.layers.Dense,
            units=self.embedding_size,
            activation=self.hidden_act,
            kernel_initializer=self.initializer,
        )(x)
        norm = self.layer(
            "MLM-Norm", LayerNormalization, epsilon=MLM_NORM_EPSILON, **self.norm_arguments()
        )
        x = self.normalize(norm, x)
        x = self.token_embedding()(x, mode="dense")  # (batch, seq, vocab_size)
        return self.layer("MLM-Bias", ScaleOffset, scale=False)(x)

    def apply_mlm(self, x):
        activation = "softmax" if self.with_mlm is True else self.with_mlm
        return self.layer(
            "MLM-Activation", keras.layers.Activation, activation=activation, dtype="float32"
        )(self.mlm_logits(x))

    def apply_final_layers(self, x, context):
        heads = []
        if self.with_pool:
            heads.append(self.apply_pooler(x))
        if self.with_mlm:
            heads.append(self.apply_mlm(x))
        if not heads:
            return x
        return heads[0] if len(heads) == 1 else heads

    # ------------------------------------------------------- decoder protocol

    def logits(self, x):
        return self.mlm_logits(x)

    def max_positions(self):
        if self.hierarchical_position:
            return self.max_position**2
        return self.max_position

    @property
    def uses_segments(self):
        return self.segment_vocab_size > 0

    def can_decode(self):
        reason = super().can_decode()
        if reason is None and not self.with_mlm:
            return "decoding needs the MLM head (with_mlm)"
        return reason

    # --------------------------------------------------------- distribution

    @classmethod
    def layout_rules(cls):
        """Megatron-style: the embedding tables and each block's first projections
        (query/key/value, feed-forward input) split on their output axis — hidden
        units, heads — and the blocks' output projections on their input axis; the
        MLM transform (`MLM-Dense`) splits its output like the tied token table it
        is multiplied with. Norms, biases added after a split reduction, the pooler,
        NSP and the MLM output bias (the logits are whole on every device) are
        replicated."""
        block = r"Transformer-\d+-"
        rules = {
            **EMBEDDING_LAYOUT,
            **BLOCK_KERNEL_LAYOUT,
            "Pooler-Dense/kernel": (None, None),
            "NSP-Proba/kernel": (None, None),
            "MLM-Dense/kernel": (DATA, MODEL),
        }
        if cls.has_position_table:
            rules["Embedding-Position/embeddings"] = (None, MODEL)
        rules.update({
            "Embedding-Norm/(gamma|beta)": (None,),
            block + "(MultiHeadSelfAttention|FeedForward)-Norm/(gamma|beta)": (None,),
        })
        if cls.use_bias:
            rules.update({
                "Embedding-Mapping/bias": (MODEL,),
                block + "MultiHeadSelfAttention/[qkv]_dense/bias": (MODEL,),
                block + "MultiHeadSelfAttention/o_dense/bias": (None,),
                block + r"FeedForward/i\d+_dense/bias": (MODEL,),
                block + "FeedForward/o_dense/bias": (None,),
            })
        rules.update({
            "Pooler-Dense/bias": (None,),
            "NSP-Proba/bias": (None,),
            "MLM-Dense/bias": (MODEL,),
            "MLM-Norm/(gamma|beta)": (None,),
            "MLM-Bias/beta": (None,),
        })
        return rules

    # -------------------------------------------------------------- weights

    def weight_map(self, layout="tf"):
        vocab = self.vocab_transform()
        if layout == "hf":
            return WeightMap(
                hf_weight_map(self.hf_prefix, self.hf_mapping_layer, self.num_hidden_layers,
                              vocab, self.has_position_table),
                ignored=HF_IGNORED,
                prefix=self.hf_prefix + ".",
            )
        return WeightMap(tf_weight_map(self.num_hidden_layers, vocab, self.has_position_table))

    @classmethod
    def recognises_checkpoint(cls, names):
        return any(re.search(POSITION_TABLE_SIGN, name) for name in names)


# A learned position table: BERT's alone among the BERT-layout architectures.
POSITION_TABLE_SIGN = r"^bert/embeddings/position_embeddings$|^(bert\.)?embeddings\.position_embeddings\."
# Post-LN block norms: BERT and RoFormer have them, RoFormerV2 does not.
BLOCK_NORM_SIGN = (
    r"^bert/encoder/layer_\d+/attention/output/LayerNorm/gamma$"
    r"|^(bert\.|roformer\.)?encoder\.layer\.\d+\.attention\.output\.LayerNorm\."
)
QUERY_SIGN = (
    r"^bert/encoder/layer_\d+/attention/self/query/kernel$"
    r"|^(bert\.|roformer\.)?encoder\.layer\.\d+\.attention\.self\.query\.weight$"
)
