"""The UniVAE task: a tiny UniVAE trained (compiled, on jax) on a few hundred template
sentences reconstructs them far better than latents drawn from the prior do, and
encodes, decodes, samples, interpolates, swaps chunks and saves as a preset."""
import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.architectures.univae import UniVAE
from kerasformer.models import UniVAEModel
from kerasformer.tokenizers import Tokenizer
from kerasformer.tokenizers.vocab import build_vocab, write_vocab

# Sentences "who · when · where · what": 10 · 6 · 6 · 8 = 2,880, of which 320 train.
WHO = ["我", "你", "他", "她", "我们", "老师", "学生", "妈妈", "爸爸", "朋友"]
WHEN = ["今天", "明天", "昨天", "早上", "晚上", "周末"]
WHERE = ["在家", "在学校", "在公园", "在北京", "在上海", "在路上"]
WHAT = ["看书", "吃饭", "跑步", "唱歌", "写字", "睡觉", "买菜", "开会"]
SENTENCES = [a + b + c + d for a in WHO for b in WHEN for c in WHERE for d in WHAT]


def character_accuracy(texts, outputs):
    """Characters of `outputs` equal to those of `texts` at the same place."""
    right = total = 0
    for text, output in zip(texts, outputs):
        output = output.replace(" ", "")
        right += sum(a == b for a, b in zip(text, output))
        total += len(text)
    return right / total


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    order = np.random.default_rng(0).permutation(len(SENTENCES))
    train = [SENTENCES[i] for i in order[:320]]
    vocab = tmp_path_factory.mktemp("univae") / "vocab.txt"
    write_vocab(build_vocab(SENTENCES), vocab)
    return train, str(vocab)


def untrained(vocab, **kwargs):
    tokenizer = Tokenizer(vocab)
    transformer = UniVAE(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=3,
                         num_attention_heads=4, intermediate_size=128, hidden_act="gelu",
                         with_mlm="linear", num_latent_layers=2, latent_size=8, half_length=12,
                         **kwargs)
    return UniVAEModel(transformer, tokenizer, tokenizer_config={"vocab": vocab})


@pytest.fixture(scope="module")
def trained(corpus):
    train, vocab = corpus
    keras.utils.set_random_seed(0)
    vae = untrained(vocab)
    history = vae.fit(train, epochs=5, steps_per_epoch=100, batch_size=32,
                      optimizer=keras.optimizers.Adam(5e-3), verbose=0)
    return vae, history.history


def test_reconstructs_far_better_than_random_latents(trained, corpus):
    """500 steps. Measured (jax, CPU, the suite's XLA flags), seeds 0-4: reconstruction
    puts back 0.46, 0.53, 0.55, 0.43, 0.46 of the characters; decoding prior latents,
    0.14-0.19 of the same sentences' (the template's fixed 在 and the commonest words)."""
    vae, history = trained
    train, _ = corpus
    assert history["loss"][-1] < history["loss"][0] / 2
    texts = train[:64]
    reconstructed = character_accuracy(texts, vae.reconstruct(texts))
    random = character_accuracy(texts, vae.sample(64, seed=1))
    assert reconstructed > 0.35
    assert random < 0.25
    assert reconstructed - random > 0.2


def test_latents_and_their_texts(trained, corpus):
    vae, _ = trained
    train, _ = corpus
    latents = vae.encode(train[:3])
    assert latents.shape == (3, 16) and latents.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(latents.reshape(3, 2, 8), axis=-1), 1, atol=1e-5)
    np.testing.assert_allclose(vae.encode(train[0]), latents[0], atol=1e-5)
    assert vae.decode(latents[0]) == vae.decode(latents)[0]
    assert vae.decode(3 * latents[:1]) == vae.decode(latents[:1])  # chunks are normalised
    assert isinstance(vae.decode(latents, beam=3)[0], str)
    sampled = vae.decode(latents, sample=True, topk=5, seed=7)
    assert sampled == vae.decode(latents, sample=True, topk=5, seed=7)
    a, b = train[0], train[1]
    path = vae.interpolate(a, b, steps=4)
    assert len(path) == 4 and path[0] == vae.reconstruct(a) and path[-1] == vae.reconstruct(b)
    first, second = vae.swap(a, b, [0])
    both = vae.encode([a, b])
    mixed = np.concatenate([both[1, :8], both[0, 8:]])
    assert first == vae.decode(mixed)
    assert second == vae.decode(np.concatenate([both[0, :8], both[1, 8:]]))
    assert len(vae.sample(3, seed=0)) == 3


