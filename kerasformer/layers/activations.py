"""Activation names as the original checkpoints' configs spell them.

bert4keras resolves `hidden_act` through Keras custom objects, where `"gelu"` is the
exact (erf) GELU — as Keras' own `gelu` is by default. HF GPT-2 configs say
`"gelu_new"` for the tanh approximation, which Keras has no name for; this module adds
such aliases as registered, serialisable functions.
"""
import keras


@keras.saving.register_keras_serializable(package="kerasformer")
def gelu_tanh(x):
    """Tanh-approximated GELU (`gelu_new` in HF GPT-2 configs)."""
    return keras.activations.gelu(x, approximate=True)


# The activation names a name may resolve to: Keras' built-in activations (registered
# custom objects are not reachable by name from a checkpoint config).
KERAS_ACTIVATIONS = (
    "celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid",
    "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid",
    "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid", "silu", "soft_shrink",
    "softmax", "softplus", "softsign", "sparse_plus", "sparsemax", "squareplus",
    "swish", "tanh", "tanh_shrink", "threshold",
)

_ALIASES = {
    "gelu_erf": "gelu",
    "gelu_tanh": gelu_tanh,
    "gelu_new": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
}


def get_activation(identifier):
    """Resolves an activation name from a checkpoint config to a Keras activation.

    Args:
        identifier: str, callable or None. None means linear.

    Returns:
        What `keras.layers.Dense(activation=...)` accepts: a Keras activation name
        (kept as a string so configs stay readable) or a registered function.
    """
    if identifier is None:
        return "linear"
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):  # a serialised function, from a .keras file
        return keras.activations.get(identifier)
    if not isinstance(identifier, str):
        raise TypeError(
            f"activation must be a name or a callable, got {type(identifier).__name__} "
            f"{str(identifier)[:80]!r}"
        )
    name = _ALIASES.get(identifier.lower(), identifier.lower())
    if isinstance(name, str) and name not in KERAS_ACTIVATIONS:
        raise ValueError(
            f"unknown activation {identifier[:80]!r}; use one of "
            f"{', '.join(KERAS_ACTIVATIONS)} or {', '.join(sorted(_ALIASES))}"
        )
    return name


def set_gelu(version):
    """What the name "gelu" means for every kerasformer layer built afterwards in
    this process: "erf" (the default, exact GELU) or "tanh" (the approximation).
    bert4keras' `set_gelu`; process-wide, as there."""
    version = str(version).lower()
    if version not in ("erf", "tanh"):
        raise ValueError(f"gelu version must be 'erf' or 'tanh', got {version!r}")
    if version == "tanh":
        _ALIASES["gelu"] = gelu_tanh
    else:
        _ALIASES.pop("gelu", None)


def serialize_activation(activation):
    """Config form of an activation argument (a name, callable, or list of them)."""
    if isinstance(activation, (list, tuple)):
        return [serialize_activation(a) for a in activation]
    if activation is None or isinstance(activation, (str, dict)):
        return activation
    return keras.activations.serialize(activation)


def check_config_activation(value, key="hidden_act"):
    """An activation read from a checkpoint config: a name, or a list of names (GLU),
    from the allow-list. A config is data: a serialised dict must never reach Keras'
    deserialisation from there."""
    names = value if isinstance(value, list) else [value]
    for name in names:
        if not isinstance(name, str):
            raise ValueError(
                f"{key} must be an activation name or a list of names, got "
                f"{type(name).__name__} {str(name)[:80]!r}"
            )
        get_activation(name)
    return value
