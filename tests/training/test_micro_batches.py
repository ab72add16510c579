"""`MicroBatched`: k micro-batches give the parameter gradient of one batch of k·b.

Each check trains one step with SGD(learning_rate=1), so the weight change is minus
the gradient, through the backend's own compiled `train_on_batch` (jit on jax and
tensorflow, eager on torch). The model is a tiny RoFormer with UniLM mask, linear
pooler and MLM head, trained on SimBERT's loss: the contrastive loss (in-batch CE on the
pooled vectors) depends on the whole batch, the seq2seq loss is an ordinary per-sample
loss; a wrong gradient in either shows in the sum.
"""
import functools

import keras
import numpy as np
import pytest
from keras import ops

from kerasformer.models import build_transformer_model
from kerasformer.training import MicroBatched, in_batch_contrastive, seq2seq_cross_entropy
from kerasformer.training.replay import seed_generators

BATCH, LENGTH, VOCAB = 8, 12, 40
JIT = keras.backend.backend() != "torch"

_rng = np.random.default_rng(0)
TOKENS = _rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32")
SEGMENTS = (np.arange(LENGTH)[None, :] >= 6).repeat(BATCH, 0).astype("int32")
LABELS = np.stack([TOKENS, SEGMENTS], axis=-1)


def contrastive(y_true, y_pred):
    return in_batch_contrastive(y_pred, scale=20.0)


def seq2seq(y_true, y_pred):
    return seq2seq_cross_entropy(y_true[..., 0], y_true[..., 1], y_pred)




class Unmasked(keras.Model):
    """The plain model, minus the Keras mask its MLM output carries (MicroBatched's
    outputs carry none; these losses mask by segment themselves)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def call(self, inputs, training=None):
        return [ops.add(output, 0.0) for output in self.inner(inputs, training=training)]


@functools.lru_cache(maxsize=None)
def model(dropout):
    keras.utils.set_random_seed(3)
    built = build_transformer_model(
        model="roformer", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, hidden_act="gelu",
        application="unilm", with_pool="linear", with_mlm=True, dropout_rate=dropout,
        attention_dropout_rate=dropout,
    )
    initial = [np.array(v) for v in built.variables]  # seed states included
    return built, initial


@functools.lru_cache(maxsize=None)
def weight_change(dropout, micro_batches=None, remat=True):
    """−gradient after one SGD(1) step from the same weights and seeds, of the sum of
    the contrastive loss (pooled output) and the ordinary seq2seq loss (MLM output)."""
    inner, initial = model(dropout)
    for variable, value in zip(inner.variables, initial):
        variable.assign(value)
    keras.utils.set_random_seed(7)  # torch's global generator: unseeded torch dropout
    trained = (Unmasked(inner) if micro_batches is None
               else MicroBatched(inner, micro_batches, remat))
    trained.compile(optimizer=keras.optimizers.SGD(1.0), loss=[contrastive, seq2seq],
                    jit_compile=JIT)
    trained.train_on_batch([TOKENS, SEGMENTS], [np.zeros((BATCH,), "float32"), LABELS])
    return {v.path: np.array(v) - start
            for v, start in zip(inner.variables, initial) if v.trainable}


def assert_same(actual, expected, atol=2e-5):
    changed = [name for name in expected if np.abs(expected[name]).max() > 0]
    assert len(changed) > 10, "the loss must reach most weights"
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=atol, rtol=1e-4,
                                   err_msg=name)


@pytest.mark.backends
def test_micro_batches_give_the_big_batch_gradient():
    assert_same(weight_change(0.0, micro_batches=2), weight_change(0.0))


@pytest.mark.backends
def test_dropout_is_replayed_in_the_recomputation():
    with_dropout = weight_change(0.3, micro_batches=2, remat=False)
    # Not vacuous: dropout changes the gradient.
    without = weight_change(0.0, micro_batches=2)
    assert max(np.abs(with_dropout[n] - without[n]).max() for n in without) > 1e-3
    assert_same(weight_change(0.3, micro_batches=2), with_dropout)


def test_one_micro_batch_draws_the_plain_models_dropout():
    assert_same(weight_change(0.3, micro_batches=1, remat=False), weight_change(0.3))


def test_seed_generators_advance_once_per_step():
    inner, _ = model(0.3)
    generators = seed_generators(inner)
    assert generators, "the dropout layers own seed generators"
    before = [np.array(g.state) for g in generators]
    wrapped = MicroBatched(inner, 2)
    wrapped([TOKENS, SEGMENTS], training=True)
    for generator, state in zip(generators, before):
        np.testing.assert_array_equal(np.array(generator.state), state + [0, 1])


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA's memory analysis")
def test_recomputation_keeps_one_micro_batch_alive():
    import jax

    inner, _ = model(0.0)
    inputs = [np.tile(TOKENS, (8, 4)), np.tile(SEGMENTS, (8, 4))]  # 64 × 48 tokens

    def temp_bytes(wrapped):
        wrapped(inputs)
        trainable = [v.value for v in wrapped.trainable_variables]
        other = [v.value for v in wrapped.non_trainable_variables]

        def loss(trainable):
            (pooled, _), _ = wrapped.stateless_call(trainable, other, inputs, training=True)
            return ops.mean(in_batch_contrastive(pooled))

        compiled = jax.jit(jax.grad(loss)).lower(trainable).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    plain, micro = temp_bytes(MicroBatched(inner, 1, remat=False)), temp_bytes(MicroBatched(inner, 8))
    assert micro < 0.35 * plain, (micro, plain)


def test_bad_arguments_say_what_is_wrong():
    inner, _ = model(0.0)
    for bad in (0, 2.0, True, "4"):
        with pytest.raises(ValueError, match="micro_batches must be a positive integer"):
            MicroBatched(inner, bad)
    with pytest.raises(ValueError, match="a batch of 8 cannot be split into 3"):
        MicroBatched(inner, 3)([TOKENS, SEGMENTS])


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.compile only")
def test_torch_compile_with_dropout_is_refused():
    inner, _ = model(0.3)
    with pytest.raises(ValueError, match="torch.compile"):
        MicroBatched(inner, 2).compile(optimizer="sgd", loss="mse", jit_compile=True)


def test_config_round_trip(tmp_path):
    inner, _ = model(0.0)
    wrapped = MicroBatched(inner, 2, remat=False)
    outputs = wrapped([TOKENS, SEGMENTS])
    path = str(tmp_path / "micro.keras")
    wrapped.save(path)
    restored = keras.saving.load_model(path)
    assert (restored.micro_batches, restored.remat) == (2, False)
    for a, b in zip(restored([TOKENS, SEGMENTS]), outputs):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6)
