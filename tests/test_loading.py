"""`kerasformer.models.load` on local sources, the masked-LM task and presets."""
import json
import shutil

import numpy as np
import pytest

import kerasformer as kf
from kerasformer.cli import main
from kerasformer.models import MaskedLanguageModel, SimilarityModel
from tests.conftest import FIXTURES
from tests.helpers import to_numpy

MODELS = FIXTURES / "models"


@pytest.fixture(autouse=True)
def kerasformer_home(tmp_path, monkeypatch):
    """Directory conversions are cached under KERASFORMER_HOME: the test's own."""
    monkeypatch.setenv("KERASFORMER_HOME", str(tmp_path / "kerasformer"))


def hf_directory(tmp_path, fixture, weights):
    directory = tmp_path / fixture
    directory.mkdir()
    shutil.copy(MODELS / fixture / "hf" / "config.json", directory)
    shutil.copy(MODELS / fixture / "hf" / weights, directory)
    shutil.copy(MODELS / fixture / "vocab.txt", directory)
    return directory


@pytest.mark.parametrize("fixture,family", [("roformer_v2", "roformer-v2"), ("bert", "bert")])
def test_fill_mask_matches_bert4keras(fixture, family):
    expected = json.loads((MODELS / fixture / "fill_mask.json").read_text(encoding="utf-8"))
    task = kf.models.load(MODELS / fixture, family=family)
    assert isinstance(task, MaskedLanguageModel)
    assert task.encode_masked(expected["text"]) == expected["token_ids"]
    got = [[token for token, _ in candidates] for candidates in task.fill_mask(expected["text"])]
    # the reference's ranking, without the special tokens fill_mask never proposes
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    for ours, reference in zip(got, expected["top5"], strict=True):
        kept = [token for token in reference if token not in special]
        assert ours[:len(kept)] == kept
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        task.fill_mask("今天很好")


def test_hf_layout_directories_say_their_family(tmp_path):
    sim = kf.models.load(hf_directory(tmp_path, "roformer", "pytorch_model.bin"))
    assert isinstance(sim, SimilarityModel) and sim.family == "roformer-sim"
    gau = kf.models.load(hf_directory(tmp_path, "gau_alpha", "model.safetensors"))
    assert gau.family == "gau-alpha" and gau.transformer.length_floor == 1


def test_preset_round_trip(tmp_path):
    sim = kf.models.load(MODELS / "roformer", family="roformer-sim", text_maxlen=40)
    preset = sim.save_preset(tmp_path / "preset")
    assert sorted(p.name for p in preset.iterdir()) == ["assets", "config.json", "model.weights.h5"]
    again = kf.models.load(preset)
    assert again.family == "roformer-sim" and again.text_maxlen == 40
    texts = ["今天天气不错", "我们"]
    np.testing.assert_array_equal(again.encode(texts), sim.encode(texts))
    with pytest.raises(FileExistsError, match="not an empty directory"):
        sim.save_preset(preset)
    (preset / "model.weights.h5").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="does not match its recorded sha256"):
        kf.models.load(preset)


def test_keep_tokens_are_baked_into_presets(tmp_path):
    keep = list(range(0, 300))
    transformer = kf.build_transformer_model(
        MODELS / "bert" / "bert_config.json", MODELS / "bert" / "bert_model.ckpt",
        with_mlm=True, keep_tokens=keep, return_keras_model=False,
    )
    vocab = tmp_path / "vocab.txt"
    lines = (MODELS / "bert" / "vocab.txt").read_text(encoding="utf-8").splitlines()[:300]
    vocab.write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = MaskedLanguageModel(
        transformer, kf.tokenizers.Tokenizer(vocab), "bert", {"vocab": str(vocab)}
    )
    again = kf.models.load(task.save_preset(tmp_path / "preset"))
    assert again.transformer.vocab_size == 300 and again.transformer.keep_tokens is None
    ids = np.array([[2, 50, 60, 3]])
    np.testing.assert_array_equal(to_numpy(again.model([ids, ids * 0])), to_numpy(task.model([ids, ids * 0])))


def test_convert_command_writes_a_preset_that_loads_to_identical_outputs(tmp_path, capsys):
    out = tmp_path / "roformer-sim-preset"
    assert main(["convert", str(MODELS / "roformer"), str(out), "--family", "roformer-sim"]) == 0
    assert "preset" in capsys.readouterr().out
    original = kf.models.load(MODELS / "roformer", family="roformer-sim")
    converted = kf.models.load(out)
    texts = ["今天天气不错", "我们"]
    np.testing.assert_array_equal(converted.encode(texts), original.encode(texts))
    assert converted.generate("今天天气不错", beam=2, maxlen=6) == original.generate(
        "今天天气不错", beam=2, maxlen=6)


def test_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a kerasformer preset"):
        kf.models.load(tmp_path)
    (tmp_path / "bert_config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing bert_model.ckpt.index, vocab.txt"):
        kf.models.load(tmp_path, family="bert")
    with pytest.raises(ValueError, match="look like a 'bert' checkpoint, not 'gpt2'"):
        kf.models.load(MODELS / "bert", family="cpm-lm")


