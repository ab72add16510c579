"""GPT-2 as bert4keras builds it (`model="gpt2"`), the architecture of CPM-LM.

    token ids ─ Embedding-Token ─ Embedding-Position (learned, added)
  × L: x = x + Dropout(MultiHeadSelfAttention(Norm(x)));  x = x + Dropout(FeedForward(Norm(x)))
  Output-Norm ─ Output-Dropout ─ Embedding-Token (tied) ─ LM-Activation

Pre-LN blocks with epsilon 1e-5, a causal mask, token ids only: no segments, no
embedding norm or dropout, no LM bias. `hidden_act="gelu"` is the erf GELU, as in
bert4keras; CPM was trained with the tanh approximation, which its manifests set.

Checkpoints: the original TF names are bert4keras' (`gpt/...`, bojone's CPM
converter writes them); the Hugging Face names are `GPT2LMHeadModel`'s, whose `Conv1D`
weights are already `[in, out]` and whose fused `c_attn` is split into query, key and
value by columns. Tables read `Keras variable path: tensor name`; `{i}` is the block.
"""
import re

import keras

from kerasformer.architectures import register
from kerasformer.architectures.base import MODEL
from kerasformer.architectures.bert import BERT, BLOCK_KERNEL_LAYOUT, expand
from kerasformer.convert.weights import Source, Transform, WeightMap
from kerasformer.layers.masks import MaskedAdd

TF_NAMES = {
    "Embedding-Token/embeddings": "gpt/embeddings/word_embeddings",
    "Embedding-Position/embeddings": "gpt/embeddings/position_embeddings",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/gamma": "gpt/transformer/layer_{i}/attention/input/LayerNorm/gamma",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/beta": "gpt/transformer/layer_{i}/attention/input/LayerNorm/beta",
    "Transformer-{i}-MultiHeadSelfAttention/q_dense/kernel": "gpt/transformer/layer_{i}/attention/self/query/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/q_dense/bias": "gpt/transformer/layer_{i}/attention/self/query/bias",
    "Transformer-{i}-MultiHeadSelfAttention/k_dense/kernel": "gpt/transformer/layer_{i}/attention/self/key/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/k_dense/bias": "gpt/transformer/layer_{i}/attention/self/key/bias",
    "Transformer-{i}-MultiHeadSelfAttention/v_dense/kernel": "gpt/transformer/layer_{i}/attention/self/value/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/v_dense/bias": "gpt/transformer/layer_{i}/attention/self/value/bias",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/kernel": "gpt/transformer/layer_{i}/attention/output/dense/kernel",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/bias": "gpt/transformer/layer_{i}/attention/output/dense/bias",
    "Transformer-{i}-FeedForward-Norm/gamma": "gpt/transformer/layer_{i}/input/LayerNorm/gamma",
    "Transformer-{i}-FeedForward-Norm/beta": "gpt/transformer/layer_{i}/input/LayerNorm/beta",
    "Transformer-{i}-FeedForward/i0_dense/kernel": "gpt/transformer/layer_{i}/intermediate/dense/kernel",
    "Transformer-{i}-FeedForward/i0_dense/bias": "gpt/transformer/layer_{i}/intermediate/dense/bias",
    "Transformer-{i}-FeedForward/o_dense/kernel": "gpt/transformer/layer_{i}/output/dense/kernel",
    "Transformer-{i}-FeedForward/o_dense/bias": "gpt/transformer/layer_{i}/output/dense/bias",
    "Output-Norm/gamma": "gpt/output/LayerNorm/gamma",
    "Output-Norm/beta": "gpt/output/LayerNorm/beta",
}

