"""Writes tests/fixtures/training/similarity.json: three training steps of each published
SimBERT / RoFormer-Sim objective in the ORIGINAL bert4keras, on the tiny fixture
checkpoints and a fixed batch.

Run with the reference environment (../shared/reference/README.md):

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \
        tools/make_similarity_training_fixtures.py

The models and losses are those of the original scripts — ZhuiyiTechnology/simbert
`simbert.py` (SimBERT v1: bert, unilm, linear pooler, softmax MLM, seq2seq CE on
probabilities + contrastive CE at scale 30) and ZhuiyiTechnology/roformer-sim
`train/stage1.py` (roformer, MLM logits, scale 20), `train/stage2.py` (the same
seq2seq loss + 100·mean((VVᵀ − T)²) against a given teacher similarity matrix) and
`train/supervised.py` (encoder, `[a, b, |a−b|]` repeated, Dense(5, no bias), the
masked 5-class CE) — with AdamW = extend_with_weight_decay(Adam), weight decay 0.01
on every variable as in the scripts, and dropout (hidden and attention) off so that steps are deterministic.
`train_on_batch` returns the loss before each update, so losses 2 and 3 also check
the updates. Also recorded: each loss term at the initial weights.

Forced deviations (see tools/bench_train_bert4keras.py): bert4keras' optimizers are
pointed at tf-keras' legacy OptimizerV2 base; `tf.eye` for `K.eye`; the similarity
term is averaged (`K.mean`) before it is added to the scalar seq2seq term, which is
what Keras does with the per-row vector the scripts add.
"""
import json
import os
import pathlib

import numpy as np
import tensorflow as tf

from bert4keras.backend import K, keras

keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
from bert4keras.layers import Loss  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.optimizers import Adam, extend_with_weight_decay  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = REPO / "tests" / "fixtures" / "models"
OUTPUT = REPO / "tests" / "fixtures" / "training" / "similarity.json"
LEARNING_RATE, WEIGHT_DECAY, STEPS = 1e-3, 0.01, 3

# Pairs of the fixture vocabulary's characters (others become [UNK], which is fine).
PAIRS = [
    ("今天天气很好", "今天的天气不错"),
    ("我们都是中国人", "我们是中国人"),
    ("明天会下雨吗", "明天下雨吗"),
    ("这个手机很好用", "这部手机好用"),
]
# (text_a, text_b, label) for the supervised head: binary 0/1 and NLI classes 2-4.
LABELLED = [
    ("今天天气很好", "今天的天气不错", 1),
    ("我们都是中国人", "明天下雨吗", 0),
    ("这个手机很好用", "这部手机好用", 3),
    ("明天会下雨吗", "今天天气很好", 2),
]


def unilm_batch(tokenizer):
    """Adjacent a→b, b→a rows as the scripts build them (no corruption)."""
    tokens, segments = [], []
    for first, second in PAIRS:
        for source, target in ((first, second), (second, first)):
            source_ids = tokenizer.encode(source)[0]
            target_ids = tokenizer.encode(target)[0][1:]
            tokens.append(source_ids + target_ids)
            segments.append([0] * len(source_ids) + [1] * len(target_ids))
    return pad(tokens), pad(segments)


def encoder_batch(tokenizer):
    tokens, labels = [], []
    for first, second, label in LABELLED:
        for text in (first, second):
            tokens.append(tokenizer.encode(text)[0])
            labels.append(label)
    tokens = pad(tokens)
    return tokens, np.zeros_like(tokens), np.array(labels, "float32")[:, None]


def pad(rows):
    width = max(len(row) for row in rows)
    return np.array([row + [0] * (width - len(row)) for row in rows], "int32")


def seq2seq_loss(y_true, y_mask, y_pred, from_logits):
    y_true, y_mask, y_pred = y_true[:, 1:], K.cast(y_mask[:, 1:], K.floatx()), y_pred[:, :-1]
    loss = K.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits)
    return K.sum(loss * y_mask) / K.sum(y_mask)


def contrastive_loss(vectors, scale):
    idxs = K.arange(0, K.shape(vectors)[0])
    labels = K.cast(K.equal(idxs[None, :], (idxs + 1 - idxs % 2 * 2)[:, None]), K.floatx())
    vectors = K.l2_normalize(vectors, axis=1)
    similarities = K.dot(vectors, K.transpose(vectors))
    similarities = (similarities - tf.eye(K.shape(vectors)[0]) * 1e12) * scale
    return K.mean(K.categorical_crossentropy(labels, similarities, from_logits=True))


def distillation_loss(vectors, teacher_similarities):
    vectors = K.l2_normalize(vectors, axis=1)
    similarities = K.dot(vectors, K.transpose(vectors))
    return 100 * K.mean((similarities - teacher_similarities) ** 2)


def optimizer():
    return extend_with_weight_decay(Adam, "AdamW")(
        learning_rate=LEARNING_RATE, weight_decay_rate=WEIGHT_DECAY)


def train(model, inputs, terms, labels=None):
    """Loss terms at the initial weights, then STEPS losses of train_on_batch."""
    initial = K.function(model.inputs, terms)(inputs)
    losses = [float(np.asarray(model.train_on_batch(inputs, labels)).reshape(-1)[0])
              for _ in range(STEPS)]
    return [float(value) for value in initial], losses


