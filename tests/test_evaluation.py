"""kerasformer.evaluation: metrics against scipy, baselines and BLEU against hand
computations, and STS / paraphrase evaluation of the tiny RoFormer-Sim fixture."""
import functools
import math

import numpy as np
import pytest
import scipy.stats

from kerasformer import evaluation
from tests.conftest import FIXTURES

# Characters the fixture vocabulary knows, so the fixture model sees more than [UNK].
CHARS = "今天气不错你好吗我们去公园玩吧他她在家里看书电视男孩女人狗吃东西跑步"


@functools.lru_cache(maxsize=None)
def fixture_model():
    from kerasformer.models import load

    return load(str(FIXTURES / "models" / "roformer"), family="roformer-sim")


def write_pairs(path, pairs):
    path.write_text("".join(f"{a}\t{b}\t{label}\n" for a, b, label in pairs), encoding="utf-8")
    return path


def random_pairs(seed, count, scores=True):
    rng = np.random.default_rng(seed)

    def sentence():
        return "".join(rng.choice(list(CHARS), size=rng.integers(3, 12)))

    sentences = [sentence() for _ in range(count)]
    # some sentences repeat across pairs, as they do in real sets
    return [(sentences[i], sentence() if i % 3 else sentences[(i + 1) % count],
             int(rng.integers(0, 6)) if scores else int(rng.integers(0, 2)))
            for i in range(count)]


# ------------------------------------------------------------------ correlations

@pytest.mark.parametrize("seed", range(4))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=60).astype(float)           # many ties
    y = np.round(x + rng.normal(0, 2, size=60), 1)          # some ties
    np.testing.assert_allclose(evaluation.rank(y), scipy.stats.rankdata(y))
    assert evaluation.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    assert evaluation.pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-12)


def test_undefined_correlations_are_nan_and_bad_input_an_error():
    assert math.isnan(evaluation.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(evaluation.pearson([1], [2]))
    assert evaluation.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1)
    with pytest.raises(ValueError, match="one length"):
        evaluation.pearson([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        evaluation.spearman([1, np.nan], [1, 2])


# --------------------------------------------------------------------- baselines

def test_char_jaccard_is_set_overlap_of_characters():
    # {今, 天, 气} and {天, 气, 好}: 2 shared of 4
    assert evaluation.char_jaccard("今天 天气", "天气好") == 0.5
    assert evaluation.char_jaccard("ab", "ab ") == 1.0
    assert evaluation.char_jaccard("ab", "cd") == 0.0
    assert evaluation.char_jaccard(" ", "") == 0.0


def test_char_bm25_by_hand():
    bm25 = evaluation.CharBM25(["aab", "a c", "bd", "aab"])  # three distinct sentences
    n, average_length, k1, b = 3, (3 + 2 + 2) / 3, 1.2, 0.75
    idf_a = math.log(1 + (n - 2 + 0.5) / (2 + 0.5))           # a is in "aab" and "ac"
    idf_d = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))           # d only in "bd"
    assert bm25.idf["a"] == pytest.approx(idf_a) and bm25.idf["d"] == pytest.approx(idf_d)
    # query "aab" on "ac" (2 characters): a counts twice, b is absent from the document
    a_in_ac = idf_a * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 2 / average_length))
    assert bm25.score("aab", "a c") == pytest.approx(2 * a_in_ac)
    # query "ac" on "aab" (3 characters): a occurs twice there, c not at all
    a_in_aab = idf_a * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / average_length))
    assert bm25.score("a c", "aab") == pytest.approx(a_in_aab)
    assert bm25.similarity("aab", "a c") == pytest.approx((2 * a_in_ac + a_in_aab) / 2)
    assert bm25.similarity("a c", "aab") == bm25.similarity("aab", "a c")
    assert bm25.score("x", "x") == pytest.approx(
        math.log(1 + (n + 0.5) / 0.5) * (k1 + 1) / (1 + k1 * (1 - b + b / average_length)))


# ---------------------------------------------------------------------------- STS

def test_sts_reproduces_scipy_on_the_models_own_vectors(tmp_path):
    model = fixture_model()
    pairs = random_pairs(0, 40)
    path = write_pairs(tmp_path / "toy.test.data", pairs)
    (result,) = evaluation.sts(model, [str(path)])
    texts_a, texts_b, labels = zip(*pairs)
    cosines = np.sum(model.encode(list(texts_a)) * model.encode(list(texts_b)), axis=1)
    assert result.dataset == "toy.test" and result.pairs == 40
    assert result.model.spearman == pytest.approx(scipy.stats.spearmanr(cosines, labels)[0],
                                                  abs=1e-5)
    assert result.model.pearson == pytest.approx(scipy.stats.pearsonr(cosines, labels)[0],
                                                 abs=1e-5)
    jaccard = [evaluation.char_jaccard(a, b) for a, b in zip(texts_a, texts_b)]
    assert result.char_jaccard.spearman == pytest.approx(scipy.stats.spearmanr(jaccard, labels)[0])
    assert -1 <= result.bm25.spearman <= 1


