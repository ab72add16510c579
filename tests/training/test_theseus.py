"""BERT-of-Theseus (kerasformer.training.theseus) on a tiny RoFormer classifier, 4 → 2 blocks.

- p = 1 runs the successor alone, p = 0 the predecessor alone; inference the successor;
- `fit` trains the successor's blocks only; the successor classifier saves and loads
  as a preset;
- the schedules; the compiled step reads the rate from the optimizer's iterations and
  runs one branch of each module (a `cond` in the jaxpr, callbacks counted).
"""
import collections

import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.models import RoFormer, SimilarityModel, TextClassifier
from kerasformer.tokenizers import Tokenizer
from kerasformer.training import ConstantReplacement, LinearReplacement, Theseus
from kerasformer.training.losses import similarity_distillation
from tests.conftest import FIXTURES

VOCAB = str(FIXTURES / "models" / "roformer" / "vocab.txt")
TEXTS = ["今天天气不错", "不好", "天气很好，我们去公园玩", "明天会下雨吗"]
LABELS = ["pos", "neg", "pos", "neg"]


def classifier(layers=4, dropout_rate=0.0, seed=0):
    keras.utils.set_random_seed(seed)
    transformer = RoFormer(vocab_size=345, hidden_size=16, num_hidden_layers=layers,
                           num_attention_heads=2, intermediate_size=32, hidden_act="gelu",
                           dropout_rate=dropout_rate)
    task = TextClassifier(transformer, Tokenizer(VOCAB, do_lower_case=True),
                          tokenizer_config={"vocab": VOCAB, "do_lower_case": True},
                          labels=["neg", "pos"])
    # Kernels far from their σ = 0.02 start, so that every block (and the head) changes
    # the output: two and four blocks give different probabilities.
    rng = np.random.default_rng(seed)
    for weight in task.model.weights:
        if len(weight.shape) == 2:
            weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    return task


@pytest.fixture(scope="module")
def batch():
    predecessor = classifier()
    token_ids, segment_ids = predecessor.encode_batch(TEXTS)
    return [token_ids, segment_ids], predecessor.label_ids(LABELS)


def values(variables):
    return [keras.ops.convert_to_numpy(variable).copy() for variable in variables]


def test_replacing_every_module_is_the_successor_and_none_the_predecessor(batch):
    inputs, _ = batch
    predecessor = classifier()
    expected_predecessor = keras.ops.convert_to_numpy(predecessor.model(inputs))
    always = Theseus(predecessor, 2, replacement_rate=1.0)
    successor = always.successor_task()
    expected_successor = keras.ops.convert_to_numpy(successor.model(inputs))
    assert np.abs(expected_successor - expected_predecessor).max() > 1e-4  # they differ
    np.testing.assert_allclose(always(inputs, training=True), expected_successor, atol=1e-6)
    never = Theseus(predecessor, 2, replacement_rate=0.0)
    np.testing.assert_allclose(never(inputs, training=True), expected_predecessor, atol=1e-6)
    # At inference the successor runs alone, whatever the rate.
    np.testing.assert_allclose(never(inputs, training=False), expected_successor, atol=1e-6)
    # The official initialisation: the successor's block i is the predecessor's block i,
    # with "every_kth" block i·N/M; the embeddings are the predecessor's.
    weights = {w.path: keras.ops.convert_to_numpy(w) for w in predecessor.encoder.weights}
    for init, source in (("first", 1), ("every_kth", 2)):
        spread = Theseus(predecessor, 2, init=init)
        for weight in spread.successor.model.weights:
            path = weight.path.replace("Transformer-1-", f"Transformer-{source}-")
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), weights[path])


