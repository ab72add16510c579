"""Masked-LM corruption: the rates on large samples, within five binomial standard
deviations; special tokens left alone; whole words masked whole; RoFormer-Sim's
`masked_encode`; packing that keeps every token.

The vocabulary is made here: the five special tokens and CJK characters, so that each
character is one token and a test's words are strings of known tokens.
"""
import numpy as np
import pytest

from kerasformer.tokenizers import Tokenizer
from kerasformer.training.masking import (
    corrupt_source,
    mask_tokens,
    pack_sentences,
    packed_sequences,
    special_token_ids,
    word_spans,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARACTERS = [chr(0x4E00 + i) for i in range(3000)]
TOKENIZER = Tokenizer({token: i for i, token in enumerate(SPECIALS + CHARACTERS)})
PAD, UNK, CLS, SEP, MASK = range(5)
VOCAB = TOKENIZER.vocab_size


def within(count, total, p, sigmas=5):
    """Whether `count` successes of `total` trials fit a rate of `p`."""
    return abs(count / total - p) <= sigmas * np.sqrt(p * (1 - p) / total)


def two_character_words(text):
    return [text[i:i + 2] for i in range(0, len(text), 2)]


def sample(rng, rows=2400, length=100):
    """Sequences framed by [CLS] ... [SEP], padded at random, with [UNK]s inside."""
    ids = rng.integers(5, VOCAB, (rows, length))
    ids[:, 0], ids[:, -1] = CLS, SEP
    ids[rng.random(ids.shape) < 0.01] = UNK
    for row, padding in enumerate(rng.integers(0, 20, rows)):
        ids[row, length - padding:] = PAD
    return ids


def test_special_token_ids():
    assert special_token_ids(TOKENIZER) == (PAD, UNK, CLS, SEP, MASK)


def test_mask_tokens_rates_80_10_10_of_15_percent():
    rng = np.random.default_rng(0)
    ids = sample(rng)
    inputs, targets = mask_tokens(ids, rng, VOCAB, MASK, special_ids=(PAD, UNK, CLS, SEP))
    assert inputs.shape == targets.shape == ids.shape
    assert inputs.dtype == targets.dtype == np.int32
    maskable = ids >= 5
    chosen = targets != 0
    assert maskable.sum() > 200_000
    assert within(chosen.sum(), maskable.sum(), 0.15)
    np.testing.assert_array_equal(targets[chosen], ids[chosen])
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])  # untouched elsewhere
    n = chosen.sum()
    masked = inputs[chosen] == MASK
    kept = inputs[chosen] == ids[chosen]
    ordinary = VOCAB - 5
    assert within(masked.sum(), n, 0.8)
    # a random id equals the original with probability 1 / ordinary
    assert within(kept.sum(), n, 0.1 + 0.1 / ordinary)
    assert within((~masked & ~kept).sum(), n, 0.1 * (1 - 1 / ordinary))


def test_no_special_token_is_masked_or_drawn():
    rng = np.random.default_rng(1)
    vocab_size, mask_id, specials = 14, 9, (0, 3, 7)  # specials not contiguous
    ids = rng.integers(0, vocab_size, 200_000)
    inputs, targets = mask_tokens(ids, rng, vocab_size, mask_id, rate=0.5,
                                  special_ids=specials)
    never = np.isin(ids, specials + (mask_id,))
    assert not targets[never].any()
    np.testing.assert_array_equal(inputs[never], ids[never])
    drawn = inputs[(targets != 0) & (inputs != mask_id) & (inputs != ids)]
    assert not np.isin(drawn, specials + (mask_id,)).any()
    # the random ids are uniform over the 10 ordinary ids
    ordinary = sorted(set(range(vocab_size)) - set(specials) - {mask_id})
    draws = inputs[(targets != 0) & (inputs != mask_id)]  # random draws and kept ids
    counts = np.array([(draws == i).sum() for i in ordinary])
    assert all(within(c, len(draws), 1 / len(ordinary)) for c in counts), counts