HF_NAMES = {
    "Embedding-Token/embeddings": "transformer.wte.weight",
    "Embedding-Position/embeddings": "transformer.wpe.weight",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/gamma": "transformer.h.{i}.ln_1.weight",
    "Transformer-{i}-MultiHeadSelfAttention-Norm/beta": "transformer.h.{i}.ln_1.bias",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/kernel": "transformer.h.{i}.attn.c_proj.weight",
    "Transformer-{i}-MultiHeadSelfAttention/o_dense/bias": "transformer.h.{i}.attn.c_proj.bias",
    "Transformer-{i}-FeedForward-Norm/gamma": "transformer.h.{i}.ln_2.weight",
    "Transformer-{i}-FeedForward-Norm/beta": "transformer.h.{i}.ln_2.bias",
    "Transformer-{i}-FeedForward/i0_dense/kernel": "transformer.h.{i}.mlp.c_fc.weight",
    "Transformer-{i}-FeedForward/i0_dense/bias": "transformer.h.{i}.mlp.c_fc.bias",
    "Transformer-{i}-FeedForward/o_dense/kernel": "transformer.h.{i}.mlp.c_proj.weight",
    "Transformer-{i}-FeedForward/o_dense/bias": "transformer.h.{i}.mlp.c_proj.bias",
    "Output-Norm/gamma": "transformer.ln_f.weight",
    "Output-Norm/beta": "transformer.ln_f.bias",
}
# The fused query-key-value projection, split by output columns.
HF_FUSED = "transformer.h.{i}.attn.c_attn.{kind}"
# The tied LM head copy and the causal-mask buffers of older exports.
HF_IGNORED = (r"^lm_head\.weight$", r"(^|\.)attn\.(masked_)?bias$")

# bert4keras config keys and the Hugging Face GPT2Config keys they are read from.
HF_CONFIG_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "n_embd", "num_hidden_layers": "n_layer",
    "num_attention_heads": "n_head", "intermediate_size": "n_inner",
    "max_position_embeddings": "n_positions", "hidden_act": "activation_function",
    "hidden_dropout_prob": "resid_pdrop", "attention_probs_dropout_prob": "attn_pdrop",
    "layer_norm_epsilon": "layer_norm_epsilon",
}

TF_SIGN = r"^gpt/transformer/layer_\d+/attention/input/LayerNorm/gamma$"
HF_SIGN = r"(^|\.)h\.\d+\.attn\.c_attn\.weight$"


