"""Choosing the Keras backend before Keras is imported.

Keras falls back to TensorFlow when neither `KERAS_BACKEND` nor keras.json says
otherwise — and writes that default into a new keras.json itself — so a user who
installed `kerasformer[jax]` would meet `No module named 'tensorflow'` from inside
Keras. kerasformer respects a backend the user chose (the environment variable, or a
keras.json backend that is installed); otherwise it picks an installed one and says so.
"""
import importlib.util
import json
import os
import sys

# In order of preference; each is also the name of kerasformer's extra that installs it.
BACKENDS = ("jax", "torch", "tensorflow")


class BackendNotInstalled(ImportError):
    """The chosen Keras backend is not installed."""


def installed(backend):
    return importlib.util.find_spec(backend) is not None


def keras_json_backend():
    """The backend keras.json names, or None."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            backend = json.load(file).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return backend if isinstance(backend, str) else None


def choose():
    """Sets `KERAS_BACKEND` when Keras is not imported yet and nothing usable is chosen.

    Raises:
        BackendNotInstalled: `KERAS_BACKEND` names a backend that is not installed.
    """
    if "keras" in sys.modules:
        return  # too late to choose; Keras has its backend
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen:
        if chosen in BACKENDS and not installed(chosen):
            raise BackendNotInstalled(
                f"KERAS_BACKEND={chosen} but {chosen} is not installed: "
                f'pip install "kerasformer[{chosen}]"'
            )
        return
    from_json = keras_json_backend()
    if from_json is not None and (from_json not in BACKENDS or installed(from_json)):
        return
    available = [backend for backend in BACKENDS if installed(backend)]
    if not available:
        raise BackendNotInstalled(
            "no Keras backend is installed: pip install \"kerasformer[jax]\" (or [torch], "
            "[tensorflow])"
        )
    os.environ["KERAS_BACKEND"] = available[0]
    print(
        f"kerasformer: using the {available[0]} backend (set KERAS_BACKEND to choose)",
        file=sys.stderr,
    )