def test_fit_trains_the_successor_blocks_only_and_exports_a_preset(batch, tmp_path):
    inputs, labels = batch
    predecessor = classifier(dropout_rate=0.1)  # dropout inside the conditional branches
    theseus = Theseus(predecessor, 2, replacement_rate=0.5, seed=3)
    successor = theseus.successor
    trained = {v.path for v in theseus.trainable_variables}
    assert trained and all(path.startswith("Transformer-") for path in trained)
    assert trained == {v.path for i in (0, 1) for name in successor.block_layers[i]
                       for v in successor.layers[name].trainable_weights}
    frozen = predecessor.model.weights + [v for v in successor.model.weights
                                          if v.path not in trained]
    frozen_before, trained_before = values(frozen), values(theseus.trainable_variables)
    theseus.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    history = theseus.fit(inputs, labels, batch_size=4, epochs=4, verbose=0)
    assert 0 < np.mean(history.history["replacement_rate"]) < 1
    for before, after in zip(frozen_before, values(frozen)):
        np.testing.assert_array_equal(before, after)
    changed = [not np.array_equal(a, b)
               for a, b in zip(trained_before, values(theseus.trainable_variables))]
    assert all(changed)  # both modules were replaced in some step

    # The successor with the head: a stand-alone classifier, and a preset.
    exported = theseus.successor_task()
    assert exported.transformer.num_hidden_layers == 2 and exported.labels == ["neg", "pos"]
    expected = keras.ops.convert_to_numpy(theseus(inputs, training=False))
    np.testing.assert_allclose(exported.model(inputs), expected, atol=1e-6)
    loaded = kf.models.load(exported.save_preset(tmp_path / "successor"))
    assert isinstance(loaded, TextClassifier) and loaded.transformer.num_hidden_layers == 2
    assert loaded.transformer.dropout_rate == 0.1
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), expected, atol=1e-5)
    exported.model.save(tmp_path / "successor.keras")  # or as one .keras file
    reloaded = keras.saving.load_model(tmp_path / "successor.keras")
    np.testing.assert_allclose(reloaded(inputs), expected, atol=1e-6)

    # train_head / train_embeddings open the head and the successor's embeddings.
    more = Theseus(classifier(), 2, train_head=True, train_embeddings=True)
    paths = {v.path for v in more.trainable_variables}
    assert {"Embedding-Token/embeddings", "Classifier-Head/dense/kernel"} <= paths


def similarity_model(seed=0):
    keras.utils.set_random_seed(seed)
    transformer = RoFormer(vocab_size=345, hidden_size=16, num_hidden_layers=4,
                           num_attention_heads=2, intermediate_size=32, hidden_act="gelu",
                           application="unilm", with_pool="linear", with_mlm=True)
    task = SimilarityModel(transformer, Tokenizer(VOCAB, do_lower_case=True),
                           "roformer-sim", {"vocab": VOCAB, "do_lower_case": True})
    rng = np.random.default_rng(seed)
    for weight in task.model.weights:
        if len(weight.shape) == 2:
            weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    return task


def test_compresses_a_similarity_model(tmp_path):
    """The similarity task's encoder: the output is the pooled vector, p = 1 / 0 give
    the successor / predecessor alone, distillation onto the predecessor's vectors
    trains the successor's blocks only, and the successor is a similarity preset."""
    predecessor = similarity_model()
    token_ids = predecessor.pad([predecessor.tokenizer.encode(t)[0] for t in TEXTS])
    inputs = [token_ids, np.zeros_like(token_ids)]
    teacher = keras.ops.convert_to_numpy(predecessor.encoder(inputs))
    always = Theseus(predecessor, 2, replacement_rate=1.0)
    alone = keras.ops.convert_to_numpy(always.successor_task().encoder(inputs))
    assert np.abs(alone - teacher).max() > 1e-4
    np.testing.assert_allclose(always(inputs, training=True), alone, atol=1e-5)
    never = Theseus(predecessor, 2, replacement_rate=0.0)
    np.testing.assert_allclose(never(inputs, training=True), teacher, atol=1e-5)

    theseus = Theseus(predecessor, 2, replacement_rate=0.5, seed=1)
    trained = {v.path for v in theseus.trainable_variables}
    assert trained and all(path.startswith("Transformer-") for path in trained)
    frozen_before = values(predecessor.model.weights)
    theseus.compile(optimizer=keras.optimizers.Adam(1e-2),
                    loss=lambda targets, vectors: similarity_distillation(vectors, targets))
    theseus.fit(inputs, teacher, batch_size=len(TEXTS), epochs=3, verbose=0)
    for before, after in zip(frozen_before, values(predecessor.model.weights)):
        np.testing.assert_array_equal(before, after)
    successor = theseus.successor_task()
    assert isinstance(successor, SimilarityModel) and successor.family == "roformer-sim"
    expected = keras.ops.convert_to_numpy(theseus(inputs, training=False))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    loaded = kf.models.load(successor.save_preset(tmp_path / "successor"))
    assert loaded.transformer.num_hidden_layers == 2
    np.testing.assert_allclose(loaded.encode(TEXTS), expected, atol=1e-5)
    more = Theseus(similarity_model(), 2, train_head=True)
    assert "Pooler-Dense/kernel" in {v.path for v in more.trainable_variables}


