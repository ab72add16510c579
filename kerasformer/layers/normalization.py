"""Affine and normalisation layers of bert4keras: ScaleOffset and LayerNormalization.

Both compute in float32 whatever the dtype policy, and cast the result back to the
compute dtype, so mixed-precision models keep full-precision statistics.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasformer")
class ScaleOffset(keras.layers.Layer):
    """Learned per-feature affine map of the last axis: `x * gamma + beta`.

    The MLM head's output bias (`MLM-Bias`) is a ScaleOffset with `scale=False`.

    Args:
        scale: bool. Whether to learn `gamma` (initialised to ones).
        offset: bool. Whether to learn `beta` (initialised to zeros).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).
    """

    def __init__(self, scale=True, offset=True, **kwargs):
        super().__init__(**kwargs)
        self.scale = bool(scale)
        self.offset = bool(offset)
        self.supports_masking = True

    def build(self, input_shape):
        features = input_shape[-1]
        if self.offset:
            self.beta = self.add_weight(
                name="beta", shape=(features,), initializer="zeros"
            )
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma", shape=(features,), initializer="ones"
            )

    def _scale_and_offset(self, x):
        # x is float32 here; the variables are float32 under every policy.
        if self.scale:
            x = x * ops.cast(self.gamma, "float32")
        if self.offset:
            x = x + ops.cast(self.beta, "float32")
        return x

    def call(self, inputs):
        outputs = self._scale_and_offset(ops.cast(inputs, "float32"))
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


@keras.saving.register_keras_serializable(package="kerasformer")
class LayerNormalization(ScaleOffset):
    """bert4keras' LayerNormalization, with switches for every variant it builds.

    `x ← x − mean(x)` (if `zero_mean`), `x ← x / sqrt(mean(x²) + epsilon)` (if
    `unit_variance`), then `x·gamma + beta`. `zero_mean=False` gives the RMS norm of
    RoFormerV2 and GAU-α; with `scale=False, offset=False` it has no parameters.

    Args:
        zero_mean: bool. Subtract the mean of the last axis first.
        unit_variance: bool. Divide by the root mean square.
        epsilon: float. Added to the mean square. bert4keras' BERT passes 1e-12; its
            RoFormer family passed nothing, which meant 1e-12 when the Zhuiyi
            checkpoints were trained and 1e-7 from bert4keras 0.11.4 on, so the
            families expose it as `layer_norm_epsilon`.
        scale: bool. Learn a gain `gamma`.
        offset: bool. Learn a bias `beta`.
        **kwargs: base layer arguments.
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
        x = ops.cast(inputs, "float32")
        if self.zero_mean:
            x = x - ops.mean(x, axis=-1, keepdims=True)
        if self.unit_variance:
            mean_square = ops.mean(ops.square(x), axis=-1, keepdims=True)
            x = x / ops.sqrt(mean_square + self.epsilon)
        return ops.cast(self._scale_and_offset(x), self.compute_dtype)

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
