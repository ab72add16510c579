"""The UniVAE architecture: RoFormer checkpoints load into it strictly (the latent
projections apart), its decode path computes what its training graph computes, and
its arguments are checked."""
import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.architectures.univae import UniVAE
from kerasformer.generation import AutoRegressiveDecoder
from tests.conftest import FIXTURES
from tests.helpers import assert_all_close, to_numpy

ROFORMER = FIXTURES / "models" / "roformer"
REFERENCE = FIXTURES / "univae"  # tools/make_univae_fixtures.py, bert4keras 0.11.5
HALF = 8


def tiny_univae(**kwargs):
    """A 3-block UniVAE with 2 latent blocks, every weight drawn large enough that a
    wrong mask or position changes the logits."""
    options = dict(vocab_size=40, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                   intermediate_size=48, hidden_act="gelu", with_mlm="linear",
                   num_latent_layers=2, latent_size=4, half_length=HALF)
    transformer = UniVAE(**{**options, **kwargs})
    model = transformer.build()
    rng = np.random.default_rng(0)
    for weight in model.weights:
        scale = 0.5 / np.sqrt(weight.shape[0]) if len(weight.shape) == 2 else 0.1
        value = rng.standard_normal(weight.shape) * scale
        if weight.path.endswith("gamma"):
            value += 1.0
        weight.assign(value.astype("float32"))
    return transformer


@pytest.fixture(scope="module")
def transformer():
    return tiny_univae()


def sentences():
    """Two sentences of the first copy, `[CLS] … [SEP]` padded to HALF."""
    token_ids = np.zeros((2, HALF), np.int32)
    token_ids[0, :7] = [2, 11, 12, 13, 14, 15, 3]
    token_ids[1, :4] = [2, 21, 22, 3]
    return token_ids


@pytest.fixture(scope="module")
def reference():
    """bojone's UniVAE on bert4keras (3 blocks, 2 latent, z 4, L 8) and what it computed."""
    expected = np.load(REFERENCE / "reference.npz")
    transformer = kf.build_transformer_model(
        REFERENCE / "bert_config.json", REFERENCE / "bert_model.ckpt", model="univae",
        num_latent_layers=2, latent_size=4, half_length=HALF, with_mlm=True,
        layer_norm_epsilon=1e-7,  # bert4keras 0.11.5's RoFormer norms
        return_keras_model=False)
    for name in transformer.latent_layer_names():
        layer = transformer.layers[name]
        layer.kernel.assign(expected[f"{name}/kernel"])
        layer.bias.assign(expected[f"{name}/bias"])
    return transformer, expected


@pytest.mark.backends
def test_matches_bert4keras(reference):
    """The encoder's μ, the decoder's probabilities (of the whole `[x ; x]`, and of a
    second copy decoded from given latents) and greedy decoding, as bojone's UniVAE
    computes them."""
    transformer, expected = reference
    assert_all_close(to_numpy(transformer.encode_latents(expected["token_ids"])),
                     expected["mu"], atol=1e-4)
    full = transformer.model([expected["full_token_ids"], expected["full_segment_ids"]])
    assert_all_close(to_numpy(full), expected["decoder_probs_full"], atol=1e-4)

    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    conditions = {"latents": expected["latents"]}
    second = expected["decoder_token_ids"][:, HALF:]  # [CLS] a b c d
    padded, lengths = decoder._pad_prefixes([[2, 2]] * 3, maxlen=HALF)
    logits, caches, key_valid = decoder._encode_prefix(padded, lengths, HALF, conditions)
    steps = [logits]
    for step in range(1, second.shape[1]):
        logits, key_valid, caches = decoder._decode_step(
            second[:, 1:], step, lengths, key_valid, caches, padded.shape[1], conditions)
        steps.append(logits)
    probabilities = keras.ops.softmax(keras.ops.stack(steps, axis=1), axis=-1)
    assert_all_close(to_numpy(probabilities), expected["decoder_probs"][:, HALF:], atol=1e-4)

    decoded = decoder.greedy([[2, 2]] * 3, maxlen=HALF, conditions=conditions)
    for ids, row, length in zip(decoded, expected["greedy_ids"], expected["greedy_lengths"]):
        np.testing.assert_array_equal(ids, row[1:length])  # bert4keras keeps the start id


