"""A damaged cache entry is reported once, removed and rebuilt; interrupted preset
writes (kill -9) do not leak copies of the weights."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import warnings

import pytest

import kerasformer as kf
from kerasformer import loading, presets
from tests.hub.conftest import MODELS, pinned

REPO_FOLDER = "junnyu--roformer_chinese_sim_char_base"


def converted(tmp_path):
    return tmp_path / "kerasformer" / "converted" / REPO_FOLDER / f"{pinned('roformer-sim')}-roformer-sim"


def no_conversion(*args, **kwargs):
    raise AssertionError("converted again")


def drop_tokenizer(config):
    del config["task"]["tokenizer"]


def drop_architecture(config):
    del config["transformer"]["architecture"]


def task_not_an_object(config):
    config["task"] = "similarity"


DAMAGES = {
    "no tokenizer section": lambda path: _edit(path, drop_tokenizer),
    "no architecture": lambda path: _edit(path, drop_architecture),
    "task not an object": lambda path: _edit(path, task_not_an_object),
    "empty config.json": lambda path: (path / "config.json").write_text(""),
    "no config.json": lambda path: (path / "config.json").unlink(),
    "no weights": lambda path: (path / "model.weights.h5").unlink(),
}


def _edit(path, change):
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    change(config)
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_conversion_is_reported_once_removed_and_rebuilt(hub, tmp_path, monkeypatch, damage):
    expected = kf.models.load("roformer-sim").encode("今天天气不错")
    entry = converted(tmp_path)
    DAMAGES[damage](entry)
    with pytest.warns(UserWarning, match=str(entry)) as caught:
        again = kf.models.load("roformer-sim")
    assert len([w for w in caught if str(entry) in str(w.message)]) == 1
    assert (again.encode("今天天气不错") == expected).all()
    monkeypatch.setattr(loading, "build_task", no_conversion)
    monkeypatch.setattr(loading, "convert_task", no_conversion)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        healed = kf.models.load("roformer-sim")  # repaired: neither converted nor reported
    assert (healed.encode("今天天气不错") == expected).all()
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]


@pytest.mark.parametrize("record", ["", "{", "[]", '{"config.json": 3}', '{"../x": "' + "0" * 64 + '"}'])
def test_a_damaged_digest_record_is_reported_removed_and_rebuilt(hub, tmp_path, record):
    kf.models.load("roformer-sim")
    path = tmp_path / "kerasformer" / "hub" / REPO_FOLDER / f"{pinned('roformer-sim')}.json"
    recorded = json.loads(path.read_text())
    assert set(recorded) == {"config.json", "vocab.txt", "pytorch_model.bin"}
    path.write_text(record)
    shutil.rmtree(converted(tmp_path))  # so the next load reads the record
    with pytest.warns(UserWarning, match=str(path)):
        kf.models.load("roformer-sim")
    assert json.loads(path.read_text()) == recorded


def test_a_broken_directory_in_the_way_of_a_conversion_is_replaced(hub, tmp_path, monkeypatch):
    entry = converted(tmp_path)
    entry.mkdir(parents=True)
    (entry / "junk").write_text("left by something else")
    with pytest.warns(UserWarning, match=str(entry)):
        kf.models.load("roformer-sim")
    assert presets.is_preset(entry)
    monkeypatch.setattr(loading, "build_task", no_conversion)
    monkeypatch.setattr(loading, "convert_task", no_conversion)
    kf.models.load("roformer-sim")


KILLED_WRITER = """
import os, signal, sys
from kerasformer import loading, presets

task = loading.build_task("roformer-sim", presets.read_json(sys.argv[1] + "/bert_config.json"),
                          sys.argv[1] + "/bert_model.ckpt", sys.argv[1] + "/vocab.txt")
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # killed before its rename
presets.save(task, sys.argv[2])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9")
def test_partials_of_killed_writers_are_removed_by_the_next_save(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASFORMER_HOME", str(tmp_path / "kerasformer"))
    parent = tmp_path / "presets"
    environment = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[2])}
    child = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(MODELS / "roformer"),
                            str(parent / "killed")], env=environment, capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    [killed] = parent.glob(".killed.*.partial")
    assert (killed / presets.WEIGHTS).is_file()  # a full copy of the weights, left behind
    stale = parent / f".stale.{'0' * 32}.partial"  # no owner recorded, untouched for two hours
    stale.mkdir()
    (stale / presets.WEIGHTS).write_bytes(b"weights")
    two_hours_ago = time.time() - 7200
    for path in (stale / presets.WEIGHTS, stale):
        os.utime(path, (two_hours_ago, two_hours_ago))
    recent = parent / f".recent.{'1' * 32}.partial"  # no owner recorded, written a moment ago
    recent.mkdir()
    (recent / presets.WEIGHTS).write_bytes(b"weights")
    other = tmp_path / "elsewhere" / f".other.{'2' * 32}.partial"  # not in the parent saved into
    other.mkdir(parents=True)
    os.utime(other, (two_hours_ago, two_hours_ago))

    task = kf.models.load(MODELS / "roformer", family="roformer-sim")
    task.save_preset(parent / "next")
    assert sorted(p.name for p in parent.iterdir()) == [recent.name, "next"]
    assert other.is_dir()
