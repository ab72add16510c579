"""Names that reach a path: commit ids and file names from a Hub endpoint, revisions
from the user, files named by a preset. None may lead outside KERASFORMER_HOME, the
Hugging Face cache or the preset."""
import json
import os
import pathlib
import re

import pytest

import kerasformer as kf
from kerasformer import loading, presets
from tests.hub.conftest import CUSTOM, MODELS, repo_files


def written_outside(root, *allowed):
    """Files under `root` that are under none of the `allowed` directories."""
    return sorted(str(p) for p in root.rglob("*")
                  if (p.is_file() or p.is_symlink()) and not any(a in p.parents for a in allowed))


def caches(tmp_path):
    return tmp_path / "kerasformer", tmp_path / "hf" / "hub"


# A commit id as a hostile (or broken) mirror could answer it: from
# KERASFORMER_HOME/hub/<repo>/ or KERASFORMER_HOME/converted/<repo>/ three levels up is
# the test's directory, beside KERASFORMER_HOME and HF_HOME.
ESCAPE = "../../../escape"


def test_a_commit_id_answered_by_the_endpoint_must_be_40_hex(hub, tmp_path):
    hub.add_repo("someone/hostile", repo_files("roformer", "pytorch_model.bin"), CUSTOM,
                 refs=[ESCAPE])
    hub.api_sha["someone/hostile"] = ESCAPE
    with pytest.raises(ValueError, match=r"'\.\./\.\./\.\./escape'.*40"):
        kf.models.load("hf://someone/hostile", family="roformer")
    assert written_outside(tmp_path, *caches(tmp_path)) == []
    with pytest.raises(ValueError, match=r"'\.\./\.\./\.\./escape'"):
        loading.download_files("hf://someone/hostile")
    assert written_outside(tmp_path, *caches(tmp_path)) == []


@pytest.mark.parametrize("name", ["../../escape.txt", "/etc/escape.txt", "a\\..\\escape.txt",
                                  "C:escape.txt", "a/./b.txt"])
def test_file_names_listed_by_the_endpoint_must_stay_relative(hub, tmp_path, name):
    files = repo_files("roformer", "pytorch_model.bin")
    files[name] = b"not needed, but listed"
    hub.add_repo("someone/odd-names", files, CUSTOM)
    with pytest.raises(ValueError, match="file name " + re.escape(repr(name))):
        kf.models.load("hf://someone/odd-names", family="roformer")
    assert written_outside(tmp_path, *caches(tmp_path)) == []


def test_a_revision_from_the_user_cannot_leave_the_caches(hub, tmp_path):
    revision = "../../../../escape"  # from KERASFORMER_HOME/hub/<repo>/refs/: the test's directory
    hub.repos["someone/my-roformer-sim"]["refs"][revision] = CUSTOM  # an endpoint that accepts it
    with pytest.raises(ValueError, match=r"revision '\.\./\.\./\.\./\.\./escape'"):
        kf.models.load(f"hf://someone/my-roformer-sim@{revision}")
    with pytest.raises(ValueError, match=r"revision '\.\./\.\./\.\./\.\./escape'"):
        kf.models.load("hf://someone/my-roformer-sim", revision=revision)
    with pytest.raises(ValueError, match=r"revision '\.\./\.\./\.\./\.\./escape'"):
        loading.download_files("someone/my-roformer-sim", revision=revision)
    assert written_outside(tmp_path, *caches(tmp_path)) == []
    # branches with slashes stay valid
    assert kf.models.load("hf://someone/my-roformer-sim@refs/pr/1").family == "roformer-sim"


def test_offline_a_revision_cannot_read_an_arbitrary_file_as_its_commit(hub, tmp_path, monkeypatch):
    kf.models.load("hf://someone/my-roformer-sim")  # resolves main: refs directories exist
    # KERASFORMER_HOME/hub/someone--my-roformer-sim/refs/ + ../../../../secret = the test's directory
    (tmp_path / "secret").write_text("the content of some private file")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for revision in ("../../../../secret", "main/../../../../../secret", "/" + str(tmp_path / "secret")):
        with pytest.raises(ValueError, match="revision") as error:
            kf.models.load(f"hf://someone/my-roformer-sim@{revision}")
        assert "private file" not in str(error.value)


def test_a_damaged_ref_record_is_not_taken_for_a_commit(hub, tmp_path, monkeypatch):
    kf.models.load("simbert")  # unpinned: records what main resolved to
    record = tmp_path / "kerasformer" / "hub" / "Tongjilibo--simbert-chinese-base" / "refs" / "main"
    assert record.read_text() == "a" * 40
    record.write_text("../../../elsewhere")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(UserWarning, match=str(record)), \
            pytest.raises(FileNotFoundError, match="never resolved on this machine"):
        kf.models.load("simbert")
    assert not record.exists()


# ------------------------------------------------------------------- presets


@pytest.fixture
def preset(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASFORMER_HOME", str(tmp_path / "kerasformer"))
    task = kf.models.load(MODELS / "bert", family="bert")
    return task.save_preset(tmp_path / "preset")


def test_a_preset_naming_files_outside_itself_is_refused(preset, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nprivate\n", encoding="utf-8")
    config = json.loads((preset / "config.json").read_text(encoding="utf-8"))
    for vocab in ("../secret.txt", str(secret), "assets/../../secret.txt"):
        config["task"]["tokenizer"]["vocab"] = vocab
        (preset / "config.json").write_text(json.dumps(config), encoding="utf-8")
        with pytest.raises(ValueError, match="outside the preset"):
            kf.models.load(preset)


def test_a_symlink_out_of_a_preset_is_refused_on_load_and_on_save(preset, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nprivate\n", encoding="utf-8")
    task = kf.models.load(preset)
    vocab = preset / "assets" / "tokenizer" / "vocab.txt"
    vocab.unlink()
    os.symlink(secret, vocab)  # after loading: the task still names the preset's vocabulary
    with pytest.raises(ValueError, match="outside the preset"):
        kf.models.load(preset)
    with pytest.raises(ValueError, match="outside the preset"):
        task.save_preset(tmp_path / "copy")
    assert written_outside(tmp_path, preset, tmp_path / "kerasformer") == [str(secret)]
    # the same through a symlinked directory
    vocab.unlink()
    (preset / "assets" / "tokenizer").rmdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "vocab.txt").write_text("private\n", encoding="utf-8")
    os.symlink(tmp_path / "elsewhere", preset / "assets" / "tokenizer")
    with pytest.raises(ValueError, match="outside the preset"):
        task.save_preset(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    # a task whose vocabulary was changed on purpose saves that vocabulary
    task.tokenizer_config["vocab"] = str(MODELS / "bert" / "vocab.txt")
    saved = task.save_preset(tmp_path / "copy")
    assert (saved / "assets" / "tokenizer" / "vocab.txt").read_bytes() == (MODELS / "bert" / "vocab.txt").read_bytes()


@pytest.mark.parametrize("name", [presets.WEIGHTS, presets.CONFIG])
def test_files_symlinked_out_of_a_preset_are_refused(preset, tmp_path, name):
    outside = tmp_path / "outside"
    (preset / name).rename(outside)
    os.symlink(outside, preset / name)
    with pytest.raises(ValueError, match="outside the preset"):
        kf.models.load(preset)
    assert pathlib.Path(outside).is_file()
