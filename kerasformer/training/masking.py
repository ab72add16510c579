"""Masked-LM corruption: BERT's dynamic masking, whole-word masking, RoFormer-Sim's
stage-1 `masked_encode`, and the packing of short sentences into full sequences.

Everything here is numpy and the tokenizer (no Keras), so the data pipeline can run
anywhere, and every random choice comes from a `numpy.random.Generator` the caller
owns (reproducible, and independent of the global numpy state).

The target convention is bert4keras': `targets` holds the original token id at the
positions the model must predict and 0 everywhere else, so id 0 (`[PAD]` in every
BERT vocabulary) is never a target and "0 = not predicted" needs no second array.

Two ways of choosing what to corrupt, which differ on purpose:

- `mask_tokens` is BERT / RoBERTa pre-training: each maskable position (or whole word,
  with `spans`) is chosen independently with probability `rate`; of the chosen
  *tokens* 80 % become `[MASK]`, 10 % a random ordinary id, 10 % stay, and special
  tokens are never chosen nor drawn.
- `corrupt_source` is RoFormer-Sim's stage-1 `masked_encode` as published
  (ZhuiyiTechnology/roformer-sim, train/stage1.py): the 80/10/10 decision is taken
  once per *word*, and random ids are uniform over 1..V−1, specials included.
"""
import numpy as np

# The share of chosen tokens that become [MASK], and the share that become a random id
# (the rest keep their id): BERT's 80 / 10 / 10.
MASK_SHARE = 0.8
RANDOM_SHARE = 0.1


def special_token_ids(tokenizer):
    """The ids masking must leave alone: [PAD], [UNK], [CLS], [SEP] and [MASK], those
    of them the vocabulary has, as a sorted tuple."""
    ids = {tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id,
           tokenizer.mask_id}
    return tuple(sorted(i for i in ids if i is not None))


def jieba_words(text, hmm=True):
    """`jieba.lcut(text, HMM=hmm)`, with an ImportError that says how to get jieba."""
    from kerasformer.tokenizers.recipes import import_jieba

    return import_jieba("whole-word masking segments Chinese words").lcut(text, HMM=hmm)


def word_spans(tokenizer, text, segment=None, hmm=True):
    """The token ids of `text` grouped by word, for whole-word masking.

    Each word's ids are `tokenizer.encode(word)[0][1:-1]` (its tokens without [CLS]
    and [SEP]), as RoFormer-Sim's `masked_encode` does; words without tokens
    (spaces) are left out. Their concatenation can differ slightly from
    `tokenizer.encode(text)` for Latin script ("iphone12" cut as "iphone" + "12"
    starts the second word with "1", not "##1").

    Args:
        tokenizer: a `kerasformer.tokenizers.Tokenizer` with start and end tokens.
        text: str.
        segment: optional callable `text -> iterable of words`; default jieba.
        hmm: jieba's HMM for unknown words (its default, and stage 1's, is on).

    Returns:
        A list of non-empty lists of token ids, one per word, in order.
    """
    words = segment(text) if segment is not None else jieba_words(text, hmm=hmm)
    spans = []
    for word in words:
        ids = tokenizer.encode(word)[0][1:-1]
        if ids:
            spans.append(ids)
    return spans


def _random_ordinary_ids(rng, size, vocab_size, special_ids):
    """`size` ids drawn uniformly from 0..vocab_size−1 without `special_ids` (sorted,
    all below vocab_size): a draw in 0..V−k−1 is shifted past every special id at or
    below it, which maps it onto the ordinary ids in order without a table of V ids."""
    ids = rng.integers(0, vocab_size - len(special_ids), size=size)
    for special in special_ids:
        ids += ids >= special
    return ids


def _span_units(length, spans):
    """Per position, the index of the unit it is chosen with: its span's first
    position, or itself outside any span."""
    units = np.arange(length)
    spans = np.asarray(spans, np.int64).reshape(-1, 2)
    if not len(spans):
        return units
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    starts, stops = spans[:, 0], spans[:, 1]
    outside = (starts < 0) | (stops <= starts) | (stops > length)
    if outside.any():
        start, stop = spans[outside.argmax()]
        raise ValueError(f"span ({start}, {stop}) is not inside a sequence of {length}")
    overlapping = starts[1:] < stops[:-1]
    if overlapping.any():
        start, stop = spans[overlapping.argmax() + 1]
        raise ValueError(f"span ({start}, {stop}) overlaps another span")
    lengths = stops - starts
    first = np.repeat(starts, lengths)
    # position = its span's start + its offset inside the span
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    units[first + offsets] = first
    return units


