"""Big batches at the memory of small ones: a model run micro-batch by micro-batch,
with the gradient of the whole batch.

`MicroBatched(model, micro_batches=k)` splits every input along the batch axis into
k micro-batches, runs `model` on each under rematerialisation (`keras.remat`) and
concatenates the outputs. The loss is computed on the outputs of the whole batch, so
any loss works, including those where one sample's loss depends on the others (the
in-batch negatives of SimBERT / RoFormer-Sim / SimCSE). Autodiff then does what
GradCache does by hand: the forward pass keeps only the outputs of each micro-batch,
the gradient of the loss with respect to all outputs is taken once, and each
micro-batch's forward pass is recomputed in the backward pass and back-propagated
through alone. The gradient is that of the big batch; the activations alive at once
are those of one micro-batch (plus the outputs of all of them).

Dropout is replayed (`kerasformer.training.replay`): the recomputed forward pass draws
exactly the masks of the first, or the gradient would belong to another network.

One optimizer update per big batch, one compiled train step, no gradient buffers: the
cost is one extra forward pass of the model (the recomputation). `remat=False` keeps
the same micro-batch split without recomputation (no memory saving, same numbers).
"""
import keras
from keras import ops

from kerasformer.checks import check_integer
from kerasformer.training.replay import offset_seeds, replayable, seed_generators


def split_batch(structure, micro_batches):
    """Every tensor of a nested structure split in `micro_batches` along axis 0."""
    flat = keras.tree.flatten(structure)
    for tensor in flat:
        size = tensor.shape[0]
        if size is not None and size % micro_batches:
            raise ValueError(
                f"a batch of {size} cannot be split into {micro_batches} equal "
                "micro-batches; use a batch size that is a multiple of micro_batches"
            )
    pieces = [ops.split(tensor, micro_batches, axis=0) for tensor in flat]
    return [keras.tree.pack_sequence_as(structure, [p[i] for p in pieces])
            for i in range(micro_batches)]


@keras.saving.register_keras_serializable(package="kerasformer")
class MicroBatched(keras.Model):
    """`model` run on `micro_batches` equal slices of each batch, outputs concatenated.

    Train it as any Keras model (`compile`, `fit`, `jit_compile=True`); the loss sees
    the outputs of the whole batch, so in-batch contrastive losses get all the
    negatives of the big batch. Inference (`predict`) is plain batching.

    Args:
        model: the `keras.Model` to run (e.g. from `build_transformer_model`).
        micro_batches: int ≥ 1, how many slices each batch is cut into; batch sizes
            must be multiples of it.
        remat: recompute each micro-batch's forward pass in the backward pass (the
            memory saving); False keeps all activations (same gradient).
    """

    def __init__(self, model, micro_batches=2, remat=True, **kwargs):
        super().__init__(**kwargs)
        micro_batches = check_integer(micro_batches, "micro_batches")
        self.model = model
        self.micro_batches = micro_batches
        self.remat = bool(remat)

    def build(self, input_shape=None):
        self.built = True

    def compile(self, *args, jit_compile="auto", **kwargs):
        if (jit_compile is True and keras.backend.backend() == "torch" and self.remat
                and seed_generators(self.model)):
            raise ValueError(
                "MicroBatched cannot replay dropout under torch.compile "
                "(jit_compile=True on the torch backend): the recomputed pass would draw "
                "other masks. Use jit_compile=False (torch's default), or the jax or "
                "tensorflow backend to compile."
            )
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def call(self, inputs, training=None):
        generators = seed_generators(self.model)
        # One draw per generator and step; micro-batch i derives its seeds from it.
        base_states = [generator.next() for generator in generators]

        def run(*flat_inputs):
            chunk = keras.tree.pack_sequence_as(inputs, list(flat_inputs))
            return keras.tree.flatten(self.model(chunk, training=training))

        step = replayable(run, generators, remat=self.remat)
        arguments = [
            offset_seeds(base_states, index) + keras.tree.flatten(chunk)
            for index, chunk in enumerate(split_batch(inputs, self.micro_batches))
        ]
        if self.remat and keras.backend.backend() != "tensorflow":
            # A scan runs the micro-batches one after another in the backward pass
            # too, so one micro-batch's recomputed activations are alive at a time;
            # an unrolled loop lets XLA schedule all recomputations at once. (Keras'
            # TensorFlow scan requires outputs shaped like the carry, so TensorFlow
            # unrolls: same gradient, memory left to its scheduler.)
            stacked = [ops.stack(parts) for parts in zip(*arguments)]
            _, outputs = ops.scan(lambda carry, xs: (carry, step(*xs)), 0, stacked)
            flat = [ops.reshape(o, (-1,) + tuple(o.shape[2:])) for o in outputs]
        else:
            outputs = [step(*chunk_arguments) for chunk_arguments in arguments]
            # (A new tensor also for one micro-batch: outputs never carry the Keras
            # mask of the model's output, whatever micro_batches is.)
            flat = [ops.concatenate(parts, axis=0) if len(parts) > 1 else ops.multiply(parts[0], 1)
                    for parts in zip(*outputs)]
        structure = self.model.outputs if getattr(self.model, "outputs", None) else flat
        if not isinstance(structure, (list, tuple)) or len(flat) == 1:
            return flat[0]
        return keras.tree.pack_sequence_as(list(structure), flat)

    def get_config(self):
        config = super().get_config()
        config.update({
            "model": keras.saving.serialize_keras_object(self.model),
            "micro_batches": self.micro_batches,
            "remat": self.remat,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects)
        return cls(**config)
