"""The SimBERT / RoFormer-Sim task and `kerasformer.models.load`."""
import json
import shutil

import numpy as np
import pytest

import kerasformer as kf
from kerasformer.models.similarity import SimilarityModel, is_near_copy
from kerasformer.tokenizers import Tokenizer
from tests.conftest import FIXTURES
from tests.generation.test_decoder import SIMILARITY_FIXTURES, load as load_transformer

MODELS = FIXTURES / "models"


def task(fixture):
    """The task on a fixture, with bert4keras 0.11.5's numerics (as the references)."""
    tokenizer = Tokenizer(MODELS / fixture / "vocab.txt", do_lower_case=True)
    return SimilarityModel(load_transformer(fixture), tokenizer, text_maxlen=32)


@pytest.mark.backends
@pytest.mark.parametrize("fixture", SIMILARITY_FIXTURES)
def test_encode_matches_bert4keras(fixture):
    reference = json.loads((MODELS / fixture / "generation.json").read_text(encoding="utf-8"))
    texts = [item["text"] for item in reference["encode"]]
    vectors = task(fixture).encode(texts, batch_size=3)  # two batches of different shapes
    expected = np.array([item["vector"] for item in reference["encode"]])
    assert vectors.dtype == np.float32 and vectors.shape == expected.shape
    assert np.abs(vectors - expected).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_generate_and_similar():
    sim = task("roformer")
    reference = json.loads((MODELS / "roformer" / "generation.json").read_text(encoding="utf-8"))
    case = next(c for c in reference["beam_search"] if c["beam"] == 3 and c["end_id"] == 3)
    decoded = sim.tokenizer.decode(case["output_ids"])
    assert sim.generate(case["text"], beam=3, maxlen=12) == [decoded]

    text = "今天天气不错"
    samples = sim.generate(text, n=5, topk=5, seed=3)
    assert sim.generate(text, n=5, topk=5, seed=3) == samples  # a seed reproduces
    assert sim.generate(text, n=5, topk=5, seed=4) != samples  # another one does not
    assert len(set(samples)) > 1  # n different draws, not one sample repeated
    # They are the decoder's samples of the encoded text (top-k and the seed reach it),
    # at most maxlen=32 tokens each, decoded.
    token_ids, _ = sim.tokenizer.encode(text, maxlen=32)
    (rows,) = sim.decoder.random_sample([token_ids], n=5, maxlen=32, topk=5, seed=3)
    assert all(1 <= len(row) <= 32 for row in rows)
    assert samples == [sim.tokenizer.decode(row.tolist()) for row in rows]
    # Sampling from the top token alone is greedy decoding.
    (greedy,) = sim.generate(text, beam=1, maxlen=8)
    assert sim.generate(text, n=3, topk=1, maxlen=8, seed=0) == [greedy] * 3

    results = sim.similar("今天天气不错", n=12, k=4, seed=1)
    sentences = [s for s, _ in results]
    scores = [score for _, score in results]
    assert 0 < len(results) <= 4 and len(set(sentences)) == len(sentences)
    assert "今天天气不错" not in sentences and scores == sorted(scores, reverse=True)
    vectors = sim.encode(["今天天气不错"] + sentences)
    np.testing.assert_allclose(scores, vectors[1:] @ vectors[0], atol=1e-5)


@pytest.mark.parametrize("candidate, text, expected", [
    ("今天天气不错！", "今天天气不错", True),  # punctuation alone
    ("今天天气不错了", "今天天气不错", True),  # a character added
    ("今天气不错啊", "今天天气不错", True),  # one dropped, and a final particle
    ("今日天气不错", "今天天气不错", False),  # 今天 -> 今日 rewords
    ("今天气不错", "今天天气不错", True),  # one dropped
    ("今天天天气无错", "今天天气不错", True),  # a stutter (天天 twice) and a substitution
    ("我的我的快递什么时候到", "我的快递什么时候到", True),  # a span repeated
    ("北京是中国的首都是中国", "北京是中国的首都", True),
    ("今天天气很不错", "今天天气不错", True),
    ("今天天气没错", "今天天气不错", False),  # a substitution rewords
    ("天气不错", "今天天气不错", False),  # two dropped
    ("不错的天气", "今天天气不错", False),  # a reordering
    ("今天的天气很不错", "今天天气不错", False),
    ("今天天气真好啊", "今天天气不错", False),  # 天天 once, as in the input
    ("今天天气很好", "天气不错", False),  # a doubled character at a word boundary
    ("这家餐餐厅的菜是好吃", "这家餐厅的菜很好吃", True),  # a stutter inside 家餐厅
    ("一只狗在草地上奔奔跑", "一只小狗在草地上奔跑", True),
    ("天天开心", "每天开心", False),  # 天天 replaces 每天: no stretch of the input doubled
])
def test_near_copies_are_slips_not_rewordings(candidate, text, expected):
    assert is_near_copy(candidate, text) is expected


