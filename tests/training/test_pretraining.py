"""Masked-LM pre-training: the loss and accuracy against numpy, the batch pipeline, and
a tiny model (hidden 32, 2 blocks) of each architecture whose MLM loss falls under a
jit-compiled `fit` on batches from `mlm_batches`; then the trained weights as a
`MaskedLanguageModel` preset that loads and fills masks, and continued pre-training
from that preset. One model per architecture, built and trained once.
"""
import functools

import keras
import numpy as np
import pytest

from kerasformer.optimizers import Adam
from kerasformer.tokenizers import Tokenizer
from kerasformer.tokenizers.vocab import build_vocab, write_vocab
from kerasformer.training.pretraining import (
    MaskedLMAccuracy,
    TextFiles,
    continued_transformer,
    masked_lm_cross_entropy,
    masked_lm_task,
    mlm_batches,
    mlm_transformer,
    shuffled,
)

CORPUS = [
    "今天天气很好，我们去公园散步吧。",
    "明天会下雨吗？记得带伞。",
    "我们都是中国人，我们爱自己的国家。",
    "他在图书馆看了一下午的书。",
    "这家饭店的菜很好吃，价格也不贵。",
    "小明的手机坏了，想买一个新的。",
    "春天来了，花都开了，天气越来越暖和。",
    "学习语言需要每天坚持练习。",
]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.0,
            max_position_embeddings=64)
# BERT's MLM head (with its bias) trains under fit in tests/training/test_fit.py.
ARCHITECTURES = ["roformer", "roformer_v2", "gau_alpha"]
BATCH, MAXLEN, STEPS, EPOCHS = 8, 32, 25, 8


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    return write_vocab(build_vocab(CORPUS), path)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_loss(targets, logits):
    """Mean cross-entropy over the positions whose target is not 0."""
    picked = np.take_along_axis(log_softmax(logits), targets[..., None], -1)[..., 0]
    predicted = targets != 0
    return -picked[predicted].sum() / predicted.sum()


def test_loss_and_accuracy_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype("float32")
    targets = np.array([[0, 3, 0, 0, 6], [0, 0, 0, 0, 0], [1, 2, 3, 0, 4]], "int32")
    loss = keras.ops.convert_to_numpy(masked_lm_cross_entropy(targets, logits))
    np.testing.assert_allclose(loss, numpy_loss(targets, logits), rtol=1e-5)
    probabilities = np.exp(log_softmax(logits))
    loss = masked_lm_cross_entropy(targets, probabilities, from_logits=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), numpy_loss(targets, logits),
                               rtol=1e-4)
    empty = masked_lm_cross_entropy(np.zeros_like(targets), logits)
    assert float(keras.ops.convert_to_numpy(empty)) == 0.0

    metric = MaskedLMAccuracy()
    metric.update_state(targets[:2], logits[:2])
    metric.update_state(targets[2:], logits[2:])
    predicted = targets != 0
    expected = (logits.argmax(-1) == targets)[predicted].mean()  # over tokens, not batches
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6)


