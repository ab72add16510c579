import numpy as np
import pytest

from kerasformer.layers import AttentionMask, attention_mask, causal_mask, padding_mask, unilm_mask
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
