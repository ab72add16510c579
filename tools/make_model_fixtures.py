"""Writes the model parity fixtures (tests/fixtures/models) with the ORIGINAL bert4keras.

Each fixture directory is an original-release layout — bert_config.json,
bert_model.ckpt.{index,data-00000-of-00001}, vocab.txt — holding tiny random weights,
plus reference.npz (inputs and bert4keras' outputs for every case) and cases.json
(the build_transformer_model arguments of every case).

Run with the reference environment (../shared/reference/README.md):

    ../shared/reference/setup-bert4keras.sh /tmp/bert4keras-ref
    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python tools/make_model_fixtures.py [NAME ...]

(NAME: only these fixtures, e.g. `gpt2`; all of them by default.)

Every weight is randomised (seeded) before the checkpoint is written, so a wrong bias
or gain mapping cannot pass; the checkpoint is re-read through bert4keras' own
`checkpoint_path=` and must reproduce the in-memory outputs exactly.
"""
import collections
import json
import os
import pathlib
import shutil
import sys

import numpy as np
import tensorflow as tf

import bert4keras
from bert4keras.layers import Add, Dropout, GatedAttentionUnit, LayerNormalization
from bert4keras.models import RoFormerV2, build_transformer_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "models"
CORPUS = ROOT.parent / "shared" / "data" / "SimCLUE" / "corpus_1w.txt"
COMMAND = (
    "TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python "
    "tools/make_model_fixtures.py"
)


class GAUAlpha(RoFormerV2):
    """GAU-α, which bert4keras does not ship (it lives in ZhuiyiTechnology/GAU-alpha):
    RoFormerV2 whose blocks are `Norm(x + Dropout(GAU(x)))`, GAU with units =
    intermediate_size, key_size = attention_key_size, no bias, softmax_plus, RoPE."""

    def initializer(self, shape, dtype=None, order=3, gain=1.0):
        return super().initializer(shape, dtype, order, gain)

    def apply_main_layers(self, inputs, index):
        name = "Transformer-%d-GatedAttentionUnit" % index
        mask = self.compute_attention_bias(index)
        unit_inputs, arguments = [inputs, self.compute_position_bias(inputs)], {
            "a_bias": None, "p_bias": "rotary"}
        if mask is not None:
            arguments["a_bias"] = True
            unit_inputs.insert(1, mask)
        x = self.apply(
            inputs=unit_inputs, layer=GatedAttentionUnit, arguments=arguments,
            units=self.intermediate_size, key_size=self.attention_key_size,
            activation=self.hidden_act, use_bias=False, normalization="softmax_plus",
            attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer, name=name,
        )
        x = self.apply(inputs=x, layer=Dropout, rate=self.dropout_rate, name=name + "-Dropout")
        x = self.apply(inputs=[inputs, x], layer=Add, name=name + "-Add")
        return self.apply(inputs=x, layer=LayerNormalization, zero_mean=False,
                          scale=False, offset=False, name=name + "-Norm")

    def variable_mapping(self):
        mapping = {
            "Embedding-Token": ["bert/embeddings/word_embeddings"],
            "Embedding-Segment": ["bert/embeddings/token_type_embeddings"],
        }
        for i in range(self.num_hidden_layers):
            scope = "GAU_alpha/encoder/layer_%d/gau/" % i
            # In the order of the layer's trainable weights in bert4keras 0.11.5.
            mapping["Transformer-%d-GatedAttentionUnit" % i] = [
                scope + "i_dense/kernel", scope + "q_scaleoffset/gamma",
                scope + "k_scaleoffset/gamma", scope + "o_dense/kernel",
            ]
        return mapping


MODELS = {"gau_alpha": GAUAlpha}
# Models whose only input is the token ids (no segments).
TOKENS_ONLY = {"gpt2"}


def build_vocab():
    """[PAD] [UNK] [CLS] [SEP] [MASK], ASCII, and the 300 most frequent corpus characters."""
    counts = collections.Counter(CORPUS.read_text(encoding="utf-8"))
    chinese = [c for c, _ in counts.most_common() if "\u4e00" <= c <= "\u9fff"][:300]
    ascii_tokens = list("0123456789abcdefghijklmnopqrstuvwxyz,.!?")
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ascii_tokens + chinese