def test_mlm_batches(vocabulary):
    tokenizer = Tokenizer(vocabulary, do_lower_case=True)
    rng = np.random.default_rng(0)
    batches = list(mlm_batches(CORPUS, tokenizer, 4, MAXLEN, rng, epochs=2))
    tokens = sum(len(tokenizer.encode(text)[0]) - 1 for text in CORPUS)  # one [CLS] each
    for (token_ids, segment_ids), targets in batches:
        assert token_ids.shape == segment_ids.shape == targets.shape == (4, MAXLEN)
        assert token_ids.dtype == targets.dtype == np.int32 and not segment_ids.any()
        assert (token_ids[:, 0] == tokenizer.start_id).all()
    restored = [np.where(t != 0, t, ids) for (ids, _), t in batches]
    # two passes over every token: packed ([SEP] between sentences), masked, padded
    assert sum(int((r > 4).sum()) for r in restored) == 2 * (tokens - len(CORPUS))
    # masks are drawn afresh: the two passes differ
    assert not np.array_equal(batches[0][1], batches[len(batches) // 2][1])
    whole_word = next(mlm_batches(CORPUS, tokenizer, 4, MAXLEN, rng, whole_word=True))
    assert whole_word[0][0].shape == (4, MAXLEN)
    with pytest.raises(ValueError, match="iterator"):
        next(mlm_batches(iter(CORPUS), tokenizer, 4, MAXLEN, rng))


def test_text_files_and_shuffling(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a\n\n  b  \nc\n", encoding="utf-8")
    files = TextFiles(path, path)
    assert list(files) == ["a", "b", "c"] * 2 == list(files)  # read again on demand
    rng = np.random.default_rng(0)
    items = list(shuffled(range(100), 10, rng))
    assert sorted(items) == list(range(100)) and items != list(range(100))
    assert list(shuffled(range(5), 0, rng)) == list(range(5))


@functools.lru_cache(maxsize=None)
def trained(architecture, vocabulary):
    """`(transformer, tokenizer, history)` of a tiny model trained on `CORPUS`
    (`EPOCHS` log intervals of `STEPS` steps, fresh masks every batch)."""
    keras.utils.set_random_seed(0)
    tokenizer = Tokenizer(vocabulary, do_lower_case=True)
    config = dict(TINY, vocab_size=tokenizer.vocab_size)
    if architecture == "gau_alpha":
        config.update(num_attention_heads=1, attention_key_size=16)
    transformer = mlm_transformer(architecture, config)
    model = transformer.model
    model.compile(optimizer=Adam(learning_rate=3e-3), loss=masked_lm_cross_entropy,
                  metrics=[MaskedLMAccuracy()], jit_compile=True)
    batches = mlm_batches(CORPUS, tokenizer, BATCH, MAXLEN, np.random.default_rng(0),
                          rate=0.3)
    history = model.fit(batches, steps_per_epoch=STEPS, epochs=EPOCHS, shuffle=False,
                        verbose=0)
    return transformer, tokenizer, history.history


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_mlm_loss_falls(architecture, vocabulary):
    transformer, _, history = trained(architecture, vocabulary)
    losses = history["loss"]
    assert np.isfinite(losses).all(), losses
    assert losses[-1] < 0.8 * losses[0], losses
    assert history["mlm_accuracy"][-1] > history["mlm_accuracy"][0]
    assert transformer.with_mlm == "linear"  # logits


def test_loss_is_the_token_mean_on_padded_batches(vocabulary):
    """Keras reweights losses by the output's padding mask; the scalar loss comes
    through it as the mean over the predicted tokens (checked on the compiled train
    step, which reports the loss of the weights before its update)."""
    transformer, tokenizer, _ = trained("roformer", vocabulary)
    model = transformer.model
    rng = np.random.default_rng(1)
    (token_ids, segment_ids), targets = next(mlm_batches(
        CORPUS, tokenizer, BATCH, MAXLEN, rng, pack=False, rate=0.5))
    assert (token_ids == 0).any()  # padded rows of different lengths
    logits = model.predict_on_batch([token_ids, segment_ids])
    loss, accuracy = model.train_on_batch([token_ids, segment_ids], targets)
    np.testing.assert_allclose(loss, numpy_loss(targets, logits), rtol=1e-4)
    predicted = targets != 0
    np.testing.assert_allclose(accuracy, (logits.argmax(-1) == targets)[predicted].mean(),
                               rtol=1e-6)


def test_preset_fills_masks_and_continues(vocabulary, tmp_path):
    from kerasformer.models import MaskedLanguageModel, load

    transformer, tokenizer, _ = trained("roformer", vocabulary)
    task = masked_lm_task(transformer, tokenizer, {"vocab": str(vocabulary),
                                                   "do_lower_case": True})
    task.save_preset(tmp_path / "preset")
    loaded = load(tmp_path / "preset")
    assert isinstance(loaded, MaskedLanguageModel) and loaded.family == "roformer"
    (candidates,) = loaded.fill_mask("今天天气很[MASK]", k=3)
    assert len(candidates) == 3
    assert all(0 <= p <= 1 for _, p in candidates)
    # the probabilities are the softmax of the trained logits
    ids = loaded.encode_masked("今天天气很[MASK]")
    logits = transformer.model.predict_on_batch([np.array([ids]), np.zeros((1, len(ids)))])
    expected = np.exp(log_softmax(logits[0, ids.index(tokenizer.mask_id)]))
    token, probability = candidates[0]
    np.testing.assert_allclose(probability, expected[tokenizer.token_to_id(token)], rtol=1e-4)

    continued, source = continued_transformer(tmp_path / "preset")
    assert source.tokenizer.vocab_size == tokenizer.vocab_size
    assert continued.with_mlm == "linear" and continued.application == "encoder"
    for old, new in zip(transformer.model.weights, continued.model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(old),
                                      keras.ops.convert_to_numpy(new))
