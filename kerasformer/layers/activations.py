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
    if isinstance(identifier, dict):  # a serialised custom function
        return keras.activations.get(identifier)
    if not isinstance(identifier, str):
        raise TypeError(
            f"activation must be a string or a callable, got {identifier!r}"
        )
    name = _ALIASES.get(identifier.lower(), identifier.lower())
    if isinstance(name, str):
        try:
            keras.activations.get(name)
        except ValueError:
            raise ValueError(
                f"unknown activation {identifier!r}; use a Keras activation name "
                f"(gelu, relu, swish, tanh, linear, ...) or one of "
                f"{', '.join(sorted(_ALIASES))}"
            ) from None
    return name


def serialize_activation(activation):
    """Config form of an activation argument (a name, callable, or list of them)."""
    if isinstance(activation, (list, tuple)):
        return [serialize_activation(a) for a in activation]
    if activation is None or isinstance(activation, (str, dict)):
        return activation
    return keras.activations.serialize(activation)