def test_similar_drops_near_copies_unless_asked():
    sim = task("roformer")
    text = "今天天气不错"
    generated = ["今天天气不错", "今天天气不错。", "今天天气没错", "天气很好", "今天天天气不错"]
    sim.generate = lambda *args, **kwargs: generated  # the filter, not the sampler, under test
    assert sorted(s for s, _ in sim.similar(text, n=5)) == ["今天天气没错", "天气很好"]
    kept = sorted(s for s, _ in sim.similar(text, n=5, near_copies=True))
    assert kept == sorted(generated[1:])


def test_mask_idxs_replace_source_tokens_with_mask():
    sim = task("bert")
    token_ids, _ = sim.tokenizer.encode("今天天气不错", maxlen=32)
    masked = list(token_ids)
    masked[2] = masked[-2] = sim.tokenizer.mask_id
    (expected,) = sim.decoder.greedy([masked], maxlen=8)
    assert sim.generate("今天天气不错", beam=1, maxlen=8, mask_idxs=[2, -2]) == [
        sim.tokenizer.decode(expected.tolist())
    ]
    with pytest.raises(ValueError, match="mask index 40"):
        sim.generate("今天天气不错", mask_idxs=[40])


def test_search():
    sim = task("bert")
    corpus = ["今天天气很好", "我们都是中国人", "他在家", "明天会下雨吗", "你好"]
    queries = ["今天天气不错", "他们在家里"]
    indices, scores = sim.search(queries, corpus, k=3)
    brute = sim.encode(queries) @ sim.encode(corpus).T
    assert indices.shape == scores.shape == (2, 3)
    np.testing.assert_array_equal(indices, np.argsort(-brute, axis=1)[:, :3])
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :3], atol=1e-6)
    vectors = sim.encode(corpus)
    single_indices, single_scores = sim.search("今天天气不错", vectors, k=10)
    assert single_indices.shape == (5,)  # k is capped at the corpus size
    np.testing.assert_array_equal(single_indices[:3], indices[0])


def test_bad_text_input():
    sim = task("bert")
    with pytest.raises(ValueError, match="text 1 is empty"):
        sim.encode(["你好", "   "])
    with pytest.raises(ValueError, match="text 0 is empty"):
        sim.generate("")
    with pytest.raises(TypeError, match="not a string"):
        sim.similar(None)
    with pytest.raises(ValueError, match="corpus is empty"):
        sim.search("你好", [])


def test_load_a_release_directory(tmp_path):
    sim = kf.models.load(MODELS / "roformer", family="RoFormer_Sim")
    assert isinstance(sim, SimilarityModel) and sim.sampling == {"topp": 0.95}
    assert kf.models.load(MODELS / "bert", family="simbert").sampling == {"topk": 5}
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        kf.models.load(tmp_path / "nowhere", family="simbert")
    with pytest.raises(ValueError, match="pass family="):
        kf.models.load(MODELS / "roformer")
    with pytest.raises(ValueError, match="unknown family 'gpt'"):
        kf.models.load(MODELS / "roformer", family="gpt")
    partial = tmp_path / "partial"
    shutil.copytree(MODELS / "roformer", partial)
    (partial / "vocab.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing vocab.txt"):
        kf.models.load(partial, family="roformer-sim")


def test_silent_surprises_are_errors_or_warnings():
    sim = task("roformer")
    with pytest.raises(TypeError, match="not one string"):
        sim.search("明天", "abc")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        sim.similar("今天天气不错", n=4, k=-1)
    with pytest.raises(TypeError, match="integer positions"):
        sim.generate("今天天气不错", mask_idxs=[True])
    vectors = sim.encode(["你好", "再见"])
    vectors[1, 3] = np.nan
    with pytest.raises(ValueError, match="corpus vector 1 is not finite"):
        sim.search("你好", vectors)
    long_text = "今天天气不错" * 10  # 60 characters, text_maxlen 32
    with pytest.warns(UserWarning, match="1 of 2 text.*truncated"):
        sim.encode([long_text, "你好"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per task, not on every call
        sim.encode([long_text])


@pytest.mark.parametrize("options,message", [
    ({"text_maxlen": 0}, "text_maxlen must be between"),
    ({"text_maxlen": 10**9}, "text_maxlen must be between"),
    ({"sampling": {"topk": 0}}, "topk must be an integer"),
    ({"sampling": {"topp": 7}}, "topp must be in"),
    ({"sampling": {"temperature": -1}}, "temperature must be in"),
    ({"sampling": {"beams": 3}}, "sampling must be a dict of"),
])
def test_absurd_task_options_are_refused(options, message):
    transformer = load_transformer("bert")  # 64 learned positions
    tokenizer = Tokenizer(MODELS / "bert" / "vocab.txt")
    with pytest.raises(ValueError, match=message):
        SimilarityModel(transformer, tokenizer, **options)