def test_whole_word_masking_masks_words_whole():
    rng = np.random.default_rng(2)
    length = 200_000
    ids = rng.integers(5, VOCAB, length)
    lengths = rng.integers(1, 5, length // 2)
    bounds = np.cumsum(lengths)
    bounds = bounds[bounds <= length]
    starts = np.concatenate([[0], bounds[:-1]])
    spans = list(zip(starts.tolist(), bounds.tolist()))
    ids[starts[::50]] = CLS  # a special inside a word is left alone, the rest goes
    inputs, targets = mask_tokens(ids, rng, VOCAB, MASK, special_ids=(PAD, UNK, CLS, SEP),
                                  spans=spans)
    chosen, maskable = targets[:bounds[-1]] != 0, ids[:bounds[-1]] != CLS
    # per word: any maskable position chosen, and all of them chosen
    some = np.maximum.reduceat(chosen & maskable, starts)
    every = np.minimum.reduceat(chosen | ~maskable, starts)
    has_maskable = np.maximum.reduceat(maskable, starts)
    np.testing.assert_array_equal(some[has_maskable], every[has_maskable])
    assert within(some[has_maskable].sum(), has_maskable.sum(), 0.15)  # the rate is per word
    assert not targets[ids == CLS].any()
    masked = inputs[targets != 0] == MASK  # 80 / 10 / 10 per token
    assert within(masked.sum(), len(masked), 0.8)


def test_mask_tokens_checks_its_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rate"):
        mask_tokens([5, 6], rng, VOCAB, MASK, rate=1.5, special_ids=())
    with pytest.raises(ValueError, match="overlaps"):
        mask_tokens([5, 6, 7], rng, VOCAB, MASK, special_ids=(), spans=[(0, 2), (1, 3)])
    with pytest.raises(ValueError, match="inside"):
        mask_tokens([5, 6, 7], rng, VOCAB, MASK, special_ids=(), spans=[(2, 4)])


def test_word_spans_groups_token_ids_by_word():
    text = "".join(CHARACTERS[:7])
    spans = word_spans(TOKENIZER, text, segment=two_character_words)
    assert spans == [[5, 6], [7, 8], [9, 10], [11]]
    # jieba by default: the words' ids in order cover the text's
    jieba_spans = word_spans(TOKENIZER, "今天天气不错，我们去公园散步")
    flat = [i for span in jieba_spans for i in span]
    assert flat == TOKENIZER.encode("今天天气不错，我们去公园散步")[0][1:-1]
    assert any(len(span) > 1 for span in jieba_spans)


def test_corrupt_source_rates_per_word():
    """stage1.py's masked_encode: per word 12 % all [MASK], 1.5 % kept, 1.5 % random
    ids in 1..V−1, the rest plain; targets on the first three."""
    rng = np.random.default_rng(3)
    words = 50
    counts = dict(mask=0, keep=0, random=0, plain=0)
    for _ in range(800):
        text = "".join(CHARACTERS[i] for i in rng.integers(0, len(CHARACTERS), 2 * words))
        source, target = corrupt_source(TOKENIZER, text, rng, maxlen=2 * words + 2,
                                        segment=two_character_words)
        original = TOKENIZER.encode(text)[0]
        assert len(source) == len(target) == len(original)
        for k in range(1, 2 * words, 2):
            word, corrupted, wanted = original[k:k + 2], source[k:k + 2], target[k:k + 2]
            if wanted == [0, 0]:
                assert corrupted == word
                counts["plain"] += 1
                continue
            assert wanted == word
            if corrupted == [MASK, MASK]:
                counts["mask"] += 1
            elif corrupted == word:
                counts["keep"] += 1
            else:
                assert all(1 <= i < VOCAB for i in corrupted)
                counts["random"] += 1
    total = sum(counts.values())
    assert total == 800 * words
    for name, rate in dict(mask=0.12, keep=0.015, random=0.015, plain=0.85).items():
        assert within(counts[name], total, rate), (name, counts)


def test_corrupt_source_truncates_before_sep():
    rng = np.random.default_rng(4)
    text = "".join(CHARACTERS[:100])
    source, target = corrupt_source(TOKENIZER, text, rng, maxlen=64,
                                    segment=two_character_words)
    assert len(source) == len(target) == 64
    assert source[0] == CLS and source[-1] == SEP
    assert target[0] == 0 and target[-1] == 0
    assert all(t in (0, s) for s, t in zip(TOKENIZER.encode(text)[0][:63], target))
    short, short_target = corrupt_source(TOKENIZER, text[:5], rng, rate=0.0,
                                         segment=two_character_words)
    assert short == TOKENIZER.encode(text[:5])[0] and short_target == [0] * 7


def test_pack_sentences_keeps_every_token():
    rng = np.random.default_rng(5)
    sentences = [[CLS, *rng.integers(5, VOCAB, n).tolist(), SEP]
                 for n in rng.integers(0, 13, 300)]
    sentences.append([CLS, *range(5, 105), SEP])  # longer than maxlen: cut, not dropped
    packed = list(pack_sentences(iter(sentences), maxlen=32))
    assert all(len(p) <= 32 and p[0] == CLS and p[-1] == SEP for p in packed)
    bodies = [i for s in sentences for i in s[1:-1]]
    assert [i for p in packed for i in p if i != CLS and i != SEP] == bodies
    # [SEP] closes each sentence (or piece) inside the sequence
    pieces = sum(-(-(len(s) - 2) // 30) for s in sentences)  # empty ones: none
    assert sum(p.count(SEP) for p in packed) == pieces
    assert len(packed) < pieces / 3  # packed, not one sentence each
    with pytest.raises(ValueError, match="maxlen"):
        list(pack_sentences(sentences, maxlen=2))


def test_packed_sequences_carry_the_words():
    a = [CLS, 5, 6, 7, 8, 9, SEP]  # words 5 6 | 7 | 8 9
    b = [CLS, 10, 11, 12, SEP]  # words 10 11 12
    packed = list(packed_sequences([(a, [2, 1, 2]), (b, [3])], maxlen=12))
    assert packed == [([CLS, 5, 6, 7, 8, 9, SEP, 10, 11, 12, SEP], [(1, 3), (4, 6), (7, 10)])]
    # a word cut between two pieces of a long sentence becomes two words
    pieces = list(packed_sequences([(b, [3])], maxlen=4))
    assert pieces == [([CLS, 10, 11, SEP], [(1, 3)]), ([CLS, 12, SEP], [])]
    # pack=False: one sentence per sequence
    alone = list(packed_sequences([(a, None), (b, None)], maxlen=12, pack=False))
    assert alone == [(a, None), (b, None)]
