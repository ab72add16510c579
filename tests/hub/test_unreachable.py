"""A Hub that cannot be reached (huggingface.co blocked, a mirror down): what is cached
is used without asking, the rest fails within seconds with one message that says
what was tried and the ways out."""
import shutil
import socket
import time

import pytest

import kerasformer as kf
from kerasformer import loading
from kerasformer.cli import main
from kerasformer.hub import manifests
from tests.hub.conftest import CUSTOM, pinned

CLOSED = "http://127.0.0.1:9"  # nothing listens there (tests/conftest.py)


@pytest.fixture
def unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("KERASFORMER_HOME", str(tmp_path / "kerasformer"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def timed(call, *args, **kwargs):
    start = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        call(*args, **kwargs)
    return time.monotonic() - start, str(error.value)


def test_a_named_checkpoint_fails_fast_with_the_ways_out(unreachable):
    manifest = manifests.find_manifest("roformer-sim")
    elapsed, message = timed(kf.models.load, "roformer-sim")
    assert elapsed < 10
    release = manifest["original"]["url"].rsplit("/", 1)[1][:-len(".zip")]
    for said in (CLOSED, "junnyu/roformer_chinese_sim_char_base", pinned("roformer-sim"),
                 "HF_ENDPOINT", "HF_HUB_OFFLINE=1", "`kerasformer download roformer-sim`",
                 manifest["original"]["url"], manifest["original"]["mirror"],
                 f'`kerasformer.models.load("{release}", family="roformer-sim")`',
                 f"--model {release} --family roformer-sim"):
        assert said in message
    assert "Retrying" not in message and "Traceback" not in message
    # unpinned: the resolution of "main" is what fails
    elapsed, message = timed(kf.models.load, "simbert")
    assert elapsed < 10 and "Tongjilibo/simbert-chinese-base@main" in message
    assert "HF_ENDPOINT" in message


def test_hub_handles_and_downloads_fail_fast(unreachable):
    for call, args in [(kf.models.load, ("hf://someone/my-roformer-sim",)),
                       (kf.models.load, (f"hf://someone/my-roformer-sim@{CUSTOM}",)),
                       (loading.download_files, ("roformer-sim",)),
                       (loading.download_files, ("someone/my-roformer-sim",)),
                       (loading.download_files, ("hf://someone/my-roformer-sim@refs/pr/1",))]:
        elapsed, message = timed(call, *args)
        assert elapsed < 10, (args, elapsed)
        assert CLOSED in message and "someone/my-roformer-sim" in message or "roformer-sim" in message
        assert "HF_ENDPOINT" in message and "HF_HUB_OFFLINE=1" in message
    _, message = timed(kf.models.load, "hf://someone/my-roformer-sim")
    assert "kerasformer.models.load(DIR, family=" in message


def test_the_command_line_prints_one_message(unreachable, capsys):
    start = time.monotonic()
    assert main(["download", "roformer-sim"]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert err.startswith("kerasformer download: error: cannot reach the Hugging Face Hub")
    assert "Traceback" not in err
    # the command line's own spelling of the way out
    assert "--model chinese_roformer-sim-char_L-12_H-768_A-12 --family roformer-sim" in err


def test_a_mirror_that_never_answers_fails_within_seconds(unreachable, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        elapsed, message = timed(kf.models.load, "roformer-sim")
        assert elapsed < 10 and "HF_ENDPOINT" in message
    finally:
        silent.close()


def test_what_is_cached_loads_without_the_hub(hub, tmp_path, monkeypatch):
    expected = {name: kf.models.load(name).encode("今天天气不错")
                for name in ("roformer-sim", "simbert", "hf://someone/my-roformer-sim")}
    loading.download_files("roformer-sim")
    hub.stop()
    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    start = time.monotonic()
    for name, vector in expected.items():  # cached conversions; unpinned: the recorded resolution
        assert (kf.models.load(name).encode("今天天气不错") == vector).all()
    # the files without their conversion: converted again from the cache, without asking
    shutil.rmtree(tmp_path / "kerasformer" / "converted")
    for name, vector in expected.items():
        assert (kf.models.load(name).encode("今天天气不错") == vector).all()
    assert set(loading.download_files("roformer-sim")) == {"config.json", "vocab.txt",
                                                           "pytorch_model.bin"}
    assert set(loading.download_files("junnyu/roformer_chinese_sim_char_base")) == {
        "config.json", "vocab.txt", "pytorch_model.bin"}
    # six loads, no waiting on the network: huggingface_hub's retries would take a
    # minute per load; the bound leaves room for a machine busy with other tests
    assert time.monotonic() - start < 120
    # what is not cached still says so, quickly
    elapsed, message = timed(kf.models.load, "gau-alpha")
    assert elapsed < 10 and "HF_ENDPOINT" in message


def test_owner_repo_names_download_as_hf_handles(hub):
    files = loading.download_files("someone/my-roformer-sim")
    assert set(files) == {"config.json", "vocab.txt", "pytorch_model.bin"}
    assert main(["download", "junnyu/roformer_chinese_sim_char_base"]) == 0
    with pytest.raises(LookupError, match="unknown checkpoint"):
        loading.download_files("nothing-registered")
