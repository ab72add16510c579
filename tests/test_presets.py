"""`presets.convert`: a checkpoint written into a preset without building its model.

The weights file it streams must be the very file `model.save_weights` writes for the
model the checkpoint loads into (same datasets, attributes and values), for each
layout and format; a conversion checks the checkpoint as strictly as loading does."""
import h5py
import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer import loading, presets
from kerasformer.convert.weights import WeightLoadError
from tests.conftest import FIXTURES

MODELS = FIXTURES / "models"
CASES = {
    "roformer-sim / TF": ("roformer-sim", MODELS / "roformer" / "bert_config.json",
                          MODELS / "roformer" / "bert_model.ckpt", MODELS / "roformer" / "vocab.txt"),
    "gpt2 / HF safetensors": ("gpt2", MODELS / "gpt2" / "hf" / "config.json",
                              MODELS / "gpt2" / "hf" / "model.safetensors", MODELS / "gpt2" / "vocab.txt"),
    "gpt2 / HF bin": ("gpt2", MODELS / "gpt2" / "hf" / "config.json",
                      MODELS / "gpt2" / "hf" / "pytorch_model.bin", MODELS / "gpt2" / "vocab.txt"),
}


def datasets(path):
    """{name: (value, attributes)} of every dataset, and the groups' attributes."""
    found, groups = {}, {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            found[name] = (item[()], dict(item.attrs))
        else:
            groups[name] = dict(item.attrs)

    with h5py.File(path, "r") as file:
        file.visititems(visit)
    return found, groups


@pytest.mark.parametrize("case", list(CASES))
def test_a_conversion_writes_what_save_weights_writes(case, tmp_path):
    family, config, checkpoint, vocab = CASES[case]
    config = presets.read_json(config)
    built = loading.build_task(family, config, checkpoint, vocab)
    built.model.save_weights(tmp_path / "saved.weights.h5")
    # a block of 256 bytes: every tensor taken as it is goes through in several parts
    converted = loading.task_recipe(family, config, vocab)
    preset = presets.convert(tmp_path / "preset", *converted, checkpoint, block_bytes=256)

    expected, expected_groups = datasets(tmp_path / "saved.weights.h5")
    written, written_groups = datasets(preset / presets.WEIGHTS)
    assert written.keys() == expected.keys()
    # the root's attributes name the Keras model, numbered by how many exist (metadata)
    assert written_groups.keys() == expected_groups.keys()
    assert {k: v for k, v in written_groups.items() if k != "vars"} == {
        k: v for k, v in expected_groups.items() if k != "vars"}
    weights = {variable.path for variable in built.model.weights}
    for name, (value, attributes) in expected.items():
        assert attributes == written[name][1], name
        if value.dtype.kind == "f":  # a weight; the other entries are dropout seeds
            np.testing.assert_array_equal(written[name][0], value, err_msg=name)
    assert len([v for v in expected.values() if v[0].dtype.kind == "f"]) == len(weights)

    loaded = kf.models.load(preset)
    assert loaded.get_config() == {**built.get_config(), "tokenizer": loaded.tokenizer_config}
    for a, b in zip(loaded.model.weights, built.model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_a_conversion_is_as_strict_as_loading(tmp_path):
    config = presets.read_json(MODELS / "gpt2" / "hf" / "config.json")
    transformer, task_config = loading.task_recipe("gpt2", {**config, "n_layer": 3},
                                                   MODELS / "gpt2" / "vocab.txt")
    with pytest.raises(WeightLoadError, match=r"transformer\.h\.2\.ln_1\.weight"):
        presets.convert(tmp_path / "preset", transformer, task_config,
                        MODELS / "gpt2" / "hf" / "model.safetensors")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_planning_a_model_allocates_none_of_its_variables():
    transformer, _ = loading.task_recipe(
        "gpt2", {"vocab_size": 30000, "hidden_size": 2560, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "intermediate_size": 10240,
                 "hidden_act": "gelu_new", "max_position": 1024}, MODELS / "gpt2" / "vocab.txt")
    variables = transformer.abstract_variables()
    assert sum(int(np.prod(v.shape)) for v in variables.values()) == 2_597_073_920
    assert variables["Embedding-Token/embeddings"].shape == (30000, 2560)
    # a later stateless scope (Keras opens them itself) must not initialise them
    with keras.StatelessScope():
        pass
    assert all(variable._value is None for variable in variables.values())
