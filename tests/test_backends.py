"""The backend matrix: tests marked `backends` run again under TensorFlow and PyTorch.

Keras fixes its backend at import, so each backend gets its own pytest process.
"""
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).parent


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_marked_tests_pass_on(backend):
    if os.environ.get("KERAS_BACKEND") != "jax":
        pytest.skip("the matrix is driven from the JAX session")
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    result = subprocess.run(
        # in one process: it already runs beside the other test workers
        [sys.executable, "-m", "pytest", "-m", "backends", "-q", "-p", "no:cacheprovider",
         "-o", "addopts=", str(TESTS)],
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"{backend}: {summary[0]}")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
