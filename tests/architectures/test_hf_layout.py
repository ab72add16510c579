"""Every family from Hugging Face layout files, without torch.

tools/make_hf_fixtures.py re-saves the bert4keras-written fixture weights under the
PyTorch ports' key names (bert-base-chinese, SimBERT, RoFormer, RoFormer-Sim,
RoFormerV2, GAU-α), with torch (zip and legacy pickle formats) and safetensors, next to
the ports' config.json; loading them must reproduce bert4keras' reference outputs.
"""
import json

import numpy as np
import pytest

import kerasformer as kf
from kerasformer.convert.weights import WeightLoadError
from tests.conftest import FIXTURES
from tests.helpers import to_numpy
from tests.architectures.test_parity import reference_kwargs

MODELS = FIXTURES / "models"
FILES = [
    ("bert", "model.safetensors", "pool_mlm_logits"),
    ("bert", "model.safetensors", "nsp"),
    ("bert_factorized", "pytorch_model.bin", "unilm_sim"),
    ("roformer", "pytorch_model.bin", "unilm_sim"),
    ("roformer_factorized", "model.safetensors", "encoder"),
    ("roformer_v2", "pytorch_model.bin", "unilm"),
    ("roformer_v2", "pytorch_model_legacy.bin", "unilm"),
    ("roformer_v2", "model.safetensors", "unilm"),
    ("gau_alpha", "pytorch_model.bin", "unilm"),
    ("gau_alpha", "model.safetensors", "mlm"),
]


def build(fixture, filename, case):
    meta = json.loads((MODELS / fixture / "cases.json").read_text(encoding="utf-8"))
    return kf.build_transformer_model(
        MODELS / fixture / "hf" / "config.json",  # the port's config, HF keys
        MODELS / fixture / "hf" / filename,
        model=meta["model"],
        application=meta["cases"][case].get("application", "encoder"),
        return_keras_model=False,
        **reference_kwargs(meta, case),
    )


@pytest.mark.backends
@pytest.mark.parametrize("fixture,filename,case", FILES, ids=lambda v: str(v))
def test_hf_files_reproduce_bert4keras(fixture, filename, case):
    transformer = build(fixture, filename, case)
    reference = np.load(MODELS / fixture / "reference.npz")
    outputs = transformer.model([reference[f"{case}/token_ids"], reference[f"{case}/segment_ids"]])
    outputs = outputs if isinstance(outputs, list) else [outputs]
    for index, output in enumerate(outputs):
        want = reference[f"{case}/output_{index}"]
        assert np.abs(to_numpy(output) - want).max() <= 1e-4
    assert transformer.load_report.ok


def test_buffers_and_tied_copies_are_ignored_not_loaded():
    report = build("bert", "model.safetensors", "pool_mlm_logits").load_report
    assert {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
            "bert.embeddings.position_ids"} <= set(report.ignored)
    report = build("roformer", "pytorch_model.bin", "unilm_sim").load_report
    assert "roformer.encoder.embed_positions.weight" in report.ignored


def test_hf_file_of_another_family():
    with pytest.raises(WeightLoadError, match="model='roformer_v2'"):
        kf.build_transformer_model(
            MODELS / "gau_alpha" / "hf" / "config.json",
            MODELS / "roformer_v2" / "hf" / "pytorch_model.bin", model="gau_alpha",
        )
    with pytest.raises(WeightLoadError, match="model='bert'"):
        kf.build_transformer_model(
            MODELS / "bert" / "hf" / "config.json", MODELS / "bert" / "hf" / "model.safetensors",
            model="roformer",
        )