def test_schedules():
    linear = LinearReplacement(0.3, 0.0006)
    for step, rate in ((0, 0.3), (100, 0.36), (1000, 0.9), (1166, 0.9996), (1167, 1.0),
                       (5000, 1.0)):
        assert linear(step) == pytest.approx(rate)
        assert float(linear(keras.ops.convert_to_tensor(float(step)))) == pytest.approx(rate)
    constant = ConstantReplacement(0.5, replacing_steps=10)
    assert [constant(step) for step in (0, 9, 10, 11)] == [0.5, 0.5, 1.0, 1.0]
    tensors = [constant(keras.ops.convert_to_tensor(float(step))) for step in (9, 10)]
    assert [float(rate) for rate in tensors] == [0.5, 1.0]
    assert ConstantReplacement(0.7)(10 ** 6) == 0.7
    for bad in (lambda: LinearReplacement(1.5, 0.1), lambda: LinearReplacement(0.1, -1),
                lambda: ConstantReplacement(-0.1), lambda: ConstantReplacement(0.5, 1.5)):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="inspects the jax program")
def test_the_compiled_step_follows_the_schedule_and_runs_one_branch(batch):
    import jax

    inputs, labels = batch
    predecessor = classifier()
    # p_t = min(1, t): the first step keeps every module (the predecessor runs alone,
    # the successor gets no gradient), the second replaces every one.
    theseus = Theseus(predecessor, 2, replacement_rate=LinearReplacement(0.0, 1.0))
    calls = collections.Counter()
    for transformer, name in ((predecessor.transformer, "predecessor"),
                              (theseus.successor, "successor")):
        def apply_main_layers(x, index, context, original=transformer.apply_main_layers,
                              name=name):
            jax.debug.callback(lambda: calls.update([name]))
            return original(x, index, context)
        transformer.apply_main_layers = apply_main_layers

    # Both paths of each module are in the program, as a conditional:
    state = ([v.value for v in theseus.trainable_variables],
             [v.value for v in theseus.non_trainable_variables])
    program = str(jax.make_jaxpr(
        lambda t, n, x: theseus.stateless_call(t, n, x, training=True))(*state, inputs))
    assert program.count("cond[") == 2

    theseus.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                    jit_compile=True)
    steps = []
    for _ in range(2):
        before = values(theseus.trainable_variables)
        theseus.reset_metrics()
        calls.clear()
        rate = theseus.train_on_batch(inputs, labels, return_dict=True)["replacement_rate"]
        changed = any(not np.array_equal(a, b)
                      for a, b in zip(before, values(theseus.trainable_variables)))
        steps.append((rate, dict(calls), changed))
    # Only the chosen branch ran: 4 predecessor blocks, then 2 successor blocks.
    assert steps == [(0.0, {"predecessor": 4}, False), (1.0, {"successor": 2}, True)]
    assert theseus.replacement_rate() == 1.0 and theseus.replacement_rate(0) == 0.0


def test_refuses_what_does_not_split():
    predecessor = classifier()
    with pytest.raises(ValueError, match="equal size"):
        Theseus(predecessor, 3)
    with pytest.raises(ValueError, match="hidden_size"):
        other = RoFormer(vocab_size=345, hidden_size=8, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=32, hidden_act="gelu")
        Theseus(predecessor, other)
    with pytest.raises(TypeError, match="TextClassifier"):
        Theseus(predecessor.transformer, 2)
    with pytest.raises(ValueError, match="init"):
        Theseus(predecessor, 2, init=None)
    with pytest.raises(ValueError, match="another"):
        Theseus(predecessor, predecessor.transformer)
