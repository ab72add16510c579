"""The SimBERT / RoFormer-Sim task: sentence vectors and similar-sentence generation.

Both models are a BERT-layout encoder built with `application="unilm",
with_pool="linear"`: the linear pooler on [CLS] gives the sentence vector (each text
encoded alone, segment 0 — under the UniLM mask this equals the source part of any
seq2seq input), and the MLM head generates paraphrases of a source text as segment 1
(https://kexue.fm/archives/7427, https://kexue.fm/archives/8454).
"""
import collections
import functools
import unicodedata
import warnings

import keras
import numpy as np

from kerasformer.checks import check_integer
from kerasformer.generation import AutoRegressiveDecoder
from kerasformer.models.task import Task, check_texts, to_numpy
from kerasformer.progress import progress

# Sampling options a preset or a caller may set as the defaults of `similar()`.
SAMPLING_OPTIONS = {"topk", "topp", "temperature"}


class SimilarityModel(Task):
    """Sentence similarity and paraphrase generation with SimBERT or RoFormer-Sim.

    Usually obtained from `kerasformer.models.load(...)`.

    Args:
        transformer: the model family, built with application "unilm" and a linear
            pooler (its Keras model outputs `[pooled, probabilities]`).
        tokenizer: the matching `kerasformer.tokenizers.Tokenizer`.
        family: "roformer-sim" or "simbert".
        tokenizer_config: how the tokenizer was made (see `Task`).
        text_maxlen: int. Tokens kept of each input text, [CLS] and [SEP] included.
        sampling: dict. Sampling options `similar()` uses by default: the original
            recipes sample SimBERT with `topk=5` and RoFormer-Sim with `topp=0.95`.

    Attributes:
        model: the Keras model, outputs `[pooled, probabilities]`.
        encoder: a Keras model of the same layers that outputs only the pooled vectors.
    """

    task = "similarity"

    def __init__(self, transformer, tokenizer, family=None, tokenizer_config=None,
                 text_maxlen=64, sampling=None):
        if transformer.application != "unilm" or not transformer.with_pool:
            raise ValueError(
                "a similarity model is a UniLM model with a pooler: build it with "
                "application='unilm', with_pool='linear'"
            )
        if tokenizer.end_id is None:
            raise ValueError("the tokenizer's vocabulary has no end token ([SEP])")
        super().__init__(transformer, tokenizer, family, tokenizer_config)
        self.text_maxlen = _check_text_maxlen(text_maxlen, transformer)
        self.sampling = _check_sampling(sampling or {}, transformer.vocab_size)
        self._warned_truncation = False
        self.encoder = keras.Model(self.model.inputs, self.model.outputs[0])
        self.decoder = AutoRegressiveDecoder(transformer, end_id=tokenizer.end_id)

    def task_options(self):
        return {"text_maxlen": self.text_maxlen, "sampling": self.sampling}

    # -------------------------------------------------------------- vectors

    def encode(self, texts, batch_size=64):
        """L2-normalised sentence vectors of `texts`, each encoded alone (segment 0).

        Args:
            texts: a string or a list of strings (at most `text_maxlen` tokens of each
                are used).
            batch_size: int. Texts per compiled call; texts are batched by length.

        Returns:
            float32 array `(len(texts), hidden_size)` (a 1-D vector for one string).
        """
        single = isinstance(texts, str)
        vectors = self._vectors([texts] if single else texts, batch_size)
        return vectors[0] if single else vectors

    def _vectors(self, texts, batch_size, warn=True):
        texts = check_texts(texts)
        batch_size = check_integer(batch_size, "batch_size")
        encoded = [self._encode_text(text) for text in texts]
        self._report_truncation(encoded, texts, warn, stacklevel=5)
        vectors = np.zeros((len(texts), self.transformer.hidden_size), np.float32)
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        starts = range(0, len(order), batch_size)
        for start in progress(starts, "encoding", unit="batch", minimum=8):
            rows = order[start:start + batch_size]
            vectors[rows] = self._pooled([encoded[i] for i in rows])
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _encode_text(self, text):
        """Token ids of `text` cut to `text_maxlen`, and whether it was cut."""
        ids = self.tokenizer.encode(text)[0]
        if len(ids) <= self.text_maxlen:
            return ids
        return self.tokenizer.encode(text, maxlen=self.text_maxlen)[0] + [None]

    def _report_truncation(self, encoded, texts, warn=True, stacklevel=4):
        """Drops the truncation marks of `_encode_text`; warns once per task."""
        cut = 0
        for ids in encoded:
            if ids and ids[-1] is None:
                ids.pop()
                cut += 1
        if cut and warn and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{cut} of {len(texts)} text(s) exceed text_maxlen={self.text_maxlen} tokens "
                "and were truncated (load with text_maxlen=... to keep more)",
                stacklevel=stacklevel,
            )

    def _pooled(self, batch):
        """Pooled vectors of token-id lists, padded to a bucket shape."""
        token_ids = self.pad(batch)
        encode = self.compiled("encode", lambda t, s: self.encoder([t, s]))
        return to_numpy(encode(token_ids, np.zeros_like(token_ids)))[:len(batch)]

    def search(self, queries, corpus, k=10, batch_size=64):
        """The `k` corpus entries closest to each query by cosine similarity.

        Args:
            queries: a string or a list of strings.
            corpus: a list of strings, or their vectors from `encode` (reuse them to
                search one corpus many times).
            k: int. Results per query (at most the corpus size).
            batch_size: int. Encoding batch size.

        Returns:
            `(indices, scores)`: int64 and float32 arrays `(len(queries), k)`, best
            first (1-D for a single string query).
        """
        if isinstance(corpus, str):
            raise TypeError("corpus must be a list of strings (or their vectors), not one string")
        k = check_integer(k, "k")
        single = isinstance(queries, str)
        query_vectors = np.atleast_2d(self.encode(queries, batch_size))
        if isinstance(corpus, np.ndarray):
            corpus_vectors = corpus.astype(np.float32, copy=False)
            if corpus_vectors.ndim != 2 or corpus_vectors.shape[1] != query_vectors.shape[1]:
                raise ValueError(
                    f"corpus vectors must have shape (n, {query_vectors.shape[1]}), "
                    f"got {corpus_vectors.shape}"
                )
            if not np.isfinite(corpus_vectors).all():
                bad = int(np.flatnonzero(~np.isfinite(corpus_vectors).all(axis=1))[0])
                raise ValueError(f"corpus vector {bad} is not finite (NaN or inf)")
        else:
            corpus_vectors = self.encode(list(corpus), batch_size)
        if len(corpus_vectors) == 0:
            raise ValueError("the corpus is empty")
        k = min(k, len(corpus_vectors))
        scores = query_vectors @ corpus_vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        indices = np.take_along_axis(top, order, axis=1).astype(np.int64)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        return (indices[0], top_scores[0]) if single else (indices, top_scores)

    # ----------------------------------------------------------- generation

    def generate(self, text, n=1, topk=None, topp=None, beam=None, maxlen=32, minlen=1,
                 mask_idxs=None, seed=None, temperature=1.0):
        """Sentences generated from `text` by the UniLM head.

        Args:
            text: str. The source sentence.
            n: int. Number of random samples (ignored with `beam`).
            topk, topp, temperature: sampling restrictions (see
                `AutoRegressiveDecoder.random_sample`); both None samples from the
                whole distribution.
            beam: int. Beam size: return the single best beam, like bert4keras'
                `beam_search` (beam=1 is greedy decoding).
            maxlen: int. Most tokens to generate.
            minlen: int. Fewest tokens before [SEP] ends a sentence.
            mask_idxs: positions of the encoded source (0 is [CLS]) to replace by
                [MASK], which steers RoFormer-Sim's variations.
            seed: int. The same seed gives the same samples.

        Returns:
            list of str: `n` samples, or the best beam alone.
        """
        (text,) = check_texts([text])
        token_ids = self._encode_text(text)
        self._report_truncation([token_ids], [text], stacklevel=3)
        for index in mask_idxs or ():
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"mask_idxs must hold integer positions, got {index!r}")
            if not -len(token_ids) <= index < len(token_ids):
                raise ValueError(
                    f"mask index {index} is outside the {len(token_ids)} source tokens"
                )
            if self.tokenizer.mask_id is None:
                raise ValueError("the vocabulary has no [MASK] token")
            token_ids[index] = self.tokenizer.mask_id
        if beam is not None:
            (ids,) = self.decoder.beam_search(
                [token_ids], beam=beam, maxlen=maxlen, minlen=minlen, temperature=temperature
            )
            return [self.tokenizer.decode(ids.tolist())]
        (samples,) = self.decoder.random_sample(
            [token_ids], n=n, maxlen=maxlen, minlen=minlen, topk=topk, topp=topp,
            temperature=temperature, seed=seed,
        )
        return [self.tokenizer.decode(ids.tolist()) for ids in samples]

    def similar(self, text, n=100, k=20, near_copies=False, **generate_kwargs):
        """Paraphrases of `text` ranked by cosine similarity (bert4keras' gen_synonyms).

        Generates `n` sentences (with the model's recipe sampling unless
        `generate_kwargs` say otherwise), drops duplicates, empty ones, the input
        itself and, unless `near_copies`, its near copies (see `is_near_copy`), and
        keeps the `k` closest to the input.

        Args:
            near_copies: bool. Keep samples that are the input up to punctuation, one
                added or dropped character, or a stutter — the samples a cosine
                ranking puts first and a user asking for paraphrases wants least.
                bert4keras' gen_synonyms keeps them (pass True to match it).

        Returns:
            list of `(sentence, cosine)` pairs, best first.
        """
        (text,) = check_texts([text])
        n, k = check_integer(n, "n"), check_integer(k, "k")
        options = {**self.sampling, **generate_kwargs}
        generated = self.generate(text, n=n, **options)
        candidates = [s for s in dict.fromkeys(generated) if s != text and s.strip()]
        if not near_copies:
            candidates = [s for s in candidates if not is_near_copy(s, text)]
        if not candidates:
            return []
        # generated sentences longer than text_maxlen are cut as bert4keras' recipe
        # cuts them: no warning for what the user did not write
        vectors = self._vectors([text] + candidates, 64, warn=False)
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [(candidates[i], float(scores[i])) for i in order]


