"""UniVAE (https://kexue.fm/archives/8475, bojone/univae): one RoFormer as a multi-scale
VAE of sentences.

    input: [x ; x], each copy padded to `half_length`, segment ids [0…0 ; 1…1],
           positions 0 … 2·half_length − 1
    blocks 0 … L−k−1: Attention-UniAE1-Mask — the first copy bidirectional within
           itself, the second causal within itself and blind to the first
    before each block i ≥ L−k (the last k = `num_latent_layers`):
           x[:, 0] ─ CLS-Pooler-i ─ In-Projection-i (latent_size) ─ L2-Normalization-i = μᵢ
           μᵢ ─ ReParameterization-i (vMF, κ; training only) ─ Out-Projection-i (hidden)
           ─ Concatenation-i: replaces position 0 of x
    blocks L−k … L−1: Attention-UniAE2-Mask — the same, and every query also sees
           position 0, which now carries the latent: the only path from the first copy
           to the second
    MLM head: the second copy predicts its next token (a decoder of the latents)

The latent of a sentence is the concatenation of the k unit vectors μᵢ (`encode_latents`);
each chunk comes from a different depth, which is what makes the model multi-scale.
Decoding runs the second copy alone on the shared decode loop, from the first copy's
[CLS] at position 0 with the latents in place of its vectors (`call_with_cache`).

Names are bojone's (`In-Projection-i`, `Out-Projection-i`, the two mask layers), but for
`ReParameterization-i`: one sampler per latent block, so that each block owns the random
stream it draws from and `remat=True` replays a block's vMF sample in its recomputation
as it replays its dropout (bojone's single `ReParameterization` holds no weights, so the
weights are the same).
Checkpoints are RoFormer's (UniVAE starts from one): the latent projections are not in
them and keep their initialisation; presets hold every weight.
"""
import dataclasses

import keras
from keras import ops

from kerasformer.architectures import register
from kerasformer.architectures.base import ForwardContext, TruncatedNormal
from kerasformer.architectures.roformer import RoFormer
from kerasformer.checks import check_integer
from kerasformer.layers.masks import UniAEMask
from kerasformer.layers.pooling import FirstToken
from kerasformer.layers.vmf import VonMisesFisherSampling


@keras.saving.register_keras_serializable(package="kerasformer")
class LatentInitializer(TruncatedNormal):
    """The encoder's truncated normal (σ = 0.02, as bojone's projections), drawn even
    while a checkpoint's weights are about to be loaded: no checkpoint holds the
    latent projections, so they keep these values."""

    def __call__(self, shape, dtype=None):
        return keras.random.truncated_normal(shape, stddev=self.stddev, dtype=dtype,
                                             seed=self.seed)


LATENT_INITIALIZER = LatentInitializer(stddev=0.02)


@dataclasses.dataclass
class LatentContext(ForwardContext):
    """`ForwardContext` of a UniVAE pass.

    Attributes:
        latent_attention_mask: the UniAE2 mask of the latent blocks.
        latents: `(batch, num_latent_layers · latent_size)` latents to decode from,
            instead of the sentence's own.
    """

    latent_attention_mask: object = None
    latents: object = None


