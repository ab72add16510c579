"""Named checkpoints from a loopback Hub: download, verify, convert once, offline.

The fake Hub (fake_hub.py, started by the `hub` fixture of conftest.py) serves the
registered repos at their pinned commits, with the parity fixtures' weights in each
port's real key layout (written by torch in both pickle formats and by safetensors:
tools/make_hf_fixtures.py).
"""
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

import kerasformer as kf
from kerasformer.cli import main
from kerasformer.hub import IntegrityError, manifests
from kerasformer.models import MaskedLanguageModel, SimilarityModel
from tests.helpers import to_numpy
from tests.hub.conftest import MODELS, pinned, repo_files


def reference(fixture):
    return np.load(MODELS / fixture / "reference.npz")


def assert_mlm_matches(task, fixture, case):
    """The task's MLM probabilities on a reference case equal bert4keras' outputs."""
    data = reference(fixture)
    probabilities = to_numpy(task.model([data[f"{case}/token_ids"], data[f"{case}/segment_ids"]]))
    expected = data[f"{case}/output_0"]
    if case.startswith("long_"):  # logits in the reference
        expected = np.exp(expected - expected.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
    assert np.abs(probabilities - expected).max() <= 1e-4


def test_registered_names_load_and_match_the_reference(hub):
    sim = kf.models.load("roformer-sim")
    assert isinstance(sim, SimilarityModel) and sim.family == "roformer-sim"
    generation = json.loads((MODELS / "roformer" / "generation.json").read_text(encoding="utf-8"))
    texts = [item["text"] for item in generation["encode"]]
    sim.text_maxlen = generation["text_maxlen"]
    vectors = sim.encode(texts)
    assert np.abs(vectors - [item["vector"] for item in generation["encode"]]).max() <= 1e-4

    v2 = kf.models.load("roformer-v2-base")
    assert isinstance(v2, MaskedLanguageModel)
    assert_mlm_matches(v2, "roformer_v2", "mlm")
    # GAU-α loads with its training-time floor of 1; where every row sees more than
    # 16 keys that equals bert4keras 0.11.5's floor of 16.
    assert_mlm_matches(kf.models.load("gau-alpha"), "gau_alpha", "long_mlm_logits")
    assert_mlm_matches(kf.models.load("bert-base-chinese"), "bert", "mlm")
    assert len(kf.models.load("bert-base-chinese").fill_mask("今天[MASK]很好", k=3)[0]) == 3


def test_second_load_neither_downloads_nor_converts(hub, monkeypatch):
    kf.models.load("roformer-sim")
    kf.models.load("simbert")  # unpinned: resolves main, downloads, converts
    assert any("/resolve/" in path for _, path in hub.requests)
    hub.requests.clear()
    from kerasformer import loading

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(loading, "build_task", no_conversion)

    monkeypatch.setattr(loading, "convert_task", no_conversion)
    sim = kf.models.load("roformer-sim")  # pinned: not even a revision check
    assert hub.requests == []
    assert sim.encode("今天天气不错").shape == (64,)
    kf.models.load("simbert")
    assert hub.requests == [("GET", "/api/models/Tongjilibo/simbert-chinese-base/revision/main")]


def test_offline_loads_from_the_cache_and_explains_what_is_missing(hub, monkeypatch, tmp_path):
    kf.models.load("roformer-sim")
    kf.models.load("simbert")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    kf.models.load("roformer-sim")
    kf.models.load("simbert")  # main resolves from the recorded ref
    assert hub.requests == []
    with pytest.raises(FileNotFoundError, match="never resolved on this machine"):
        kf.models.load("roformer-sim-ft")
    with pytest.raises(FileNotFoundError, match="not in the local cache.*kerasformer download"):
        kf.models.load("gau-alpha")


def test_offline_conversion_uses_cached_files(hub, monkeypatch, capsys):
    assert main(["download", "roformer-v2-base"]) == 0  # files only, no conversion
    assert "pytorch_model.bin" in capsys.readouterr().out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    assert_mlm_matches(kf.models.load("roformer-v2-base"), "roformer_v2", "mlm")
    assert hub.requests == []


def test_altered_and_truncated_files_are_detected(hub):
    # the manifest pins simbert-small's weights by sha256: the fixture file differs
    with pytest.raises(IntegrityError, match="sha256"):
        kf.models.load("simbert-small")
    weights = repo_files("bert_factorized", "pytorch_model.bin")["pytorch_model.bin"]
    hub.serve_instead("Tongjilibo/simbert-chinese-base", "pytorch_model.bin", weights[:-100])
    with pytest.raises(IntegrityError, match="not used"):
        kf.models.load("simbert")
    assert not list((pathlib.Path(os.environ["KERASFORMER_HOME"]) / "converted").glob("*/*"))


def test_a_file_corrupted_in_the_cache_is_fetched_again(hub):
    kf.models.load("roformer-v2-base")
    blobs = list((pathlib.Path(os.environ["HF_HOME"]) / "hub").glob(
        "models--junnyu--roformer_v2_chinese_char_base/blobs/*"))
    weights = max(blobs, key=lambda p: p.stat().st_size)
    weights.write_bytes(weights.read_bytes()[:1000])  # damaged on disk
    for preset in (pathlib.Path(os.environ["KERASFORMER_HOME"]) / "converted").glob("*/*"):
        (preset / "model.weights.h5").write_bytes(b"damaged")  # and its conversion too
    assert_mlm_matches(kf.models.load("roformer-v2-base"), "roformer_v2", "mlm")


def test_missing_repo_file_and_revision_are_clear_errors(hub):
    with pytest.raises(LookupError, match="no repository 'nobody/nothing'"):
        kf.models.load("hf://nobody/nothing", family="roformer")
    with pytest.raises(LookupError, match="has no revision 'v9'"):
        kf.models.load("hf://someone/my-roformer-sim@v9")
    del hub.repos["someone/my-roformer-sim"]["files"]["vocab.txt"]
    with pytest.raises(FileNotFoundError, match="lacks vocab.txt"):
        kf.models.load("hf://someone/my-roformer-sim")
    with pytest.raises(LookupError, match="did you mean 'roformer-sim'"):
        kf.models.load("roformer-simm")


def test_hf_handles_infer_the_family_and_quote_pr_refs(hub):
    sim = kf.models.load("hf://someone/my-roformer-sim@refs/pr/1")
    assert isinstance(sim, SimilarityModel) and sim.family == "roformer-sim"
    assert any("refs%2Fpr%2F1" in path for _, path in hub.requests)
    masked = kf.models.load("hf://someone/my-roformer-sim", family="roformer")
    assert isinstance(masked, MaskedLanguageModel)


def test_interrupted_conversion_leaves_nothing_that_loads(hub, monkeypatch):
    from kerasformer.convert import weights

    original, read = weights.read_source_blocks, []

    def interrupted(*args, **kwargs):  # Ctrl-C with a few tensors written
        read.append(args[1])
        if len(read) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(weights, "read_source_blocks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kf.models.load("roformer-sim")
    converted = pathlib.Path(os.environ["KERASFORMER_HOME"]) / "converted"
    assert not [p for p in converted.rglob("*") if p.is_dir() and (p / "config.json").exists()]
    assert not list(converted.rglob("*.partial"))
    monkeypatch.setattr(weights, "read_source_blocks", original)
    assert kf.models.load("roformer-sim").encode("你好").shape == (64,)


def test_cpm_lm_by_name(hub, tmp_path, capsys):
    """The cpm-lm manifest end to end: its files (spiece.model as the vocabulary, the
    pickled weights) fetched at the pinned commit, converted streamed, the task made
    with CPM's tokenizer and <eod>."""
    pytest.importorskip("jieba")
    pytest.importorskip("torch")
    from kerasformer.models import CausalLanguageModel
    from tests.helpers import write_toy_cpm

    (tmp_path / "cpm").mkdir()
    hub.add_repo("TsinghuaAI/CPM-Generate", write_toy_cpm(tmp_path / "cpm", "pytorch_model.bin"),
                 pinned("cpm-lm"))
    cpm = kf.models.load("cpm-generate")  # an alias
    assert isinstance(cpm, CausalLanguageModel) and cpm.family == "cpm-lm"
    assert cpm.decoder.end_id == cpm.tokenizer.eod_id == 7
    assert main(["generate", "中国的首都是", "--model", "cpm-lm", "--maxlen", "3", "--seed", "0",
                 "--end", "newline"]) == 0
    assert "中国的首都是" in capsys.readouterr().out


def test_command_line_on_named_checkpoints(hub, monkeypatch, tmp_path, capsys):
    assert main(["similar", "今天天气不错", "--model", "roformer-sim", "-n", "6", "-k", "2",
                 "--seed", "0"]) == 0
    header, *rows = capsys.readouterr().out.strip().splitlines()
    assert header == "cosine\tsentence" and 0 < len(rows) <= 2
    assert main(["fill-mask", "今天[MASK]很好", "--model", "bert-base-chinese", "-k", "2"]) == 0
    assert capsys.readouterr().out.startswith("[MASK] 1: ")

    # verify against outputs published for the checkpoint — here bert4keras' own, as a
    # copy of the registry whose roformer-v2-base manifest carries them
    registry = tmp_path / "checkpoints"
    registry.mkdir()
    manifest = json.loads(json.dumps(manifests.find_manifest("roformer-v2-base")))
    published = json.loads((MODELS / "roformer_v2" / "fill_mask.json").read_text(encoding="utf-8"))
    manifest["verify"] = {"fill_mask": {k: published[k] for k in ("text", "top5", "source")}}
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}  # fill-mask never proposes them
    manifest["verify"]["fill_mask"]["top5"] = [
        [token for token in row if token not in special] for row in published["top5"]
    ]
    (registry / "roformer-v2-base.json").write_text(json.dumps(manifest, ensure_ascii=False))
    monkeypatch.setenv("KERASFORMER_CHECKPOINTS", str(registry))
    assert main(["verify", "roformer-v2-base"]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    manifest["verify"]["fill_mask"]["top5"][0].reverse()
    (registry / "roformer-v2-base.json").write_text(json.dumps(manifest, ensure_ascii=False))
    assert main(["verify", "roformer-v2-base"]) == 2
    assert "does not reproduce its published outputs" in capsys.readouterr().err


def test_manifest_task_options_and_tokenizer_reach_hub_conversions(hub, monkeypatch, tmp_path):
    registry = tmp_path / "checkpoints"
    shutil.copytree(manifests.manifest_directory(), registry)
    manifest = json.loads((registry / "roformer-sim.json").read_text(encoding="utf-8"))
    manifest["task_options"] = {"text_maxlen": 24, "sampling": {"topk": 3}}
    manifest["tokenizer"]["do_lower_case"] = False
    (registry / "roformer-sim.json").write_text(json.dumps(manifest, ensure_ascii=False))
    monkeypatch.setenv("KERASFORMER_CHECKPOINTS", str(registry))
    for _ in range(2):  # converted, then read back from the cached preset
        sim = kf.models.load("roformer-sim")
        assert sim.text_maxlen == 24 and sim.sampling == {"topk": 3}
        assert sim.tokenizer_config["do_lower_case"] is False
