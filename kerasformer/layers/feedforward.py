"""The position-wise feed-forward block, with bert4keras' sub-layer names."""
import keras

from kerasformer.layers.activations import get_activation, serialize_activation


@keras.saving.register_keras_serializable(package="kerasformer")
class FeedForward(keras.layers.Layer):
    """`o_dense(act(i0_dense(x)))`, or a gated linear unit for a list of activations.

    With `activation=[a0, a1, ...]` the hidden layer is `a0(i0(x)) · a1(i1(x)) · ...`
    (GLU variants, https://arxiv.org/abs/2002.05202). The output width equals the
    input width.

    Args:
        units: int. Hidden width (`intermediate_size`).
        activation: activation name or list of names.
        use_bias: bool.
        kernel_initializer: initializer for every kernel.
        **kwargs: base layer arguments.
    """

    def __init__(
        self,
        units,
        activation="relu",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        if not isinstance(activation, (list, tuple)):
            activation = [activation]
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        self.input_denses = []
        for index, act in enumerate(activation):
            dense = keras.layers.Dense(
                units,
                activation=get_activation(act),
                use_bias=use_bias,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=f"i{index}_dense",
            )
            setattr(self, f"i{index}_dense", dense)
            self.input_denses.append(dense)
        self.o_dense = None  # its width is the input width, known in build

    def build(self, input_shape):
        for dense in self.input_denses:
            dense.build(input_shape)
        self.o_dense = keras.layers.Dense(
            input_shape[-1],
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="o_dense",
        )
        self.o_dense.build(tuple(input_shape[:-1]) + (self.units,))

    def call(self, inputs):
        hidden = self.input_denses[0](inputs)
        for dense in self.input_denses[1:]:
            hidden = hidden * dense(inputs)
        return self.o_dense(hidden)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": serialize_activation(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