def mask_tokens(token_ids, rng, vocab_size, mask_id, rate=0.15, *, special_ids,
                spans=None):
    """BERT's dynamic masking of one sequence (or a batch of them).

    Every maskable position (neither id 0 nor one of `special_ids` nor `mask_id`) is
    chosen independently with probability `rate`; with `spans`, every word is chosen
    as a unit with probability `rate` and all its maskable positions with it. The rate
    is therefore per token without spans and per word with them; either way each
    token is predicted with probability `rate`, so the expected share of predicted
    tokens is `rate` (per-word choice only makes the count vary more). Then each chosen
    token independently becomes `[MASK]` (80 %), a random id drawn uniformly from the
    ids that are not special (10 %), or stays as it is (10 %).

    Args:
        token_ids: int array-like; 1-D when `spans` is given, any shape otherwise.
        rng: `numpy.random.Generator`.
        vocab_size: int, the size of the vocabulary random ids are drawn from.
        mask_id: int, the id of `[MASK]`.
        rate: float in [0, 1], the probability that a token (or word) is predicted.
        special_ids: ids never chosen nor drawn, e.g. `special_token_ids(tokenizer)`
            ([PAD], [UNK], [CLS], [SEP]); id 0 and `mask_id` are always included.
        spans: optional `(start, stop)` position ranges of the words of `token_ids`
            (non-overlapping); positions outside every span are one-token words.

    Returns:
        `(inputs, targets)`, int32 arrays shaped like `token_ids`: the corrupted ids,
        and the original id at every chosen position with 0 elsewhere.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate!r}")
    token_ids = np.asarray(token_ids)
    specials = np.unique(np.asarray([0, mask_id, *special_ids], np.int64))
    specials = specials[(specials >= 0) & (specials < vocab_size)]
    if vocab_size <= len(specials):
        raise ValueError(f"a vocabulary of {vocab_size} holds no id besides the specials")
    maskable = ~np.isin(token_ids, specials)
    if spans is None:
        chosen = maskable & (rng.random(token_ids.shape) < rate)
    else:
        if token_ids.ndim != 1:
            raise ValueError("spans need a 1-D sequence of token ids")
        units = _span_units(len(token_ids), spans)
        chosen = maskable & (rng.random(len(token_ids))[units] < rate)
    action = rng.random(token_ids.shape)
    to_mask = chosen & (action < MASK_SHARE)
    to_random = chosen & (action >= MASK_SHARE) & (action < MASK_SHARE + RANDOM_SHARE)
    inputs = token_ids.astype(np.int32)  # a copy
    inputs[to_mask] = mask_id
    inputs[to_random] = _random_ordinary_ids(rng, int(to_random.sum()), vocab_size, specials)
    targets = np.where(chosen, token_ids, 0).astype(np.int32)
    return inputs, targets


def corrupt_source(tokenizer, text, rng, maxlen=64, rate=0.15, segment=None, hmm=True):
    """RoFormer-Sim stage 1's `masked_encode`: BART-style whole-word corruption.

    Each word (jieba's, or `segment`'s) independently, with u uniform in [0, 1):
    u < 0.8·rate: all its tokens become `[MASK]`; u < 0.9·rate: its tokens stay;
    u < rate: each token becomes a random id uniform in 1..V−1 (special ids
    included, as in the original); otherwise its tokens stay and are not targets.
    The words of the first three cases are targets. The sequence is `[CLS]` + the
    words' tokens, cut to `maxlen − 1`, + `[SEP]`.

    Args:
        tokenizer: a `kerasformer.tokenizers.Tokenizer` with [CLS], [SEP], [MASK].
        text: str.
        rng: `numpy.random.Generator`.
        maxlen: int ≥ 2, the length of the result at most.
        rate: float, the probability that a word is corrupted (0.15 in stage 1).
        segment: optional callable `text -> iterable of words`; default jieba.
        hmm: jieba's HMM for unknown words (on in stage 1).

    Returns:
        `(source_ids, target_ids)`, equally long lists of ints: the corrupted
        sequence, and the original id at every target position with 0 elsewhere
        (0 at [CLS] and [SEP]).
    """
    if maxlen < 2:
        raise ValueError(f"maxlen must be at least 2 ([CLS] and [SEP]), got {maxlen!r}")
    spans = word_spans(tokenizer, text, segment, hmm)
    mask_id, vocab_size = tokenizer.mask_id, tokenizer.vocab_size
    source, target = [tokenizer.start_id], [0]
    for draw, ids in zip(rng.random(len(spans)), spans):
        if draw < rate * MASK_SHARE:
            source.extend([mask_id] * len(ids))
            target.extend(ids)
        elif draw < rate * (MASK_SHARE + RANDOM_SHARE):
            source.extend(ids)
            target.extend(ids)
        elif draw < rate:
            source.extend(int(i) for i in rng.integers(1, vocab_size, size=len(ids)))
            target.extend(ids)
        else:
            source.extend(ids)
            target.extend([0] * len(ids))
    source = source[:maxlen - 1] + [tokenizer.end_id]
    target = target[:maxlen - 1] + [0]
    return source, target


def pack_sentences(encoded_sentences, maxlen):
    """Packs short encoded sentences into sequences of at most `maxlen` tokens.

    Input sentences are `tokenizer.encode(text)[0]`: `[CLS] tokens [SEP]`. A packed
    sequence is `[CLS] s1 [SEP] s2 [SEP] ... sk [SEP]` — each sentence keeps its own
    [SEP], so the model still sees where sentences end — and takes sentences in order
    while they fit. A sentence longer than `maxlen` is cut into pieces of
    `maxlen − 2` tokens, each packed like a sentence of its own, so every token of the
    input is in the output once. Sentences without tokens (`[CLS] [SEP]`) carry
    nothing and are skipped.

    Args:
        encoded_sentences: iterable of token-id lists, each `[CLS] ... [SEP]`; read
            lazily.
        maxlen: int ≥ 3.

    Yields:
        Lists of token ids, each at most `maxlen` long.
    """
    for token_ids, _ in packed_sequences(((ids, None) for ids in encoded_sentences), maxlen):
        yield token_ids


def packed_sequences(sentences, maxlen, pack=True):
    """`pack_sentences` for sentences that carry their word lengths.

    Args:
        sentences: iterable of `(token_ids, word_lengths)`: an encoded sentence
            `[CLS] ... [SEP]` and the lengths of its words (summing to its tokens
            between [CLS] and [SEP]), or None for no words.
        maxlen: int ≥ 3.
        pack: False puts every sentence (or piece of a long one) in a sequence of
            its own.

    Yields:
        `(token_ids, spans)`: a packed sequence and the `(start, stop)` positions of
        its words of two or more tokens (None where the input had no word lengths),
        ready for `mask_tokens(..., spans=spans)`. A word cut between two pieces of
        a long sentence becomes two words.
    """
    if maxlen < 3:
        raise ValueError(f"maxlen must be at least 3 ([CLS], a token, [SEP]), got {maxlen!r}")
    current, spans, with_words = [], [], False
    for token_ids, word_lengths in sentences:
        token_ids = list(token_ids)
        if len(token_ids) < 2:
            raise ValueError(f"an encoded sentence is [CLS] ... [SEP], got {token_ids!r}")
        start_id, body, end_id = token_ids[0], token_ids[1:-1], token_ids[-1]
        if word_lengths is not None and sum(word_lengths) != len(body):
            raise ValueError(f"word lengths adding up to {sum(word_lengths)} do not cover "
                             f"a sentence of {len(body)} tokens")
        for piece_start in range(0, len(body), maxlen - 2):
            piece = body[piece_start:piece_start + maxlen - 2]
            if current and (not pack or len(current) + len(piece) + 1 > maxlen):
                yield current, spans if with_words else None
                current, spans, with_words = [], [], False
            if not current:
                current = [start_id]
            if word_lengths is not None:
                with_words = True
                offset = len(current) - piece_start
                spans.extend((start + offset, stop + offset) for start, stop in
                             _word_ranges(word_lengths, piece_start, piece_start + len(piece)))
            current.extend(piece)
            current.append(end_id)
    if current:
        yield current, spans if with_words else None


def _word_ranges(word_lengths, low, high):
    """The `(start, stop)` ranges of words of two or more tokens, clipped to
    [low, high), in body positions."""
    start = 0
    for length in word_lengths:
        stop = start + length
        clipped = (max(start, low), min(stop, high))
        if clipped[1] - clipped[0] >= 2:
            yield clipped
        start = stop
