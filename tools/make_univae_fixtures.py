"""Writes tests/fixtures/univae/: parity fixtures for UniVAE (RoFormer + UniAE masks +
latent layers, https://kexue.fm/archives/8475), computed with the ORIGINAL bert4keras.

Runs in the reference environment only (../shared/reference/README.md):

    cd /work/main && TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python \
        tools/make_univae_fixtures.py

The model follows bojone/univae (univae.py), re-written here as a bert4keras `RoFormer`
subclass: the two UniAE masks override `compute_attention_bias`, the latent is inserted
in `apply_main_layers`, and `build` makes the three sub-models (vae / encoder / decoder).
It is tiny (vocab 345, hidden 64, 3 layers, 4 heads, FFN 128, gelu, no dropout) with
UniVAE settings L = 8 (half length, the original's `maxlen`), z_dim = 4,
num_latent_layers = 2 (block 0 uses the UniAE1 mask; blocks 1 and 2 the UniAE2 mask
and get a latent inserted before them), kappa = 32.

Every trainable weight (the RoFormer part and the In/Out-Projection Dense layers) is
drawn from a fixed numpy seed: kernels N(0, 0.6/sqrt(fan_in)), LayerNorm gains
1 + N(0, 0.1), biases/betas N(0, 0.1), embeddings N(0, 0.5); two deliberate exceptions,
both only to make the greedy-decoding fixture discriminating (see the constants):
Out-Projection kernels N(0, 2), and the [SEP] entry of MLM-Bias raised by 8.
Nothing here imports kerasformer.

Numerics of the reference (bert4keras 0.11.5): RoFormer's Embedding-Norm and block
LayerNorms pass no epsilon, so they use K.epsilon() = 1e-7; MLM-Norm (inherited from
BERT) uses 1e-12. Key padding (token id 0, except position 0) is masked by bert4keras'
own mask_zero mechanism (masked logits -> -inf); the UniAE masks are boolean [b, n, n]
(the original returns the additive bias -(1 - mask) * 1e12 instead; in float32 both give
exactly zero attention weight, and every query keeps at least one visible key).

Files written:
- bert_config.json, vocab.txt (copied from tests/fixtures/models/roformer),
  bert_model.ckpt.{index,data-00000-of-00001}: the RoFormer part, under bert4keras'
  `variable_mapping()` names (re-read through `checkpoint_path=` and checked).
- reference.npz:
  meta                              JSON string: versions, L, z_dim, num_latent_layers,
                                    kappa, epsilons, token ids, command
  In-Projection-{i}/kernel, /bias   i in {1, 2}; Keras layout, kernel [hidden, z_dim]
  Out-Projection-{i}/kernel, /bias  kernel [z_dim, hidden]
  token_ids (4, L)                  [CLS] w.. [SEP] padded with 0 (lengths 8, 6, 5, 3)
  mu (4, 2*z_dim)                   encoder output (`Mu`) on [token_ids, zeros]
  full_token_ids (4, 2L)            concat(token_ids, token_ids)
  full_segment_ids (4, 2L)          [0]*L + [1]*L
  decoder_probs_full (4, 2L, 345)   decoder probabilities on the full inputs with
                                    Latent-In = mu (= the VAE with z fixed to its mean)
  latents (3, 2*z_dim)              random normals, each z_dim chunk L2-normalised
  decoder_token_ids (3, L+5)        [CLS] 0*7 | [CLS] a b c d
  decoder_segment_ids (3, L+5)      [0]*L + [1]*5
  decoder_probs (3, L+5, 345)       decoder probabilities with Latent-In = latents
  greedy_ids (3, L+1) int32         bert4keras AutoRegressiveDecoder.beam_search(topk=1)
                                    as in the original Vector2Sentence (start [CLS],
                                    end [SEP], maxlen L), padded with -1. bert4keras
                                    0.11.5 returns the start id too: row = [CLS] + up to
                                    L generated ids (ending with [SEP] if it stopped).
  greedy_lengths (3,) int32         number of valid ids per row (start id included)
Float arrays are float32.
"""
import hashlib
import importlib.metadata
import json
import pathlib
import shutil

