"""Affine and normalisation layers of bert4keras: ScaleOffset and LayerNormalization.

Both compute in float32 whatever the dtype policy, and cast the result back to the
compute dtype, so mixed-precision models keep full-precision statistics.

Both have bert4keras' conditional mode (Conditional Layer Normalization,
https://kexue.fm/archives/7124): called on `[x, condition]`, a `(batch, features)`
condition shifts the gain and the bias through zero-initialised Dense layers, so a
conditional layer starts out as the plain one and a pretrained model is unchanged
until it trains.
"""
import keras
from keras import ops

from kerasformer.checks import check_integer
from kerasformer.layers.sequence import align


@keras.saving.register_keras_serializable(package="kerasformer")
class ScaleOffset(keras.layers.Layer):
    """Learned per-feature affine map of the last axis: `x * gamma + beta`.

    The MLM head's output bias (`MLM-Bias`) is a ScaleOffset with `scale=False`.

    Args:
        scale: bool. Whether to learn `gamma` (initialised to ones).
        offset: bool. Whether to learn `beta` (initialised to zeros).
        conditional: bool. Take `[x, condition]` and add `gamma_dense(condition)` to
            `gamma` and `beta_dense(condition)` to `beta` (bias-free Dense layers,
            zero-initialised), broadcast over every axis of `x` but the first and
            the last. `condition` is `(batch, condition_features)`.
        hidden_units: int. With `conditional`, first map the condition through a
            bias-free Dense of this width (shared by gamma and beta).
        hidden_activation: activation of that Dense ("linear" by default).
        hidden_initializer: kernel initializer of that Dense.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, scale=True, offset=True, conditional=False, hidden_units=None,
                 hidden_activation="linear", hidden_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.scale = bool(scale)
        self.offset = bool(offset)
        self.conditional = bool(conditional)
        self.hidden_units = check_integer(hidden_units, "hidden_units", optional=True)
        self.hidden_activation = hidden_activation
        self.hidden_initializer = hidden_initializer
        self.supports_masking = True

    def build(self, input_shape):
        if self.conditional:
            if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
                    and isinstance(input_shape[0], (list, tuple))):
                raise ValueError(
                    f"{self.name} is conditional: call it on [x, condition], got one input "
                    f"of shape {input_shape}"
                )
            input_shape, condition_shape = input_shape
            if len(condition_shape) != 2:
                raise ValueError(
                    f"{self.name}: the condition must be (batch, features), got shape "
                    f"{tuple(condition_shape)}"
                )
        features = input_shape[-1]
        if self.offset:
            self.beta = self.add_weight(
                name="beta", shape=(features,), initializer="zeros"
            )
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma", shape=(features,), initializer="ones"
            )
        if not self.conditional:
            return
        dense = dict(use_bias=False, dtype=self.dtype_policy)
        if self.hidden_units is not None:
            self.hidden_dense = keras.layers.Dense(
                self.hidden_units, activation=self.hidden_activation,
                kernel_initializer=self.hidden_initializer, name="hidden_dense", **dense,
            )
            self.hidden_dense.build(condition_shape)
            condition_shape = (condition_shape[0], self.hidden_units)
        if self.offset:
            self.beta_dense = keras.layers.Dense(
                features, kernel_initializer="zeros", name="beta_dense", **dense
            )
            self.beta_dense.build(condition_shape)
        if self.scale:
            self.gamma_dense = keras.layers.Dense(
                features, kernel_initializer="zeros", name="gamma_dense", **dense
            )
            self.gamma_dense.build(condition_shape)

    @property
    def condition_weights(self):
        """The weights of the conditional Dense layers (none unless `conditional`)."""
        return [weight for name in ("hidden_dense", "beta_dense", "gamma_dense")
                if hasattr(self, name) for weight in getattr(self, name).weights]

    def _split(self, inputs):
        """`(x, condition)`; the condition is None unless the layer is conditional."""
        if not self.conditional:
            return inputs, None
        x, condition = inputs
        if self.hidden_units is not None:
            condition = self.hidden_dense(condition)
        return x, condition

    def _scale_and_offset(self, x, condition=None):
        # x is float32 here; the variables are float32 under every policy.
        if condition is not None:
            def shift(dense):  # (batch, features) -> broadcast over x's middle axes
                value = ops.cast(dense(condition), "float32")
                return align(value, [0, len(x.shape) - 1], len(x.shape))

        if self.scale:
            gamma = ops.cast(self.gamma, "float32")
            x = x * (gamma if condition is None else gamma + shift(self.gamma_dense))
        if self.offset:
            beta = ops.cast(self.beta, "float32")
            x = x + (beta if condition is None else beta + shift(self.beta_dense))
        return x

    def call(self, inputs):
        x, condition = self._split(inputs)
        outputs = self._scale_and_offset(ops.cast(x, "float32"), condition)
        return ops.cast(outputs, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        if self.conditional and isinstance(mask, (list, tuple)):
            return mask[0]
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape[0] if self.conditional else input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "scale": self.scale,
            "offset": self.offset,
            "conditional": self.conditional,
            "hidden_units": self.hidden_units,
            "hidden_activation": (keras.activations.serialize(self.hidden_activation)
                                  if callable(self.hidden_activation)
                                  else self.hidden_activation),
            "hidden_initializer": _serializable(self.hidden_initializer),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("hidden_activation"), dict):
            config["hidden_activation"] = keras.activations.deserialize(
                config["hidden_activation"])
        if isinstance(config.get("hidden_initializer"), dict):
            config["hidden_initializer"] = keras.initializers.deserialize(
                config["hidden_initializer"]
            )
        return cls(**config)


def _serializable(initializer):
    if isinstance(initializer, keras.initializers.Initializer):
        return keras.initializers.serialize(initializer)
    return initializer


@keras.saving.register_keras_serializable(package="kerasformer")
class LayerNormalization(ScaleOffset):
    """bert4keras' LayerNormalization, with switches for every variant it builds.

    `x ← x − mean(x)` (if `zero_mean`), `x ← x / sqrt(mean(x²) + epsilon)` (if
    `unit_variance`), then `x·gamma + beta`. `zero_mean=False` gives the RMS norm of
    RoFormerV2 and GAU-α; with `scale=False, offset=False` it has no parameters.
    With `conditional=True` it takes `[x, condition]` (see `ScaleOffset`).

    Args:
        zero_mean: bool. Subtract the mean of the last axis first.
        unit_variance: bool. Divide by the root mean square.
        epsilon: float. Added to the mean square. bert4keras' BERT passes 1e-12; its
            RoFormer family passed nothing, which meant 1e-12 when the Zhuiyi
            checkpoints were trained and 1e-7 from bert4keras 0.11.4 on, so the
            families expose it as `layer_norm_epsilon`.
        scale: bool. Learn a gain `gamma`.
        offset: bool. Learn a bias `beta`.
        **kwargs: `ScaleOffset` arguments (`conditional`, `hidden_*`) and base layer
            arguments.
    """

    def __init__(
        self,
        zero_mean=True,
        unit_variance=True,
        epsilon=1e-12,
        scale=True,
        offset=True,
        **kwargs,
    ):
        super().__init__(scale=scale, offset=offset, **kwargs)
        if not epsilon or epsilon < 0:
            raise ValueError(f"epsilon must be a positive float, got {epsilon!r}")
        self.zero_mean = bool(zero_mean)
        self.unit_variance = bool(unit_variance)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x, condition = self._split(inputs)
        x = ops.cast(x, "float32")
        if self.zero_mean:
            x = x - ops.mean(x, axis=-1, keepdims=True)
        if self.unit_variance:
            mean_square = ops.mean(ops.square(x), axis=-1, keepdims=True)
            x = x / ops.sqrt(mean_square + self.epsilon)
        return ops.cast(self._scale_and_offset(x, condition), self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "zero_mean": self.zero_mean,
                "unit_variance": self.unit_variance,
                "epsilon": self.epsilon,
            }
        )
        return config
