"""Parity with the original bert4keras on checkpoints it wrote (tools/make_model_fixtures.py).

Every fixture is a tiny model with random weights in the original TF checkpoint
format; `reference.npz` holds bert4keras 0.11.5's outputs for each case of
`cases.json`. kerasformer must load the same checkpoint through
`build_transformer_model` and reproduce every output within 1e-4.
"""
import json

import keras
import numpy as np
import pytest

import kerasformer as kf
from tests.conftest import FIXTURES

MODELS = FIXTURES / "models"
TOLERANCE = 1e-4


def fixture_cases():
    for directory in sorted(p for p in MODELS.iterdir() if p.is_dir()):
        meta = json.loads((directory / "cases.json").read_text(encoding="utf-8"))
        for case in meta["cases"]:
            yield pytest.param(directory.name, case, id=f"{directory.name}-{case}")


def reference_kwargs(meta, case):
    """The case's build arguments, adjusted to bert4keras 0.11.5's numerics."""
    kwargs = dict(meta["cases"][case].get("kwargs", {}))
    if "compound_tokens" in kwargs:  # JSON turned (ids, weights) tuples into lists
        kwargs["compound_tokens"] = [
            tuple(item) if isinstance(item[0], list) else item
            for item in kwargs["compound_tokens"]
        ]
    if meta["model"] in ("roformer", "roformer_v2", "gau_alpha"):
        # 0.11.5 gives these families' embedding and block norms Keras' epsilon
        # (1e-7); the checkpoints were trained with 1e-12, kerasformer's default.
        kwargs["layer_norm_epsilon"] = 1e-7
    if meta["model"] == "gau_alpha":
        # 0.11.5 floors softmax_plus' key count at 16; GAU-α was trained with 1.
        kwargs["length_floor"] = 16
    return kwargs


def build(fixture, case):
    directory = MODELS / fixture
    meta = json.loads((directory / "cases.json").read_text(encoding="utf-8"))
    return meta, kf.build_transformer_model(
        directory / "bert_config.json",
        directory / "bert_model.ckpt",
        model=meta["model"],
        application=meta["cases"][case].get("application", "encoder"),
        **reference_kwargs(meta, case),
    )


def run(model, reference, case):
    feed = [reference[f"{case}/token_ids"]]
    if f"{case}/segment_ids" in reference:  # GPT-2 takes token ids alone
        feed.append(reference[f"{case}/segment_ids"])
    if f"{case}/position_ids" in reference:
        feed.append(reference[f"{case}/position_ids"])
    outputs = model(feed if len(feed) > 1 else feed[0], training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [keras.ops.convert_to_numpy(output) for output in outputs]


@pytest.mark.backends
@pytest.mark.parametrize("fixture,case", list(fixture_cases()))
def test_outputs_match_bert4keras(fixture, case):
    meta, model = build(fixture, case)
    reference = np.load(MODELS / fixture / "reference.npz")
    expected = sorted(k for k in reference.files if k.startswith(f"{case}/output_"))
    outputs = run(model, reference, case)
    assert len(outputs) == len(expected), "bert4keras' output rule not followed"
    for output, key in zip(outputs, expected):
        want = reference[key]
        assert output.shape == want.shape, key
        assert np.abs(output - want).max() <= TOLERANCE, key


def test_unbuilt_heads_are_skipped_and_reported():
    transformer = kf.build_transformer_model(
        MODELS / "bert" / "bert_config.json",
        MODELS / "bert" / "bert_model.ckpt",
        return_keras_model=False,
    )
    report = transformer.load_report
    assert report.ok
    assert "bert/pooler/dense/kernel" in report.skipped
    assert "cls/predictions/output_bias" in report.skipped
    assert len(report.loaded) == len(transformer.model.weights)