def test_decode_path_is_the_training_graph(transformer):
    """Teacher-forced logits of the second copy, from the whole `[x ; x]` graph (whose
    latents are the means μ outside training), equal the decode loop's, fed the same
    tokens, from the [CLS] of the first copy and the latents `encode_latents` gives."""
    first = sentences()
    token_ids = np.concatenate([first, first], axis=1)
    segment_ids = np.concatenate([np.zeros_like(first), np.ones_like(first)], axis=1)
    graph = to_numpy(transformer.model([token_ids, segment_ids]))  # (2, 2 HALF, vocab)
    latents = to_numpy(transformer.encode_latents(first))
    assert latents.shape == (2, 8)
    assert_all_close(np.linalg.norm(latents.reshape(2, 2, 4), axis=-1), np.ones((2, 2)))

    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    prefixes = [[2, 2], [2, 2]]
    conditions = {"latents": latents}
    padded, lengths = decoder._pad_prefixes(prefixes, maxlen=HALF)
    width = padded.shape[1]
    logits, caches, key_valid = decoder._encode_prefix(padded, lengths, HALF, conditions)
    steps = [to_numpy(logits)]
    targets = first[:, 1:]  # the second copy after its [CLS]
    for step in range(1, 6):
        logits, key_valid, caches = decoder._decode_step(
            targets, step, lengths, key_valid, caches, width, conditions)
        steps.append(to_numpy(logits))
    lengths = (first != 0).sum(axis=1)  # padding is a masked key in the graph only
    for step, logits in enumerate(steps):
        for row in range(2):
            if step < lengths[row]:
                assert_all_close(logits[row], graph[row, HALF + step], atol=1e-4)


def test_decoding_reads_the_latents(transformer):
    """Greedy decoding is the argmax chain of the graph with those latents, and other
    latents decode otherwise (the latent is the second copy's only view of the first)."""
    first = sentences()
    latents = to_numpy(transformer.encode_latents(first))
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    decoded = decoder.greedy([[2, 2]] * 2, maxlen=HALF - 1, conditions={"latents": latents})
    for row, ids in enumerate(decoded):
        generated = [2] + [int(i) for i in ids]
        # the graph fed what was generated predicts the same next tokens
        second = np.zeros((1, HALF), np.int32)
        second[0, :len(generated[:HALF])] = generated[:HALF]
        token_ids = np.concatenate([first[row:row + 1], second], axis=1)
        segment_ids = np.concatenate([np.zeros((1, HALF)), np.ones((1, HALF))], 1).astype("int32")
        graph = to_numpy(transformer.model([token_ids, segment_ids]))[0, HALF:]
        expected = np.argmax(graph[:len(ids)], axis=-1)
        np.testing.assert_array_equal(ids, expected)
    swapped = decoder.greedy([[2, 2]] * 2, maxlen=HALF - 1,
                             conditions={"latents": latents[::-1].copy()})
    assert [list(s) for s in swapped] == [list(d) for d in decoded[::-1]]


def test_latents_are_sampled_in_training_only(transformer):
    first = sentences()
    token_ids = np.concatenate([first, first], axis=1)
    segment_ids = np.concatenate([np.zeros_like(first), np.ones_like(first)], axis=1)
    model = transformer.model
    plain = to_numpy(model([token_ids, segment_ids]))
    again = to_numpy(model([token_ids, segment_ids]))
    sampled = to_numpy(model([token_ids, segment_ids], training=True))
    resampled = to_numpy(model([token_ids, segment_ids], training=True))
    np.testing.assert_array_equal(plain, again)
    assert np.abs(sampled[:, HALF:] - plain[:, HALF:]).max() > 1e-3
    assert np.abs(sampled[:, HALF:] - resampled[:, HALF:]).max() > 1e-3