import numpy as np
import tensorflow as tf

import bert4keras
from bert4keras.backend import K, keras
from bert4keras.layers import Concatenate, Dense, Input, Lambda, Layer, integerize_shape
from bert4keras.models import RoFormer, build_transformer_model
from bert4keras.snippets import AutoRegressiveDecoder

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "fixtures" / "models" / "roformer"
OUT = ROOT / "tests" / "fixtures" / "univae"
COMMAND = (
    "cd /work/main && TF_USE_LEGACY_KERAS=1 TF_KERAS=1 /tmp/bert4keras-ref/bin/python "
    "tools/make_univae_fixtures.py"
)
SEED = 20260847

HALF_LEN = 8  # the original's `maxlen`: each half of the doubled sequence
Z_DIM = 4
NUM_LATENT_LAYERS = 2
KAPPA = 32
# Out-Projection maps a unit z_dim vector onto position 0 of post-LN hidden states.
# With the generic N(0, 0.6/sqrt(z_dim)) kernels the latent barely steers the decoder
# (two of three random latents decoded to the same ids), so these kernels get std 2.
OUT_PROJECTION_STD = 2.0
# A random 345-token head essentially never picks [SEP]; raising its MLM-Bias entry
# (stored in the checkpoint like every other weight) makes two of the three greedy
# decodes stop on [SEP] at different lengths, so the end_id path is pinned too.
SEP_BIAS_BOOST = 8.0
CONFIG = {
    "hidden_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "vocab_size": 345,
}


class VonMisesFisherSampling(Layer):
    """Reparameterised vMF sample around a unit `mu` (https://kexue.fm/archives/8404):
    w from a cached inverse CDF of p(w) ~ exp(kappa w) (1 - w^2)^((d-3)/2), then
    z = w mu + sqrt(1 - w^2) nu with nu a random unit vector orthogonal to mu.
    Only used by the (random) VAE sub-model; no fixture value depends on it, so the
    cache is 10**6 samples instead of the original's 10**7."""

    def __init__(self, kappa, num_caches=10**6, **kwargs):
        super().__init__(**kwargs)
        self.kappa = kappa
        self.num_caches = num_caches

    @integerize_shape
    def build(self, input_shape):
        super().build(input_shape)
        dims = input_shape[-1]
        w = np.linspace(-1, 1, self.num_caches + 2)[1:-1]
        log_density = self.kappa * w + np.log(1 - w**2) * (dims - 3) / 2
        cdf = np.cumsum(np.exp(log_density - log_density.max()))
        table = np.interp((w + 1) / 2, cdf / cdf[-1], w).astype(K.floatx())
        self.pw_samples = self.add_weight(
            shape=(self.num_caches,),
            initializer=keras.initializers.Constant(table),
            trainable=False,
            name="pw_samples",
        )

    def call(self, inputs):
        mu = inputs
        picks = K.random_uniform(K.shape(mu[..., :1]), 0, self.num_caches, dtype="int32")
        w = K.gather(self.pw_samples, picks)
        eps = K.random_normal(K.shape(mu))
        nu = K.l2_normalize(eps - K.sum(eps * mu, axis=1, keepdims=True) * mu, axis=-1)
        return w * mu + K.sqrt(1 - w**2) * nu

    def get_config(self):
        config = super().get_config()
        config.update({"kappa": self.kappa, "num_caches": self.num_caches})
        return config


def uniae_mask(segment_ids, first_column=False):
    """Key j visible to query i iff s_i == s_j and cumsum(s)_j <= cumsum(s)_i; with
    `first_column`, key 0 (the latent slot) is visible to every query. [b, n, n] bool."""
    idxs = K.cumsum(segment_ids, axis=1)
    same_segment = K.equal(segment_ids[:, None, :], segment_ids[:, :, None])
    causal = idxs[:, None, :] <= idxs[:, :, None]
    mask = same_segment & causal
    if first_column:
        mask = K.concatenate([K.ones_like(mask[..., :1]), mask[..., 1:]], axis=2)
    return mask


