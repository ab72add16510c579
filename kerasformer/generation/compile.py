"""Compiling a function that calls a model's layers, once per backend.

JAX: `jax.jit`, with the model's variables passed in as arguments inside a
`keras.StatelessScope` (so weights are neither baked into the program as constants
nor stale after fine-tuning). TensorFlow: `tf.function(jit_compile=True)`. PyTorch:
eager under `torch.no_grad()`. Each backend caches its compilations by input shape, so
callers bucket their shapes and keep the returned function.
"""
import keras


def compile_model_function(function, variables):
    """Returns a compiled version of `function(*arrays)`.

    Args:
        function: traceable Python function of tensors that calls model layers.
        variables: every `keras.Variable` those layers read.
    """
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        variables = list(variables)

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return function(*args)

        compiled = jax.jit(stateless)
        return lambda *args: compiled([variable.value for variable in variables], *args)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    if backend == "torch":
        import torch

        def eager(*args):
            with torch.no_grad():
                return function(*(keras.ops.convert_to_tensor(arg) for arg in args))

        return eager
    raise NotImplementedError(f"generation does not support the {backend!r} backend")