def _letters(text):
    """`text` without punctuation, symbols or spaces, lower-cased."""
    return "".join(
        c for c in text.lower() if unicodedata.category(c)[0] not in "PSZC"
    )


# Sentence-final modal particles, ignored at the end when judging a near copy.
SENTENCE_PARTICLES = "了啊吗呢吧呀哦嘛的"


def _within_one_character(a, b):
    """Whether `a` and `b` are equal, or one is the other with a character added."""
    if a == b:
        return True
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    if len(longer) - len(shorter) != 1:
        return False
    prefix = 0
    while prefix < len(shorter) and longer[prefix] == shorter[prefix]:
        prefix += 1
    return longer[prefix + 1:] == shorter[prefix:]


@functools.lru_cache(maxsize=256)  # the input's, once for all its candidates
def _span_counts(text):
    """How often each span of two or more characters occurs in `text` (overlaps count);
    read-only (the result is shared)."""
    counts = collections.Counter()
    for start in range(len(text)):
        for stop in range(start + 2, len(text) + 1):
            counts[text[start:stop]] += 1
    return counts


def is_near_copy(candidate, text):
    """Whether `candidate` only restates `text` by a slip rather than a rewording.

    True when, punctuation, case and a final modal particle (了, 啊, 吗, ...) aside,
    the two are equal or differ by one added or dropped character (今天天气不错 /
    今天气不错, 今天气不错啊; 开会 / 开会了), `candidate`
    repeats a span of two or more characters more often than `text` does (我的我的快递,
    今天天天气, 北京是中国的首都是中国), or it doubles a character inside a stretch
    of `text` (这家餐餐厅, 奔奔跑), whatever else it changes. Substitutions (提高 /
    提升) and reorderings (怎么开通花呗 / 花呗怎么开通) are rewordings and are kept.
    """
    a, b = _letters(candidate), _letters(text)
    # a modal particle at the end says nothing new: 今天气不错啊 is 今天气不错
    if _within_one_character(a, b) or _within_one_character(
            a.rstrip(SENTENCE_PARTICLES), b.rstrip(SENTENCE_PARTICLES)):
        return True
    in_text = _span_counts(b)
    if any(n >= 2 and n > in_text[span] for span, n in _span_counts(a).items()):
        return True
    return any(_stutters_inside(a, i, b) for i in range(len(a) - 1))


