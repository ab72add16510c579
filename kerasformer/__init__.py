"""kerasformer: the bert4keras model zoo on Keras 3 (JAX, TensorFlow, PyTorch).

Submodules load on first use, so `kerasformer.tokenizers` or the checkpoint reader
work without importing Keras or a backend. When no backend is chosen, an installed
one is picked before Keras is imported (see `_backend.py`).
"""
import importlib

from kerasformer import _backend

__version__ = "0.1.0"

_backend.choose()

_SUBMODULES = (
    "architectures", "convert", "data", "families", "generation", "hub", "layers", "loading",
    "models", "distribution", "evaluation", "optimizers", "presets", "tokenizers", "training",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"kerasformer.{name}")
    if name == "build_transformer_model":
        from kerasformer.models.builder import build_transformer_model

        return build_transformer_model
    raise AttributeError(f"module 'kerasformer' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES, "build_transformer_model"])
