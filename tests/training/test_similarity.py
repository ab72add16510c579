"""The SimBERT / RoFormer-Sim objectives reproduce the original scripts.

- Three AdamW steps of each objective on the tiny fixture checkpoints give the losses
  bert4keras gave (tests/fixtures/training/similarity.json, written by
  tools/make_similarity_training_fixtures.py in the reference environment): the
  first checks the loss, the next two the updates.
- Each loss equals a numpy computation of its published formula on fixed vectors.
- The batches: adjacent a→b / b→a rows, the stage-1 corruption rate, labels.
"""
import functools
import os
import json

import keras
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

from kerasformer.data import Group, Pair
from kerasformer.models import build_transformer_model
from kerasformer.optimizers import Adam
from kerasformer.training import losses
from kerasformer.training.similarity import SimilarityTraining, similarity_batches
from kerasformer.tokenizers import Tokenizer
from tests.conftest import FIXTURES

REFERENCE = json.loads((FIXTURES / "training" / "similarity.json").read_text(encoding="utf-8"))
CASES = REFERENCE["cases"]
JIT = os.environ.get("KF_TEST_JIT", "1") == "1" and keras.backend.backend() != "torch"


def transformer(case, **kwargs):
    directory = FIXTURES / "models" / case["fixture"]
    return build_transformer_model(
        str(directory / "bert_config.json"), str(directory / "bert_model.ckpt"),
        model=case["architecture"], application="unilm", with_pool="linear",
        dropout_rate=0.0, attention_dropout_rate=0.0, return_keras_model=False, **kwargs)


def train_three_steps(trainer, inputs, labels):
    trainer.compile(optimizer=Adam(REFERENCE["learning_rate"],
                                   weight_decay=REFERENCE["weight_decay"]),
                    jit_compile=JIT)
    return [float(trainer.train_on_batch(inputs, labels, return_dict=True)["loss"])
            for _ in range(3)]


# SimBERT (both losses, probabilities) also on tensorflow and torch; the other
# objectives are the same backend-neutral ops, checked on jax.
@pytest.mark.parametrize("name", [
    pytest.param("simbert", marks=pytest.mark.backends), "stage1", "stage2"])
def test_generative_objectives_match_bert4keras(name):
    case = CASES[name]
    trainer = SimilarityTraining(transformer(case, with_mlm=case["with_mlm"]), name)
    inputs = {"token_ids": np.array(case["token_ids"], "int32"),
              "segment_ids": np.array(case["segment_ids"], "int32")}
    if "teacher_vectors" in case:
        inputs["teacher_vectors"] = np.array(case["teacher_vectors"], "float32")
    labels = np.zeros(len(inputs["token_ids"]), "float32")
    terms = trainer.loss_terms(inputs, labels, trainer(inputs))
    np.testing.assert_allclose(float(terms["seq2seq_loss"]), case["seq2seq_loss"], atol=1e-4)
    np.testing.assert_allclose(float(terms["similarity_loss"]), case["similarity_loss"],
                               atol=1e-4)
    np.testing.assert_allclose(train_three_steps(trainer, inputs, labels), case["losses"],
                               atol=1e-4, rtol=1e-5)


def test_supervised_objective_matches_bert4keras():
    case = CASES["supervised"]
    trainer = SimilarityTraining(transformer(case), "supervised")
    tokens = np.array(case["token_ids"], "int32")
    inputs = {"token_ids": tokens, "segment_ids": np.zeros_like(tokens)}
    labels = np.array(case["labels"], "float32")
    trainer(inputs)
    trainer.classifier.set_weights([np.array(case["classifier_kernel"], "float32")])
    np.testing.assert_allclose(train_three_steps(trainer, inputs, labels), case["losses"],
                               atol=1e-4, rtol=1e-5)
    # Only the encoder (and the head) train: the MLM head is not the optimizer's.
    names = {variable.path for variable in trainer.trainable_variables}
    assert not any("MLM" in name for name in names)


# ------------------------------------------------------------- losses vs numpy

