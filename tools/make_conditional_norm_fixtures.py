"""Writes tests/fixtures/compat/conditional_norm.npz: bert4keras 0.11.5's Conditional
Layer Normalization, as a layer and through `build_transformer_model(...,
layer_norm_cond=...)` (tests/layers/test_normalization.py,
tests/architectures/test_conditional_norm.py).

Runs in the reference environment only (../shared/reference/README.md):

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \
        tools/make_conditional_norm_fixtures.py

Every input and weight is drawn from a fixed numpy seed (the conditional Dense layers
start at zero in bert4keras, which would hide a wrong mapping, so they are randomised),
and every expected value is computed by bert4keras; nothing here imports kerasformer.
Keys: `layer/<case>/{x,condition,output,<weight>}` for the layer; for the models,
`<fixture>/{token_ids,segment_ids,labels,output}`, `<fixture>/condition_embedding`
and `<fixture>/<norm layer>/<hidden_dense|beta_dense|gamma_dense>`.
"""
import pathlib

import numpy as np
import tensorflow as tf

import bert4keras
from bert4keras.backend import keras
from bert4keras.layers import LayerNormalization
from bert4keras.models import build_transformer_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "fixtures" / "models"
OUT = ROOT / "tests" / "fixtures" / "compat" / "conditional_norm.npz"
rng = np.random.RandomState(20261202)
fixture = {"__meta__": np.array(f"bert4keras {bert4keras.__version__}, tensorflow {tf.__version__}")}
DENSES = ("hidden_dense", "beta_dense", "gamma_dense")


def randomise_conditional_denses(layer, prefix):
    """Seeded values for the layer's conditional Dense kernels, recorded by name."""
    for dense in DENSES:
        if hasattr(layer, dense):
            kernel = getattr(layer, dense).kernel
            value = (rng.randn(*kernel.shape) * 0.3).astype("float32")
            kernel.assign(value)
            fixture[f"{prefix}/{dense}"] = value


# --- the layer ---------------------------------------------------------------------------
x = (rng.randn(2, 3, 8) * 2 + 1).astype("float32")
condition = rng.randn(2, 5).astype("float32")
for case, options in {
    "plain": {},
    "hidden": {"hidden_units": 6, "hidden_activation": "swish"},
    "rms": {"zero_mean": False, "epsilon": 1e-7, "hidden_units": 4},
}.items():
    layer = LayerNormalization(conditional=True, **options)
    layer([tf.constant(x), tf.constant(condition)])
    for name in ("gamma", "beta"):
        value = (1.0 if name == "gamma" else 0.0) + rng.randn(8).astype("float32") * 0.1
        getattr(layer, name).assign(value)
        fixture[f"layer/{case}/{name}"] = value
    randomise_conditional_denses(layer, f"layer/{case}")
    fixture[f"layer/{case}/x"] = x
    fixture[f"layer/{case}/condition"] = condition
    fixture[f"layer/{case}/output"] = np.asarray(layer([tf.constant(x), tf.constant(condition)]))

# --- whole models ------------------------------------------------------------------------
for name, model, application in (("bert", "bert", "lm"), ("roformer", "roformer", "unilm")):
    directory = MODELS / name
    label_input = keras.layers.Input(shape=(1,))
    condition_embedding = keras.layers.Embedding(3, 8)
    c = keras.layers.Reshape((8,))(condition_embedding(label_input))
    built = build_transformer_model(
        str(directory / "bert_config.json"), str(directory / "bert_model.ckpt"),
        model=model, application=application, layer_norm_cond=c,
        layer_norm_cond_hidden_size=4, layer_norm_cond_hidden_act="swish",
        additional_input_layers=label_input,
    )
    table = (rng.randn(3, 8) * 0.5).astype("float32")
    condition_embedding.set_weights([table])
    fixture[f"{name}/condition_embedding"] = table
    for layer in built.layers:
        if isinstance(layer, LayerNormalization):
            randomise_conditional_denses(layer, f"{name}/{layer.name}")
    token_ids = rng.randint(4, 300, size=(3, 7)).astype("int32")
    token_ids[:, 0], token_ids[:, -1] = 2, 3
    token_ids[2, 5:] = 0  # padding
    segment_ids = np.zeros_like(token_ids)
    segment_ids[:, 4:] = 1 if application == "unilm" else 0
    segment_ids[token_ids == 0] = 0
    labels = np.array([[0], [1], [2]], "int32")
    fixture[f"{name}/token_ids"] = token_ids
    fixture[f"{name}/segment_ids"] = segment_ids
    fixture[f"{name}/labels"] = labels
    fixture[f"{name}/output"] = built.predict([token_ids, segment_ids, labels], verbose=0)

np.savez_compressed(OUT, **fixture)
print(f"wrote {OUT} ({len(fixture)} arrays)")
