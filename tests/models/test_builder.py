"""build_transformer_model: bert4keras' rules, names, saving and bad input."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.convert.weights import WeightLoadError
from tests.conftest import FIXTURES
from tests.helpers import run_model_saving_test, to_numpy

BERT = FIXTURES / "models" / "bert"
ROFORMER = FIXTURES / "models" / "roformer"
TINY = dict(
    vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=32, hidden_act="gelu",
)
TOKENS = np.array([[2, 7, 9, 3, 11, 3], [2, 8, 3, 0, 0, 0]], dtype="int32")
SEGMENTS = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]], dtype="int32")


@pytest.mark.parametrize(
    "heads,shapes",
    [
        ({}, [(2, 6, 16)]),
        ({"with_pool": True}, [(2, 16)]),
        ({"with_nsp": True}, [(2, 2)]),
        ({"with_mlm": True}, [(2, 6, 50)]),
        ({"with_pool": "linear", "with_mlm": True}, [(2, 16), (2, 6, 50)]),
    ],
)
def test_output_rule(heads, shapes):
    model = kf.build_transformer_model(**TINY, **heads)
    outputs = model([TOKENS, SEGMENTS])
    outputs = outputs if isinstance(outputs, list) else [outputs]
    assert [tuple(o.shape) for o in outputs] == shapes


def test_config_keys_work_as_keyword_arguments():
    model = kf.build_transformer_model(
        **TINY, max_position_embeddings=8, type_vocab_size=3, hidden_dropout_prob=0.2,
        return_keras_model=False,
    )
    assert (model.max_position, model.segment_vocab_size, model.dropout_rate) == (8, 3, 0.2)


def test_lm_and_unilm_force_the_mlm_head():
    for application in ("lm", "unilm"):
        model = kf.build_transformer_model(**TINY, application=application)
        probabilities = to_numpy(model([TOKENS, SEGMENTS]))
        assert probabilities.shape == (2, 6, 50)
        np.testing.assert_allclose(probabilities.sum(-1), 1, atol=1e-5)


def test_bert4keras_layer_names():
    transformer = kf.build_transformer_model(
        **TINY, model="roformer", with_pool="linear", with_mlm=True, embedding_size=8,
        dropout_rate=0.1, return_keras_model=False,
    )
    model = transformer.model
    for name in [
        "Input-Token", "Input-Segment", "Embedding-Token", "Embedding-Segment",
        "Embedding-Token-Segment", "Embedding-Norm", "Embedding-Dropout",
        "Embedding-Mapping", "Embedding-Rotary-Position",
        "Transformer-0-MultiHeadSelfAttention", "Transformer-0-MultiHeadSelfAttention-Dropout",
        "Transformer-0-MultiHeadSelfAttention-Add", "Transformer-0-MultiHeadSelfAttention-Norm",
        "Transformer-1-FeedForward", "Transformer-1-FeedForward-Norm",
        "Pooler", "Pooler-Dense", "MLM-Dense", "MLM-Norm", "MLM-Bias", "MLM-Activation",
    ]:
        assert model.get_layer(name) is not None
    assert set(transformer.layers) <= {layer.name for layer in model.layers}
    assert model.get_layer("Embedding-Token").embeddings.shape == (50, 8)


def test_prefix_names_every_layer_and_still_loads():
    model = kf.build_transformer_model(
        BERT / "bert_config.json", BERT / "bert_model.ckpt", prefix="Successor-"
    )
    assert all(
        layer.name.startswith("Successor-") for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    )


def test_fewer_layers_than_the_checkpoint_needs_an_opt_out():
    with pytest.raises(WeightLoadError, match="layer_1"):
        kf.build_transformer_model(BERT / "bert_config.json", BERT / "bert_model.ckpt",
                                   num_hidden_layers=1)
    with pytest.warns(UserWarning, match="layer_1"):
        kf.build_transformer_model(BERT / "bert_config.json", BERT / "bert_model.ckpt",
                                   num_hidden_layers=1, ignore_invalid_weights=True)


@pytest.mark.backends
def test_saving_round_trip(tmp_path):
    for model_name, directory in [("bert", BERT), ("roformer", ROFORMER)]:
        model = kf.build_transformer_model(
            directory / "bert_config.json", directory / "bert_model.ckpt",
            model=model_name, application="unilm", with_pool="linear",
        )
        run_model_saving_test(model, [TOKENS, SEGMENTS], tmp_path)


def test_mixed_precision_outputs_stay_float32_and_finite():
    model = kf.build_transformer_model(
        BERT / "bert_config.json", BERT / "bert_model.ckpt",
        with_pool=True, with_mlm=True, dtype="mixed_bfloat16",
    )
    pooled, probabilities = model([TOKENS, SEGMENTS])
    assert keras.backend.standardize_dtype(probabilities.dtype) == "float32"
    assert np.isfinite(to_numpy(keras.ops.cast(pooled, "float32"))).all()
    np.testing.assert_allclose(to_numpy(probabilities).sum(-1), 1, atol=1e-3)


def test_sequence_output_carries_the_padding_mask():
    model = kf.build_transformer_model(**TINY)
    pooled = keras.layers.GlobalAveragePooling1D()(model.output)
    pooling = keras.Model(model.inputs, pooled)
    sequence = to_numpy(model([TOKENS, SEGMENTS]))
    mask = (TOKENS != 0).astype("float32")
    expected = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(to_numpy(pooling([TOKENS, SEGMENTS])), expected, atol=1e-5)


# ------------------------------------------------------------------ bad input


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="no_such_config.json"):
        kf.build_transformer_model("no_such_config.json")


def test_config_missing_required_keys(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({"vocab_size": 10, "hidden_size": 8}))
    with pytest.raises(ValueError, match="missing required key.*num_hidden_layers.*hidden_act"):
        kf.build_transformer_model(path)


def test_config_hidden_act_is_a_name_never_code(tmp_path):
    config = {"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 8,
              "hidden_act": {"class_name": "function", "config": "os.system"}}
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hidden_act must be an activation name"):
        kf.build_transformer_model(path)
    path.write_text(json.dumps({**config, "hidden_act": "my_registered_thing"}))
    with pytest.raises(ValueError, match="unknown activation 'my_registered_thing'"):
        kf.build_transformer_model(path)


def test_a_config_of_another_architecture_says_so():
    config = FIXTURES / "models" / "roformer_v2" / "hf" / "config.json"  # RoFormerV2 as GAU-α
    with pytest.raises(ValueError, match="describes a 'roformer_v2' model, not 'gau_alpha'"):
        kf.build_transformer_model(config, model="gau_alpha")


def test_config_that_is_not_json(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text("{vocab_size: 10")
    with pytest.raises(ValueError, match="not valid JSON"):
        kf.build_transformer_model(path)


def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        kf.build_transformer_model(**{**TINY, "hidden_size": "768"})
    with pytest.raises(ValueError, match="not a multiple"):
        kf.build_transformer_model(**{**TINY, "num_attention_heads": 3})


def test_unknown_model_and_application():
    with pytest.raises(ValueError, match="did you mean 'roformer'"):
        kf.build_transformer_model(**TINY, model="roformr")
    with pytest.raises(ValueError, match="does not build"):
        kf.build_transformer_model(**TINY, model="albert")
    with pytest.raises(ValueError, match="application"):
        kf.build_transformer_model(**TINY, application="seq2seq")


def test_misspelt_and_unsupported_options():
    with pytest.raises(TypeError, match="did you mean 'with_pool'"):
        kf.build_transformer_model(**TINY, with_pol="linear")
    with pytest.raises(TypeError, match="residual_attention_scores are not supported"):
        kf.build_transformer_model(**TINY, residual_attention_scores=True)


def test_wrong_checkpoint_path():
    with pytest.raises(FileNotFoundError, match="nowhere/bert_model.ckpt"):
        kf.build_transformer_model(BERT / "bert_config.json", "nowhere/bert_model.ckpt")


def test_checkpoint_of_another_family():
    with pytest.raises(WeightLoadError) as error:
        kf.build_transformer_model(ROFORMER / "bert_config.json", ROFORMER / "bert_model.ckpt",
                                   model="bert")
    message = str(error.value)
    assert "bert/embeddings/position_embeddings" in message
    assert "model='roformer'" in message
    with pytest.raises(WeightLoadError, match="model='bert'") as error:
        kf.build_transformer_model(BERT / "bert_config.json", BERT / "bert_model.ckpt",
                                   model="roformer")
    assert "bert/embeddings/position_embeddings" in str(error.value)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(WeightLoadError, match=r"intermediate/dense/kernel \(64, 128\)") as error:
        kf.build_transformer_model(BERT / "bert_config.json", BERT / "bert_model.ckpt",
                                   intermediate_size=96)
    assert "(64, 96)" in str(error.value)


def test_incomplete_checkpoint_needs_the_opt_out_and_reports_what_stayed_random(tmp_path):
    # A RoFormer checkpoint without pooler (like the base RoFormer release) used to
    # build RoFormer-Sim.
    source = kf.convert.tf_checkpoint.TFCheckpoint(ROFORMER / "bert_model.ckpt")
    without_pooler = {name: source[name] for name in source.keys() if "pooler" not in name}
    config = ROFORMER / "bert_config.json"
    with pytest.raises(WeightLoadError, match="Pooler-Dense/kernel  <-  bert/pooler/dense/kernel"):
        kf.build_transformer_model(config, without_pooler, model="roformer", with_pool="linear")
    with pytest.warns(UserWarning, match="Pooler-Dense/bias"):
        transformer = kf.build_transformer_model(
            config, without_pooler, model="roformer", with_pool="linear",
            ignore_invalid_weights=True, return_keras_model=False,
        )
    assert [path for path, _ in transformer.load_report.missing] == [
        "Pooler-Dense/kernel", "Pooler-Dense/bias"
    ]


def test_loading_needs_no_tensorflow():
    """Original checkpoints load on JAX with every tensorflow import refused."""
    script = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError("tensorflow is refused in this test")
sys.meta_path.insert(0, Refuse())
import numpy as np, kerasformer as kf
d = sys.argv[1]
model = kf.build_transformer_model(d + "/bert_config.json", d + "/bert_model.ckpt",
    model="roformer", application="unilm", with_pool="linear", layer_norm_epsilon=1e-7)
ref = np.load(d + "/reference.npz")
pooled, _ = model.predict([ref["unilm_sim/token_ids"], ref["unilm_sim/segment_ids"]], verbose=0)
assert np.abs(pooled - ref["unilm_sim/output_0"]).max() <= 1e-4
assert "tensorflow" not in sys.modules
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROFORMER)],
        env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