class CountingModel:
    """Records what `encode` is asked for; vectors from a fixed random table."""

    def __init__(self):
        self.encoded = []

    def encode(self, texts, batch_size=64):
        self.encoded.append(list(texts))
        vectors = np.stack([np.random.default_rng(len(t) * 7 + ord(t[0])).normal(size=8)
                            for t in texts])
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_sts_encodes_each_sentence_once_and_reads_directories(tmp_path):
    for task in ("AAA", "BBB"):
        (tmp_path / task).mkdir()
        write_pairs(tmp_path / task / f"{task}.test.data", random_pairs(1, 12, scores=False))
        write_pairs(tmp_path / task / f"{task}.valid.data", random_pairs(2, 5))
    model = CountingModel()
    results = evaluation.sts(model, str(tmp_path), limit=10)
    assert [(r.dataset, r.pairs) for r in results] == [("AAA.test", 10), ("BBB.test", 10)]
    assert all(len(texts) == len(set(texts)) for texts in model.encoded)
    # without any *.test.data, a directory means its pair files
    flat = tmp_path / "flat"
    flat.mkdir()
    write_pairs(flat / "one.tsv", random_pairs(3, 6))
    (flat / ".hidden.tsv").write_text("not\ta\tpair file\n")
    assert [r.dataset for r in evaluation.sts(model, flat)] == ["one"]
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        evaluation.pair_files([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.test.data file and no pair file"):
        evaluation.pair_files(tmp_path / "empty")


def test_labels_nli_missing_and_wrong(tmp_path):
    nli = write_pairs(tmp_path / "nli.tsv", [("他在跑步", "他在动", "entailment"),
                                             ("他在跑步", "他在睡", "contradiction"),
                                             ("他在跑步", "他在家", "neutral")])
    assert evaluation.read_labelled_pairs(nli).labels.tolist() == [1.0, 0.0, 0.0]
    unlabelled = tmp_path / "unlabelled.tsv"
    unlabelled.write_text("今天\t明天\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"pair 1 of {unlabelled} has no label"):
        evaluation.read_labelled_pairs(unlabelled)
    groups = tmp_path / "simbert.json"
    groups.write_text('{"text": "你好", "synonyms": ["您好"]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="holds Groups, not sentence pairs"):
        evaluation.read_labelled_pairs(groups)


# ---------------------------------------------------------------------- thresholds

def test_calibration_finds_the_known_best_thresholds():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    labels = [1, 1, 0, 1, 0, 0]
    thresholds = evaluation.calibrate_threshold(scores, labels)
    # cutting below 0.8 or below 0.6 both get 5 of 6 right: the higher cut is kept
    assert thresholds.accuracy.threshold == pytest.approx(0.75)
    assert thresholds.accuracy.accuracy == pytest.approx(5 / 6)
    # F1: below 0.6 gives 3 true positives of 4 predicted and 3 similar pairs
    assert thresholds.f1.threshold == pytest.approx(0.55)
    assert thresholds.f1.f1 == pytest.approx(6 / 7)
    assert (thresholds.f1.precision, thresholds.f1.recall) == (0.75, 1.0)
    assert evaluation.apply_threshold(scores, 0.55).tolist() == [True] * 4 + [False] * 2


@pytest.mark.parametrize("seed", range(3))
def test_calibration_sweep_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.uniform(-1, 1, size=80), 1)      # ties
    labels = (scores + rng.normal(0, 0.5, size=80) > 0.2).astype(int)
    candidates = np.concatenate([np.unique(scores), [2.0]])
    metrics = [evaluation.binary_metrics(scores, labels, t) for t in candidates]
    thresholds = evaluation.calibrate_threshold(scores, labels)
    assert thresholds.accuracy.accuracy == pytest.approx(max(m.accuracy for m in metrics))
    assert thresholds.f1.f1 == pytest.approx(max(m.f1 for m in metrics))
    for best in (thresholds.accuracy, thresholds.f1):  # the reported metrics are the threshold's
        assert best == evaluation.binary_metrics(scores, labels, best.threshold)


def test_binary_labels_and_degenerate_sets():
    assert evaluation.binary_labels([0, 1, 1]).tolist() == [0, 1, 1]
    assert evaluation.binary_labels([0, 2.5, 3, 5]).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="0/1 or scores in \\[0, 5\\]"):
        evaluation.binary_labels([0, 7])
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        evaluation.calibrate_threshold([0.1, 0.2], [0, 2])
    none_similar = evaluation.calibrate_threshold([0.3, 0.2], [0, 0])
    assert none_similar.accuracy.accuracy == 1 and none_similar.accuracy.threshold > 0.3
    tied = evaluation.calibrate_threshold([0.5, 0.5], [1, 0])  # ties cannot be split
    assert tied.f1.threshold == 0.5 and tied.f1.precision == 0.5


def test_calibrate_on_the_fixture_model(tmp_path):
    valid = write_pairs(tmp_path / "v.data", random_pairs(4, 20, scores=False))
    test = write_pairs(tmp_path / "t.data", random_pairs(5, 20))  # STS scores: > 2.5 is similar
    calibration = evaluation.calibrate(fixture_model(), valid, test)
    assert (calibration.valid, calibration.test) == ("v", "t")
    assert calibration.test_at_f1.threshold == calibration.on_valid.f1.threshold
    assert 0 <= calibration.test_at_accuracy.accuracy <= 1


# ---------------------------------------------------------------- paraphrases

def test_bleu_by_hand():
    # precisions (3+1)/(4+1), (2+1)/(3+1), (1+1)/(2+1), (0+1)/(1+1); equal lengths: no penalty
    assert evaluation.bleu("abcd", ["abce"]) == pytest.approx((0.8 * 0.75 * 2 / 3 * 0.5) ** 0.25)
    # counts clipped to one reference's most: a×4 matches 2, aa×3 matches 1; closest length 2
    assert evaluation.bleu("a a a a", ["aa", "a"]) == pytest.approx(
        (3 / 5 * 2 / 4 * 1 / 3 * 1 / 2) ** 0.25)
    # every precision is 1 (nothing unmatched), brevity penalty exp(1 - 4/2)
    assert evaluation.bleu("ab", ["abcd"]) == pytest.approx(math.exp(-1))
    assert evaluation.bleu("", ["abc"]) == 0.0
    assert evaluation.self_bleu(["abcd", "abce"]) == pytest.approx(0.2 ** 0.25)
    with pytest.raises(ValueError, match="at least two"):
        evaluation.self_bleu(["abc"])


def test_distinct_n():
    assert evaluation.distinct(["abab", "a b"], 1) == pytest.approx(2 / 6)
    assert evaluation.distinct(["abab", "ab"], 2) == pytest.approx(2 / 4)  # ab, ba, ab + ab
    assert math.isnan(evaluation.distinct(["a", "b"], 2))


class FakeGenerator(CountingModel):
    sampling = {"topp": 0.9}

    def __init__(self, samples):
        super().__init__()
        self.samples = samples
        self.calls = []

    def generate(self, text, n=1, seed=None, **options):
        self.calls.append((text, n, seed, options))
        return self.samples[text][:n]


def test_paraphrase_report_scores_each_source():
    model = FakeGenerator({"你好": ["你好啊", "您好", " "], "再见": ["再见了", "再会", "拜拜"]})
    report = evaluation.paraphrase_report(model, ["你好", "再见"], n=3, seed=5, maxlen=8)
    assert [call[:3] for call in model.calls] == [("你好", 3, 5), ("再见", 3, 6)]
    assert model.calls[0][3] == {"topp": 0.9, "maxlen": 8}  # recipe sampling, then the caller's
    first = report.sentences[0]
    vectors = dict(zip(["你好", "你好啊", "您好"], model.encode(["你好", "你好啊", "您好"])))
    expected = (vectors["你好啊"] @ vectors["你好"] + vectors["您好"] @ vectors["你好"] + 0) / 3
    assert first.faithfulness == pytest.approx(expected)  # the blank sample counts 0
    # 你好啊 adds a character to 你好 (a near copy), the blank one is none: 您好 alone
    assert first.rewordings == pytest.approx(1 / 3)
    assert report.sentences[1].rewordings == pytest.approx(2 / 3)  # 再见了 adds one
    assert first.distinct_1 == pytest.approx(4 / 5)       # 你 好 啊 您 好: 好 twice
    assert first.self_bleu == pytest.approx(np.mean([
        evaluation.bleu("你好啊", ["您好", " "]), evaluation.bleu("您好", ["你好啊", " "]), 0.0]))
    assert report.distinct_2 == pytest.approx(np.mean([s.distinct_2 for s in report.sentences]))
    with pytest.raises(ValueError, match="at least 2"):
        evaluation.paraphrase_report(model, ["你好"], n=1)


def test_paraphrase_report_on_the_fixture_model():
    model = fixture_model()
    report = evaluation.paraphrase_report(model, ["今天天气不错", "你好吗"], n=3, seed=0, maxlen=12)
    assert [len(s.samples) for s in report.sentences] == [3, 3]
    for scores in report.sentences:
        assert 0 < scores.distinct_1 <= 1 and 0 <= scores.self_bleu <= 1
        assert -1 <= scores.faithfulness <= 1 and 0 <= scores.rewordings <= 1
    again = evaluation.paraphrase_report(model, ["今天天气不错", "你好吗"], n=3, seed=0, maxlen=12)
    assert again == report
    data = evaluation.as_json(report)
    assert data["sentences"][0]["samples"] == report.sentences[0].samples
