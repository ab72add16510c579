"""What the hub tests share: the fixture repositories and a loopback Hub serving them.

The fake Hub (fake_hub.py) serves the registered repos at their pinned commits, with
the parity fixtures' weights in each port's real key layout, and points HF_ENDPOINT,
HF_HOME and KERASFORMER_HOME of the test at itself and at the test's own directories.
"""
import pytest

from kerasformer.hub import manifests
from tests.conftest import FIXTURES
from tests.hub.fake_hub import FakeHub

MODELS = FIXTURES / "models"
UNPINNED = "a" * 40
CUSTOM = "c" * 40


def repo_files(fixture, weights_file, weights_name=None):
    hf = MODELS / fixture / "hf"
    return {
        "config.json": (hf / "config.json").read_bytes(),
        "vocab.txt": (MODELS / fixture / "vocab.txt").read_bytes(),
        weights_name or weights_file: (hf / weights_file).read_bytes(),
    }


def pinned(name):
    return manifests.find_manifest(name)["hub"]["revision"]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    server = FakeHub()
    server.add_repo("junnyu/roformer_chinese_sim_char_base",
                    repo_files("roformer", "pytorch_model.bin"), pinned("roformer-sim"))
    server.add_repo("junnyu/roformer_v2_chinese_char_base",
                    repo_files("roformer_v2", "pytorch_model.bin"), pinned("roformer-v2-base"))
    server.add_repo("junnyu/chinese_GAU-alpha-char_L-24_H-768",
                    repo_files("gau_alpha", "pytorch_model.bin"), pinned("gau-alpha"))
    server.add_repo("google-bert/bert-base-chinese",
                    repo_files("bert", "model.safetensors"), pinned("bert-base-chinese"))
    server.add_repo("Tongjilibo/simbert-chinese-base",
                    repo_files("bert_factorized", "pytorch_model.bin"), UNPINNED)
    server.add_repo("Tongjilibo/simbert-chinese-small",
                    repo_files("bert_factorized", "pytorch_model.bin"), UNPINNED)
    server.add_repo("someone/my-roformer-sim", repo_files("roformer", "pytorch_model.bin"),
                    CUSTOM, refs=["refs/pr/1"])
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("KERASFORMER_HOME", str(tmp_path / "kerasformer"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    yield server
    server.stop()