RNG = np.random.default_rng(3)
VECTORS = RNG.normal(size=(6, 5)).astype("float32")
TEACHER = RNG.normal(size=(6, 7)).astype("float32")


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_in_batch_contrastive_formula():
    v = unit(VECTORS)
    scores = (v @ v.T - 1e12 * np.eye(6)) * 20
    partners = np.arange(6) ^ 1
    expected = -log_softmax(scores, axis=1)[np.arange(6), partners]
    np.testing.assert_allclose(losses.in_batch_contrastive(VECTORS, 20), expected, atol=1e-5)


def test_similarity_distillation_formula():
    s, t = unit(VECTORS), unit(TEACHER)
    expected = 100 * np.mean((s @ s.T - t @ t.T) ** 2)
    actual = np.mean(keras.ops.convert_to_numpy(losses.similarity_distillation(VECTORS, TEACHER)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


def test_pair_classification_formula():
    logits = RNG.normal(size=(6, 5)).astype("float32")
    labels = np.array([1, 1, 0, 0, 3, 3], "float32")
    expected = []
    for row, label in zip(logits, labels):
        allowed = [0, 1] if label < 1.5 else [2, 3, 4]
        expected.append(logsumexp(row[allowed]) - row[int(label)])
    np.testing.assert_allclose(losses.pair_classification(labels, logits), expected, atol=1e-5)
    features = keras.ops.convert_to_numpy(losses.pair_features(VECTORS))
    a, b = VECTORS[0::2], VECTORS[1::2]
    np.testing.assert_allclose(features, np.repeat(np.concatenate([a, b, abs(a - b)], 1), 2, 0))


def test_cosent_formula():
    scores = np.array([3, 3, 1, 1, 2, 2], "float32")
    v = unit(VECTORS)
    cosines = np.sum(v[0::2] * v[1::2], axis=1) * 20
    s = scores[0::2]
    terms = [cosines[j] - cosines[i] for i in range(3) for j in range(3) if s[i] > s[j]]
    expected = np.log1p(np.sum(np.exp(terms)))
    np.testing.assert_allclose(float(losses.cosent(VECTORS, scores)), expected, rtol=1e-5)


def test_seq2seq_cross_entropy_row_weights_formula():
    """Weighted rows: a masked mean over the target tokens of the rows weighted 1."""
    rng = np.random.default_rng(5)
    token_ids = rng.integers(1, 7, size=(4, 6)).astype("int32")
    segment_ids = np.array([[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1],
                            [0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]], "int32")
    logits = rng.normal(size=(4, 6, 7)).astype("float32")
    weights = np.array([1, 0, 1, 0], "float32")
    token_losses = -log_softmax(logits[:, :-1], axis=-1)
    token_losses = np.take_along_axis(token_losses, token_ids[:, 1:, None], -1)[..., 0]
    mask = segment_ids[:, 1:] * weights[:, None]
    expected = np.sum(token_losses * mask) / np.sum(mask)
    actual = np.mean(keras.ops.convert_to_numpy(losses.seq2seq_cross_entropy(
        token_ids, segment_ids, logits, from_logits=True, row_weights=weights)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


def test_cosent_seq2seq_is_cosent_plus_the_positives_seq2seq():
    """The joint objective's terms on the fixture model: CoSENT of the sources' pooled
    vectors and the seq2seq loss of the positive rows alone, both from the formulas."""
    case = CASES["stage1"]
    trainer = SimilarityTraining(transformer(case, with_mlm="linear"), "cosent_seq2seq")
    tokens = np.array(case["token_ids"], "int32")
    segments = np.array(case["segment_ids"], "int32")
    scores = np.repeat(np.arange(len(tokens) // 2, dtype="float32"), 2)
    weights = (scores > 0).astype("float32")
    inputs = {"token_ids": tokens, "segment_ids": segments, "seq2seq_weights": weights}
    outputs = trainer(inputs)
    terms = trainer.loss_terms(inputs, scores, outputs)
    vectors = keras.ops.convert_to_numpy(outputs["vectors"])
    np.testing.assert_allclose(float(terms["similarity_loss"]),
                               float(losses.cosent(vectors, scores)), rtol=1e-5)
    logits = keras.ops.convert_to_numpy(outputs["mlm"]).astype("float64")
    token_losses = -log_softmax(logits[:, :-1], axis=-1)
    token_losses = np.take_along_axis(token_losses, tokens[:, 1:, None], -1)[..., 0]
    mask = segments[:, 1:] * weights[:, None]
    np.testing.assert_allclose(float(terms["seq2seq_loss"]),
                               np.sum(token_losses * mask) / np.sum(mask), rtol=1e-4)


# ---------------------------------------------------------------------- batches


@functools.lru_cache(maxsize=None)
def tokenizer():
    return Tokenizer(str(FIXTURES / "models" / "roformer" / "vocab.txt"), do_lower_case=True)


def test_generative_batches_hold_both_directions():
    records = [Pair("今天天气很好", "今天的天气不错", None), Pair("我们都是中国人", "明天下雨吗", 0.0),
               Group(("这个手机很好用", "这部手机好用", "手机很好"))]
    batch, labels = next(similarity_batches([records], tokenizer(), "simbert", 4, maxlen=32))
    tokens, segments = batch["token_ids"], batch["segment_ids"]
    assert tokens.shape[1] % 16 == 0 and labels.tolist() == [0, 0, 0, 0]
    for row in (0, 2):  # row 2k is a→b, row 2k+1 is b→a
        a = tokens[row][(segments[row] == 0) & (tokens[row] > 0)][1:-1]
        b = tokens[row + 1][(segments[row + 1] == 1)][:-1]
        assert a.tolist() == b.tolist()
    # the negative pair (label 0) never appears as a paraphrase
    negative = tokenizer().encode("明天下雨吗")[0][1:-1]
    for _ in range(5):
        batch, _ = next(similarity_batches([records], tokenizer(), "simbert", 4, seed=_))
        for row in batch["token_ids"]:
            assert negative != [t for t in row.tolist() if t][1:len(negative) + 1]


def test_stage1_corrupts_about_half_the_sources():
    text = "今天天气很好我们都是中国人明天会下雨吗这个手机很好用" * 2
    records = [Pair(text, "今天天气不错", None)]
    stream = similarity_batches([records], tokenizer(), "stage1", 64, maxlen=64, seed=1)
    plain = tokenizer().encode(text)[0]
    changed = rows = 0
    for _ in range(5):
        batch, _ = next(stream)
        for row, segments in zip(batch["token_ids"][0::2], batch["segment_ids"][0::2]):
            source = row[(segments == 0) & (row > 0)].tolist()
            rows += 1
            changed += source != plain
    # half the sources are corrupted, and a corrupted one of ~50 words is almost
    # never left unchanged (0.85^n plus kept words): 0.5 within binomial noise
    assert abs(changed / rows - 0.5) < 0.15, changed / rows


def test_supervised_labels():
    records = [Pair("今天天气很好", "今天天气不错", 4.0), Pair("我们", "明天", 1.0),
               Pair("手机", "手机好", "entailment"), Pair("手机", "车", "-")]
    batch, labels = next(similarity_batches([records[:2], records[2:3]], tokenizer(),
                                            "supervised", 6, maxlen=32, threshold=2.5))
    assert sorted(set(labels.tolist())) == [0.0, 1.0, 3.0]
    assert (batch["segment_ids"] == 0).all()
    with pytest.raises(ValueError, match="even integer"):
        next(similarity_batches([records], tokenizer(), "supervised", 3))
    with pytest.raises(ValueError, match="teacher"):
        next(similarity_batches([records], tokenizer(), "stage2", 4))


def test_cosent_batches_each_come_from_one_set():
    # a 0-5 score and a 0/1 label do not compare, so no CoSENT batch mixes two sets
    scored = [Pair(f"句子{i}", f"句子{i}好", float(i % 6)) for i in range(12)]
    binary = [Pair(f"问题{i}", f"问题{i}吗", float(i % 2)) for i in range(12)]
    nli = [Pair(f"前提{i}", f"假设{i}", label)
           for i, label in enumerate(["entailment", "neutral", "contradiction"] * 4)]
    batches = similarity_batches([scored, binary, nli], tokenizer(), "cosent", 8, maxlen=16)
    for expected in ([0, 1, 2, 3, 4, 5], [0, 1], [0, 1, 2]) * 2:
        _, labels = next(batches)
        assert set(labels.tolist()) <= set(map(float, expected))
        assert labels.max() > 1 or expected == [0, 1]


def test_cosent_seq2seq_batches_generate_the_positives_and_rank_every_pair():
    scored = [Pair(f"句子{i}", f"句子{i}好", float(i % 6)) for i in range(12)]
    unlabelled = [Pair(f"问题{i}", f"问题{i}吗", None) for i in range(4)]
    batches = similarity_batches([scored, unlabelled], tokenizer(), "cosent_seq2seq", 8,
                                 maxlen=16)
    batch, labels = next(batches)
    assert batch["seq2seq_weights"].tolist() == (labels > 2.5).astype("float32").tolist()
    assert (batch["segment_ids"] == 1).any(axis=1).all()  # every row is source -> target
    batch, labels = next(batches)  # positives alone: nothing to rank, all to generate
    assert labels.tolist() == [1.0] * 8 and batch["seq2seq_weights"].tolist() == [1.0] * 8


def test_a_loaded_task_trains_through_a_copy_and_takes_the_weights_back():
    """`from_task` trains a logits / dropout-0.2 copy of a loaded similarity model;
    `export_to` writes the result back, after which the task encodes differently."""
    import kerasformer as kf

    task = kf.models.load(FIXTURES / "models" / "roformer", family="roformer-sim")
    before = task.encode(["今天天气很好", "我们都是中国人"])
    trainer = SimilarityTraining.from_task(task, "stage1")
    assert trainer.transformer.with_mlm == "linear" and trainer.transformer.dropout_rate == 0.2
    assert trainer.transformer.model is not task.model
    records = [Pair("今天天气很好", "今天的天气不错", None), Pair("我们都是中国人", "我们是中国人", None)]
    trainer.compile(optimizer=Adam(1e-2), jit_compile=JIT)
    trainer.fit(similarity_batches([records], task.tokenizer, "stage1", 4), steps_per_epoch=2,
                verbose=0, shuffle=False)
    np.testing.assert_allclose(task.encode(["今天天气很好", "我们都是中国人"]), before)
    trainer.export_to(task)
    assert np.abs(task.encode(["今天天气很好", "我们都是中国人"]) - before).max() > 1e-3


def test_a_masked_lm_starts_a_similarity_model():
    """RoFormer-Sim's stage 1 starts from RoFormer's MLM checkpoint: every weight but the
    new pooler carries over; a GAU-α masked LM is refused with a reason."""
    import kerasformer as kf
    from kerasformer.training.similarity import similarity_task

    mlm = kf.models.load(FIXTURES / "models" / "roformer", family="roformer")
    sim = similarity_task(mlm)
    assert sim.task == "similarity" and sim.family == "roformer-sim"
    assert sim.transformer.application == "unilm" and sim.transformer.with_pool == "linear"
    weights = {w.path: keras.ops.convert_to_numpy(w) for w in mlm.model.weights}
    for weight in sim.model.weights:
        if "Pooler" not in weight.path:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), weights[weight.path])
    assert similarity_task(sim) is sim
    with pytest.raises(ValueError, match="cannot start a similarity model"):
        similarity_task(kf.models.load(FIXTURES / "models" / "gau_alpha", family="gau-alpha"))


def test_streamed_sources_are_read_pass_after_pass(tmp_path):
    """A callable source (a streaming reader) is called for every pass and shuffled
    through a buffer; a source with nothing usable is an error naming it."""
    import functools

    from kerasformer.data import read_pairs

    path = tmp_path / "pairs.tsv"
    path.write_text("今天天气很好\t今天天气不错\t1\n我们\t明天\t0\n手机很好\t手机好用\t1\n",
                    encoding="utf-8")
    calls = []

    def stream():
        calls.append(1)
        return read_pairs(path, streaming=True)

    batches = similarity_batches([stream], tokenizer(), "simbert", 4, shuffle_buffer=2)
    for _ in range(3):  # 2 positives per pass, 2 pairs per batch
        batch, _ = next(batches)
        assert batch["token_ids"].shape[0] == 4
    assert len(calls) >= 3
    negatives = functools.partial(read_pairs, tmp_path / "negatives.tsv", streaming=True)
    (tmp_path / "negatives.tsv").write_text("我们\t明天\t0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="source 1 has no usable records"):
        next(similarity_batches([stream, negatives], tokenizer(), "simbert", 4))
