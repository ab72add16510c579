"""Sequence pooling used by the BERT-style heads."""
import keras


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
