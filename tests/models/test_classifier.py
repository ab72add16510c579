"""The text-classification task (kerasformer.models.classifier): inputs, pooling,
training with `fit`, presets (the head's weights included), and classifiers made from
another task's encoder (the bundled roformer-sim-mini)."""
import json

import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.models import RoFormer, TextClassifier
from kerasformer.tokenizers import Tokenizer
from tests.conftest import FIXTURES

VOCAB = str(FIXTURES / "models" / "roformer" / "vocab.txt")
TEXTS = ["今天天气不错", "不好", "天气很好，我们去公园玩", "明天会下雨吗"]


def classifier(pooling="cls", application="encoder", layers=2, **options):
    keras.utils.set_random_seed(0)
    transformer = RoFormer(vocab_size=345, hidden_size=16, num_hidden_layers=layers,
                           num_attention_heads=2, intermediate_size=32, hidden_act="gelu",
                           application=application)
    return TextClassifier(transformer, Tokenizer(VOCAB, do_lower_case=True),
                          tokenizer_config={"vocab": VOCAB, "do_lower_case": True},
                          labels=["neg", "pos", "other"], pooling=pooling, **options)


def test_inputs_and_predictions():
    task = classifier(text_maxlen=8)
    token_ids, segment_ids = task.encode_batch(TEXTS + [("今天", "天气不错")])
    assert token_ids.shape == (5, 16) and token_ids.dtype == np.int32
    assert (token_ids[:, 8:] == 0).all() and (token_ids > 0).sum(axis=1).max() == 8  # cut to 8
    pair_ids, pair_segments = task.tokenizer.encode("今天", "天气不错", maxlen=8)
    assert token_ids[4, :8].tolist() == pair_ids and segment_ids[4, :8].tolist() == pair_segments
    assert segment_ids[:4].max() == 0 and segment_ids[4].max() == 1

    probabilities = task.predict_proba(TEXTS, batch_size=2)  # two batches, sorted by length
    assert probabilities.shape == (4, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    together = task.predict_proba(TEXTS, batch_size=4)  # other padding: the same
    np.testing.assert_allclose(probabilities, together, atol=1e-6)
    assert task.predict(TEXTS) == [task.labels[i] for i in probabilities.argmax(axis=1)]
    assert task.predict(TEXTS[0]) == task.predict(TEXTS)[0]
    assert task.predict_proba(TEXTS[0]).shape == (3,)
    assert task.label_ids(["pos", "neg", "other"]).tolist() == [1, 0, 2]
    assert task.training_model() is task.model
    with pytest.raises(ValueError, match="unknown label"):
        task.label_ids(["positive"])
    with pytest.raises(ValueError, match="empty"):
        task.predict(["今天", " "])
    with pytest.raises(TypeError):
        task.predict([3])


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pooling(pooling):
    task = classifier(pooling)
    token_ids, segment_ids = task.encode_batch(TEXTS)
    sequence = keras.ops.convert_to_numpy(task.encoder([token_ids, segment_ids]))
    if pooling == "cls":
        pooled = sequence[:, 0]
    else:  # the mean over the tokens, not the padding
        kept = (token_ids > 0)[:, :, None]
        pooled = (sequence * kept).sum(axis=1) / kept.sum(axis=1)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in task.head.dense.weights)
    logits = pooled @ kernel + bias
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(task.predict_proba(TEXTS), expected, atol=1e-5)


def test_fit_and_preset(tmp_path):
    task = classifier("mean", dropout_rate=0.1)
    labels = ["pos", "neg", "pos", "other"]
    inputs = list(task.encode_batch(TEXTS))
    model = task.training_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-2), loss="sparse_categorical_crossentropy")
    history = model.fit(inputs, task.label_ids(labels), batch_size=4, epochs=25, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert task.predict(TEXTS) == labels

    directory = task.save_preset(tmp_path / "classifier")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    assert config["task"]["task"] == "classification" and config["task"]["family"] is None
    assert config["task"]["options"] == {"labels": ["neg", "pos", "other"], "pooling": "mean",
                                         "text_maxlen": 128, "dropout_rate": 0.1}
    loaded = kf.models.load(directory)
    assert isinstance(loaded, TextClassifier) and loaded.task_options() == task.task_options()
    # The head's weights came back with the encoder's.
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), task.predict_proba(TEXTS), atol=1e-6)
    assert loaded.predict(TEXTS) == labels
    # A directory (or a name) is loaded, and its encoder gets a new head.
    relabelled = TextClassifier.from_encoder(directory, labels=["x", "y"], pooling="cls")
    assert relabelled.labels == ["x", "y"] and relabelled.pooling == "cls"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(relabelled.encoder.weights[0]),
                                  keras.ops.convert_to_numpy(task.encoder.weights[0]))


def test_from_the_encoder_of_another_task():
    sim = kf.models.load("roformer-sim-mini")
    task = TextClassifier.from_encoder(sim, labels=["a", "b"], pooling="mean", text_maxlen=64)
    config = task.transformer.get_config()
    assert config["application"] == "encoder" and not config["with_pool"] and not config["with_mlm"]
    assert task.family is None and task.tokenizer is sim.tokenizer
    assert task.tokenizer_config == sim.tokenizer_config
    # Every encoder weight is the similarity model's (copied by path), none shared.
    weights = {weight.path: weight for weight in sim.model.weights}
    for weight in task.encoder.weights:
        assert weight is not weights[weight.path]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight),
                                      keras.ops.convert_to_numpy(weights[weight.path]))
    assert task.predict_proba(TEXTS).shape == (4, 2)


def test_refusals():
    with pytest.raises(ValueError, match="encoder"):
        classifier(application="unilm")
    encoder = classifier().transformer
    for labels in (["only"], ["a", "a"], "ab", None, ["a", ""]):
        with pytest.raises(ValueError, match="labels"):
            TextClassifier(encoder, None, labels=labels)
    with pytest.raises(ValueError, match="text_maxlen"):
        classifier(text_maxlen=2)
    mlm = RoFormer(vocab_size=345, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=32, hidden_act="gelu", with_mlm=True)
    with pytest.raises(ValueError, match="MLM"):
        TextClassifier(mlm, None, labels=["a", "b"])
    with pytest.raises(ValueError, match="tokenizer"):
        TextClassifier.from_encoder(mlm, labels=["a", "b"])
