"""Test set-up shared by the whole suite.

The suite runs on JAX unless KERAS_BACKEND says otherwise; tests/test_backends.py
re-runs the tests marked `backends` under tensorflow and torch in subprocesses.
"""
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
