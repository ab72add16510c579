"""What every architecture shares: layers by name, its own config, the Keras model."""
import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.architectures.base import TransformerModel
from kerasformer.models import SimilarityModel
from tests.conftest import FIXTURES
from tests.helpers import to_numpy

MODELS = FIXTURES / "models"


SIZES = dict(vocab_size=345, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
             intermediate_size=32, hidden_act="gelu")


def small(**kwargs):
    return kf.build_transformer_model(None, model="roformer", return_keras_model=False,
                                      **SIZES, **kwargs)


def test_asking_for_a_layer_again_with_other_arguments_is_an_error():
    transformer = small()
    layer = transformer.layer("Extra", keras.layers.Dense, units=4)
    assert transformer.layer("Extra", keras.layers.Dense, units=4) is layer
    with pytest.raises(ValueError, match="'Extra'.*units differ"):
        transformer.layer("Extra", keras.layers.Dense, units=5)
    with pytest.raises(ValueError, match="created as Dense"):
        transformer.layer("Extra", keras.layers.Dropout, rate=0.1)


def test_the_model_owns_its_config():
    transformer = small(application="unilm", with_pool="linear", keep_tokens=list(range(300)))
    config = transformer.get_config()
    assert config["architecture"] == "roformer" and config["vocab_size"] == 300
    assert "keep_tokens" not in config  # how weights were loaded is not the model
    model = transformer.model
    assert isinstance(model, TransformerModel) and model.transformer is transformer
    clone = TransformerModel.from_config(model.get_config())
    assert clone.transformer.get_config() == config
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]


def test_weights_that_follow_are_not_randomly_initialised():
    transformer = kf.models.RoFormer(**SIZES)
    transformer.build(weights_follow=True)
    kernel = transformer.model.get_layer("Embedding-Token").embeddings
    assert not np.any(to_numpy(kernel))
    # ... while a model built to train starts from its random initializer
    assert np.std(to_numpy(small().model.get_layer("Embedding-Token").embeddings)) > 0.01


def test_a_keras_file_of_a_similarity_model_still_generates(tmp_path):
    sim = kf.models.load(MODELS / "roformer", family="roformer-sim")
    path = tmp_path / "sim.keras"
    sim.model.save(path)
    model = keras.saving.load_model(path)
    assert isinstance(model, TransformerModel)
    again = SimilarityModel(model.transformer, sim.tokenizer, "roformer-sim")
    ids = np.array([[2, 40, 41, 3]])
    for got, expected in zip(to_numpy(model([ids, ids * 0])), to_numpy(sim.model([ids, ids * 0]))):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert again.generate("今天天气不错", beam=2) == sim.generate("今天天气不错", beam=2)


@pytest.mark.parametrize("architecture, options", [
    ("bert", {"with_pool": True, "with_nsp": True, "with_mlm": True}),  # NSP is transposed
    ("roformer_v2", {"with_mlm": True}),
    ("gau_alpha", {"attention_key_size": 8}),
])
def test_saved_checkpoints_load_back(tmp_path, architecture, options):
    """bert4keras' save_weights_as_checkpoint: the original layout's names, read back
    strictly by the loader (TensorFlow reads the format: tests/convert)."""
    def build(checkpoint=None):
        return kf.build_transformer_model(None, checkpoint, model=architecture,
                                          return_keras_model=False, **SIZES, **options)

    transformer = build()
    rng = np.random.default_rng(0)
    for variable in transformer.model.weights:  # nothing left at its initial value
        variable.assign(rng.normal(0, 0.5, variable.shape).astype("float32"))
    prefix = tmp_path / "bert_model.ckpt"
    transformer.save_weights_as_checkpoint(prefix)
    loaded = build(prefix)
    assert loaded.load_report.ok
    for a, b in zip(loaded.model.weights, transformer.model.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)


def test_a_pruned_vocabulary_is_saved_as_the_model_has_it(tmp_path):
    config = MODELS / "roformer" / "bert_config.json"
    checkpoint = MODELS / "roformer" / "bert_model.ckpt"
    keep = list(range(0, 345, 3))
    pruned = kf.build_transformer_model(config, checkpoint, model="roformer",
                                        keep_tokens=keep, return_keras_model=False)
    pruned.save_weights_as_checkpoint(tmp_path / "pruned.ckpt", dtype="float16")
    again = kf.build_transformer_model(config, tmp_path / "pruned.ckpt", model="roformer",
                                       vocab_size=len(keep), return_keras_model=False)
    ids = np.array([[2, 40, 41, 3]])
    np.testing.assert_allclose(to_numpy(again.model([ids, ids * 0])),
                               to_numpy(pruned.model([ids, ids * 0])), atol=5e-3)  # float16
    with pytest.raises(ValueError, match="'Embedding-Segment/embeddings' has no tensor name"):
        pruned.save_weights_as_checkpoint(tmp_path / "partial.ckpt", mapping={
            "Embedding-Token/embeddings": "bert/embeddings/word_embeddings"})
    assert not (tmp_path / "partial.ckpt.index").exists()
