"""BERT (and RoBERTa, SimBERT): the post-LN encoder all the other families start from.

    token ids ─ Embedding-Token ─┐
  segment ids ─ Embedding-Segment ┴ Add ─ Embedding-Position ─ Embedding-Norm ─ Dropout
                                        [─ Embedding-Mapping when embedding_size ≠ hidden_size]
  × L: x = Norm(x + Dropout(MultiHeadSelfAttention(x)));  x = Norm(x + Dropout(FeedForward(x)))
  heads: Pooler ─ Pooler-Dense [─ NSP-Proba];  MLM-Dense ─ MLM-Norm ─ Embedding-Token (tied) ─ MLM-Bias ─ MLM-Activation

Output rule (bert4keras'): no head → the sequence output; one head → that head only;
pooler and MLM → `[pooled, mlm]`.
"""
import keras

from kerasformer.convert import bert
from kerasformer.convert.checkpoints import canonical_hf_names
from kerasformer.layers.attention import MultiHeadAttention
from kerasformer.layers.embeddings import PositionEmbedding, TokenEmbedding
from kerasformer.layers.feedforward import FeedForward
from kerasformer.layers.masks import MaskedAdd
from kerasformer.layers.normalization import LayerNormalization, ScaleOffset
from kerasformer.layers.pooling import FirstToken
from kerasformer.models.base import Transformer

# bert4keras hard-codes this epsilon for the MLM head's norm in every family.
MLM_NORM_EPSILON = 1e-12


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
        **kwargs: `Transformer` arguments.
    """

    family = "bert"
    use_bias = True  # on every projection
    hf_prefix = "bert"  # of the tensor names in Hugging Face files
    has_position_table = True

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

    def apply_embeddings(self, inputs, context):
        x = self.token_embedding()(inputs["token_ids"])  # (batch, seq, embedding_size)
        x = self.add_segment_embeddings(x, inputs)
        x = self.layer(
            "Embedding-Position",
            PositionEmbedding,
            input_dim=self.max_position,
            output_dim=self.embedding_size,
            merge_mode="add",
            hierarchical=self.hierarchical_position,
            embeddings_initializer=self.initializer,
        )(x, position_ids=inputs.get("position_ids"))
        x = self.norm_layer("Embedding-Norm")(x)
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
            kernel_initializer=self.initializer,
        )

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
        return self.layer(name, LayerNormalization, epsilon=self.layer_norm_epsilon)

    def residual(self, x, update, name):
        """`Norm(x + Dropout(update))`, the post-norm residual, named after `name`."""
        update = self.dropout(update, f"{name}-Dropout")
        x = self.layer(f"{name}-Add", MaskedAdd)([x, update])
        return self.norm_layer(f"{name}-Norm")(x)

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
        x = self.layer(
            "MLM-Dense",
            keras.layers.Dense,
            units=self.embedding_size,
            activation=self.hidden_act,
            kernel_initializer=self.initializer,
        )(x)
        x = self.layer("MLM-Norm", LayerNormalization, epsilon=MLM_NORM_EPSILON)(x)
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

    def weight_map(self, layout="tf"):
        if layout == "hf":
            return bert.hf_weight_map(
                self.hf_prefix, self.num_hidden_layers, self.vocab_transform(),
                self.has_position_table,
            )
        return bert.tf_weight_map(
            self.num_hidden_layers, self.vocab_transform(), self.has_position_table
        )

    def ignored_sources(self, layout="tf"):
        return bert.HF_IGNORED if layout == "hf" else ()

    def prepare_checkpoint(self, checkpoint, layout):
        if layout == "hf":
            return canonical_hf_names(checkpoint, self.hf_prefix + ".")
        return checkpoint