def generative_case(fixture, architecture, with_mlm, scale, teacher=False):
    directory = MODELS / fixture
    tokenizer = Tokenizer(str(directory / "vocab.txt"), do_lower_case=True)
    tokens, segments = unilm_batch(tokenizer)
    bert = build_transformer_model(
        str(directory / "bert_config.json"), str(directory / "bert_model.ckpt"),
        model=architecture, application="unilm", with_pool="linear", with_mlm=with_mlm,
        dropout_rate=0.0, attention_dropout_rate=0.0, return_keras_model=False)
    from_logits = with_mlm == "linear"
    inputs = [tokens, segments]
    extra_inputs = []
    if teacher:
        rng = np.random.default_rng(7)
        teacher_vectors = rng.normal(size=(len(tokens), 16)).astype("float32")
        teacher_vectors /= np.linalg.norm(teacher_vectors, axis=1, keepdims=True)
        similarities = (teacher_vectors @ teacher_vectors.T).astype("float32")
        extra_inputs = [keras.layers.Input(shape=(None,))]
        inputs = [tokens, segments, similarities]

    class TotalLoss(Loss):
        def compute_loss(self, inputs, mask=None):
            token_ids, segment_ids, vectors, predictions = inputs[:4]
            loss = seq2seq_loss(token_ids, segment_ids, predictions, from_logits)
            if teacher:
                return loss + distillation_loss(vectors, inputs[4])
            return loss + contrastive_loss(vectors, scale)

    model_inputs = bert.model.inputs + extra_inputs
    outputs = TotalLoss([2, 3])(bert.model.inputs + bert.model.outputs + extra_inputs)
    model = keras.models.Model(model_inputs, outputs)
    model.compile(optimizer=optimizer())
    vectors, predictions = bert.model.outputs
    terms = [seq2seq_loss(bert.model.inputs[0], bert.model.inputs[1], predictions, from_logits),
             distillation_loss(vectors, extra_inputs[0]) if teacher
             else contrastive_loss(vectors, scale)]
    initial, losses = train(model, inputs, terms)
    case = {"fixture": fixture, "architecture": architecture, "with_mlm": with_mlm,
            "token_ids": tokens.tolist(), "segment_ids": segments.tolist(),
            "seq2seq_loss": initial[0], "similarity_loss": initial[1], "losses": losses}
    if teacher:
        case["teacher_vectors"] = teacher_vectors.tolist()
    return case


def supervised_case():
    directory = MODELS / "roformer"
    tokenizer = Tokenizer(str(directory / "vocab.txt"), do_lower_case=True)
    tokens, segments, labels = encoder_batch(tokenizer)
    encoder = build_transformer_model(
        str(directory / "bert_config.json"), str(directory / "bert_model.ckpt"),
        model="roformer", with_pool="linear", dropout_rate=0.0, attention_dropout_rate=0.0,
        ignore_invalid_weights=True)

    def merge(inputs):
        a, b = inputs[::2], inputs[1::2]
        return K.repeat_elements(K.concatenate([a, b, K.abs(a - b)], axis=1), 2, 0)

    def special_crossentropy(y_true, y_pred):
        task = K.cast(y_true < 1.5, K.floatx())
        mask = K.constant([[0, 0, 1, 1, 1]])
        y_pred = task * (y_pred - mask * 1e12) + (1 - task) * (y_pred - (1 - mask) * 1e12)
        loss = K.sparse_categorical_crossentropy(K.cast(y_true, "int32"), y_pred,
                                                 from_logits=True)
        return K.mean(loss)

    head = keras.layers.Dense(5, use_bias=False)
    output = head(keras.layers.Lambda(merge)(encoder.output))
    model = keras.models.Model(encoder.inputs, output)
    kernel = np.random.default_rng(11).normal(0, 0.3, size=(3 * 64, 5)).astype("float32")
    head.set_weights([kernel])
    model.compile(loss=special_crossentropy, optimizer=optimizer())
    initial = float(K.eval(special_crossentropy(
        K.constant(labels), K.constant(model.predict([tokens, segments], verbose=0)))))
    losses = [float(model.train_on_batch([tokens, segments], labels)) for _ in range(STEPS)]
    return {"fixture": "roformer", "architecture": "roformer", "token_ids": tokens.tolist(),
            "labels": labels[:, 0].tolist(), "classifier_kernel": kernel.tolist(),
            "similarity_loss": initial, "losses": losses}


def main():
    tf.random.set_seed(0)
    cases = {
        "simbert": generative_case("bert", "bert", True, 30),
        "stage1": generative_case("roformer", "roformer", "linear", 20),
        "stage2": generative_case("roformer", "roformer", "linear", 20, teacher=True),
        "supervised": supervised_case(),
    }
    import bert4keras

    fixture = {
        "generator": "tools/make_similarity_training_fixtures.py",
        "bert4keras": bert4keras.__version__, "tensorflow": tf.__version__,
        "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY, "cases": cases,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    temporary = OUTPUT.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(fixture, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, OUTPUT)
    for name, case in cases.items():
        print(name, case.get("seq2seq_loss"), case["similarity_loss"], case["losses"])


if __name__ == "__main__":
    main()
