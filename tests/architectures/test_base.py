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
