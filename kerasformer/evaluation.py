"""Evaluation of similarity models: STS correlations, cosine thresholds, paraphrase diversity.

Three questions users ask of a SimBERT / RoFormer-Sim checkpoint, each with a number:

- does its cosine order sentence pairs like people do? `sts` gives the Spearman and
  Pearson correlations of the model's cosine with the gold labels of STS-style sets (the
  senteval_cn layout `TASK/TASK.test.data` of RoFormer-Sim and CoSENT), next to two
  baselines computed on the same pairs — character Jaccard and character BM25 — so a
  number can be judged against what plain character overlap already achieves;
- which cosine means "similar"? `calibrate` picks the thresholds with the best accuracy
  and the best F1 on a validation set and measures them on a test set;
- are the generated paraphrases varied and faithful? `paraphrase_report` gives
  distinct-1/2, self-BLEU and the mean cosine of the samples to their source.

Everything here is numpy and the standard library: the metrics are written from their
definitions (documented on each function and in docs/evaluation.md).
"""
import dataclasses
import glob
import itertools
import math
import os
from collections import Counter

import numpy as np

from kerasformer.data import Pair, read_pairs
from kerasformer.models.similarity import is_near_copy
from kerasformer.progress import progress

# NLI labels as similarity labels: only entailment counts as similar.
NLI_LABELS = {"entailment": 1.0, "neutral": 0.0, "contradiction": 0.0}

# File names a directory of pair files may hold when it has no senteval `*.test.data`.
PAIR_FILE_SUFFIXES = (".data", ".tsv", ".txt", ".csv", ".json", ".jsonl")


# ------------------------------------------------------------------ correlations

def rank(values):
    """Ranks 1..n of `values`; tied values share the average of their ranks.

    Args:
        values: 1-D array-like of numbers.

    Returns:
        float64 array of the same length.
    """
    unique, inverse, counts = np.unique(np.asarray(values, np.float64), return_inverse=True,
                                        return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last occurrence
    return (last - (counts - 1) / 2)[inverse.reshape(-1)]


def pearson(x, y):
    """Pearson's correlation coefficient of `x` and `y`.

    Args:
        x, y: 1-D array-likes of finite numbers, of one length.

    Returns:
        float in [-1, 1]; NaN when there are fewer than two values or either side is
        constant (the correlation is undefined).
    """
    x, y = _paired(x, y)
    if len(x) < 2:
        return math.nan
    x = x - x.mean()
    y = y - y.mean()
    norm = math.sqrt(float(x @ x) * float(y @ y))
    if norm == 0:
        return math.nan
    return float(np.clip((x @ y) / norm, -1.0, 1.0))


def spearman(x, y):
    """Spearman's rank correlation: Pearson's of the ranks (ties get average ranks).

    Args:
        x, y: 1-D array-likes of finite numbers, of one length.

    Returns:
        float in [-1, 1]; NaN where `pearson` is undefined.
    """
    x, y = _paired(x, y)
    return pearson(rank(x), rank(y))


def _paired(x, y):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"expected two 1-D sequences of one length, got shapes {x.shape} "
                         f"and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("the values must be finite (no NaN or inf)")
    return x, y


# --------------------------------------------------------------------- baselines

def _chars(text):
    """The characters of `text` that are not whitespace."""
    return [char for char in text if not char.isspace()]


def char_jaccard(a, b):
    """Character Jaccard similarity: |A ∩ B| / |A ∪ B| of the sets of characters of the
    two texts, whitespace ignored (0.0 when both are empty).

    Args:
        a, b: str.

    Returns:
        float in [0, 1].
    """
    set_a, set_b = set(_chars(a)), set(_chars(b))
    union = set_a | set_b
    return len(set_a & set_b) / len(union) if union else 0.0


class CharBM25:
    """Okapi BM25 over characters, with document statistics from a set of sentences.

    The collection is the distinct `sentences` (whitespace removed; each counted once).
    With N sentences, df(c) the number of them containing character c, |d| a sentence's
    length in characters and avgdl the mean length:

        idf(c) = log(1 + (N - df(c) + 0.5) / (df(c) + 0.5))
        BM25(q, d) = sum over the characters c of q, repeats included, of
                     idf(c) * tf(c, d) * (k1 + 1) / (tf(c, d) + k1 * (1 - b + b * |d| / avgdl))

    and the similarity of a pair is the mean of BM25(a, b) and BM25(b, a), so it is
    symmetric. Characters outside the collection get the idf of df = 0.

    Args:
        sentences: iterable of str, usually every sentence of the evaluated set.
        k1: float. Term-frequency saturation.
        b: float. Length normalisation.
    """

    def __init__(self, sentences, k1=1.2, b=0.75):
        documents = [_chars(sentence) for sentence in dict.fromkeys(sentences)]
        if not documents:
            raise ValueError("BM25 needs at least one sentence for its statistics")
        self.k1 = k1
        self.b = b
        self.size = len(documents)
        frequencies = Counter(char for document in documents for char in set(document))
        self.idf = {char: self._idf(df) for char, df in frequencies.items()}
        # an all-whitespace collection has no length to normalise by: any positive one will do
        self.average_length = sum(map(len, documents)) / len(documents) or 1.0

    def _idf(self, df):
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def score(self, query, document):
        """BM25(query, document) as defined on the class.

        Args:
            query, document: str.

        Returns:
            float, at least 0.
        """
        counts = Counter(_chars(document))
        norm = self.k1 * (1 - self.b + self.b * sum(counts.values()) / self.average_length)
        total = 0.0
        for char in _chars(query):
            tf = counts.get(char)
            if tf:
                idf = self.idf.get(char)
                total += (self._idf(0) if idf is None else idf) * tf * (self.k1 + 1) / (tf + norm)
        return total

    def similarity(self, a, b):
        """The symmetric pair score: the mean of BM25(a, b) and BM25(b, a)."""
        return (self.score(a, b) + self.score(b, a)) / 2


# --------------------------------------------------------------------------- data

@dataclasses.dataclass(frozen=True)
class LabelledPairs:
    """The sentence pairs of one file, with numeric labels.

    Attributes:
        name: the file's name without its last suffix ("STS-B.test").
        path: the file.
        texts_a, texts_b: lists of str.
        labels: float64 array, one label per pair.
    """

    name: str
    path: str
    texts_a: list
    texts_b: list
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)