class UniVAE(RoFormer):
    """RoFormer with UniAE masks and latent layers (bojone/univae)."""

    def __init__(self, z_dim, num_latent_layers, kappa, **kwargs):
        kwargs["with_mlm"] = kwargs.get("with_mlm") or True
        super().__init__(**kwargs)
        self.z_dim = z_dim
        self.num_latent_layers = num_latent_layers
        self.kappa = kappa
        self.first_latent_layer = self.num_hidden_layers - num_latent_layers
        self.mode = "vae"
        self.mus = []
        self.z_in = self.apply(
            layer=Input, shape=(num_latent_layers * z_dim,), name="Latent-In"
        )
        chunks = self.apply(
            inputs=self.z_in,
            layer=Lambda,
            function=lambda z: tf.split(z, self.num_latent_layers, axis=1),
            name="Latent-Split",
        )
        self.zs = [None] * self.first_latent_layer + list(chunks)

    def compute_attention_bias(self, inputs=None):
        if self.attention_bias is None:
            segment_ids = self.inputs[1]
            self.attention_bias = [
                self.apply(inputs=segment_ids, layer=Lambda, function=uniae_mask,
                           arguments={"first_column": False},
                           name="Attention-UniAE1-Mask"),
                self.apply(inputs=segment_ids, layer=Lambda, function=uniae_mask,
                           arguments={"first_column": True},
                           name="Attention-UniAE2-Mask"),
            ]
        return self.attention_bias[0 if inputs < self.first_latent_layer else 1]

    def apply_main_layers(self, inputs, index):
        x = inputs
        if index >= self.first_latent_layer:
            z = self.apply(inputs=x, layer=Lambda, function=lambda h: h[:, 0],
                           name="CLS-Pooler-%s" % index)
            z = self.apply(inputs=z, layer=Dense, units=self.z_dim,
                           kernel_initializer=self.initializer,
                           name="In-Projection-%s" % index)
            z = self.apply(inputs=z, layer=Lambda,
                           function=lambda v: K.l2_normalize(v, axis=-1),
                           name="L2-Normalization-%s" % index)
            if self.mode == "encoder":
                self.mus.append(z)
            elif self.mode == "vae":
                z = self.apply(inputs=z, layer=VonMisesFisherSampling, kappa=self.kappa,
                               name="ReParameterization")
            elif self.mode == "decoder":
                z = self.zs[index]
            z = self.apply(inputs=z, layer=Dense, units=self.hidden_size,
                           kernel_initializer=self.initializer,
                           name="Out-Projection-%s" % index)
            x = self.apply(
                inputs=[x, z],
                layer=Lambda,
                function=lambda xz: K.concatenate([xz[1][:, None], xz[0][:, 1:]], axis=1),
                mask=lambda xz, masks: masks[0],
                name="Concatenation-%s" % index,
            )
        return super().apply_main_layers(x, index)

    def build(self, **kwargs):
        super().build(**kwargs)
        inputs = self.model.inputs
        self.mode = "encoder"
        self.call(inputs)
        mu = self.apply(inputs=self.mus, layer=Concatenate, axis=1, name="Mu")
        self.encoder = keras.models.Model(inputs, mu)
        self.mode = "decoder"
        output = self.call(inputs)
        self.decoder = keras.models.Model(inputs + [self.z_in], output)


def randomise(model, rng):
    """Moderate seeded values for every trainable weight."""
    for weight in model.trainable_weights:
        shape = tuple(weight.shape)
        layer, name = weight.name.split("/")[0], weight.name.split("/")[-1].split(":")[0]
        if name == "gamma":
            value = 1.0 + rng.normal(0, 0.1, shape)
        elif name in ("beta", "bias"):
            value = rng.normal(0, 0.1, shape)
        elif name == "embeddings":
            value = rng.normal(0, 0.5, shape)
        elif name == "kernel" and layer.startswith("Out-Projection-"):
            value = rng.normal(0, OUT_PROJECTION_STD, shape)
        elif name == "kernel":
            value = rng.normal(0, 0.6 / np.sqrt(shape[0]), shape)
        else:
            raise ValueError("unexpected weight %s" % weight.name)
        weight.assign(value.astype(np.float32))


