"""Shared machinery of the bert4keras-style optimizers: decoupled weight decay with
name-pattern exclusions and LAMB layer adaptation, applied to a per-variable update."""
import re

import keras
from keras import ops


def variable_path(optimizer, variable):
    """The Keras path of a variable given to `update_step`; the TensorFlow backend hands
    over the raw `tf.Variable`, so look the Keras variable up by its index."""
    path = getattr(variable, "path", None)
    if path is None:
        path = optimizer._trainable_variables[optimizer._get_variable_index(variable)].path
    return path


def matches_any(path, patterns):
    """bert4keras' `string_matching`: any regex pattern found (re.search) in the name.

    The name is `variable.path` ("Transformer-0-FeedForward-Norm/gamma"), which carries
    the layer name as bert4keras' TF variable names did, so `['Norm', 'bias']` excludes
    the normalisation gains/offsets and every bias.
    """
    return any(re.search(pattern, path) for pattern in patterns)


def _as_learning_rate(learning_rate):
    if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
        return float(learning_rate)
    return learning_rate


def _norm(x):
    return ops.sqrt(ops.sum(ops.square(x)))


class DecoupledOptimizer(keras.optimizers.Optimizer):
    """Base class: subclasses compute a direction `d` per variable and call
    `_apply_direction(variable, d, lr)`, which applies (as bert4keras' Adam wrapped by
    `extend_with_weight_decay` and then `extend_with_layer_adaptation` does)

        Δ = −lr·d − lr·λ·θ            (the decay term only for variables not excluded)
        θ ← θ + r·Δ,  r = ‖θ‖ / ‖Δ / max(lr, ε)‖   (r = 1 if either norm is 0, or if
                                                     layer adaptation is off/excluded)

    Keras' own weight-decay step is disabled (`_apply_weight_decay` does nothing) so the
    decay is applied exactly once; Keras' `exclude_from_weight_decay(var_list, var_names)`
    method is still honoured on top of the constructor's patterns.
    """

    def __init__(
        self,
        learning_rate,
        weight_decay=None,
        exclude_from_weight_decay=None,
        layer_adaptation=False,
        exclude_from_layer_adaptation=None,
        **kwargs,
    ):
        super().__init__(
            learning_rate=_as_learning_rate(learning_rate), weight_decay=None, **kwargs
        )
        self.weight_decay = weight_decay
        self._weight_decay_exclusions = list(exclude_from_weight_decay or [])
        self.layer_adaptation = bool(layer_adaptation)
        self._layer_adaptation_exclusions = list(exclude_from_layer_adaptation or [])

    def _apply_weight_decay(self, variables):
        """Decay is part of `update_step` here (bert4keras order); never apply it twice."""

    def _decays(self, variable):
        return (
            bool(self.weight_decay)
            and self._use_weight_decay(variable)
            and not matches_any(variable_path(self, variable), self._weight_decay_exclusions)
        )

    def _adapts(self, variable):
        return self.layer_adaptation and not matches_any(
            variable_path(self, variable), self._layer_adaptation_exclusions)

    def _apply_direction(self, variable, direction, lr):
        delta = -lr * direction
        if self._decays(variable):
            delta = delta - lr * ops.cast(self.weight_decay, variable.dtype) * variable
        if self._adapts(variable):
            scaled = delta / ops.maximum(lr, ops.cast(keras.config.epsilon(), variable.dtype))
            x_norm, d_norm = _norm(variable), _norm(scaled)
            usable = ops.logical_and(x_norm > 0, d_norm > 0)
            ratio = ops.where(usable, x_norm / ops.where(usable, d_norm, 1.0), 1.0)
            delta = delta * ratio
        self.assign_add(variable, delta)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight_decay": self.weight_decay,
                "exclude_from_weight_decay": list(self._weight_decay_exclusions),
                "layer_adaptation": self.layer_adaptation,
                "exclude_from_layer_adaptation": list(self._layer_adaptation_exclusions),
            }
        )
        return config
