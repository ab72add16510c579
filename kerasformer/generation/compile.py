"""Compiling a function that calls a model's layers, once per backend.

JAX: `jax.jit`, with the model's variables passed in as arguments inside a
`keras.StatelessScope` (so weights are neither baked into the program as constants
nor stale after fine-tuning). TensorFlow: `tf.function(jit_compile=True)`. PyTorch:
eager under `torch.no_grad()`. Each backend caches its compilations by input shape, so
callers bucket their shapes and keep the returned function.
"""
import keras

# XLA:CPU hands matrix products to YNNPACK by default. Decoding 8 to 20 rows, its
# Eigen path is 13-20% faster on the benchmark machine; with fewer rows or more,
# YNNPACK is as fast or faster (measurements in docs/benchmarks.md).
EIGEN_ROWS = range(8, 21)
EIGEN_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compile_model_function(function, variables, rows=None):
    """Returns a compiled version of `function(*arrays)`.

    Args:
        function: traceable Python function of tensors that calls model layers.
        variables: every `keras.Variable` those layers read.
        rows: int. Rows of the function's matrix products, when every call has the
            same number (a decoding batch); on JAX on CPU, XLA is tuned for it.
    """
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        variables = list(variables)

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return function(*args)

        compiled = jax.jit(stateless)
        if rows in EIGEN_ROWS and jax.default_backend() == "cpu":
            compiled = _with_fallback(
                jax.jit(stateless, compiler_options=EIGEN_CPU_OPTIONS), compiled
            )
        return lambda *args: compiled([variable.value for variable in variables], *args)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    if backend == "torch":
        import torch

        def eager(*args):
            with torch.no_grad():
                return function(*keras.tree.map_structure(keras.ops.convert_to_tensor, args))

        return eager
    raise NotImplementedError(f"generation does not support the {backend!r} backend")


def _with_fallback(tuned, plain):
    """`tuned`, or `plain` from the first call on if this jaxlib rejects the tuning
    options (they are XLA debug options, which come and go between versions)."""
    import jax

    chosen = [tuned]

    def call(*args):
        try:
            return chosen[0](*args)
        except jax.errors.JaxRuntimeError as error:
            message = str(error)
            rejected = "compile option" in message or "setting option" in message
            if chosen[0] is plain or not rejected:
                raise
            chosen[0] = plain
            return plain(*args)

    return call
