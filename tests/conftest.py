"""Test set-up shared by the whole suite.

The suite runs on JAX unless KERAS_BACKEND says otherwise; tests/test_backends.py
re-runs the tests marked `backends` under tensorflow and torch in subprocesses.
Nothing may reach the real Hugging Face Hub: hub tests serve a loopback fake
(tests/hub/fake_hub.py), and huggingface_hub's telemetry, read once at import, is off.
Caches (kerasformer's and huggingface_hub's) live in a temporary directory per session.
"""
import os
import pathlib
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
# The suite's models are tiny: XLA's compile time dominates and its backend optimisation
# buys nothing (it is read by jax and TensorFlow's XLA, and inherited by subprocesses).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: never the real Hub
# Loads cache conversions (also of local directories): never in the user's own cache.
_CACHE = tempfile.TemporaryDirectory(prefix="kerasformer-tests-")
os.environ["KERASFORMER_HOME"] = os.path.join(_CACHE.name, "kerasformer")
os.environ["HF_HOME"] = os.path.join(_CACHE.name, "hf")

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
# The shared corpora and pair sets (../shared/data/DATASETS.md), read at run time and
# never committed; tests that learn from real data use them when they are there.
SHARED_DATA = pathlib.Path(os.environ.get(
    "KERASFORMER_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))
