"""RoFormerV2 and GAU-α from Hugging Face layout files (JunnYu's PyTorch ports).

tools/make_hf_fixtures.py re-saves the bert4keras-written fixture weights under
JunnYu's key names with torch (zip and legacy pickle formats) and safetensors; each
file must reproduce bert4keras' reference outputs.
"""
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.convert.weights import WeightLoadError
from tests.conftest import FIXTURES
from tests.helpers import to_numpy

MODELS = FIXTURES / "models"
FILES = [
    ("roformer_v2", "pytorch_model.bin"),
    ("roformer_v2", "pytorch_model_legacy.bin"),
    ("roformer_v2", "model.safetensors"),
    ("gau_alpha", "pytorch_model_legacy.bin"),
    ("gau_alpha", "model.safetensors"),
]
NUMERICS = {"layer_norm_epsilon": 1e-7}  # bert4keras 0.11.5, as in test_parity


def build(family, path, **kwargs):
    if family == "gau_alpha":
        kwargs["length_floor"] = 16
    return kf.build_transformer_model(
        MODELS / family / "bert_config.json", path, model=family,
        return_keras_model=False, **NUMERICS, **kwargs,
    )


@pytest.mark.backends
@pytest.mark.parametrize("family,filename", FILES, ids=lambda v: str(v))
def test_hf_files_reproduce_bert4keras(family, filename):
    transformer = build(family, MODELS / family / "hf" / filename, application="unilm")
    reference = np.load(MODELS / family / "reference.npz")
    probabilities = transformer.model([reference["unilm/token_ids"], reference["unilm/segment_ids"]])
    assert np.abs(to_numpy(probabilities) - reference["unilm/output_0"]).max() <= 1e-4
    report = transformer.load_report
    assert report.ok and not report.skipped
    if filename.endswith(".bin"):  # JunnYu's exports carry the tied decoder copy
        assert "cls.predictions.decoder.weight" in report.ignored


def test_hf_file_of_another_family():
    with pytest.raises(WeightLoadError, match="model='roformer_v2'"):
        build("gau_alpha", MODELS / "roformer_v2" / "hf" / "pytorch_model.bin")


def test_hf_layout_not_yet_supported_for_bert_is_a_clear_error():
    with pytest.raises(ValueError, match="Hugging Face layout checkpoints are not supported for 'bert'"):
        kf.build_transformer_model(
            MODELS / "bert" / "bert_config.json", MODELS / "roformer_v2" / "hf" / "model.safetensors"
        )
