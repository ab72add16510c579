"""Compiling model functions: the same results however XLA is tuned."""
import keras
import numpy as np
import pytest

from kerasformer.generation import compile as compile_module
from kerasformer.generation.compile import EIGEN_ROWS, compile_model_function
from tests.helpers import to_numpy


def dense_function():
    layer = keras.layers.Dense(64, activation="gelu")
    layer.build((None, 48))
    return (lambda x: layer(layer(x[..., :48])[..., :48])), layer.variables


@pytest.mark.backends
@pytest.mark.parametrize("rows", [1, min(EIGEN_ROWS), max(EIGEN_ROWS), 40])
def test_compiled_function_equals_eager(rows):
    function, variables = dense_function()
    inputs = np.random.default_rng(rows).standard_normal((rows, 64)).astype("float32")
    compiled = compile_model_function(function, variables, rows=rows)
    np.testing.assert_allclose(
        to_numpy(compiled(inputs)), to_numpy(function(inputs)), atol=1e-5
    )


@pytest.mark.skipif(keras.config.backend() != "jax", reason="XLA options are JAX's")
def test_options_this_jaxlib_rejects_fall_back_to_plain_compilation(monkeypatch):
    monkeypatch.setattr(
        compile_module, "EIGEN_CPU_OPTIONS", {"xla_cpu_no_such_option": ""}
    )
    function, variables = dense_function()
    rows = min(EIGEN_ROWS)
    inputs = np.ones((rows, 64), "float32")
    compiled = compile_model_function(function, variables, rows=rows)
    for _ in range(2):
        np.testing.assert_allclose(
            to_numpy(compiled(inputs)), to_numpy(function(inputs)), atol=1e-5
        )


@pytest.mark.skipif(keras.config.backend() != "jax", reason="XLA options are JAX's")
def test_other_compile_errors_are_not_swallowed():
    import jax

    def failing(x):
        return jax.pure_callback(_raise, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    compiled = compile_model_function(failing, [], rows=min(EIGEN_ROWS))
    with pytest.raises(jax.errors.JaxRuntimeError, match="deliberate"):
        to_numpy(compiled(np.ones((min(EIGEN_ROWS), 4), "float32")))


def _raise(x):
    raise ValueError("deliberate failure")
