"""Writes tests/fixtures/compat/layers.npz: bert4keras 0.11.5's own outputs for the
compat layers and backend functions of kerasformer (tests/layers/test_compat_layers.py,
tests/test_backend_functions.py).

Runs in the reference environment only (../shared/reference/README.md):

    TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \
        tools/make_compat_layer_fixtures.py

Every input and weight is drawn from a fixed numpy seed and every expected value is
computed by bert4keras (or by tf.keras' Keras 2 backend for the `K_*` entries); nothing
here imports kerasformer.
"""
import json
import pathlib
import sys

import numpy as np
import tensorflow as tf

import bert4keras
from bert4keras.backend import K
from bert4keras.backend import attention_normalize
from bert4keras.backend import multilabel_categorical_crossentropy
from bert4keras.backend import piecewise_linear
from bert4keras.backend import sequence_masking
from bert4keras.backend import sparse_multilabel_categorical_crossentropy
from bert4keras.layers import ConditionalRandomField
from bert4keras.layers import EfficientGlobalPointer
from bert4keras.layers import GlobalPointer

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "compat" / "layers.npz"
rng = np.random.RandomState(20240611)
fixture = {}


def normal(*shape, scale=1.0):
    return (rng.randn(*shape) * scale).astype("float32")


def lengths_to_mask(lengths, length):
    return np.arange(length)[None, :] < np.array(lengths)[:, None]


def value(x):
    return np.asarray(K.eval(x) if tf.is_tensor(x) else x)


# --- ConditionalRandomField -------------------------------------------------------------
labels_count, crf_length = 5, 6
emissions = normal(3, crf_length, labels_count)
crf_mask = lengths_to_mask([6, 4, 1], crf_length)
lr_multiplier = 10
crf = ConditionalRandomField(lr_multiplier=lr_multiplier)
crf_output = crf(tf.constant(emissions), mask=tf.constant(crf_mask))
trans_variable = normal(labels_count, labels_count, scale=0.05)
crf.set_weights([trans_variable])
crf_output = crf(tf.constant(emissions), mask=tf.constant(crf_mask))
sparse_labels = rng.randint(0, labels_count, size=(3, crf_length)).astype("float32")
dense_labels = np.eye(labels_count, dtype="float32")[
    rng.randint(0, labels_count, size=(3, crf_length))
]
fixture.update(
    crf_emissions=emissions,
    crf_mask=crf_mask,
    crf_lr_multiplier=np.array(lr_multiplier),
    crf_trans_variable=trans_variable,
    crf_trans=value(crf.trans),
    crf_output=value(crf_output),
    crf_sparse_labels=sparse_labels,
    crf_dense_labels=dense_labels,
    crf_sparse_loss=value(crf.sparse_loss(tf.constant(sparse_labels), crf_output)),
    crf_dense_loss=value(crf.dense_loss(tf.constant(dense_labels), crf_output)),
    crf_sparse_accuracy=value(crf.sparse_accuracy(tf.constant(sparse_labels), crf_output)),
    crf_dense_accuracy=value(crf.dense_accuracy(tf.constant(dense_labels), crf_output)),
)

# --- GlobalPointer / EfficientGlobalPointer ---------------------------------------------
heads, head_size, hidden, gp_length = 3, 8, 16, 7
gp_inputs = normal(2, gp_length, hidden)
gp_mask = lengths_to_mask([7, 4], gp_length)
gp_kernel = normal(hidden, heads * head_size * 2, scale=0.3)
gp_bias = normal(heads * head_size * 2, scale=0.1)
fixture.update(gp_inputs=gp_inputs, gp_mask=gp_mask, gp_kernel=gp_kernel, gp_bias=gp_bias)
for key, options, mask in [
    ("gp_scores", {}, gp_mask),
    ("gp_scores_no_rope_no_tril", {"RoPE": False, "tril_mask": False}, gp_mask),
    ("gp_scores_no_mask", {}, None),
]:
    layer = GlobalPointer(heads, head_size, **options)
    layer(tf.constant(gp_inputs))
    layer.set_weights([gp_kernel, gp_bias])
    mask_tensor = None if mask is None else tf.constant(mask)
    fixture[key] = value(layer(tf.constant(gp_inputs), mask=mask_tensor))

egp = EfficientGlobalPointer(heads, head_size)
egp(tf.constant(gp_inputs))
egp_weights = {
    "egp_p_kernel": normal(hidden, head_size * 2, scale=0.3),
    "egp_p_bias": normal(head_size * 2, scale=0.1),
    "egp_q_kernel": normal(head_size * 2, heads * 2, scale=0.3),
    "egp_q_bias": normal(heads * 2, scale=0.1),
}
# p_dense's kernel and bias, then q_dense's (bert4keras leaves them named dense, dense_1).
assert [tuple(w.shape) for w in egp.weights] == [w.shape for w in egp_weights.values()]
egp.set_weights(list(egp_weights.values()))
fixture.update(egp_weights)
fixture["egp_scores"] = value(egp(tf.constant(gp_inputs), mask=tf.constant(gp_mask)))