def _stutters_inside(a, i, b):
    """Whether `a` doubles its character `i` where `b` has it once, between the same
    neighbours (这家餐餐厅 for 这家餐厅; not 今天天气 for 天气: 今天气 is not in it)."""
    if a[i] != a[i + 1] or a[i] * 2 in b or i == 0 or i + 2 == len(a):
        return False  # at either end one neighbour is too weak a sign (天天开心 / 每天开心)
    return a[i - 1] + a[i] + a[i + 2] in b


def _check_text_maxlen(text_maxlen, transformer):
    if isinstance(text_maxlen, bool) or not isinstance(text_maxlen, (int, np.integer)):
        raise ValueError(f"text_maxlen must be an integer, got {text_maxlen!r}")
    limit = transformer.max_positions()
    if not 3 <= text_maxlen <= (limit or 1 << 16):
        raise ValueError(
            f"text_maxlen must be between 3 and {limit or 1 << 16} tokens, got {text_maxlen}"
        )
    return int(text_maxlen)


def _check_sampling(sampling, vocab_size):
    """Sampling defaults (from a preset, a manifest or the caller), checked now rather
    than at the first `similar()`."""
    if not isinstance(sampling, dict) or set(sampling) - SAMPLING_OPTIONS:
        raise ValueError(f"sampling must be a dict of {sorted(SAMPLING_OPTIONS)}, got {sampling!r}")
    topk, topp = sampling.get("topk"), sampling.get("topp")
    if topk is not None and (isinstance(topk, bool) or not isinstance(topk, int)
                             or not 1 <= topk <= vocab_size):
        raise ValueError(f"sampling topk must be an integer in [1, {vocab_size}], got {topk!r}")
    if topp is not None and not (isinstance(topp, (int, float)) and 0 < topp <= 1):
        raise ValueError(f"sampling topp must be in (0, 1], got {topp!r}")
    temperature = sampling.get("temperature", 1.0)
    if not (isinstance(temperature, (int, float)) and 0 < temperature <= 100):
        raise ValueError(f"sampling temperature must be in (0, 100], got {temperature!r}")
    return dict(sampling)
