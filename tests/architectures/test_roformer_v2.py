"""RoFormerV2 and GAU-α specifics; parity with bert4keras is in test_parity.py."""
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.architectures.roformer_v2 import DepthScaledTruncatedNormal
from tests.helpers import to_numpy

TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, hidden_act="relu")


@pytest.mark.parametrize("order", [2, 3])
def test_initializer_scale(order):
    initializer = DepthScaledTruncatedNormal(num_layers=24, order=order, seed=0)
    for shape, fan in [((512, 768), 512), ((12000, 96), 96), ((2, 768), 768)]:
        values = to_numpy(initializer(shape))
        stddev = 1.13684723 / fan**0.5 * 24 ** (-1 / order)
        assert np.abs(values).max() <= 2 * stddev + 1e-6  # truncated at 2σ
        # 1.13684723 undoes the truncation: the spread is σ / 1.1368...
        assert abs(values.std() * 1.13684723 / stddev - 1) < 0.05


def test_no_biases_no_norm_parameters():
    model = kf.build_transformer_model(**TINY, model="roformer_v2", with_mlm=True)
    names = [w.path for w in model.weights]
    assert not [n for n in names if n.endswith(("bias", "beta", "gamma"))]
    assert "Output-MLM-Activation" in [layer.name for layer in model.layers]


def test_gau_alpha_needs_no_heads_and_takes_the_key_size():
    config = {k: v for k, v in TINY.items() if k != "num_attention_heads"}
    model = kf.build_transformer_model(**config, model="gau_alpha", attention_key_size=8)
    unit = model.get_layer("Transformer-0-GatedAttentionUnit")
    assert unit.key_size == 8 and unit.normalization == "softmax_plus" and unit.length_floor == 1
    model = kf.build_transformer_model(**config, model="gau_alpha", attention_key_size=8,
                                       length_floor=16)
    assert model.get_layer("Transformer-1-GatedAttentionUnit").length_floor == 16
    with pytest.raises(ValueError, match="attention_key_size"):
        kf.build_transformer_model(**config, model="gau_alpha")


def test_pooler_is_refused():
    with pytest.raises(ValueError, match="no pooler"):
        kf.build_transformer_model(**TINY, model="roformer_v2", with_pool="linear")
