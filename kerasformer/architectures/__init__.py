"""Architectures: one module each, registered in one table.

An architecture is what bert4keras calls a model (`model="roformer"`): the graph, the
weight map of each checkpoint layout it loads from (original TF, Hugging Face), the
Hugging Face `model_type`s and tensor names that identify its checkpoints. Each
module in this package defines a `Transformer` subclass decorated with `@register`;
the modules are discovered here, so adding an architecture touches only its module
(plus its manifests in checkpoints/ and its tests).

What a *family* is (RoFormer-Sim, SimBERT, word-level RoFormer, ...: an architecture
with heads, a task and a tokenizer recipe) is data: see `kerasformer.families`.
"""
import difflib
import importlib
import pkgutil

_TABLE = {}  # name or alias -> Transformer subclass
_DISCOVERED = False

# bert4keras model names kerasformer does not build (yet), to say so plainly.
BERT4KERAS_ONLY = (
    "albert", "albert_unshared", "nezha", "electra", "gpt", "gpt2_ml",
    *(f"{t5}{part}" for t5 in ("t5", "t5.1.0", "t5.1.1", "mt5.1.1")
      for part in ("", "_encoder", "_decoder")),
)


def register(cls):
    """Class decorator: adds an architecture under `cls.architecture` and `cls.aliases`."""
    if not isinstance(cls.architecture, str) or not cls.architecture:
        raise ValueError(f"{cls.__name__} needs an `architecture` name to be registered")
    for key in (cls.architecture, *cls.aliases):
        key = key.lower()
        if _TABLE.get(key, cls) is not cls:
            raise ValueError(f"architecture name {key!r} is taken by {_TABLE[key].__name__}")
        _TABLE[key] = cls
    return cls


def _discover():
    """Imports every module of this package once, so each registers itself."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        for module in pkgutil.iter_modules(__path__):
            if module.name != "base":
                importlib.import_module(f"{__name__}.{module.name}")


def architectures():
    """Every registered architecture class, by canonical name."""
    _discover()
    return {cls.architecture: cls for cls in _TABLE.values()}


def get(model):
    """The `Transformer` subclass for a `model=` name or alias (or the class itself)."""
    from kerasformer.architectures.base import Transformer

    if isinstance(model, type) and issubclass(model, Transformer):
        return model
    if not isinstance(model, str):
        raise TypeError(f"model must be a name or a Transformer subclass, got {model!r}")
    _discover()
    name = model.lower()
    if name in _TABLE:
        return _TABLE[name]
    available = ", ".join(sorted(_TABLE))
    if name in BERT4KERAS_ONLY:
        raise ValueError(
            f"model={model!r} is a bert4keras model that kerasformer does not build yet; "
            f"available: {available}"
        )
    close = difflib.get_close_matches(name, _TABLE, n=1)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown model {model!r}{suggestion}; available: {available}")


def _only(matches):
    return matches[0].architecture if len(matches) == 1 else None


def recognise_checkpoint(names):
    """The architecture whose checkpoints use these tensor names, or None when no
    architecture, or more than one, claims them."""
    names = list(names)
    return _only([cls for cls in architectures().values() if cls.recognises_checkpoint(names)])


def recognise_config(config):
    """The architecture a Hugging Face config.json describes, or None."""
    return _only([cls for cls in architectures().values() if cls.recognises_config(config)])