def randomise(model, seed):
    """Moderate random values for every weight (kernels ~ N(0, 0.6/√fan_in))."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        name = weight.name
        if "gamma" in name:
            value = 1.0 + rng.normal(0, 0.1, shape)
        elif "beta" in name or "bias" in name:
            value = rng.normal(0, 0.1, shape)
        elif "embeddings" in name:
            value = rng.normal(0, 0.3, shape)
        else:
            value = rng.normal(0, 0.6 / np.sqrt(shape[0]), shape)
        weight.assign(value.astype(np.float32))


def save_checkpoint(transformer, prefix):
    """Writes the mapped weights as a TF1 checkpoint (save_weights_as_checkpoint is
    broken on this stack), transposing the NSP kernel as bert4keras does."""
    values = {}
    for layer_name, names in transformer.variable_mapping().items():
        if layer_name not in transformer.layers:
            continue
        layer = transformer.layers[layer_name]
        for name, weight in zip(names, layer.trainable_weights):
            value = weight.numpy()
            if name == "cls/seq_relationship/output_weights":
                value = value.T
            values[name] = value
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(
                session, str(prefix), write_meta_graph=False
            )
    (prefix.parent / "checkpoint").unlink()
    return sorted(values)


def make_inputs(rng, vocab_size, lengths, seq_len, sources):
    """[CLS] x [SEP] y [SEP] rows padded with 0; segment 1 marks the second part."""
    token_ids = np.zeros((len(lengths), seq_len), dtype=np.int32)
    segment_ids = np.zeros_like(token_ids)
    for row, (length, source) in enumerate(zip(lengths, sources)):
        token_ids[row, :length] = rng.integers(5, vocab_size, length)
        token_ids[row, 0] = 2
        token_ids[row, length - 1] = 3
        if source < length:
            token_ids[row, source - 1] = 3
            segment_ids[row, source:length] = 1
    return token_ids, segment_ids


def as_list(outputs):
    return outputs if isinstance(outputs, list) else [outputs]


def make_fixture(name, model, config, full_kwargs, cases, seed):
    directory = OUT / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    vocab = build_vocab()
    config = dict(config, vocab_size=len(vocab))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config_path = directory / "bert_config.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    prefix = directory / "bert_model.ckpt"

    rng = np.random.default_rng(seed)
    token_ids, segment_ids = make_inputs(
        rng, len(vocab), lengths=[14, 10, 3], seq_len=14, sources=[8, 5, 3]
    )
    long_token_ids, long_segment_ids = make_inputs(
        rng, len(vocab), lengths=[80, 57], seq_len=80, sources=[40, 57]
    )
    inputs = {"token_ids": token_ids, "segment_ids": segment_ids,
              "long_token_ids": long_token_ids, "long_segment_ids": long_segment_ids}

    # The checkpoint: every weight the family can hold, randomised.
    full = build_transformer_model(
        str(config_path), model=MODELS.get(model, model), return_keras_model=False,
        **full_kwargs
    )
    randomise(full.model, seed)
    full_feed = [token_ids] if model in TOKENS_ONLY else [token_ids, segment_ids]
    expected_full = as_list(full.model.predict(full_feed, verbose=0))
    variables = save_checkpoint(full, prefix)
    reloaded = build_transformer_model(
        str(config_path), str(prefix), model=MODELS.get(model, model), **full_kwargs
    )
    for want, got in zip(expected_full, as_list(reloaded.predict(full_feed, verbose=0))):
        np.testing.assert_array_equal(want, got)

    arrays = {}
    for case_name, case in cases.items():
        kwargs = dict(case.get("kwargs", {}))
        reference = build_transformer_model(
            str(config_path),
            str(prefix),
            model=MODELS.get(model, model),
            application=case.get("application", "encoder"),
            **kwargs,
        )
        prefix_key = "long_" if case.get("long") else ""
        token_ids = inputs[prefix_key + "token_ids"]
        if "keep_tokens" in kwargs:
            vocab_size = len(kwargs["keep_tokens"]) + len(kwargs.get("compound_tokens", []))
            token_ids = np.where(token_ids > 0, token_ids % vocab_size, 0)
        feed = [token_ids, inputs[prefix_key + "segment_ids"]]
        if model in TOKENS_ONLY:
            feed = [token_ids]
        if kwargs.get("custom_position_ids"):
            positions = np.tile(np.arange(feed[0].shape[1])[None] * 2 + 1, (len(feed[0]), 1))
            feed.append(positions.astype(np.int32))
        for input_name, value in zip(["token_ids", "segment_ids", "position_ids"], feed):
            arrays[f"{case_name}/{input_name}"] = value
        for index, output in enumerate(as_list(reference.predict(feed, verbose=0))):
            arrays[f"{case_name}/output_{index}"] = output.astype(np.float32)
        tf.keras.backend.clear_session()
    np.savez_compressed(directory / "reference.npz", **arrays)
    meta = {
        "model": model,
        "generated_by": COMMAND,
        "bert4keras": bert4keras.__version__,
        "tensorflow": tf.__version__,
        "seed": seed,
        "checkpoint_variables": variables,
        "cases": cases,
    }
    (directory / "cases.json").write_text(
        json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"{name}: {len(variables)} variables, {len(cases)} cases")


BASE = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
}

BERT_CASES = {
    "encoder": {},
    "pool_tanh": {"kwargs": {"with_pool": True}},
    "pool_linear": {"kwargs": {"with_pool": "linear"}},
    "nsp": {"kwargs": {"with_nsp": True}},
    "mlm": {"kwargs": {"with_mlm": True}},
    "pool_mlm_logits": {"kwargs": {"with_pool": "linear", "with_mlm": "linear"}},
    "lm": {"application": "lm"},
    "unilm_simbert": {"application": "unilm", "kwargs": {"with_pool": "linear"}},
    "keep_compound_tokens": {
        "kwargs": {
            "with_mlm": True,
            "keep_tokens": [0, 1, 2, 3, 4] + list(range(60, 300, 3)),
            "compound_tokens": [[5, 6], ([7, 8, 9], [1, 2, 3])],
        }
    },
    "hierarchical_long": {"long": True, "kwargs": {"hierarchical_position": True}},
    "custom_positions": {"kwargs": {"custom_position_ids": True, "with_mlm": True}},
}

ROFORMER_CASES = {
    "encoder": {},
    "pool_tanh": {"kwargs": {"with_pool": True}},
    "mlm": {"kwargs": {"with_mlm": True}},
    "lm": {"application": "lm"},
    "unilm_sim": {"application": "unilm", "kwargs": {"with_pool": "linear"}},
    "long_encoder": {"long": True, "kwargs": {"with_mlm": "linear"}},
    "custom_positions": {"kwargs": {"custom_position_ids": True}},
}

ROFORMER_V2_CASES = {
    "encoder": {},
    "mlm": {"kwargs": {"with_mlm": True}},
    "lm": {"application": "lm"},
    "unilm": {"application": "unilm"},
    "long_mlm_logits": {"long": True, "kwargs": {"with_mlm": "linear"}},
}

GAU_CASES = dict(ROFORMER_V2_CASES, custom_positions={"kwargs": {"custom_position_ids": True, "with_mlm": True}})

FACTORIZED_CASES = {
    "encoder": {},
    "unilm_sim": {"application": "unilm", "kwargs": {"with_pool": "linear"}},
    "lm": {"application": "lm", "kwargs": {"with_mlm": "linear"}},
}


GPT2_CASES = {
    "lm": {},
    "logits": {"kwargs": {"final_activation": "linear"}},
    "keep_tokens": {"kwargs": {"keep_tokens": [0, 1, 2, 3, 4] + list(range(60, 300, 3))}},
    "hierarchical_long": {"long": True, "kwargs": {"hierarchical_position": True}},
}


def main(names):
    """Writes the fixtures named in `names` (all when empty)."""
    print("bert4keras", bert4keras.__version__, "tensorflow", tf.__version__, file=sys.stderr)
    global make_fixture
    write = make_fixture
    make_fixture = lambda name, *args, **kwargs: (  # noqa: E731
        write(name, *args, **kwargs) if not names or name in names else None)
    make_fixture("bert", "bert", BASE,
                 {"with_pool": True, "with_nsp": True, "with_mlm": True}, BERT_CASES, seed=1)
    make_fixture("bert_factorized", "bert", dict(BASE, embedding_size=32),
                 {"with_pool": "linear", "with_mlm": True}, FACTORIZED_CASES, seed=2)
    make_fixture("roformer", "roformer", BASE,
                 {"with_pool": "linear", "with_mlm": True}, ROFORMER_CASES, seed=3)
    make_fixture("roformer_factorized", "roformer", dict(BASE, embedding_size=32),
                 {"with_pool": "linear", "with_mlm": True}, FACTORIZED_CASES, seed=4)
    v2 = dict(BASE, hidden_act="relu")
    make_fixture("roformer_v2", "roformer_v2", v2, {"with_mlm": True}, ROFORMER_V2_CASES, seed=5)
    # bert4keras never saves RoFormerV2's Output-Mapping, so the factorised model is
    # checked without its MLM head (which lm and unilm would force on).
    make_fixture("roformer_v2_factorized", "roformer_v2", dict(v2, embedding_size=32), {},
                 {"encoder": {}, "custom_positions": {"kwargs": {"custom_position_ids": True}}},
                 seed=6)
    gau = dict(BASE, hidden_act="swish", num_attention_heads=1, attention_key_size=16)
    make_fixture("gau_alpha", "gau_alpha", gau, {"with_mlm": True}, GAU_CASES, seed=7)
    # GPT-2 (CPM-LM's architecture): pre-LN, eps 1e-5, learned positions, tied LM head.
    make_fixture("gpt2", "gpt2", dict(BASE, hidden_dropout_prob=0.0), {}, GPT2_CASES, seed=8)


if __name__ == "__main__":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    main(set(sys.argv[1:]))