def test_bad_input(trained):
    vae, _ = trained
    with pytest.raises(ValueError, match=r"latents must be \(n, 16\)"):
        vae.decode(np.ones(15))
    with pytest.raises(ValueError, match="a latent chunk is zero"):
        vae.decode(np.concatenate([np.ones(8), np.zeros(8)]))
    with pytest.raises(ValueError, match="NaN"):
        vae.decode(np.full(16, np.nan))
    with pytest.raises(ValueError, match=r"chunks must be indices in \[0, 2\)"):
        vae.swap("我今天在家看书", "你明天在学校吃饭", [2])
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        vae.interpolate("我今天在家看书", "你明天在学校吃饭", steps=1)
    with pytest.raises(ValueError, match="make no full batch"):
        vae.fit(["我今天在家看书"], batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        vae.batches(["我今天在家看书"], batch_size=0)
    with pytest.raises(ValueError, match="text 1 is empty"):
        vae.encode(["我", " "])


def test_training_batches(trained):
    vae, _ = trained
    (token_ids, segment_ids), targets = vae.encode_batch(["我今天在家看书"])
    ids = vae.tokenizer.encode("我今天在家看书")[0]  # [CLS] 7 characters [SEP]
    assert token_ids.shape == (1, 24)
    assert list(token_ids[0, :9]) == ids and list(token_ids[0, 12:21]) == ids
    assert list(segment_ids[0]) == [0] * 12 + [1] * 12
    # the second copy predicts its next token, [SEP] included; nothing else is a target
    assert list(targets[0, 12:20]) == ids[1:] and not targets[0, :12].any()
    assert not targets[0, 20:].any()


@pytest.mark.backends
def test_a_compiled_training_step(corpus):
    """`fit` on every backend: the loss falls and every weight moves (the latent
    projections included: the decoder reads the vMF samples)."""
    train, vocab = corpus
    keras.utils.set_random_seed(1)
    vae = untrained(vocab)
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in vae.model.trainable_weights}
    history = vae.fit(train[:16], epochs=3, batch_size=8, optimizer=keras.optimizers.Adam(3e-3),
                      verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    for weight in vae.model.trainable_weights:
        assert not np.array_equal(keras.ops.convert_to_numpy(weight), before[weight.path]), \
            weight.path


def test_preset_round_trip(trained, corpus, tmp_path):
    vae, _ = trained
    train, _ = corpus
    loaded = kf.models.load(vae.save_preset(tmp_path / "univae"))
    assert isinstance(loaded, UniVAEModel)
    assert loaded.transformer.get_config() == vae.transformer.get_config()
    np.testing.assert_allclose(loaded.encode(train[:4]), vae.encode(train[:4]), atol=1e-6)
    assert loaded.reconstruct(train[:4]) == vae.reconstruct(train[:4])


def test_from_encoder():
    """From the bundled RoFormer-Sim mini: every RoFormer weight copied, the latent
    projections new; a non-RoFormer source is refused."""
    mini = kf.models.load("roformer-sim-mini")
    vae = UniVAEModel.from_encoder(mini, num_latent_layers=2, latent_size=16, half_length=32)
    assert vae.transformer.first_latent_layer == mini.transformer.num_hidden_layers - 2
    source = {w.path: keras.ops.convert_to_numpy(w) for w in mini.model.weights}
    copied = [w for w in vae.model.weights if w.path in source]
    assert len(copied) == len(vae.transformer.checkpoint_variables())
    for weight in copied:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), source[weight.path])
    assert vae.transformer.with_mlm == "linear" and not vae.transformer.with_pool
    with pytest.raises(ValueError, match="UniVAE is built on RoFormer"):
        UniVAEModel.from_encoder(vae)
