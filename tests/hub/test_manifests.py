"""The manifests in checkpoints/ and `kerasformer list`."""
import json
import re

import pytest

from kerasformer.cli import main
from kerasformer.hub import manifests

REQUIRED = [
    "roformer-sim", "roformer-sim-small", "roformer-sim-ft", "roformer-sim-ft-small",
    "simbert", "simbert-small", "simbert-tiny", "roformer-char-base", "roformer-char-small",
    "roformer-base", "roformer-v2-small", "roformer-v2-base", "roformer-v2-large",
    "gau-alpha", "bert-base-chinese", "cpm-lm", "cpm-generate-distill", "roformer-sim-mini",
]


# What the manifests may name, written out here rather than read from the module, so
# that a value slipping into the schema's lists shows up as a failure.
KNOWN_FAMILIES = {"roformer-sim", "simbert", "roformer", "roformer-v2", "gau-alpha", "bert",
                  "cpm-lm"}
TASK_OF_FAMILY = {"roformer-sim": "similarity", "simbert": "similarity", "cpm-lm": "causal_lm",
                  "roformer": "masked_lm", "roformer-v2": "masked_lm", "gau-alpha": "masked_lm",
                  "bert": "masked_lm"}
# bert4keras' recipes: SimBERT samples with topk=5, RoFormer-Sim with topp=0.95.
SAMPLING_OF_FAMILY = {"simbert": {"topk": 5}, "roformer-sim": {"topp": 0.95}}
HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")
MANIFESTS = manifests.list_manifests()
HUB_MANIFESTS = sorted(name for name, m in MANIFESTS.items() if not manifests.is_bundled(m))
BUNDLED = sorted(name for name, m in MANIFESTS.items() if manifests.is_bundled(m))


def test_the_required_manifests_exist_and_the_directory_matches():
    assert set(REQUIRED) <= set(MANIFESTS)
    files = sorted(path.stem for path in manifests.manifest_directory().glob("*.json"))
    assert files == sorted(MANIFESTS)
    assert all(name == manifest["name"] for name, manifest in MANIFESTS.items())


@pytest.mark.parametrize("name", HUB_MANIFESTS)
def test_manifest_properties(name):
    manifest = MANIFESTS[name]
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name)
    assert manifest["family"] in KNOWN_FAMILIES
    assert manifest["task"] == TASK_OF_FAMILY[manifest["family"]]
    assert manifest["description"].strip() and manifest["license"].strip()

    hub = manifest["hub"]
    owner, _, repo = hub["repo_id"].partition("/")
    assert owner and repo and "/" not in repo
    if hub["revision"] is None:  # unpinned ones say why
        assert "not pinned" in hub["revision_note"]
    else:
        assert HEX40.fullmatch(hub["revision"]), hub["revision"]
        assert "not pinned" not in hub["revision_note"]
    paths = [entry["path"] for entry in hub["files"]]
    assert len(set(paths)) == len(paths), f"duplicate hub files: {paths}"
    by_role = {}
    for entry in hub["files"]:
        assert entry["path"] and not entry["path"].startswith("/") and ".." not in entry["path"]
        by_role.setdefault(entry["role"], []).append(entry["path"])
        if "sha256" in entry:
            assert HEX64.fullmatch(entry["sha256"]), entry
        if "approx_size" in entry:
            assert isinstance(entry["approx_size"], int) and entry["approx_size"] > 0
    assert set(by_role) <= {"config", "vocab", "weights"}
    assert by_role["config"] == ["config.json"]
    (weights,) = by_role["weights"]
    assert weights.endswith((".bin", ".safetensors"))

    # The tokenizer names a file the hub entry downloads.
    tokenizer = manifest["tokenizer"]
    assert by_role.get("vocab") == [tokenizer["vocab"]]
    assert tokenizer["vocab"].endswith({"wordpiece": ".txt", "cpm": ".model"}[tokenizer["type"]])

    original = manifest["original"]
    assert set(original) == {"url", "mirror", "layout"}
    assert original["url"].startswith("https://")
    assert original["mirror"] is None or original["mirror"].strip()
    if original["layout"] == "bert4keras-tf":  # the Zhuiyi / Google release archives
        assert original["url"].endswith(".zip"), original["url"]
    else:
        # CPM-LM's Megatron partitions; its distillation exists on the Hub only
        assert (manifest["family"], original["layout"]) in {("cpm-lm", "megatron"), ("cpm-lm", "hf")}

    options = manifest["task_options"]
    if manifest["task"] == "similarity":
        assert set(options) == {"text_maxlen", "sampling"}
        assert isinstance(options["text_maxlen"], int) and options["text_maxlen"] > 2
        assert options["sampling"] == SAMPLING_OF_FAMILY[manifest["family"]]
    else:
        assert options == {}

    fill_mask = manifest.get("verify", {}).get("fill_mask")
    if fill_mask is not None:  # one list of five candidates per [MASK]
        assert manifest["task"] == "masked_lm"
        assert len(fill_mask["top5"]) == fill_mask["text"].count("[MASK]") > 0
        for candidates in fill_mask["top5"]:
            assert len(candidates) == len(set(candidates)) == 5
            assert all(isinstance(c, str) and c for c in candidates)


def test_every_name_and_alias_resolves_to_its_manifest():
    owners = {}
    for name, manifest in MANIFESTS.items():
        for key in [name, *manifest["aliases"]]:
            assert manifests.find_manifest(key) is manifest, key
            # lookups ignore case, surrounding blanks and '_' for '-'
            assert manifests.find_manifest(f" {key.upper().replace('-', '_')} ") is manifest
            normalised = key.lower().replace("_", "-")
            assert owners.setdefault(normalised, name) == name, f"{key} names two manifests"
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


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_manifest_names_its_preset_training_and_scores(name):
    manifest = MANIFESTS[name]
    assert BUNDLED == ["roformer-sim-mini"]
    preset = manifests.bundled_preset(manifest)
    for file in ("config.json", "model.weights.h5", "assets/tokenizer/vocab.txt"):
        assert (preset / file).is_file(), file
    assert (preset / "model.weights.h5").stat().st_size <= 20e6  # the size the issue allows
    assert manifest["family"] == "roformer-sim" and manifest["task"] == "similarity"
    training = manifest["training"]
    assert "tools/train_mini.sh" in training["command"]
    assert all(entry["licence"].strip() for entry in training["data"])
    assert not any("OCNLI" in entry["source"] or ".test.data" in entry["source"]
                   for entry in training["data"])
    spearman = manifest["scores"]["spearman"]
    assert set(spearman) == {"ATEC", "BQ", "LCQMC", "PAWSX", "STS-B", "average"}
    average = sum(spearman[s] for s in spearman if s != "average") / 5
    assert abs(average - spearman["average"]) < 1e-3


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda m: m.update(hub={}), "unknown keys"),
        (lambda m: m["training"].update(data=[{"source": "x"}]), "licence"),
        (lambda m: m["training"].pop("command"), "training.command"),
        (lambda m: m.update(preset="../elsewhere"), "preset must be"),
        (lambda m: m.pop("scores"), "'scores' must be a dict"),
    ],
)
def test_bundled_schema_names_each_problem(change, message):
    manifest = json.loads(json.dumps(manifests.find_manifest("roformer-sim-mini")))
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
    assert "(bundled: no download)" in out
