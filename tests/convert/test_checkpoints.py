"""Tests for kerasformer.convert.checkpoints: canonical Hugging Face names.

Two source tensors that canonicalise to one name (bert-base-chinese's `LayerNorm.gamma`
next to a `LayerNorm.weight`, an unprefixed pooler next to a prefixed one) must be an
error naming both, not a view where the later silently hides the other.
"""

import numpy as np
import pytest
import safetensors.numpy

import kerasformer
from kerasformer.convert.checkpoints import RenamedCheckpoint, canonical_hf_names
from kerasformer.convert.safetensors_checkpoint import SafetensorsCheckpoint
from tests.conftest import FIXTURES
from tests.convert.hostile import mentions

BERT = FIXTURES / "models" / "bert" / "hf"


def test_canonical_names():
    checkpoint = {"embeddings.LayerNorm.gamma": np.ones(2),
                  "embeddings.LayerNorm.beta": np.zeros(2), "cls.predictions.bias": np.zeros(3)}
    renamed = canonical_hf_names(checkpoint, "bert.")
    assert isinstance(renamed, RenamedCheckpoint)
    assert list(renamed) == ["bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias",
                             "cls.predictions.bias"]
    assert renamed.shape("bert.embeddings.LayerNorm.weight") == (2,)
    np.testing.assert_array_equal(renamed["bert.embeddings.LayerNorm.weight"], np.ones(2))
    canonical = {"bert.pooler.dense.weight": np.ones(1)}
    assert canonical_hf_names(canonical, "bert.") is canonical


@pytest.mark.parametrize("first, second, canonical", [
    ("bert.embeddings.LayerNorm.gamma", "bert.embeddings.LayerNorm.weight",
     "bert.embeddings.LayerNorm.weight"),
    ("bert.encoder.layer.0.output.LayerNorm.bias", "bert.encoder.layer.0.output.LayerNorm.beta",
     "bert.encoder.layer.0.output.LayerNorm.bias"),
    ("pooler.dense.weight", "bert.pooler.dense.weight", "bert.pooler.dense.weight"),
], ids=["gamma and weight", "bias and beta", "pooler with and without prefix"])
def test_two_names_for_one_tensor(first, second, canonical):
    checkpoint = {first: np.ones(2), second: np.zeros(2)}
    with pytest.raises(ValueError, match=mentions(repr(first), repr(second), repr(canonical))):
        canonical_hf_names(checkpoint, "bert.")


def _bert_with_a_second_gamma():
    """The fixture (bert-base-chinese's names: `LayerNorm.gamma`) with a `LayerNorm.weight`."""
    tensors = dict(SafetensorsCheckpoint(BERT / "model.safetensors").items())
    name = "bert.embeddings.LayerNorm.gamma"
    assert name in tensors
    tensors["bert.embeddings.LayerNorm.weight"] = np.full_like(tensors[name], 3.0)
    return tensors


@pytest.mark.parametrize("as_file", [False, True], ids=["dict", "safetensors file"])
def test_build_refuses_two_names_for_one_tensor(tmp_path, as_file):
    """The later of the two was loaded, and the other neither loaded nor reported."""
    checkpoint = _bert_with_a_second_gamma()
    where = "the checkpoint"
    if as_file:
        where = tmp_path / "model.safetensors"
        safetensors.numpy.save_file(checkpoint, where)
        checkpoint = where
    with pytest.raises(ValueError, match=mentions(where, "'bert.embeddings.LayerNorm.gamma'",
                                                  "'bert.embeddings.LayerNorm.weight'")):
        kerasformer.build_transformer_model(BERT / "config.json", checkpoint, model="bert")


def test_build_loads_the_file_without_the_second_name():
    tensors = _bert_with_a_second_gamma()
    del tensors["bert.embeddings.LayerNorm.weight"]
    model = kerasformer.build_transformer_model(BERT / "config.json", tensors, model="bert",
                                                return_keras_model=False)
    assert model.load_report.ok