# --- multi-label cross-entropies --------------------------------------------------------
mcce_pred = normal(4, 9, scale=2.0)
mcce_pred[1, [2, 5]] = -np.inf
mcce_pred[3, 0] = -np.inf
mcce_true = rng.choice([0.0, 1.0, 0.3, 0.8], size=(4, 9)).astype("float32")
mcce_true[2] = 0.0  # a row without positives
fixture.update(
    mcce_y_true=mcce_true,
    mcce_y_pred=mcce_pred,
    mcce_loss=value(
        multilabel_categorical_crossentropy(tf.constant(mcce_true), tf.constant(mcce_pred))
    ),
)

smcce_pred = normal(2, 3, 10, scale=2.0)
smcce_true = np.array(
    [[[3, 7, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], [[9, 4, 2, 5], [8, 8, 0, 0], [6, 1, 0, 0]]],
    dtype="int32",
)
fixture.update(smcce_y_true=smcce_true, smcce_y_pred=smcce_pred)
for mask_zero in (False, True):
    fixture[f"smcce_loss_mask_zero_{mask_zero}"] = value(
        sparse_multilabel_categorical_crossentropy(
            tf.constant(smcce_true), tf.constant(smcce_pred), mask_zero
        )
    )

# GPLinker's use: GlobalPointer scores (with -inf) flattened over spans, label spans
# encoded as start * seq + end, padding span 0.
spans = np.array(
    [[[[0, 2], [3, 3], [0, 0]], [[1, 5], [0, 0], [0, 0]], [[6, 6], [2, 4], [4, 6]]],
     [[[1, 1], [0, 0], [0, 0]], [[0, 3], [2, 2], [0, 0]], [[0, 0], [0, 0], [0, 0]]]],
    dtype="float32",
)  # (batch, heads, spans, 2)
span_ids = spans[..., 0] * gp_length + spans[..., 1]
flat_scores = fixture["gp_scores"].reshape(2, heads, gp_length * gp_length)
fixture.update(
    smcce_gp_y_true=span_ids,
    smcce_gp_loss=value(
        sparse_multilabel_categorical_crossentropy(
            tf.constant(span_ids), tf.constant(flat_scores), True
        )
    ),
)

# --- sequence_masking -------------------------------------------------------------------
seq_mask = lengths_to_mask([5, 3], 5)
x3 = normal(2, 5, 3)
x4 = normal(2, 4, 5, 5)
bool_bias = np.triu(np.ones((5, 5), dtype=bool))
float_bias = normal(5, 5)
fixture.update(
    seqmask_mask=seq_mask, seqmask_x3=x3, seqmask_x4=x4,
    seqmask_bool_bias=bool_bias, seqmask_float_bias=float_bias,
    seqmask_default=value(sequence_masking(tf.constant(x3), tf.constant(seq_mask))),
    seqmask_neg_inf_axis1=value(
        sequence_masking(tf.constant(x3), tf.constant(seq_mask), -np.inf, 1)
    ),
    seqmask_axes_2_3_bool_bias=value(
        sequence_masking(
            tf.constant(x4), tf.constant(seq_mask), -np.inf, [2, 3], tf.constant(bool_bias)
        )
    ),
    seqmask_last_axis_float_bias=value(
        sequence_masking(
            tf.constant(x4), tf.constant(seq_mask), -1e4, -1, tf.constant(float_bias)
        )
    ),
    seqmask_float_mask_axis2=value(
        sequence_masking(tf.constant(x4), tf.constant(seq_mask.astype("float32")), 0, 2)
    ),
    seqmask_no_mask_float_bias=value(
        sequence_masking(tf.constant(x4), None, -np.inf, None, tf.constant(float_bias))
    ),
)

# --- attention_normalize (bert4keras 0.11.5: softmax_plus floor 16) ----------------------
logits = normal(2, 2, 5, 5, scale=2.0)
fixture["attn_logits"] = logits
for method in ("softmax", "softmax_plus", "squared_relu"):
    fixture[f"attn_{method}"] = value(
        attention_normalize(tf.constant(logits), tf.constant(seq_mask), -1, method)
    )

# --- piecewise_linear -------------------------------------------------------------------
steps = np.array([0, 1, 250, 500, 999, 1000, 1001, 1500, 2000, 2500, 10000], dtype="float32")
fixture["pwl_steps"] = steps
for key, schedule, from_zero in [
    ("pwl_warmup_decay", {1000: 1.0, 2000: 0.1}, True),
    ("pwl_warmup_decay_not_from_zero", {1000: 1.0, 2000: 0.1}, False),
    ("pwl_from_key_zero", {0: 0.5, 100: 1.0, 1500: 0.0}, True),
]:
    fixture[key] = value(piecewise_linear(tf.constant(steps), schedule, from_zero))

# --- Keras 2 backend semantics (tf.keras' K) --------------------------------------------
a = normal(2, 3, 4)
b = normal(2, 4, 5)
c = normal(2, 3)
d = normal(2, 3)
e = normal(2, 5, 4)
fixture.update(K_a=a, K_b=b, K_c=c, K_d=d, K_e=e)
fixture["K_batch_dot_default"] = value(K.batch_dot(a, b))
fixture["K_batch_dot_2d"] = value(K.batch_dot(c, d))
fixture["K_batch_dot_axes_1"] = value(K.batch_dot(c, d, axes=1))
fixture["K_batch_dot_axes_2_2"] = value(K.batch_dot(a, e, axes=(2, 2)))
f = normal(2, 4)
fixture["K_f"] = f
fixture["K_batch_dot_3d_2d"] = value(K.batch_dot(a, f))
fixture["K_batch_dot_axes_1_1"] = value(K.batch_dot(a, c, axes=(1, 1)))
fixture["K_dot_3d_2d"] = value(K.dot(tf.constant(a), tf.constant(b[0])))
fixture["K_dot_3d_3d"] = value(K.dot(tf.constant(a), tf.constant(b)))
condition = np.array([[True, False, True], [False, False, True]])  # rank 2 < rank 3
fixture["K_switch_lower_rank"] = value(
    K.switch(tf.constant(condition), tf.constant(a), tf.constant(-a))
)
fixture["K_switch_condition"] = condition
fixture["K_l2_normalize_axis_1"] = value(K.l2_normalize(tf.constant(a), axis=1))
fixture["K_l2_normalize_all"] = value(K.l2_normalize(tf.constant(a)))
probabilities = tf.nn.softmax(tf.constant(a), axis=-1)
one_hot = np.eye(4, dtype="float32")[rng.randint(0, 4, size=(2, 3))]
sparse = one_hot.argmax(-1)
fixture["K_probabilities"] = value(probabilities)
fixture["K_one_hot"] = one_hot
fixture["K_categorical_crossentropy"] = value(
    K.categorical_crossentropy(tf.constant(one_hot), probabilities)
)
fixture["K_categorical_crossentropy_logits"] = value(
    K.categorical_crossentropy(tf.constant(one_hot), tf.constant(a), from_logits=True)
)
fixture["K_sparse_categorical_crossentropy"] = value(
    K.sparse_categorical_crossentropy(tf.constant(sparse.astype("float32")), probabilities)
)
sigmoids = tf.sigmoid(tf.constant(a))
binary = (rng.rand(2, 3, 4) > 0.5).astype("float32")
fixture["K_binary_targets"] = binary
fixture["K_binary_crossentropy"] = value(K.binary_crossentropy(tf.constant(binary), sigmoids))
fixture["K_binary_crossentropy_logits"] = value(
    K.binary_crossentropy(tf.constant(binary), tf.constant(a), from_logits=True)
)
fixture["K_repeat_elements"] = value(K.repeat_elements(tf.constant(a), 2, 1))
fixture["K_cumsum_default"] = value(K.cumsum(tf.constant(a)))
fixture["K_hard_sigmoid"] = value(K.hard_sigmoid(tf.constant(a * 3)))
fixture["K_sqrt"] = value(K.sqrt(tf.constant(a)))
fixture["K_relu_options"] = value(K.relu(tf.constant(a), alpha=0.1, max_value=0.5, threshold=0.2))
fixture["K_relu_leaky"] = value(K.relu(tf.constant(a), alpha=0.3))
fixture["K_logsumexp_axis_1"] = value(K.logsumexp(tf.constant(a), axis=1))
fixture["K_clip_no_max"] = value(K.clip(tf.constant(a), -0.5, None))
fixture["K_repeat"] = value(K.repeat(tf.constant(c), 3))
fixture["K_reshape_pairs"] = value(K.reshape(tf.constant(normal(2, 3, 8)), (2, -1), 2))
fixture["K_reshape_pairs_input"] = fixture["K_reshape_pairs"].reshape(2, 3, 8)
fixture["K_flatten_range"] = value(K.flatten(tf.constant(a), 1, 3))
fixture["K_where_scalar"] = value(K.where(tf.constant(a > 0), tf.constant(a), 0))

fixture["__meta__"] = np.array(json.dumps({
    "command": "TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python "
               "tools/make_compat_layer_fixtures.py",
    "bert4keras": bert4keras.__version__,
    "tensorflow": tf.__version__,
    "python": sys.version.split()[0],
}))
OUT.parent.mkdir(parents=True, exist_ok=True)
np.savez_compressed(OUT, **fixture)
print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(fixture)} arrays)")
