"""The manifests in checkpoints/ and `kerasformer list`."""
import json

import pytest

from kerasformer.cli import main
from kerasformer.hub import manifests

REQUIRED = [
    "roformer-sim", "roformer-sim-small", "roformer-sim-ft", "roformer-sim-ft-small",
    "simbert", "simbert-small", "simbert-tiny", "roformer-char-base", "roformer-char-small",
    "roformer-base", "roformer-v2-small", "roformer-v2-base", "roformer-v2-large",
    "gau-alpha", "bert-base-chinese", "cpm-lm",
]


def test_every_manifest_validates_and_the_required_ones_exist():
    listed = manifests.list_manifests()
    assert set(REQUIRED) <= set(listed)
    for name, manifest in listed.items():
        assert manifests.validate_manifest(manifest, name) is manifest
        weights = [f for f in manifest["hub"]["files"] if f["role"] == "weights"]
        assert len(weights) == 1
        if manifest["hub"]["revision"] is None:  # unpinned ones say why
            assert "not pinned" in manifest["hub"]["revision_note"]
    assert manifests.find_manifest("SimBERTv2")["name"] == "roformer-sim"
    assert manifests.find_manifest("roformer_v2_base")["name"] == "roformer-v2-base"
    assert manifests.find_manifest("nope") is None
    assert "roformer-sim" in manifests.suggest("roformer-simm")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda m: m.update(family="t5"), "family must be one of"),
        (lambda m: m["hub"].update(revision="main"), "40-hex commit"),
        (lambda m: m["hub"]["files"][2].update(sha256="xyz"), "sha256 must be 64"),
        (lambda m: m["hub"]["files"].pop(2), "exactly one weights file"),
        (lambda m: m.pop("license"), "'license' must be a str"),
        (lambda m: m.update(extra=1), "unknown keys"),
    ],
)
def test_schema_names_each_problem(change, message):
    manifest = json.loads(json.dumps(manifests.find_manifest("roformer-sim")))
    change(manifest)
    with pytest.raises(ValueError, match=message):
        manifests.validate_manifest(manifest)


def test_a_bad_manifest_directory_is_reported(tmp_path, monkeypatch):
    (tmp_path / "broken.json").write_text("{")
    monkeypatch.setenv("KERASFORMER_CHECKPOINTS", str(tmp_path))
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        manifests.list_manifests()


def test_list_prints_every_manifest(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert name in out
    assert "main (unpinned)" in out and "490fc08" in out