@keras.saving.register_keras_serializable(package="kerasformer")
class FirstPositionReplacement(keras.layers.Layer):
    """`[x (batch, seq, hidden), value (batch, hidden)]` → x with position 0 replaced by
    `value` (bojone's `Concatenation-i`); the padding mask of x is kept.

    Call arguments:
        inputs: `[x, value]`.
        position_ids: optional int `(batch, seq)`: replace where the position is 0
            instead of at index 0 (tokens decoded after the first have no position 0).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, position_ids=None):
        x, value = inputs
        value = ops.cast(value, x.dtype)[:, None]  # (batch, 1, hidden)
        if position_ids is None:
            return ops.concatenate([value, x[:, 1:]], axis=1)
        return ops.where(ops.equal(position_ids, 0)[..., None], value, x)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@register
class UniVAE(RoFormer):
    """RoFormer with UniAE masks and vMF latents (see the module docstring).

    Args:
        num_latent_layers: int. Blocks that get a latent (the last ones; bojone: 4).
        latent_size: int. Dimensions of each block's latent (bojone: 16).
        kappa: float. Concentration of the vMF posterior around μ (bojone: 32); fixed,
            so the KL term is a constant and training is the decoder's cross-entropy.
        half_length: int. Tokens of each copy ([CLS] and [SEP] included; bojone's
            `maxlen`, 32): the second copy starts at this position, in training and
            in decoding alike.
        **kwargs: `RoFormer` arguments; `application` is "unilm" (the second copy is
            generated from the first, as a UniLM target from its source; the
            builder's default "encoder" is taken to mean it).
    """

    architecture = "univae"
    aliases = ()
    hf_model_types = ()

    def __init__(self, num_latent_layers=4, latent_size=16, kappa=32.0, half_length=32,
                 **kwargs):
        # "encoder" is `build_transformer_model`'s default, which bert4keras' UniVAE
        # ignored as well: its masks are its own.
        application = kwargs.pop("application", None) or "unilm"
        if application not in ("unilm", "encoder"):
            raise ValueError(f"UniVAE is a 'unilm' application, got {application!r}")
        super().__init__(application="unilm", **kwargs)
        if self.with_pool:
            raise ValueError("UniVAE has no pooler: a sentence's vector is its latent "
                             "(encode_latents)")
        for name, value, low in (("num_latent_layers", num_latent_layers, 1),
                                 ("latent_size", latent_size, 2), ("half_length", half_length, 2)):
            check_integer(value, name, low)
        if num_latent_layers > self.num_hidden_layers:
            raise ValueError(f"num_latent_layers={num_latent_layers} exceeds the "
                             f"{self.num_hidden_layers} blocks")
        if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not kappa > 0:
            raise ValueError(f"kappa must be a positive number, got {kappa!r}")
        self.num_latent_layers = num_latent_layers
        self.latent_size = latent_size
        self.kappa = float(kappa)
        self.half_length = half_length

    @classmethod
    def recognises_checkpoint(cls, names):
        return False  # its checkpoints are RoFormer's: RoFormer claims them

    @classmethod
    def recognises_config(cls, config):
        return False

    @property
    def first_latent_layer(self):
        return self.num_hidden_layers - self.num_latent_layers

    @property
    def latent_dim(self):
        """Width of a sentence's whole latent: `num_latent_layers · latent_size`."""
        return self.num_latent_layers * self.latent_size

    # ------------------------------------------------------------------ graph

    def compute_context(self, inputs):
        token_ids, segment_ids = inputs["token_ids"], inputs["segment_ids"]
        context = LatentContext(
            attention_mask=self.layer("Attention-UniAE1-Mask", UniAEMask)(token_ids, segment_ids),
            latent_attention_mask=self.layer(
                "Attention-UniAE2-Mask", UniAEMask, see_first=True)(token_ids, segment_ids),
        )
        return self.add_positions(context, inputs)

    def latent_direction(self, x, index):
        """μ of block `index`: the unit vector of its input's position 0, `(batch, latent_size)`."""
        pooled = self.layer(f"CLS-Pooler-{index}", FirstToken)(x)  # (batch, hidden)
        z = self.layer(f"In-Projection-{index}", keras.layers.Dense, units=self.latent_size,
                       kernel_initializer=LATENT_INITIALIZER)(pooled)
        return self.layer(f"L2-Normalization-{index}", keras.layers.UnitNormalization)(z)

    def apply_main_layers(self, x, index, context):
        if index < self.first_latent_layer:
            return super().apply_main_layers(x, index, context)
        if context.latents is None:
            z = self.layer(f"ReParameterization-{index}", VonMisesFisherSampling,
                           kappa=self.kappa)(self.latent_direction(x, index))
        else:
            chunk = index - self.first_latent_layer
            z = context.latents[:, chunk * self.latent_size:(chunk + 1) * self.latent_size]
        z = self.layer(f"Out-Projection-{index}", keras.layers.Dense, units=self.hidden_size,
                       kernel_initializer=LATENT_INITIALIZER)(z)  # (batch, hidden)
        x = self.layer(f"Concatenation-{index}", FirstPositionReplacement)(
            [x, z], position_ids=context.position_ids)
        context = dataclasses.replace(context, attention_mask=context.latent_attention_mask)
        return super().apply_main_layers(x, index, context)

    def encode_latents(self, token_ids):
        """The latents μ of sentences `(batch, latent_dim)`: the first copy alone
        (segment 0; it never sees the second), blocks run up to the last latent.

        Args:
            token_ids: int `(batch, seq)`, `[CLS] … [SEP]` padded with 0.
        """
        inputs = {"token_ids": token_ids, "segment_ids": ops.zeros_like(token_ids)}
        context = self.compute_context(inputs)
        x = self.apply_embeddings(inputs, context)
        directions = []
        for index in range(self.num_hidden_layers):
            if index >= self.first_latent_layer:
                directions.append(self.latent_direction(x, index))
                if index == self.num_hidden_layers - 1:
                    break
                # the block reads its own chunk, the last of these
                latents = ops.concatenate(directions, axis=-1)
                x = self.apply_main_layers(
                    x, index, dataclasses.replace(context, latents=latents))
            else:
                x = self.apply_main_layers(x, index, context)
        return ops.concatenate(directions, axis=-1)  # (batch, latent_dim)

    # -------------------------------------------------------- decoder protocol

    @property
    def causal_prefix(self):
        return True  # a prefix is [CLS] of the first copy, then the second copy

    def call_with_cache(self, inputs, attention_mask, caches, cache_update_index):
        """The decode loop's pass, on the sequence `[CLS]₀ [CLS]₁ t₁ t₂ …`: the first
        copy's [CLS] alone (its other tokens would be padding; its vectors are
        replaced by the latents anyway), then the second copy.

        The loop's position p becomes the model's: 0 for p = 0, `half_length + p − 1`
        after (where training put the second copy), with segment 1; `cache_context`
        narrows the loop's causal mask to the UniAE masks.

        `inputs["latents"]`: `(batch, latent_dim)` (a condition of the decode loop).
        """
        if "latents" not in inputs:
            raise ValueError("UniVAE decodes from latents: pass conditions={'latents': ...}")
        steps = inputs["position_ids"]
        second = ops.greater(steps, 0)  # (batch, new)
        model_inputs = {"token_ids": inputs["token_ids"], "latents": inputs["latents"],
                        "position_ids": ops.where(second, steps + (self.half_length - 1), 0),
                        "segment_ids": ops.cast(second, "int32")}
        return super().call_with_cache(model_inputs, attention_mask, caches, cache_update_index)

    def cache_context(self, inputs, attention_mask, caches, cache_update_index):
        """Cache slot 0 holds the first copy's [CLS], every other slot the second copy:
        the UniAE1 mask keeps the copies apart, the UniAE2 mask also shows slot 0."""
        second = ops.equal(inputs["segment_ids"], 1)  # (batch, new)
        slots = ops.arange(ops.shape(attention_mask)[-1], dtype="int32")
        same_copy = ops.equal(second[..., None], ops.greater(slots, 0)[None, None])
        sees_first = ops.logical_or(same_copy, ops.equal(slots, 0)[None, None])
        return LatentContext(
            attention_mask=ops.logical_and(attention_mask, same_copy),  # (batch, new, cache)
            latent_attention_mask=ops.logical_and(attention_mask, sees_first),
            caches=list(caches),
            cache_update_index=cache_update_index,
            position_ids=inputs["position_ids"],
            latents=ops.cast(inputs["latents"], "float32"),
        )

    # ------------------------------------------------------------ distribution

    @classmethod
    def layout_rules(cls):
        """RoFormer's; the latent projections are small and replicated (the hidden
        states they read and write are whole on every device)."""
        rules = {key: axes for key, axes in super().layout_rules().items()
                 if not key.startswith(("Pooler", "NSP"))}  # no pooler: see __init__
        return {**rules, r"(In|Out)-Projection-\d+/kernel": (None, None),
                r"(In|Out)-Projection-\d+/bias": (None,)}

    # ----------------------------------------------------------------- weights

    def latent_layer_names(self):
        return [self.prefix + f"{kind}-Projection-{index}"
                for index in range(self.first_latent_layer, self.num_hidden_layers)
                for kind in ("In", "Out")]

    def checkpoint_variables(self):
        """RoFormer's: a checkpoint never holds the latent projections."""
        latent = {id(variable) for name in self.latent_layer_names()
                  for variable in self.layers[name].weights}
        return [variable for variable in super().checkpoint_variables()
                if id(variable) not in latent]
