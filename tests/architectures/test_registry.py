"""The one architecture table: a new architecture is one module that registers itself.

The toy below is the whole of what an architecture contributes — graph, weight map of
its layout, what recognises its checkpoints — and, with one family row, it loads
through `build_transformer_model` and `kerasformer.models.load` like the shipped ones.
"""
import json
import re

import numpy as np
import pytest
import safetensors.numpy

import kerasformer as kf
from kerasformer import architectures, families
from kerasformer.architectures.bert import BERT
from kerasformer.convert.weights import TRANSPOSE, Source, WeightMap
from tests.conftest import FIXTURES
from tests.helpers import to_numpy

VOCAB = FIXTURES / "models" / "bert" / "vocab.txt"
SIZES = dict(vocab_size=345, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
             intermediate_size=32, hidden_act="gelu")


class Toy(BERT):
    """BERT's graph under another name and another checkpoint layout (`toy.*`)."""

    architecture = "toy"
    aliases = ("toy-bert",)
    hf_model_types = ("toy",)

    def weight_map(self, layout="tf"):
        sources = {}
        for variable in BERT(**SIZES, with_mlm=True).build().weights:
            name = "toy." + variable.path.replace("/", ".")
            sources[variable.path] = Source(name, TRANSPOSE if variable.path.endswith("kernel") else None)
        return WeightMap(sources, prefix=None)

    @classmethod
    def recognises_checkpoint(cls, names):
        return any(re.match(r"^toy\.", name) for name in names)


@pytest.fixture
def toy(monkeypatch):
    architectures._discover()
    monkeypatch.setattr(architectures, "_TABLE", dict(architectures._TABLE))
    architectures.register(Toy)
    table, keys = families._table()
    copies = (dict(table), dict(keys))
    monkeypatch.setattr(families, "_table", lambda: copies)
    families.register(families.Family(
        name="toy-mlm", aliases=(), description="a test family", architecture="toy",
        build={"with_mlm": True}, task="masked_lm", task_options={},
        tokenizer={"type": "wordpiece", "do_lower_case": True}, recognise={},
    ))
    return Toy


def toy_checkpoint(directory):
    """An HF-style directory of the toy: config.json, vocab.txt, model.safetensors."""
    rng = np.random.default_rng(0)
    reference = BERT(**SIZES, with_mlm=True)
    tensors = {}
    for variable in reference.build().weights:
        value = rng.normal(0, 0.2, tuple(variable.shape)).astype("float32")
        tensors["toy." + variable.path.replace("/", ".")] = value.T if variable.path.endswith("kernel") else value
    directory.mkdir()
    safetensors.numpy.save_file(tensors, directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps({"model_type": "toy", **SIZES}))
    (directory / "vocab.txt").write_bytes(VOCAB.read_bytes())
    return directory, tensors


def test_a_registered_architecture_loads_through_every_entry_point(toy, tmp_path):
    directory, tensors = toy_checkpoint(tmp_path / "toy")
    assert architectures.get("toy-bert") is Toy
    assert architectures.recognise_checkpoint(tensors) == "toy"
    assert architectures.recognise_config({"model_type": "toy"}) == "toy"

    model = kf.build_transformer_model(directory / "config.json", directory / "model.safetensors",
                                       model="toy", with_mlm=True)
    np.testing.assert_array_equal(
        to_numpy(model.get_layer("Embedding-Token").embeddings),
        tensors["toy.Embedding-Token.embeddings"],
    )
    task = kf.models.load(directory)  # the config says "toy", the family table says the rest
    assert isinstance(task, kf.models.MaskedLanguageModel) and task.family == "toy-mlm"
    ids = np.array([[2, 40, 50, 3]])
    np.testing.assert_allclose(to_numpy(task.model([ids, ids * 0])), to_numpy(model([ids, ids * 0])),
                               atol=1e-6)
    # a preset of it records the architecture and rebuilds it
    again = kf.models.load(task.save_preset(tmp_path / "preset"))
    assert type(again.transformer) is Toy


def test_names_are_checked():
    with pytest.raises(ValueError, match="did you mean 'roformer'"):
        architectures.get("roformre")
    for name in ("gpt2_ml", "t5.1.1_encoder", "mt5.1.1_decoder"):  # every bert4keras name
        with pytest.raises(ValueError, match="does not build yet"):
            architectures.get(name)

    class Clash(BERT):
        architecture = "bert"

    with pytest.raises(ValueError, match="taken by BERT"):
        architectures.register(Clash)


@pytest.mark.parametrize("fixture,expected", [
    ("bert", "bert"), ("roformer", "roformer"), ("roformer_v2", "roformer_v2"),
    ("gau_alpha", "gau_alpha"),
])
def test_each_architecture_recognises_its_own_checkpoints_only(fixture, expected):
    from kerasformer.convert.checkpoints import open_checkpoint

    models = FIXTURES / "models" / fixture
    assert architectures.recognise_checkpoint(open_checkpoint(models / "bert_model.ckpt")) == expected
    hf = models / "hf"
    weights = next(p for p in sorted(hf.iterdir()) if p.suffix in (".safetensors", ".bin"))
    assert architectures.recognise_checkpoint(open_checkpoint(weights)) == expected
    config = json.loads((hf / "config.json").read_text())
    assert architectures.recognise_config(config) == expected


def test_the_family_of_each_architecture_for_a_task():
    """What a trained model is saved as: one family per architecture and task."""
    assert families.of_task("similarity") == {"roformer": "roformer-sim", "bert": "simbert"}
    assert families.of_task("masked_lm") == {"roformer": "roformer", "roformer_v2": "roformer-v2",
                                             "gau_alpha": "gau-alpha", "bert": "bert"}
