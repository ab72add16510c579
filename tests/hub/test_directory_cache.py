"""A checkpoint directory is converted once: its conversion is cached as a preset under
KERASFORMER_HOME, keyed on the files read (path, size, mtime), the family and the
manifest, and converted again when any of them changes."""
import json
import os
import shutil

import numpy as np
import pytest

import kerasformer as kf
from kerasformer import loading
from tests.hub.conftest import MODELS

TEXT = "今天天气不错"


@pytest.fixture
def conversions(tmp_path, monkeypatch):
    """The families `loading.convert_task` was called for."""
    monkeypatch.setenv("KERASFORMER_HOME", str(tmp_path / "kerasformer"))
    calls = []
    convert_task = loading.convert_task

    def counted(target, family, *args, **kwargs):
        calls.append(getattr(family, "name", family))
        return convert_task(target, family, *args, **kwargs)

    monkeypatch.setattr(loading, "convert_task", counted)
    return calls


def entries(tmp_path):
    root = tmp_path / "kerasformer" / "converted" / "local"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_a_release_directory_is_converted_once(tmp_path, conversions, monkeypatch):
    release = shutil.copytree(MODELS / "roformer", tmp_path / "roformer")
    first = kf.models.load(release, family="roformer-sim")
    assert conversions == ["roformer-sim"]
    expected = first.encode(TEXT)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    with monkeypatch.context() as patch:
        patch.setattr(loading, "build_task", no_conversion)
        patch.setattr(loading, "convert_task", no_conversion)
        again = kf.models.load(release, family="roformer-sim")
        np.testing.assert_array_equal(again.encode(TEXT), expected)
        assert again.text_maxlen == first.text_maxlen and again.sampling == first.sampling
        # options that do not change the conversion are applied to the cached one
        assert kf.models.load(release, family="roformer-sim", text_maxlen=20).text_maxlen == 20
        assert kf.models.load(release, family="roformer-sim").text_maxlen == first.text_maxlen
        assert kf.models.load(release, family="roformer-sim", dtype="bfloat16") \
            .transformer.get_config()["dtype"] == "bfloat16"
        assert kf.models.load(str(release), family="RoFormer_Sim").family == "roformer-sim"
    assert len(entries(tmp_path)) == 1

    # a touched file: converted again, in place of the stale entry
    vocab = release / "vocab.txt"
    stat = vocab.stat()
    os.utime(vocab, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    np.testing.assert_array_equal(kf.models.load(release, family="roformer-sim").encode(TEXT), expected)
    assert conversions == ["roformer-sim"] * 2
    kf.models.load(release, family="roformer-sim")
    assert conversions == ["roformer-sim"] * 2
    assert len(entries(tmp_path)) == 1

    # a modified file: converted again, and the change shows
    config = json.loads((release / "bert_config.json").read_text())
    config["max_position_embeddings"] = 256
    (release / "bert_config.json").write_text(json.dumps(config))
    assert kf.models.load(release, family="roformer-sim").transformer.get_config()[
        "max_position"] == 256
    assert conversions == ["roformer-sim"] * 3

    # another family of the same files is another conversion, kept beside the first
    assert kf.models.load(release, family="roformer").family == "roformer"
    assert conversions == ["roformer-sim"] * 3 + ["roformer"]
    kf.models.load(release, family="roformer-sim")
    kf.models.load(release, family="roformer")
    assert len(conversions) == 4 and len(entries(tmp_path)) == 2


def test_a_hugging_face_directory_is_converted_once(tmp_path, conversions):
    directory = tmp_path / "hf-roformer"
    directory.mkdir()
    for source in (MODELS / "roformer" / "hf" / "config.json", MODELS / "roformer" / "hf" / "pytorch_model.bin",
                   MODELS / "roformer" / "vocab.txt"):
        shutil.copy(source, directory)
    first = kf.models.load(directory)  # the family from the config
    second = kf.models.load(directory)
    assert conversions == ["roformer-sim"]
    np.testing.assert_array_equal(first.encode(TEXT), second.encode(TEXT))
    # a file that is not read changes nothing
    shutil.copy(MODELS / "roformer" / "hf" / "pytorch_model.bin", directory / "renamed.bin")
    kf.models.load(directory)
    assert conversions == ["roformer-sim"]
    weights = directory / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes())  # rewritten: a new mtime
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    kf.models.load(directory)
    assert conversions == ["roformer-sim"] * 2


def test_the_manifest_of_a_release_is_part_of_the_key(tmp_path, conversions, monkeypatch):
    from kerasformer.hub import manifests

    registry = tmp_path / "checkpoints"
    shutil.copytree(manifests.manifest_directory(), registry)
    monkeypatch.setenv("KERASFORMER_CHECKPOINTS", str(registry))
    manifest = manifests.find_manifest("roformer-sim")
    release = manifest["original"]["url"].rsplit("/", 1)[1][:-len(".zip")]
    directory = shutil.copytree(MODELS / "roformer", tmp_path / release)
    assert kf.models.load(directory).text_maxlen == 64
    manifest = json.loads((registry / "roformer-sim.json").read_text(encoding="utf-8"))
    manifest["task_options"]["text_maxlen"] = 24
    (registry / "roformer-sim.json").write_text(json.dumps(manifest, ensure_ascii=False))
    assert kf.models.load(directory).text_maxlen == 24
    assert conversions == ["roformer-sim"] * 2


def test_an_unwritable_cache_still_loads(tmp_path, conversions, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("KERASFORMER_HOME", str(blocked))
    with pytest.warns(UserWarning, match="not cached"):
        task = kf.models.load(MODELS / "roformer", family="roformer-sim", text_maxlen=20)
    assert task.text_maxlen == 20


def test_conversions_of_deleted_directories_are_removed(tmp_path, conversions):
    gone = shutil.copytree(MODELS / "roformer", tmp_path / "temporary")
    kf.models.load(gone, family="roformer-sim")
    shutil.rmtree(gone)
    assert len(entries(tmp_path)) == 1
    kf.models.load(MODELS / "bert", family="bert")  # the next conversion of a directory
    assert [name.rsplit("-", 2)[0] for name in entries(tmp_path)] == ["bert"]