def checkpoint_values(transformer):
    """{checkpoint variable name: value} through bert4keras' variable_mapping()."""
    values = {}
    for layer_name, names in transformer.variable_mapping().items():
        if layer_name not in transformer.layers:
            continue
        weights = transformer.layers[layer_name].trainable_weights
        assert len(weights) == len(names), layer_name
        for name, weight in zip(names, weights):
            values[name] = weight.numpy()
    return values


def save_checkpoint(values, prefix):
    """TF1 Saver recipe (save_weights_as_checkpoint is broken on this stack)."""
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(
                session, str(prefix), write_meta_graph=False, write_state=False
            )


def check_semantics(vae, full_token_ids, full_segment_ids, mu, probs_full):
    """Asserts the behaviour the fixture is meant to pin down."""
    half = full_token_ids.shape[1] // 2
    # The mask Lambdas against the rule written out in numpy.
    masks = keras.models.Model(vae.inputs[1], vae.attention_bias).predict(
        full_segment_ids, verbose=0)
    s = full_segment_ids
    c = np.cumsum(s, axis=1)
    expected = (s[:, None, :] == s[:, :, None]) & (c[:, None, :] <= c[:, :, None])
    np.testing.assert_array_equal(masks[0], expected)
    expected[:, :, 0] = True
    np.testing.assert_array_equal(masks[1], expected)
    # Padding keys are masked: extra trailing padding leaves mu unchanged.
    ids = full_token_ids[:, :half]
    padded = np.concatenate([ids, np.zeros((len(ids), 3), ids.dtype)], axis=1)
    np.testing.assert_allclose(
        vae.encoder.predict([padded, np.zeros_like(padded)], verbose=0), mu, atol=1e-5)
    # The decoder's second half reads the first half only through the latent slot.
    other = full_token_ids.copy()
    other[:, 1:half] = np.where(other[:, 1:half] > 0, 7, 0)
    probs = vae.decoder.predict([other, full_segment_ids, mu], verbose=0)
    np.testing.assert_allclose(probs[:, half:], probs_full[:, half:], atol=1e-6)
    assert np.abs(probs[:, 1:half] - probs_full[:, 1:half]).max() > 1e-3


