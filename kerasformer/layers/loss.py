"""bert4keras' output-as-loss layer: a loss computed inside the graph.

bert4keras training scripts define losses that need more than `(y_true, y_pred)` —
the segment ids of a UniLM model, several outputs at once — by subclassing `Loss`:

    class CrossEntropy(Loss):
        def compute_loss(self, inputs, mask=None):
            y_true, y_mask, y_pred = inputs
            loss = K.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
            y_mask = K.cast(y_mask[:, 1:], "float32")
            return K.sum(loss * y_mask) / K.sum(y_mask)

    outputs = CrossEntropy(output_axis=2)(model.inputs + model.outputs)
    model = keras.Model(model.inputs, outputs)
    model.compile(optimizer)          # no `loss=`: the layer provides it
    model.fit(x, None, ...)           # or a generator yielding `(x, None)`

In Keras 3 the loss is registered with `Layer.add_loss` from `call`; `Model.compute_loss`
adds every such loss to the total, under `fit` / `evaluate` and on every backend, with
or without `jit_compile`.

Integer inputs (token and segment ids) reach `compute_loss` as floats, as in bert4keras,
whose models take float32 ids: its losses multiply by them (`loss * y_mask`), which
TensorFlow refuses for an int32 tensor. The layer's outputs are its inputs unchanged.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasformer")
class Loss(keras.layers.Layer):
    """Base class: `compute_loss(inputs, mask)` becomes part of the model's loss.

    Args:
        output_axis: which of the inputs the layer returns: None for all of them (as
            given), an int for one, a list of ints for several.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: a tensor or a list of tensors, passed to `compute_loss` (integer ones
            cast to floatx).
        mask: their Keras masks (a list matching `inputs`), when any has one.

    Returns:
        The selected inputs, unchanged, with their masks.
    """

    def __init__(self, output_axis=None, **kwargs):
        super().__init__(**kwargs)
        self.output_axis = output_axis
        self.supports_masking = True

    def compute_loss(self, inputs, mask=None):
        """The loss, a scalar (a tensor of any other shape is averaged).

        Subclasses implement this with `keras.ops` (or `kerasformer.backend.K`).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement compute_loss(self, inputs, mask=None)"
        )

    def _select(self, values):
        if self.output_axis is None:
            return values
        if isinstance(self.output_axis, (list, tuple)):
            return [values[i] for i in self.output_axis]
        return values[self.output_axis]

    def call(self, inputs, mask=None):
        loss = ops.cast(self.compute_loss(_ids_as_floats(inputs), mask), "float32")
        if len(loss.shape):
            loss = ops.mean(loss)
        self.add_loss(loss)
        return self._select(inputs)

    def compute_output_spec(self, inputs, mask=None):
        return keras.tree.map_structure(
            lambda x: keras.KerasTensor(x.shape, dtype=x.dtype, sparse=x.sparse),
            self._select(inputs),
        )

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return self._select(mask)

    def get_config(self):
        config = super().get_config()
        config.update({"output_axis": self.output_axis})
        return config


def _ids_as_floats(inputs):
    """`inputs` with every integer tensor cast to floatx."""
    def as_float(x):
        dtype = getattr(x, "dtype", None)
        if dtype is not None and "int" in keras.backend.standardize_dtype(dtype):
            return ops.cast(x, keras.config.floatx())
        return x

    return keras.tree.map_structure(as_float, inputs)
