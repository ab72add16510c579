"""Every trainable model of the package trains under `model.fit`.

Tiny models (hidden 32, 2 blocks, vocabulary 50, sequences of 8, batches of 4) of each
architecture with the heads that matter, dropout on, compiled with
`kerasformer.optimizers.Adam` and a real loss, jit-compiled on JAX and TensorFlow and
eager on PyTorch: the loss of a fixed batch falls and stays finite. Then mixed
precision (bfloat16; float16 with `LossScaleOptimizer`) and gradient checkpointing
(`remat=True`: the same update as without, and less memory on JAX).

Every case runs on JAX; the RoFormer-Sim case and the remat update also under
TensorFlow and PyTorch (tests/test_backends.py). Few models, few steps, each built once.
"""
import functools
import typing

import keras
import numpy as np
import pytest
from keras import ops

from kerasformer import build_transformer_model
from kerasformer.optimizers import Adam


BATCH, LENGTH, VOCAB = 4, 8, 50
# Hidden dropout on; attention dropout only where it is the point (remat), as every
# dropout site costs XLA compile time (a random-bits kernel each).
TINY = dict(
    vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, hidden_act="gelu", dropout_rate=0.1,
)
JIT = keras.backend.backend() != "torch"  # torch trains eagerly

_rng = np.random.default_rng(0)
TOKENS = _rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32")
TOKENS[0, -2:] = 0  # padding: the loss must cope with the model's mask
SEGMENTS = np.zeros((BATCH, LENGTH), "int32")
SEGMENTS[:, LENGTH // 2:] = 1  # UniLM: source | target
NEXT_TOKENS = np.concatenate([TOKENS[:, 1:], np.zeros((BATCH, 1), "int32")], axis=1)
LABELS = np.array([0, 1, 0, 1], "int32")


def similarity_loss(y_true, y_pred):
    """SimBERT / RoFormer-Sim's in-batch loss on pooled vectors: rows 2k and 2k+1
    are each other's positive, every other row a negative."""
    vectors = y_pred / ops.sqrt(ops.sum(ops.square(y_pred), axis=1, keepdims=True) + 1e-12)
    scores = ops.matmul(vectors, ops.transpose(vectors)) * 20.0
    scores = scores - ops.eye(BATCH, dtype=scores.dtype) * 1e12
    partners = ops.arange(BATCH) + 1 - 2 * (ops.arange(BATCH) % 2)
    return keras.losses.sparse_categorical_crossentropy(partners, scores, from_logits=True)


def sparse_ce(from_logits):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def classifier(model):
    """A softmax classifier on the pooler: `[class probabilities, mlm]`."""
    pooled, mlm = model.outputs
    probabilities = keras.layers.Dense(2, activation="softmax", name="Classifier")(pooled)
    return keras.Model(model.inputs, [probabilities, mlm])


class Case(typing.NamedTuple):
    architecture: str
    arguments: dict
    loss: object
    targets: object
    wrap: object = None  # model -> the model to train
    policy: str = None  # global dtype policy while the model is built


# One model per architecture covers its heads: the MLM head as probabilities
# (`with_mlm=True` ends in a float32 softmax: from_logits=False) and as logits
# ("linear": from_logits=True), the three applications, the tanh pooler under a
# classifier, RoFormer-Sim's linear pooler with its in-batch loss. Two train in mixed
# precision (float16 with loss scaling) and one rematerialises its blocks, so that
# every compiled train step counts.
CASES = {
    "bert-pooler-mlm": Case(
        "bert", dict(with_pool=True, with_mlm=True),
        ["sparse_categorical_crossentropy", sparse_ce(False)], [LABELS, TOKENS], classifier,
    ),
    "roformer-sim-unilm-remat": Case(
        "roformer", dict(application="unilm", with_pool="linear", remat=True),
        [similarity_loss, sparse_ce(False)], [LABELS, NEXT_TOKENS],
    ),
    "roformer_v2-lm-bfloat16": Case(
        "roformer_v2", dict(application="lm", with_mlm=True), sparse_ce(False), NEXT_TOKENS,
        policy="mixed_bfloat16",
    ),
    "gau_alpha-unilm-float16": Case(
        "gau_alpha", dict(application="unilm", with_mlm="linear", attention_key_size=16),
        sparse_ce(True), NEXT_TOKENS, policy="mixed_float16",
    ),
}


@functools.lru_cache(maxsize=None)
def trained(name, steps=6):
    """`(model, losses)` of `steps` epochs on one fixed batch; each case built,
    compiled and fitted once per module."""
    case = CASES[name]
    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_dtype_policy(case.policy or previous)
    try:
        model = build_transformer_model(model=case.architecture, **TINY, **case.arguments)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    if case.wrap is not None:
        model = case.wrap(model)
    optimizer = Adam(learning_rate=1e-2)
    if case.policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=case.loss, jit_compile=JIT)
    history = model.fit(
        [TOKENS, SEGMENTS], case.targets, batch_size=BATCH, epochs=steps, shuffle=False,
        verbose=0,
    )
    return model, history.history["loss"]


# Every case on JAX; on tensorflow and torch (tests/test_backends.py) the RoFormer-Sim
# case, which has the most parts (UniLM, pooler, in-batch loss, remat), within CI's time.
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.backends) if name == "roformer-sim-unilm-remat" else name
    for name in sorted(CASES)
])
def test_loss_falls_under_fit(name):
    model, losses = trained(name)
    assert np.isfinite(losses).all(), losses
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
    assert any(isinstance(layer, keras.layers.Dropout) for layer in model._flatten_layers())


