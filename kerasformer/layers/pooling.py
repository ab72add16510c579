"""Sequence pooling: the BERT-style heads' first token, and bert4keras' masked max."""
import keras

from kerasformer.layers.sequence import sequence_masking


@keras.saving.register_keras_serializable(package="kerasformer")
class FirstToken(keras.layers.Layer):
    """The first ([CLS]) token's vector, `x[:, 0]` — bert4keras' `Pooler` layer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs[:, 0]  # (batch, hidden)

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per sequence: nothing left to mask

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="kerasformer")
class GlobalMaxPooling1D(keras.layers.GlobalMaxPooling1D):
    """Max over the steps the mask keeps — bert4keras' `GlobalMaxPooling1D`.

    bert4keras replaced `keras.layers.GlobalMaxPooling1D` by this masked version;
    Keras 3's ignores the mask, so a padded step (zeros after a ReLU, say) could win
    the max. A sequence with every step masked pools to `-inf`, as in bert4keras.

    Args:
        data_format: "channels_last" (steps on axis 1) or "channels_first" (axis 2).
        keepdims: bool. Keep the pooled axis with length 1.
        **kwargs: base layer arguments.
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        axis = 1 if self.data_format == "channels_last" else 2
        inputs = sequence_masking(inputs, mask, "-inf", axis)
        return keras.ops.max(inputs, axis=axis, keepdims=self.keepdims)

    def compute_mask(self, inputs, mask=None):
        return None