def _third(index):
    """The `index`-th third of the last axis (query 0, key 1, value 2)."""
    def apply(array):
        width = array.shape[-1] // 3
        return array[..., index * width:(index + 1) * width]

    return Transform(f"{'qkv'[index]} columns of c_attn", apply,
                     lambda shape: (*shape[:-1], shape[-1] // 3))


@register
class GPT2(BERT):
    """GPT-2 (bert4keras' `GPT2`): a causal language model over token ids.

    Args:
        final_activation: activation of the LM head ("softmax" probabilities, or
            "linear" for logits), as bert4keras' `final_activation`.
        layer_norm_epsilon: float. Epsilon of every norm (1e-5, as GPT-2's).
        **kwargs: `BERT` arguments (`max_position`, dropout, sizes); segments, the
            pooler and the MLM head do not exist here, and `application` is "lm"
            ("encoder", the builder's default, means it too, as in bert4keras).
    """

    architecture = "gpt2"
    aliases = ()
    hf_model_types = ("gpt2",)
    hf_prefix = "transformer"
    has_position_table = True

    def __init__(self, final_activation="softmax", layer_norm_epsilon=1e-5,
                 application="lm", segment_vocab_size=0, **kwargs):
        # bert4keras' GPT2 is causal whatever the application (its builder's default
        # "encoder" included); a UniLM mask would be another model
        if application not in ("encoder", "lm"):
            raise ValueError(f"GPT-2 is a causal language model: application must be 'lm', "
                             f"got {application!r}")
        for option in ("with_pool", "with_nsp", "with_mlm", "custom_position_ids"):
            if kwargs.get(option):
                raise ValueError(f"GPT-2 has no {option} (its output is the LM head)")
        # configs carry BERT's type_vocab_size; GPT-2 takes token ids only
        super().__init__(layer_norm_epsilon=layer_norm_epsilon, application="lm",
                         segment_vocab_size=0, **kwargs)
        if self.embedding_size != self.hidden_size:
            raise ValueError(
                f"GPT-2 ties its LM head to the token embedding: embedding_size "
                f"{self.embedding_size} must equal hidden_size {self.hidden_size}"
            )
        self.final_activation = final_activation
        self.with_mlm = False  # BERT's head flag: the LM head here is not optional

    def apply_embeddings(self, inputs, context):
        x = self.token_embedding()(inputs["token_ids"])  # (batch, seq, hidden)
        return self.add_position_embeddings(x, inputs)

    def pre_norm_residual(self, x, update, name):
        """`x + Dropout(update(Norm(x)))`, the pre-LN residual, named after `name`."""
        h = update(self.normalize(self.norm_layer(f"{name}-Norm"), x))
        h = self.dropout(h, f"{name}-Dropout")
        return self.layer(f"{name}-Add", MaskedAdd)([x, h])

    def apply_main_layers(self, x, index, context):
        attention = self.attention_layer(index)
        x = self.pre_norm_residual(
            x, lambda h: self.call_attention(attention, h, index, context),
            f"Transformer-{index}-MultiHeadSelfAttention",
        )
        return self.pre_norm_residual(
            x, self.feed_forward_layer(index), f"Transformer-{index}-FeedForward"
        )

    def logits(self, x):
        x = self.normalize(self.norm_layer("Output-Norm"), x)
        x = self.dropout(x, "Output-Dropout")
        return self.token_embedding()(x, mode="dense")  # (batch, seq, vocab_size)

    def apply_final_layers(self, x, context):
        return self.layer(
            "LM-Activation", keras.layers.Activation, activation=self.final_activation,
            dtype="float32",
        )(self.logits(x))

    def can_decode(self):
        return super(BERT, self).can_decode()

    @classmethod
    def layout_rules(cls):
        block = r"Transformer-\d+-"
        return {
            "Embedding-Token/embeddings": (None, MODEL),
            "Embedding-Position/embeddings": (None, MODEL),
            **BLOCK_KERNEL_LAYOUT,
            block + "MultiHeadSelfAttention/[qkv]_dense/bias": (MODEL,),
            block + "MultiHeadSelfAttention/o_dense/bias": (None,),
            block + r"FeedForward/i\d+_dense/bias": (MODEL,),
            block + "FeedForward/o_dense/bias": (None,),
            block + "(MultiHeadSelfAttention|FeedForward)-Norm/(gamma|beta)": (None,),
            "Output-Norm/(gamma|beta)": (None,),
        }

    def weight_map(self, layout="tf"):
        vocab = self.vocab_transform()
        names = expand(HF_NAMES if layout == "hf" else TF_NAMES, self.num_hidden_layers)
        sources = {
            path: Source(name, vocab if path == "Embedding-Token/embeddings" else None)
            for path, name in names.items()
        }
        if layout != "hf":
            return WeightMap(sources)
        for i in range(self.num_hidden_layers):
            for index, dense in enumerate("qkv"):
                for kind, part in (("weight", "kernel"), ("bias", "bias")):
                    name = HF_FUSED.format(i=i, kind=kind)
                    path = f"Transformer-{i}-MultiHeadSelfAttention/{dense}_dense/{part}"
                    sources[path] = Source(name, _third(index))
        return WeightMap(sources, ignored=HF_IGNORED, prefix=self.hf_prefix + ".")

    @classmethod
    def standard_config(cls, config):
        """A Hugging Face GPT-2 config (`n_embd`, `n_layer`, ...) in bert4keras' keys;
        a `bert_config.json` as it is. `n_inner` None means 4 × `n_embd`, as in
        transformers."""
        if "n_embd" not in config:
            return config
        translated = {key: config[hf] for key, hf in HF_CONFIG_KEYS.items() if hf in config}
        if config.get("n_inner") is None:
            translated["intermediate_size"] = 4 * config["n_embd"]
        translated.setdefault("hidden_act", config.get("activation_function", "gelu_new"))
        return translated

    @classmethod
    def recognises_checkpoint(cls, names):
        return any(re.search(TF_SIGN, name) or re.search(HF_SIGN, name) for name in names)

    @classmethod
    def recognises_config(cls, config):
        return config.get("model_type") in cls.hf_model_types