def test_mlm_head_gives_probabilities_or_logits():
    """`with_mlm=True` ends in a float32 softmax (a loss takes from_logits=False),
    "linear" in logits (from_logits=True)."""
    probabilities = trained("roformer_v2-lm-bfloat16")[0].get_layer("Output-MLM-Activation")
    assert probabilities.activation is keras.activations.softmax
    assert probabilities.compute_dtype == "float32"
    logits = trained("gau_alpha-unilm-float16")[0].get_layer("Output-MLM-Activation")
    assert logits.activation is keras.activations.linear


@pytest.mark.parametrize("name", ["roformer_v2-lm-bfloat16", "gau_alpha-unilm-float16"])
def test_mixed_precision_keeps_float32_where_it_matters(name):
    """Low-precision blocks, float32 weights, a float32 output; the global policy is
    restored (the models keep theirs); float16 trains through loss scaling."""
    policy = CASES[name].policy
    model, _ = trained(name)
    assert keras.config.dtype_policy().name == "float32"
    compute = policy.split("_")[1]
    blocks = [layer for layer in model.layers if layer.name.startswith("Transformer-")]
    assert blocks and all(layer.compute_dtype == compute for layer in blocks)
    assert all(layer.variable_dtype == "float32" for layer in model.layers)
    assert all(w.dtype == "float32" for w in model.weights)
    # The output layer (softmax / logits) computes in float32, so does the loss.
    assert model.layers[-1].compute_dtype == "float32"
    assert keras.backend.standardize_dtype(model.outputs[0].dtype) == "float32"
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert np.isfinite(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale))


# ------------------------------------------------------------ gradient checkpointing

# A UniLM GAU-α (rotary positions, a seq2seq mask) of 3 blocks on longer sequences,
# with hidden and attention dropout.
REMAT_TOKENS = np.tile(TOKENS, (1, 4))
REMAT_SEGMENTS = np.repeat(SEGMENTS, 4, axis=1)


def remat_model(remat):
    keras.utils.set_random_seed(1)  # the same weights and dropout seeds either way
    return build_transformer_model(
        model="gau_alpha", application="unilm", with_mlm=True, attention_key_size=16,
        remat=remat,
        **dict(TINY, num_hidden_layers=3, dropout_rate=0.3, attention_dropout_rate=0.3),
    )


@functools.lru_cache(maxsize=None)
def jax_gradient(remat):
    """JAX: `(gradient by path, temp bytes)` of the jit-compiled gradient of the loss,
    the model called as the JAX trainer calls it (`stateless_call`, training)."""
    import jax

    model = remat_model(remat)
    trainable = [v.value for v in model.trainable_variables]
    other = [v.value for v in model.non_trainable_variables]  # the dropout seeds

    def loss(trainable):
        probabilities, _ = model.stateless_call(
            trainable, other, [REMAT_TOKENS, REMAT_SEGMENTS], training=True
        )
        return ops.mean(keras.losses.sparse_categorical_crossentropy(REMAT_TOKENS, probabilities))

    compiled = jax.jit(jax.grad(loss)).lower(trainable).compile()
    gradient = {v.path: np.asarray(g) for v, g in zip(model.trainable_variables,
                                                        compiled(trainable))}
    return gradient, compiled.memory_analysis().temp_size_in_bytes


def sgd_update(remat):
    """Weight deltas of one `SGD(learning_rate=1)` step with dropout on; on JAX the
    negative gradient, which that step is."""
    if keras.backend.backend() == "jax":
        return {path: -g for path, g in jax_gradient(remat)[0].items()}
    model = remat_model(remat)
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0),
                  loss="sparse_categorical_crossentropy", jit_compile=JIT)
    keras.utils.set_random_seed(2)  # torch's dropout draws from its global generator
    model.train_on_batch([REMAT_TOKENS, REMAT_SEGMENTS], REMAT_TOKENS)
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    return {w.path: a - b for w, a, b in zip(model.trainable_weights, after, before)}


@pytest.mark.backends
def test_remat_gives_the_same_update_with_dropout():
    """Dropout replays in the recomputed blocks: the update is the plain model's.
    (A recomputation with other masks, or none, would change the update of every
    block weight by about its own size.)"""
    plain, remat = sgd_update(remat=False), sgd_update(remat=True)
    assert sorted(plain) == sorted(remat)
    assert max(np.abs(delta).max() for delta in plain.values()) > 1e-2  # a real step
    for path, delta in plain.items():
        np.testing.assert_allclose(remat[path], delta, atol=1e-5, rtol=1e-5, err_msg=path)


def test_remat_round_trips_through_the_config():
    model = trained("roformer-sim-unilm-remat")[0]
    assert model.transformer.remat is True and model.get_config()["remat"] is True
    clone = type(model).from_config(model.get_config())
    assert clone.transformer.remat is True
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]
    assert build_transformer_model(model="bert", **TINY).get_config()["remat"] is False


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA memory analysis (JAX)")
def test_remat_needs_less_memory_for_the_gradient():
    plain, remat = jax_gradient(False)[1], jax_gradient(True)[1]
    assert remat < 0.7 * plain, (plain, remat)
