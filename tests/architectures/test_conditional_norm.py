"""Conditional Layer Normalization through the builder (`layer_norm_cond`,
`additional_input_layers`), against bert4keras 0.11.5 on the fixture models
(tests/fixtures/compat/conditional_norm.npz, tools/make_conditional_norm_fixtures.py)."""
import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.layers import LayerNormalization
from tests.conftest import FIXTURES
from tests.helpers import to_numpy

MODELS = FIXTURES / "models"
REFERENCE = np.load(FIXTURES / "compat" / "conditional_norm.npz")
BUILDS = {"bert": ("bert", "lm", {}), "roformer": ("roformer", "unilm", {"layer_norm_epsilon": 1e-7})}


def build(fixture, **kwargs):
    """The fixture with a label-conditioned normalisation, as bert4keras'
    task_conditional_language_model.py builds it: label -> Embedding -> Reshape."""
    model, application, numerics = BUILDS[fixture]
    labels = keras.Input(shape=(1,))
    embedding = keras.layers.Embedding(3, 8)
    condition = keras.layers.Reshape((8,))(embedding(labels))
    transformer = kf.build_transformer_model(
        MODELS / fixture / "bert_config.json", MODELS / fixture / "bert_model.ckpt",
        model=model, application=application, layer_norm_cond=condition,
        layer_norm_cond_hidden_size=4, layer_norm_cond_hidden_act="swish",
        additional_input_layers=labels, return_keras_model=False, **numerics, **kwargs,
    )
    return transformer, embedding


def inputs(fixture):
    return [REFERENCE[f"{fixture}/{key}"] for key in ("token_ids", "segment_ids", "labels")]


@pytest.mark.backends
@pytest.mark.parametrize("fixture", ["bert", "roformer"])
def test_matches_bert4keras(fixture):
    transformer, embedding = build(fixture)
    model = transformer.model
    assert [tuple(t.shape) for t in model.inputs] == [(None, None), (None, None), (None, 1)]
    # zero-initialised: before training, the model is the unconditioned one
    plain = kf.build_transformer_model(
        MODELS / fixture / "bert_config.json", MODELS / fixture / "bert_model.ckpt",
        model=BUILDS[fixture][0], application=BUILDS[fixture][1], **BUILDS[fixture][2])
    np.testing.assert_allclose(
        to_numpy(model(inputs(fixture))), to_numpy(plain(inputs(fixture)[:2])), atol=1e-5)

    embedding.set_weights([REFERENCE[f"{fixture}/condition_embedding"]])
    norms = [layer for layer in model.layers if isinstance(layer, LayerNormalization)]
    assert len(norms) == 2 * transformer.num_hidden_layers + 2  # embedding, blocks, MLM
    for norm in norms:
        for dense in ("hidden_dense", "beta_dense", "gamma_dense"):
            getattr(norm, dense).kernel.assign(REFERENCE[f"{fixture}/{norm.name}/{dense}"])
    output = to_numpy(model(inputs(fixture)))
    np.testing.assert_allclose(output, REFERENCE[f"{fixture}/output"], atol=1e-4)


def test_the_checkpoint_fills_the_transformer_and_nothing_else(tmp_path):
    transformer, embedding = build("bert")
    report = transformer.load_report
    conditional = [v.path for v in transformer.model.weights
                   if any(f"Norm/{dense}_dense/" in v.path for dense in ("hidden", "beta", "gamma"))]
    assert len(conditional) == 3 * 6  # three Dense in each of the six normalisations
    loaded = set(report.loaded)
    assert report.ok and not loaded & set(conditional)
    # all that is not loaded: the conditional Dense layers and the caller's Embedding
    unloaded = {v.path for v in transformer.model.weights} - loaded
    assert unloaded == set(conditional) | {embedding.embeddings.path}
    # a saved model keeps the whole graph, the condition's layers included
    path = tmp_path / "conditional.keras"
    transformer.model.save(path)
    restored = keras.saving.load_model(path)
    feed = inputs("bert")
    np.testing.assert_allclose(to_numpy(restored(feed)), to_numpy(transformer.model(feed)),
                               atol=1e-6)


def test_bad_conditions_are_clear_errors():
    config = MODELS / "bert" / "bert_config.json"
    with pytest.raises(TypeError, match="layer_norm_cond must be a Keras tensor"):
        kf.build_transformer_model(config, layer_norm_cond=np.zeros((1, 8)))
    with pytest.raises(ValueError, match=r"layer_norm_cond must be \(batch, features\)"):
        kf.build_transformer_model(config, layer_norm_cond=keras.Input((3, 8)))
    with pytest.raises(ValueError, match="need a layer_norm_cond"):
        kf.build_transformer_model(config, layer_norm_cond_hidden_size=4)
    with pytest.raises(TypeError, match="additional_input_layers must hold keras.Input"):
        kf.build_transformer_model(config, additional_input_layers=[np.zeros(3)])
    with pytest.raises(ValueError, match="remat cannot"):
        kf.build_transformer_model(config, layer_norm_cond=keras.Input((8,)), remat=True)
    transformer, _ = build("bert")
    assert "layer_norm_cond" in transformer.can_decode()
    with pytest.raises(ValueError, match="no config of its own"):
        transformer.get_config()