def test_word_level_tokenizer_pre_segments_with_jieba(tmp_path):
    pytest.importorskip("jieba")
    from kerasformer.tokenizers.recipes import make_tokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "今天", "天气",
                                "不错", "今", "天", "气"]) + "\n", encoding="utf-8")
    words = make_tokenizer({"vocab": str(vocab), "pre_tokenize": "jieba"})
    chars = make_tokenizer({"vocab": str(vocab)})
    # jieba's words that are in the vocabulary stay whole; the others ("今天天气")
    # fall back to characters, as in bert4keras
    assert words.tokenize("天气不错") == ["[CLS]", "天气", "不错", "[SEP]"]
    assert words.tokenize("今天天气不错") == ["[CLS]", "今", "天", "天", "气", "不错", "[SEP]"]
    assert chars.tokenize("天气不错") == ["[CLS]", "天", "气", "不", "错", "[SEP]"]


def word_release(tmp_path, name):
    """The RoFormer fixture as a word-level release: same weights, a vocabulary whose
    tail rows are Chinese words."""
    directory = tmp_path / name
    shutil.copytree(MODELS / "roformer", directory)
    lines = (MODELS / "roformer" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    words = ["天气", "不错", "今天", "我们", "公园"] + [f"词{chr(0x4e00 + i)}" for i in range(60)]
    lines[-len(words):] = words
    (directory / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def test_a_word_level_release_from_disk_tokenises_words_with_jieba(tmp_path):
    pytest.importorskip("jieba")
    # named as the release zip of the manifest roformer-base, which says jieba
    named = kf.models.load(word_release(tmp_path, "chinese_roformer_L-12_H-768_A-12"))
    assert named.family == "roformer" and named.tokenizer_config["pre_tokenize"] == "jieba"
    assert named.tokenizer.tokenize("天气不错") == ["[CLS]", "天气", "不错", "[SEP]"]
    # any other directory name: the family's recipe decides by the vocabulary
    other = kf.models.load(word_release(tmp_path, "my-roformer"), family="roformer")
    assert other.tokenizer.tokenize("天气不错") == ["[CLS]", "天气", "不错", "[SEP]"]
    # a character vocabulary stays per character
    chars = kf.models.load(MODELS / "roformer", family="roformer")
    assert chars.tokenizer_config["pre_tokenize"] is None


def test_a_directory_without_a_family_is_told_what_its_files_say(tmp_path):
    with pytest.raises(ValueError, match="roformer checkpoint, whose families are roformer-sim.*roformer"):
        kf.models.load(MODELS / "roformer")


def test_fill_mask_never_proposes_special_tokens():
    task = kf.models.load(MODELS / "bert", family="bert")
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    for candidates in task.fill_mask("今天[MASK]很好，我[MASK]去公园玩。", k=task.transformer.vocab_size - 5):
        assert not special & {token for token, _ in candidates}
    with pytest.raises(ValueError, match="k must be a positive integer"):
        task.fill_mask("今天[MASK]", k=True)


def test_preset_weights_are_hashed_once_per_version_of_the_file(tmp_path, monkeypatch):
    from kerasformer import presets

    sim = kf.models.load(MODELS / "roformer", family="roformer-sim")
    preset = sim.save_preset(tmp_path / "preset")
    kf.models.load(preset)  # hashes and records the weights' sha256

    def no_hashing(path, algorithm="sha256"):
        raise AssertionError("hashed an unchanged file again")

    monkeypatch.setattr(presets, "digest", no_hashing)
    kf.models.load(preset)
    monkeypatch.undo()
    weights = preset / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # same size, new content (and mtime)
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its recorded sha256"):
        kf.models.load(preset)


def test_rope_scaling_applies_when_loaded_and_never_to_the_cache(tmp_path):
    """`rope_scaling` reaches a rotary model loaded from a release directory (through
    its cached conversion, which stays plain) and from a preset; a model without RoPE
    refuses it by name."""
    scaling = {"type": "ntk", "factor": 4}
    text = "天气很好，我们去公园玩" * 4
    plain = kf.models.load(MODELS / "roformer", family="roformer-sim")
    scaled = kf.models.load(MODELS / "roformer", family="roformer-sim", rope_scaling=scaling)
    assert scaled.transformer.rope_scaling == {"type": "ntk", "factor": 4.0}
    assert plain.transformer.rope_scaling is None
    assert np.abs(scaled.encode(text) - plain.encode(text)).max() > 1e-3
    np.testing.assert_allclose(kf.models.load(MODELS / "roformer", family="roformer-sim")
                               .encode(text), plain.encode(text), atol=1e-6)
    preset = plain.save_preset(tmp_path / "preset")
    np.testing.assert_allclose(kf.models.load(preset, rope_scaling=scaling).encode(text),
                               scaled.encode(text), atol=1e-6)
    with pytest.raises(ValueError, match="rope_scaling applies to rotary architectures"):
        kf.models.load(MODELS / "bert", family="bert", rope_scaling=scaling)
    with pytest.raises(ValueError, match="rope_scaling type"):
        kf.models.load(preset, rope_scaling={"type": "yarn", "factor": 2})