def pair_files(sources):
    """The pair files `sources` name, in order.

    Args:
        sources: a path or a list of paths. A file is used as it is; a directory means
            every `*.test.data` file under it (the senteval_cn layout
            `TASK/TASK.test.data`), or, when it has none, every pair file directly in it
            (names ending in one of `PAIR_FILE_SUFFIXES`, hidden ones left out).

    Returns:
        list of paths.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files = []
    for source in map(os.fspath, sources):
        if os.path.isfile(source):
            files.append(source)
        elif os.path.isdir(source):
            found = sorted(glob.glob(os.path.join(glob.escape(source), "**", "*.test.data"),
                                     recursive=True))
            if not found:
                found = sorted(
                    entry.path for entry in os.scandir(source)
                    if entry.is_file() and not entry.name.startswith(".")
                    and entry.name.endswith(PAIR_FILE_SUFFIXES)
                )
            if not found:
                raise FileNotFoundError(
                    f"{source} holds no *.test.data file and no pair file "
                    f"({', '.join('*' + suffix for suffix in PAIR_FILE_SUFFIXES)})"
                )
            files.extend(found)
        else:
            raise FileNotFoundError(f"no such file or directory: {source}")
    if not files:
        raise ValueError("no pair file given")
    return files


def read_labelled_pairs(path, limit=None):
    """The pairs of one file with numeric labels, read with `kerasformer.data.read_pairs`.

    Numeric labels (0/1 or a 0–5 score) are kept; NLI labels become 1 for "entailment"
    and 0 for "neutral" and "contradiction".

    Args:
        path: a pair file in any format `read_pairs` reads.
        limit: int or None. Keep only the first `limit` pairs.

    Returns:
        `LabelledPairs`.

    Raises:
        ValueError: the file holds no pairs, something else than pairs (SimBERT synonym
            groups), a pair without a label or a label that is neither a number nor an
            NLI label. The message names the file.
    """
    path = os.fspath(path)
    items = read_pairs(path, streaming=limit is not None)
    if limit is not None:
        items = itertools.islice(items, limit)
    texts_a, texts_b, labels = [], [], []
    for index, item in enumerate(items):
        if not isinstance(item, Pair):
            raise ValueError(f"{path} holds {type(item).__name__}s, not sentence pairs with labels")
        texts_a.append(item.text_a)
        texts_b.append(item.text_b)
        labels.append(_numeric_label(item.label, path, index))
    if not labels:
        raise ValueError(f"{path} holds no sentence pairs")
    name = os.path.splitext(os.path.basename(path))[0]
    return LabelledPairs(name, path, texts_a, texts_b, np.asarray(labels, np.float64))


def _numeric_label(label, path, index):
    if label is None:
        raise ValueError(f"pair {index + 1} of {path} has no label: evaluation needs "
                         "labelled pairs")
    if isinstance(label, str):
        if label.lower() in NLI_LABELS:
            return NLI_LABELS[label.lower()]
        raise ValueError(f"pair {index + 1} of {path} has the label {label!r}, which is "
                         f"neither a number nor an NLI label ({', '.join(NLI_LABELS)})")
    if isinstance(label, bool) or not math.isfinite(label):
        raise ValueError(f"pair {index + 1} of {path} has the label {label!r}, not a finite number")
    return float(label)


def _as_pairs(source, limit=None):
    return source if isinstance(source, LabelledPairs) else read_labelled_pairs(source, limit)


def cosines(model, data, batch_size=64):
    """The model's cosine similarity of each pair, each distinct sentence encoded once.

    Args:
        model: a `SimilarityModel` (anything with its `encode`).
        data: `LabelledPairs`.
        batch_size: int. Encoding batch size.

    Returns:
        float64 array, one cosine per pair.
    """
    sentences = list(dict.fromkeys(data.texts_a + data.texts_b))
    index = {sentence: row for row, sentence in enumerate(sentences)}
    vectors = model.encode(sentences, batch_size=batch_size)
    rows_a = [index[text] for text in data.texts_a]
    rows_b = [index[text] for text in data.texts_b]
    return np.einsum("ij,ij->i", vectors[rows_a], vectors[rows_b]).astype(np.float64)


# ---------------------------------------------------------------------------- STS

@dataclasses.dataclass(frozen=True)
class Correlation:
    """Spearman's and Pearson's correlation of a score with the gold labels."""

    spearman: float
    pearson: float

    @classmethod
    def of(cls, scores, labels):
        """The correlations of `scores` with `labels` (1-D array-likes of one length)."""
        return cls(spearman(scores, labels), pearson(scores, labels))


@dataclasses.dataclass(frozen=True)
class STSResult:
    """One dataset's STS evaluation.

    Attributes:
        dataset: the file's name without its last suffix ("STS-B.test").
        path: the file.
        pairs: int. Number of pairs evaluated.
        model: `Correlation` of the model's cosine with the labels.
        char_jaccard: `Correlation` of `char_jaccard` with the labels.
        bm25: `Correlation` of the `CharBM25` pair similarity (statistics from the
            dataset's own sentences) with the labels.
    """

    dataset: str
    path: str
    pairs: int
    model: Correlation
    char_jaccard: Correlation
    bm25: Correlation


def sts(model, sources, batch_size=64, limit=None):
    """STS evaluation of a similarity model, with character baselines on the same pairs.

    Args:
        model: a `SimilarityModel` (its `encode` gives the vectors).
        sources: file or directory paths (see `pair_files`), or `LabelledPairs` already
            read with `read_labelled_pairs`.
        batch_size: int. Encoding batch size.
        limit: int or None. Keep the first `limit` pairs of each file.

    Returns:
        list of `STSResult`, one per file, in order.
    """
    if isinstance(sources, (str, os.PathLike, LabelledPairs)):
        sources = [sources]
    datasets = []
    for source in sources:
        if isinstance(source, LabelledPairs):
            datasets.append(source)
        else:
            datasets.extend(read_labelled_pairs(path, limit) for path in pair_files(source))
    results = []
    for data in datasets:
        scores = cosines(model, data, batch_size)
        bm25 = CharBM25(data.texts_a + data.texts_b)
        pairs = list(zip(data.texts_a, data.texts_b))
        results.append(STSResult(
            dataset=data.name,
            path=data.path,
            pairs=len(data),
            model=Correlation.of(scores, data.labels),
            char_jaccard=Correlation.of([char_jaccard(a, b) for a, b in pairs], data.labels),
            bm25=Correlation.of([bm25.similarity(a, b) for a, b in pairs], data.labels),
        ))
    return results


# ---------------------------------------------------------------------- thresholds

@dataclasses.dataclass(frozen=True)
class BinaryMetrics:
    """How well "similar when cosine >= threshold" classifies a set of pairs.

    Attributes:
        threshold: float. Pairs with a cosine at least this are predicted similar.
        pairs: int. Number of pairs.
        accuracy, precision, recall, f1: floats in [0, 1] (precision is 0 when nothing
            is predicted similar, recall and F1 are 0 when nothing is similar).
    """

    threshold: float
    pairs: int
    accuracy: float
    precision: float
    recall: float
    f1: float


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The best cosine thresholds of a validation set.

    Attributes:
        accuracy: `BinaryMetrics` on the validation set at the threshold of best accuracy.
        f1: `BinaryMetrics` on the validation set at the threshold of best F1.
    """

    accuracy: BinaryMetrics
    f1: BinaryMetrics


def label_cut(labels):
    """The label above which a pair counts as similar: 0.5 for 0/1 labels (or scores
    in [0, 1]), 2.5 for STS scores in [0, 5] (RoFormer-Sim's rule in its supervised
    training).

    Args:
        labels: 1-D array-like of numbers in [0, 5].

    Returns:
        0.5 or 2.5.
    """
    labels = np.asarray(labels, np.float64)
    if labels.size and (labels.min() < 0 or labels.max() > 5):
        raise ValueError(f"labels must be 0/1 or scores in [0, 5], got values from "
                         f"{labels.min():g} to {labels.max():g}")
    return 0.5 if labels.size == 0 or labels.max() <= 1 else 2.5


def binary_labels(labels):
    """Labels as 0/1: 1 above `label_cut(labels)`, else 0.

    Args:
        labels: 1-D array-like of numbers in [0, 5].

    Returns:
        int64 array of 0 and 1.
    """
    labels = np.asarray(labels, np.float64)
    return (labels > label_cut(labels)).astype(np.int64)


def apply_threshold(scores, threshold):
    """Which pairs are similar at a threshold: `scores >= threshold`.

    Args:
        scores: array-like of cosines.
        threshold: float.

    Returns:
        bool array.
    """
    return np.asarray(scores, np.float64) >= threshold


def binary_metrics(scores, labels, threshold):
    """Accuracy, precision, recall and F1 of `apply_threshold(scores, threshold)`.

    Args:
        scores: 1-D array-like of cosines.
        labels: 1-D array-like of 0/1 (see `binary_labels`).
        threshold: float.

    Returns:
        `BinaryMetrics`.
    """
    scores, labels = _scores_and_labels(scores, labels)
    predicted = apply_threshold(scores, threshold)
    true_positives = int(np.sum(predicted & (labels == 1)))
    return _metrics(threshold, len(labels), true_positives, int(predicted.sum()),
                    int(labels.sum()))


def _metrics(threshold, pairs, true_positives, predicted, positives):
    false_positives = predicted - true_positives
    correct = true_positives + (pairs - positives - false_positives)
    return BinaryMetrics(
        threshold=float(threshold),
        pairs=pairs,
        accuracy=correct / pairs,
        precision=true_positives / predicted if predicted else 0.0,
        recall=true_positives / positives if positives else 0.0,
        f1=2 * true_positives / (predicted + positives) if predicted + positives else 0.0,
    )


def calibrate_threshold(scores, labels):
    """The cosine thresholds with the best accuracy and the best F1 on a labelled set.

    An exact sweep over the sorted scores (O(n log n)): every cut between two distinct
    scores is tried, and the threshold reported for a cut is the midpoint of the
    scores on either side of it (the lowest score when every pair is predicted similar,
    the next float above the highest when none is). Ties in the metric go to the
    highest threshold.

    Args:
        scores: 1-D array-like of cosines.
        labels: 1-D array-like of 0/1 (see `binary_labels`).

    Returns:
        `Thresholds`, with the metrics each threshold reaches on this set.
    """
    scores, labels = _scores_and_labels(scores, labels)
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    # the last position of each run of equal scores: a cut can only fall after one
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    true_positives = np.append(0, np.cumsum(labels[order])[ends])
    predicted = np.append(0, ends + 1)
    below = np.append(ordered[ends[1:]], ordered[-1])  # the next lower score, or the lowest
    thresholds = np.concatenate([[np.nextafter(ordered[0], np.inf)],
                                 (ordered[ends] + below) / 2])
    pairs, positives = len(labels), int(labels.sum())
    accuracy = (true_positives + pairs - positives - (predicted - true_positives)) / pairs
    f1 = np.where(predicted + positives > 0,
                  2 * true_positives / np.maximum(predicted + positives, 1), 0.0)

    def at(best):
        return _metrics(thresholds[best], pairs, int(true_positives[best]),
                        int(predicted[best]), positives)

    return Thresholds(accuracy=at(int(np.argmax(accuracy))), f1=at(int(np.argmax(f1))))


def _scores_and_labels(scores, labels):
    scores, labels = _paired(scores, labels)
    if len(scores) == 0:
        raise ValueError("no pairs to classify")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (see binary_labels)")
    return scores, labels.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Thresholds chosen on a validation set and measured on a test set.

    Attributes:
        valid, test: dataset names.
        on_valid: `Thresholds` with their validation metrics.
        test_at_accuracy: `BinaryMetrics` on the test set at the best-accuracy threshold.
        test_at_f1: `BinaryMetrics` on the test set at the best-F1 threshold.
    """

    valid: str
    test: str
    on_valid: Thresholds
    test_at_accuracy: BinaryMetrics
    test_at_f1: BinaryMetrics


def calibrate(model, valid, test, batch_size=64, limit=None):
    """Which cosine means "similar": thresholds from `valid`, measured on `test`.

    Labels are made binary with `binary_labels` (STS scores: similar above 2.5).

    Args:
        model: a `SimilarityModel`.
        valid, test: pair files or `LabelledPairs`.
        batch_size: int. Encoding batch size.
        limit: int or None. Keep the first `limit` pairs of each file.

    Returns:
        `Calibration`.
    """
    valid, test = _as_pairs(valid, limit), _as_pairs(test, limit)
    thresholds = calibrate_threshold(cosines(model, valid, batch_size), binary_labels(valid.labels))
    test_scores = cosines(model, test, batch_size)
    test_labels = binary_labels(test.labels)
    return Calibration(
        valid=valid.name,
        test=test.name,
        on_valid=thresholds,
        test_at_accuracy=binary_metrics(test_scores, test_labels, thresholds.accuracy.threshold),
        test_at_f1=binary_metrics(test_scores, test_labels, thresholds.f1.threshold),
    )


# ---------------------------------------------------------------- paraphrases

def ngrams(chars, n):
    """The character n-grams of a sequence, as a Counter of tuples."""
    return Counter(tuple(chars[i:i + n]) for i in range(len(chars) - n + 1))


def distinct(samples, n):
    """distinct-n: distinct character n-grams / all character n-grams of `samples`
    together (whitespace ignored).

    Args:
        samples: list of str.
        n: int. The n-gram order.

    Returns:
        float in (0, 1]; NaN when the samples have no n-gram.
    """
    counts = Counter()
    for sample in samples:
        counts.update(ngrams(_chars(sample), n))
    total = sum(counts.values())
    return len(counts) / total if total else math.nan


def bleu(hypothesis, references, max_order=4):
    """Character BLEU of `hypothesis` against `references`, with add-one smoothing.

    With whitespace removed, for n = 1..max_order, p_n = (m_n + 1) / (t_n + 1), where
    t_n is the number of n-grams of the hypothesis and m_n how many of them the
    references match (each n-gram's count clipped to its highest count in one
    reference). With c the hypothesis length and r the reference length closest to it
    (the shorter on a tie), the brevity penalty is BP = 1 if c > r else exp(1 - r / c),
    and BLEU = BP * exp(mean of log p_n); an empty hypothesis scores 0.

    Args:
        hypothesis: str.
        references: non-empty list of str.
        max_order: int. Highest n-gram order (BLEU-4 by default).

    Returns:
        float in [0, 1].
    """
    if not references:
        raise ValueError("BLEU needs at least one reference")
    hypothesis = _chars(hypothesis)
    references = [_chars(reference) for reference in references]
    if not hypothesis:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_order + 1):
        counts = ngrams(hypothesis, n)
        most = Counter()
        for reference in references:
            most |= ngrams(reference, n)  # `|` keeps each n-gram's highest count
        matched = sum(min(count, most[gram]) for gram, count in counts.items())
        log_precision += math.log((matched + 1) / (sum(counts.values()) + 1))
    length = len(hypothesis)
    closest = min((len(reference) for reference in references),
                  key=lambda reference_length: (abs(reference_length - length), reference_length))
    penalty = 1.0 if length > closest else math.exp(1 - closest / length)
    return penalty * math.exp(log_precision / max_order)


def self_bleu(samples, max_order=4):
    """Mean `bleu` of each sample against all the others (lower is more diverse).

    Args:
        samples: list of at least two str.
        max_order: int. Highest n-gram order.

    Returns:
        float in [0, 1].
    """
    if len(samples) < 2:
        raise ValueError("self-BLEU compares samples with each other: it needs at least two")
    return float(np.mean([
        bleu(sample, samples[:i] + samples[i + 1:], max_order) for i, sample in enumerate(samples)
    ]))


@dataclasses.dataclass(frozen=True)
class ParaphraseScores:
    """The generated samples of one source sentence and their scores.

    Attributes:
        source: the source sentence.
        samples: list of the generated sentences.
        distinct_1, distinct_2: `distinct` of the samples (NaN without such n-grams).
        self_bleu: `self_bleu` of the samples.
        faithfulness: mean cosine of the samples to the source (an empty sample counts 0).
        rewordings: the fraction of samples that reword the source: not blank, not
            the source, and not a near copy of it (`similarity.is_near_copy`: the
            source up to punctuation, one added or dropped character, a stutter).
    """

    source: str
    samples: list
    distinct_1: float
    distinct_2: float
    self_bleu: float
    faithfulness: float
    rewordings: float


@dataclasses.dataclass(frozen=True)
class ParaphraseReport:
    """Paraphrase diversity and faithfulness over a set of source sentences.

    Attributes:
        sentences: list of `ParaphraseScores`, one per source, in order.
        distinct_1, distinct_2, self_bleu, faithfulness, rewordings: their means over
            the sources (NaN entries left out).
    """

    sentences: list
    distinct_1: float
    distinct_2: float
    self_bleu: float
    faithfulness: float
    rewordings: float


def paraphrase_report(model, sentences, n=10, seed=0, batch_size=64, **generate_kwargs):
    """Diversity and faithfulness of the paraphrases a model generates.

    Each source gets `n` samples from `model.generate`, with the model's recipe sampling
    (`model.sampling`, as `similar()` uses) unless `generate_kwargs` say otherwise.

    Args:
        model: a `SimilarityModel`.
        sentences: list of source sentences.
        n: int, at least 2. Samples per source.
        seed: int or None. Source i is sampled with seed `seed + i`, so a report is
            reproducible; None samples at random.
        batch_size: int. Encoding batch size for the faithfulness cosines.
        **generate_kwargs: more options of `model.generate` (`topp`, `maxlen`, ...).

    Returns:
        `ParaphraseReport`.
    """
    if isinstance(sentences, str):
        sentences = [sentences]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer of at least 2 (self-BLEU compares samples "
                         f"with each other), got {n!r}")
    if not sentences:
        raise ValueError("no source sentences")
    options = {**getattr(model, "sampling", {}), **generate_kwargs}
    generated = []
    for index, sentence in enumerate(progress(sentences, "paraphrasing", unit="sentence")):
        sample_seed = None if seed is None else seed + index
        generated.append(model.generate(sentence, n=n, seed=sample_seed, **options))
    texts = list(dict.fromkeys(
        text for source, samples in zip(sentences, generated) for text in [source, *samples]
        if text.strip()
    ))
    vectors = dict(zip(texts, model.encode(texts, batch_size=batch_size)))
    scores = []
    for source, samples in zip(sentences, generated):
        similarity = [float(vectors[sample] @ vectors[source]) if sample.strip() else 0.0
                      for sample in samples]
        scores.append(ParaphraseScores(
            source=source,
            samples=samples,
            distinct_1=distinct(samples, 1),
            distinct_2=distinct(samples, 2),
            self_bleu=self_bleu(samples),
            faithfulness=float(np.mean(similarity)),
            rewordings=float(np.mean([
                bool(sample.strip()) and not is_near_copy(sample, source) for sample in samples
            ])),
        ))

    def mean(field):
        values = [getattr(score, field) for score in scores]
        values = [value for value in values if not math.isnan(value)]
        return float(np.mean(values)) if values else math.nan

    return ParaphraseReport(scores, *(mean(field) for field in
                                      ("distinct_1", "distinct_2", "self_bleu", "faithfulness",
                                       "rewordings")))


def as_json(result):
    """A result of this module as JSON-ready data (dataclasses to dicts, NaN to None)."""
    def clean(value):
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        if isinstance(value, (float, np.floating)):
            return None if math.isnan(value) else float(value)
        if isinstance(value, np.integer):
            return int(value)
        return value

    if dataclasses.is_dataclass(result):
        result = dataclasses.asdict(result)
    elif isinstance(result, (list, tuple)):
        result = [dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item
                  for item in result]
    return clean(result)
