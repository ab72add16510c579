"""Test set-up shared by the whole suite.

The suite runs on JAX unless KERAS_BACKEND says otherwise; tests/test_backends.py
re-runs the tests marked `backends` under tensorflow and torch in subprocesses.
Nothing may reach the real Hugging Face Hub: hub tests serve a loopback fake
(tests/hub/fake_hub.py), and huggingface_hub's telemetry, read once at import, is off.
"""
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: never the real Hub

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