def main():
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(SOURCE / "vocab.txt", OUT / "vocab.txt")
    vocab = (OUT / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == CONFIG["vocab_size"]
    pad_id, cls_id, sep_id = (vocab.index(t) for t in ("[PAD]", "[CLS]", "[SEP]"))
    first_word = max(vocab.index(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")) + 1
    assert pad_id == 0
    config_path = OUT / "bert_config.json"
    config_path.write_text(json.dumps(CONFIG, indent=2) + "\n")

    # --- the model, randomised ------------------------------------------------------
    vae = build_transformer_model(
        str(config_path), model=UniVAE, return_keras_model=False, with_mlm=True,
        z_dim=Z_DIM, num_latent_layers=NUM_LATENT_LAYERS, kappa=KAPPA,
    )
    randomise(vae.model, rng)
    sep_bias = vae.layers["MLM-Bias"].trainable_weights[0]
    sep_bias.assign(sep_bias.numpy() + SEP_BIAS_BOOST * (np.arange(sep_bias.shape[0]) == sep_id))
    latent_layers = range(vae.first_latent_layer, CONFIG["num_hidden_layers"])
    fixture = {}
    for i in latent_layers:
        for name in ("In-Projection-%d" % i, "Out-Projection-%d" % i):
            kernel, bias = vae.layers[name].get_weights()
            fixture[name + "/kernel"], fixture[name + "/bias"] = kernel, bias
    eps_block = vae.layers["Transformer-0-FeedForward-Norm"].epsilon
    eps_embed = vae.layers["Embedding-Norm"].epsilon
    eps_mlm = vae.layers["MLM-Norm"].epsilon

    # --- checkpoint of the RoFormer part, and its round trip -------------------------
    values = checkpoint_values(vae)
    prefix = OUT / "bert_model.ckpt"
    save_checkpoint(values, prefix)
    plain = build_transformer_model(
        str(config_path), str(prefix), model="roformer", with_mlm=True,
        return_keras_model=False,
    )
    plain_weights = {w.name: w for w in plain.model.trainable_weights}
    compared = 0
    for layer_name, layer in plain.layers.items():
        for w in getattr(layer, "trainable_weights", []):
            mine = vae.layers[layer_name].trainable_weights
            match = [m for m in mine if m.name == w.name]
            assert len(match) == 1, (layer_name, w.name)
            np.testing.assert_array_equal(w.numpy(), match[0].numpy())
            compared += 1
    assert compared == len(plain_weights) == len(values), (compared, len(values))
    reloaded = build_transformer_model(
        str(config_path), str(prefix), model=UniVAE, return_keras_model=False,
        with_mlm=True, z_dim=Z_DIM, num_latent_layers=NUM_LATENT_LAYERS, kappa=KAPPA,
    )
    for i in latent_layers:
        for name in ("In-Projection-%d" % i, "Out-Projection-%d" % i):
            reloaded.layers[name].set_weights(
                [fixture[name + "/kernel"], fixture[name + "/bias"]])
    for a, b in zip(reloaded.model.weights, vae.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # --- inputs ---------------------------------------------------------------------
    n_vocab = CONFIG["vocab_size"]
    token_ids = np.zeros((4, HALF_LEN), np.int32)
    for row, length in enumerate((8, 6, 5, 3)):
        token_ids[row, 0], token_ids[row, length - 1] = cls_id, sep_id
        token_ids[row, 1:length - 1] = rng.integers(first_word, n_vocab, length - 2)
    zeros = np.zeros_like(token_ids)
    full_token_ids = np.concatenate([token_ids, token_ids], axis=1)
    full_segment_ids = np.concatenate([zeros, np.ones_like(token_ids)], axis=1)

    # --- encoder / decoder outputs ----------------------------------------------------
    mu = vae.encoder.predict([token_ids, zeros], verbose=0)
    mu_full = vae.encoder.predict([full_token_ids, full_segment_ids], verbose=0)
    np.testing.assert_allclose(mu_full, mu, atol=1e-5)  # the first half sees itself only
    norms = np.linalg.norm(mu.reshape(len(mu), NUM_LATENT_LAYERS, Z_DIM), axis=-1)
    np.testing.assert_allclose(norms, 1, atol=1e-5)
    decoder_probs_full = vae.decoder.predict(
        [full_token_ids, full_segment_ids, mu], verbose=0)
    check_semantics(vae, full_token_ids, full_segment_ids, mu, decoder_probs_full)

    latents = rng.normal(size=(3, NUM_LATENT_LAYERS, Z_DIM))
    latents /= np.linalg.norm(latents, axis=-1, keepdims=True)
    latents = latents.reshape(3, -1).astype(np.float32)
    decoder_token_ids = np.zeros((3, HALF_LEN + 5), np.int32)
    decoder_token_ids[:, 0] = decoder_token_ids[:, HALF_LEN] = cls_id
    decoder_token_ids[:, HALF_LEN + 1:] = rng.integers(first_word, n_vocab, (3, 4))
    decoder_segment_ids = np.array([[0] * HALF_LEN + [1] * 5] * 3, np.int32)
    decoder_probs = vae.decoder.predict(
        [decoder_token_ids, decoder_segment_ids, latents], verbose=0)
    reloaded_probs = reloaded.decoder.predict(
        [decoder_token_ids, decoder_segment_ids, latents], verbose=0)
    np.testing.assert_array_equal(reloaded_probs, decoder_probs)

    # --- greedy decoding as the original Vector2Sentence --------------------------------
    class Vector2Sentence(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            z = inputs[0]
            first = np.zeros((output_ids.shape[0], HALF_LEN), np.int32)
            first[:, 0] = cls_id
            segment_ids = np.concatenate(
                [np.zeros_like(first), np.ones_like(output_ids)], axis=1)
            ids = np.concatenate([first, output_ids], axis=1)
            return self.last_token(vae.decoder).predict([ids, segment_ids, z], verbose=0)

    decoder = Vector2Sentence(start_id=cls_id, end_id=sep_id, maxlen=HALF_LEN)
    greedy_ids = np.full((3, HALF_LEN + 1), -1, np.int32)
    greedy_lengths = np.zeros(3, np.int32)
    margins = []
    for row, z in enumerate(latents):
        ids = np.asarray(decoder.beam_search([z], topk=1))
        greedy_ids[row, :len(ids)] = ids
        greedy_lengths[row] = len(ids)
        # independent check: argmax-by-argmax with the full decoder
        check = [cls_id]
        for _ in range(HALF_LEN):
            seq = np.array([[cls_id] + [0] * (HALF_LEN - 1) + check], np.int32)
            seg = np.array([[0] * HALF_LEN + [1] * len(check)], np.int32)
            probs = vae.decoder.predict([seq, seg, z[None]], verbose=0)
            check.append(int(probs[0, -1].argmax()))
            top2 = np.sort(np.log(probs[0, -1]))[-2:]
            margins.append(top2[1] - top2[0])
            if check[-1] == sep_id:
                break
        assert check == ids.tolist(), (check, ids.tolist())
    assert min(margins) > 0.01, margins  # no near-ties: greedy ids are robust

    meta = {
        "bert4keras": bert4keras.__version__,
        "tensorflow": tf.__version__,
        "tf_keras": importlib.metadata.version("tf-keras"),
        "L": HALF_LEN,
        "z_dim": Z_DIM,
        "num_latent_layers": NUM_LATENT_LAYERS,
        "kappa": KAPPA,
        "out_projection_std": OUT_PROJECTION_STD,
        "sep_bias_boost": SEP_BIAS_BOOST,
        "layer_norm_epsilon": {"Embedding-Norm": eps_embed, "blocks": eps_block,
                               "MLM-Norm": eps_mlm},
        "token_ids": {"[PAD]": pad_id, "[CLS]": cls_id, "[SEP]": sep_id},
        "seed": SEED,
        "command": COMMAND,
    }
    fixture.update({
        "meta": np.array(json.dumps(meta, sort_keys=True)),
        "token_ids": token_ids,
        "mu": mu,
        "full_token_ids": full_token_ids.astype(np.int32),
        "full_segment_ids": full_segment_ids.astype(np.int32),
        "decoder_probs_full": decoder_probs_full,
        "latents": latents,
        "decoder_token_ids": decoder_token_ids,
        "decoder_segment_ids": decoder_segment_ids,
        "decoder_probs": decoder_probs,
        "greedy_ids": greedy_ids,
        "greedy_lengths": greedy_lengths,
    })
    for key, value in fixture.items():
        if value.dtype.kind == "f":
            fixture[key] = value.astype(np.float32)
    np.savez_compressed(OUT / "reference.npz", **fixture)

    print("meta:", meta)
    print("checkpoint round trip: %d variables equal; reloaded UniVAE reproduces "
          "decoder_probs exactly" % compared)
    for key, value in fixture.items():
        if key == "meta":
            continue
        weights = np.arange(1, value.size + 1).reshape(value.shape) % 97
        checksum = float((value.astype(np.float64) * weights).sum())
        print("%-24s %-8s %-15s sum(x*w) = %.6f  sha256 %s" % (
            key, value.dtype, value.shape, checksum,
            hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:12]))
    print("greedy_ids (min top-1/top-2 log-prob margin %.4f):\n" % min(margins), greedy_ids)
    print("argmax of decoder_probs_full (second half):\n",
          decoder_probs_full[:, HALF_LEN:].argmax(-1))
    for path in sorted(OUT.iterdir()):
        print("%-45s %8d bytes" % (path.relative_to(ROOT), path.stat().st_size))


if __name__ == "__main__":
    main()