def one_sgd_update(remat):
    """Weight deltas of one `SGD(1)` step of the tiny UniVAE with dropout, its vMF
    samples and dropout masks from the same seeds."""
    from kerasformer.training.pretraining import masked_lm_cross_entropy

    keras.utils.set_random_seed(1)
    model = tiny_univae(dropout_rate=0.2, remat=remat).model
    first = sentences()
    inputs = [np.concatenate([first, first], 1),
              np.concatenate([np.zeros_like(first), np.ones_like(first)], 1)]
    targets = np.zeros_like(inputs[0])
    targets[:, HALF:-1] = inputs[0][:, HALF + 1:]
    before = [to_numpy(w) for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=masked_lm_cross_entropy)
    keras.utils.set_random_seed(2)  # torch's dropout draws from its global generator
    model.train_on_batch(inputs, targets)
    return {w.path: to_numpy(w) - b for w, b in zip(model.trainable_weights, before)}


@pytest.mark.backends
def test_remat_replays_the_vmf_samples():
    """`remat=True` recomputes each block in the backward pass with the same vMF
    sample and dropout masks: the update is the plain model's."""
    plain, remat = one_sgd_update(False), one_sgd_update(True)
    assert max(np.abs(delta).max() for delta in plain.values()) > 1e-2
    for path, delta in plain.items():
        np.testing.assert_allclose(remat[path], delta, atol=1e-5, err_msg=path)


def test_loads_a_roformer_checkpoint_strictly():
    """Every RoFormer weight comes from the checkpoint, and only the latent
    projections stay as initialised (drawn, not zero: no checkpoint holds them)."""
    vae = kf.build_transformer_model(ROFORMER / "bert_config.json", ROFORMER / "bert_model.ckpt",
                                     model="univae", num_latent_layers=1, latent_size=4,
                                     half_length=HALF, return_keras_model=False)
    roformer = kf.build_transformer_model(ROFORMER / "bert_config.json",
                                          ROFORMER / "bert_model.ckpt", model="roformer",
                                          application="unilm", return_keras_model=False)
    theirs = {w.path: to_numpy(w) for w in roformer.model.weights}
    latent = set()
    for weight in vae.model.weights:
        if weight.path in theirs:
            np.testing.assert_array_equal(to_numpy(weight), theirs[weight.path])
        else:
            latent.add(weight.path)
            assert np.abs(to_numpy(weight)).max() > 0 or weight.path.endswith("bias")
    assert latent == {"In-Projection-1/kernel", "In-Projection-1/bias",
                      "Out-Projection-1/kernel", "Out-Projection-1/bias"}
    assert {v.path for v in vae.checkpoint_variables()} == set(theirs)


def test_config_round_trip(transformer):
    config = transformer.get_config()
    assert config["architecture"] == "univae"
    assert (config["num_latent_layers"], config["latent_size"], config["kappa"],
            config["half_length"]) == (2, 4, 32.0, HALF)
    rebuilt = UniVAE.from_config(config)
    assert rebuilt.get_config() == config


@pytest.mark.parametrize("kwargs, message", [
    ({"num_latent_layers": 4}, "exceeds the 3 blocks"),
    ({"num_latent_layers": 0}, "num_latent_layers must be a positive integer"),
    ({"latent_size": 1}, "latent_size must be an integer >= 2"),
    ({"kappa": 0}, "kappa must be a positive number"),
    ({"half_length": 1.5}, "half_length must be an integer"),
    ({"application": "lm"}, "UniVAE is a 'unilm' application"),
    ({"with_pool": "linear"}, "UniVAE has no pooler"),
])
def test_bad_arguments(kwargs, message):
    options = dict(vocab_size=40, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                   intermediate_size=48, hidden_act="gelu", num_latent_layers=2)
    with pytest.raises(ValueError, match=message):
        UniVAE(**{**options, **kwargs})


def test_decoding_needs_latents(transformer):
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    with pytest.raises(ValueError, match="UniVAE decodes from latents"):
        decoder.greedy([[2, 2]], maxlen=2)
    with pytest.raises(ValueError, match="one row per prefix"):
        decoder.greedy([[2, 2]], maxlen=2, conditions={"latents": np.ones((2, 8))})


def test_a_roformer_checkpoint_is_never_claimed_by_univae():
    from kerasformer import architectures

    names = ["bert/encoder/layer_0/attention/output/LayerNorm/gamma"]
    assert architectures.recognise_checkpoint(names) == "roformer"
    assert not UniVAE.recognises_config({"model_type": "roformer"})
    keras.backend.clear_session()
