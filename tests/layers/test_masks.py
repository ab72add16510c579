import numpy as np
import pytest

from kerasformer.layers import (
    AttentionMask,
    UniAEMask,
    attention_mask,
    causal_mask,
    padding_mask,
    uniae_attention_mask,
    uniae_mask,
    unilm_mask,
)
from tests.helpers import run_layer_test, to_numpy

TOKENS = np.array([[2, 5, 6, 3, 7, 3, 0], [0, 5, 3, 0, 0, 0, 0]], dtype="int32")
SEGMENTS = np.array([[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0]], dtype="int32")


def test_padding_masks_id_zero_but_never_the_first_position():
    np.testing.assert_array_equal(
        to_numpy(padding_mask(TOKENS)), [[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0]]
    )


def test_causal():
    positions = np.arange(4)
    np.testing.assert_array_equal(to_numpy(causal_mask(positions, positions)), np.tril(np.ones((4, 4))))


def test_unilm_by_hand():
    # source = first 4 tokens (bidirectional), target = tokens 4 and 5 (causal),
    # trailing padding keeps the last level.
    expected = np.array(
        [
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1, 1],
        ]
    )
    np.testing.assert_array_equal(to_numpy(unilm_mask(SEGMENTS))[0], expected)
    full = to_numpy(attention_mask(TOKENS, SEGMENTS, "unilm"))[0]
    np.testing.assert_array_equal(full, expected * [1, 1, 1, 1, 1, 1, 0])


def test_applications(tmp_path):
    encoder = run_layer_test(AttentionMask, {}, TOKENS, expected_shape=(2, 1, 7))
    np.testing.assert_array_equal(to_numpy(encoder)[:, 0], to_numpy(padding_mask(TOKENS)))
    lm = to_numpy(attention_mask(TOKENS, application="lm"))
    np.testing.assert_array_equal(lm[1], np.tril(np.ones((7, 7))) * [1, 1, 1, 0, 0, 0, 0])
    run_layer_test(AttentionMask, {"application": "unilm"}, TOKENS, {"segment_ids": SEGMENTS},
                   expected_shape=(2, 7, 7), tmp_path=tmp_path)


def test_unknown_application():
    with pytest.raises(ValueError, match="application"):
        AttentionMask("seq2seq")
    with pytest.raises(ValueError, match="segment ids"):
        attention_mask(TOKENS, application="unilm")


# UniVAE's UniAE masks: a sentence of 3 tokens + 1 pad, twice ([x ; x]); the second
# row is a sentence of 2 tokens + 2 pads. Padded keys: positions 3 and 7 (row 0),
# 2, 3, 6, 7 (row 1).
UNIAE_TOKENS = np.array([[2, 5, 3, 0, 2, 5, 3, 0], [2, 3, 0, 0, 2, 3, 0, 0]], dtype="int32")
UNIAE_SEGMENTS = np.array([[0, 0, 0, 0, 1, 1, 1, 1]] * 2, dtype="int32")
# uniae_mask alone (no padding): first copy bidirectional within itself, second copy
# causal within itself, nothing across.
UNIAE = np.array(
    [
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 1, 1, 1, 1],
    ]
)
UNIAE_PADDED = [
    np.array(
        [
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 1, 1, 1, 0],
        ]
    ),
    np.array(
        [
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
        ]
    ),
]
# see_first: key 0 ([CLS] of the first copy, where UniVAE puts the latent) is visible to
# every query, the only path from the first copy to the second.
UNIAE_FIRST_PADDED = [
    np.array(
        [
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 1, 0, 0, 0],
            [1, 0, 0, 0, 1, 1, 0, 0],
            [1, 0, 0, 0, 1, 1, 1, 0],
            [1, 0, 0, 0, 1, 1, 1, 0],
        ]
    ),
    np.array(
        [
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 1, 0, 0, 0],
            [1, 0, 0, 0, 1, 1, 0, 0],
            [1, 0, 0, 0, 1, 1, 0, 0],
            [1, 0, 0, 0, 1, 1, 0, 0],
        ]
    ),
]


def test_uniae_by_hand():
    plain = to_numpy(uniae_mask(UNIAE_SEGMENTS))
    assert plain.dtype == bool and plain.shape == (2, 8, 8)
    np.testing.assert_array_equal(plain[0], UNIAE)
    first = UNIAE.copy()
    first[:, 0] = 1
    np.testing.assert_array_equal(to_numpy(uniae_mask(UNIAE_SEGMENTS, see_first=True))[0], first)
    np.testing.assert_array_equal(
        to_numpy(uniae_attention_mask(UNIAE_TOKENS, UNIAE_SEGMENTS)), UNIAE_PADDED
    )
    np.testing.assert_array_equal(
        to_numpy(uniae_attention_mask(UNIAE_TOKENS, UNIAE_SEGMENTS, see_first=True)),
        UNIAE_FIRST_PADDED,
    )


def test_uniae_matches_its_definition():
    # random [x ; x] batches with random lengths, against the definition elementwise
    rng = np.random.default_rng(0)
    tokens, segments = [], []
    for _ in range(6):
        half = np.zeros(6, dtype="int32")
        half[: rng.integers(1, 7)] = rng.integers(1, 50)
        tokens.append(np.concatenate([half, half]))
        segments.append(np.repeat([0, 1], 6))
    tokens, segments = np.array(tokens), np.array(segments, dtype="int32")
    level = np.cumsum(segments, axis=1)
    for see_first in (False, True):
        actual = to_numpy(uniae_attention_mask(tokens, segments, see_first))
        for b, i, j in np.ndindex(actual.shape):
            visible = segments[b, i] == segments[b, j] and level[b, j] <= level[b, i]
            visible = (visible or (see_first and j == 0)) and (j == 0 or tokens[b, j] != 0)
            assert actual[b, i, j] == visible, (see_first, b, i, j)


def test_uniae_layer(tmp_path):
    for see_first, expected in ((False, UNIAE_PADDED), (True, UNIAE_FIRST_PADDED)):
        output = run_layer_test(UniAEMask, {"see_first": see_first}, UNIAE_TOKENS,
                                {"segment_ids": UNIAE_SEGMENTS}, expected_shape=(2, 8, 8),
                                tmp_path=tmp_path)
        np.testing.assert_array_equal(to_numpy(output), expected)
    assert UniAEMask(see_first=True).get_config()["see_first"] is True
    with pytest.raises(ValueError, match="segment ids"):
        UniAEMask()(UNIAE_TOKENS)

