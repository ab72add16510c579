"""Shared machinery of the bert4keras-style optimizers.

`Optimizer` (base of `Adam`, `Lion`, `Tiger`, `AdaFactor`) adds, by constructor
argument, what bert4keras added with its `extend_with_*` class factories:

- `lr_multipliers={pattern: multiplier}`: the update Δ of every variable whose path
  matches a pattern is multiplied by it; several matching patterns multiply together
  (bert4keras' `paramwise_lr_schedule`).
- `lazy_variables=[patterns]`: rows (all axes but the last) of a matching variable whose
  gradient is all zero are not updated (bert4keras' `include_in_lazy_optimization`).
  Only the parameter update is masked; optimizer slots keep evolving as with a zero
  gradient (momenta decay), exactly as bert4keras did.
- `lazy_embeddings`: the same for every variable whose path contains "embeddings" (on
  by default for the sign optimisers `Lion` and `Tiger`: it stops the drift of rarely
  seen embedding rows to ±1/λ, see `tests/optimizers/test_features.py`).
- `ema_momentum`: bert4keras' weight EMA (zero-initialised slots, updated after every
  real update, `apply_ema_weights(bias_correction=True)` / `reset_old_weights()`).
- `lookahead_steps`, `lookahead_alpha`: Lookahead (arXiv 1907.08610) counted in real
  updates; the slow weights start from the weights before the first update.
- Keras' `gradient_accumulation_steps=k`, with its exact semantics (the update uses the
  mean of the k micro-batch gradients; clipping and decay act on that mean; `iterations`
  counts real updates; learning-rate schedules see the micro-step counter), but the
  optimizer math runs only on the update micro-step, on every backend (Keras' JAX
  implementation computes it on every micro-step and throws k−1 results away).

Per variable and real update the order is fixed: direction → decoupled decay → LAMB
ratio → `lr_multipliers` → lazy row mask → (after all variables) Lookahead → EMA.

`DecoupledOptimizer` adds bert4keras' decoupled weight decay with exclusion patterns and
LAMB layer adaptation to a per-variable direction.
"""
import numbers
import re

import keras
import numpy as np
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


def patterns_argument(value, name):
    """A list of regex patterns from `None`, one string or an iterable of strings; a
    single string is one pattern (not a list of its characters)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    try:
        patterns = list(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a list of regex patterns, got {value!r}") from None
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"`{name}` must contain strings (regex patterns), got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"`{name}`: invalid regex {pattern!r} ({error})") from None
    return patterns


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_learning_rate(learning_rate):
    if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
        return float(learning_rate)
    return learning_rate


def _norm(x):
    return ops.sqrt(ops.sum(ops.square(x)))


def _row_mask(gradient):
    """bert4keras' lazy mask: True where a row (last axis) has a non-zero gradient."""
    gradient = ops.convert_to_tensor(gradient)
    hit = ops.not_equal(gradient, ops.zeros_like(gradient))
    if len(gradient.shape) == 0:
        return hit
    return ops.any(hit, axis=-1, keepdims=True)


def _concrete_bool(value):
    """The Python bool of a scalar tensor when it is known now (eager execution), or None
    while it is symbolic (inside `jax.jit`, `tf.function`)."""
    try:
        return bool(ops.convert_to_numpy(value))
    except Exception:  # a tracer / symbolic tensor cannot be read: each backend has its own error
        return None


def _outer_stateless_mapping():
    """The value mapping of the enclosing `keras.StatelessScope` (JAX's `fit` runs the
    optimizer in one), or {} outside any."""
    try:
        from keras.src.backend.common.stateless_scope import get_stateless_scope
    except ImportError:  # pragma: no cover - Keras moved its internals
        return {}
    scope = get_stateless_scope()
    return dict(scope.state_mapping) if scope is not None else {}


class Optimizer(keras.optimizers.Optimizer):
    """Base of kerasformer's optimizers: the generic options of the module docstring.

    Subclasses compute, in `update_step`, the update Δ of each variable and hand it to
    `_apply_delta(variable, delta, gradient)` (or go through `DecoupledOptimizer.
    _apply_direction`). Keras' own weight-decay step and Keras' EMA (`use_ema`) are not
    used: decay is part of the subclasses' update, EMA is bert4keras' (`ema_momentum`).

    `finalize_variable_values` (called by `fit` at its end) does nothing: as in
    bert4keras, the live weights stay the trained ones and the EMA weights are applied
    explicitly with `apply_ema_weights()` and taken back with `reset_old_weights()`.
    """

    def __init__(
        self,
        learning_rate,
        weight_decay=None,
        lr_multipliers=None,
        lazy_variables=None,
        lazy_embeddings=False,
        ema_momentum=None,
        lookahead_steps=None,
        lookahead_alpha=0.5,
        use_ema=False,
        ema_overwrite_frequency=None,
        gradient_accumulation_steps=None,
        **kwargs,
    ):
        if use_ema:
            raise ValueError(
                "`use_ema` (Keras' EMA, updated on every micro-step and written into the "
                "model by `fit`) is not supported: pass `ema_momentum=0.999` for "
                "bert4keras' EMA and use `apply_ema_weights()` / `reset_old_weights()`")
        if ema_overwrite_frequency is not None:
            raise ValueError("`ema_overwrite_frequency` is not supported: apply the EMA "
                             "weights explicitly with `apply_ema_weights()`")
        if gradient_accumulation_steps and not (
                isinstance(gradient_accumulation_steps, numbers.Integral)
                and not isinstance(gradient_accumulation_steps, bool)
                and gradient_accumulation_steps >= 2):
            raise ValueError("`gradient_accumulation_steps` must be an integer >= 2 (or "
                             f"None), got {gradient_accumulation_steps!r}")
        if ema_momentum is not None and not (_is_real(ema_momentum) and 0 < ema_momentum < 1):
            raise ValueError(f"`ema_momentum` must be None or a number in (0, 1), "
                             f"got {ema_momentum!r}")
        if lookahead_steps is not None and not (
                isinstance(lookahead_steps, numbers.Integral)
                and not isinstance(lookahead_steps, bool) and lookahead_steps >= 1):
            raise ValueError(f"`lookahead_steps` must be None or an integer >= 1, "
                             f"got {lookahead_steps!r}")
        if not (_is_real(lookahead_alpha) and 0 < lookahead_alpha <= 1):
            raise ValueError(f"`lookahead_alpha` must be a number in (0, 1], "
                             f"got {lookahead_alpha!r}")
        if weight_decay is not None and not (_is_real(weight_decay) and weight_decay >= 0):
            raise ValueError(f"`weight_decay` must be None or a number >= 0, got {weight_decay!r}")
        if lr_multipliers is None:
            lr_multipliers = {}
        if not isinstance(lr_multipliers, dict):
            raise TypeError("`lr_multipliers` must be a dict {regex pattern: multiplier}, "
                            f"got {lr_multipliers!r}")
        patterns_argument(list(lr_multipliers), "lr_multipliers")
        for pattern, multiplier in lr_multipliers.items():
            if not (_is_real(multiplier) and multiplier >= 0):
                raise ValueError(f"`lr_multipliers`: the multiplier of {pattern!r} must be "
                                 f"a number >= 0, got {multiplier!r}")

        super().__init__(
            learning_rate=_as_learning_rate(learning_rate),
            weight_decay=None,
            gradient_accumulation_steps=gradient_accumulation_steps or None,
            **kwargs,
        )
        self.weight_decay = weight_decay
        self.lr_multipliers = {str(k): float(v) for k, v in lr_multipliers.items()}
        self.lazy_variables = patterns_argument(lazy_variables, "lazy_variables")
        self.lazy_embeddings = bool(lazy_embeddings)
        self.ema_momentum = None if ema_momentum is None else float(ema_momentum)
        self.lookahead_steps = None if lookahead_steps is None else int(lookahead_steps)
        self.lookahead_alpha = float(lookahead_alpha)
        self._functional = False  # True while the update runs inside our StatelessScope
        self._step_gradients = None
        self._old_weights = None

    # ------------------------------------------------------------------ variables

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._index_by_id = {id(v): i for i, v in enumerate(variables)}
        self._multiplier_of = []
        self._lazy_of = []
        for v in variables:
            path = getattr(v, "path", None) or v.name
            multiplier = 1.0
            for pattern, factor in self.lr_multipliers.items():
                if re.search(pattern, path):
                    multiplier *= factor
            self._multiplier_of.append(multiplier)
            self._lazy_of.append(
                matches_any(path, self.lazy_variables)
                or (self.lazy_embeddings and "embeddings" in path))
        self._ema_weights = (self.add_optimizer_variables(variables, "ema")
                             if self.ema_momentum is not None else [])
        self._slow_weights = (self.add_optimizer_variables(variables, "slow")
                              if self.lookahead_steps is not None else [])

    def _get_variable_index(self, variable):
        # During the accumulated update the TensorFlow backend's `_var_key` cannot see
        # through a StatelessScope; our own map from the Keras variables can.
        index = getattr(self, "_index_by_id", {}).get(id(variable))
        return index if index is not None else super()._get_variable_index(variable)

    def _is_lazy(self, variable):
        return self._lazy_of[self._get_variable_index(variable)]

    def _apply_weight_decay(self, variables):
        """Decay is part of `update_step` here (bert4keras order); never apply it twice."""

    # ------------------------------------------------------------------ assignment

    def assign(self, variable, value):
        if self._functional and isinstance(variable, keras.Variable):
            variable.assign(value)
        else:
            super().assign(variable, value)

    def assign_add(self, variable, value):
        if self._functional and isinstance(variable, keras.Variable):
            variable.assign(variable + value)
        else:
            super().assign_add(variable, value)

    def assign_sub(self, variable, value):
        if self._functional and isinstance(variable, keras.Variable):
            variable.assign(variable - value)
        else:
            super().assign_sub(variable, value)

    def _apply_delta(self, variable, delta, gradient=None, row_mask=None):
        """θ ← θ + m·Δ, m the product of the matching `lr_multipliers`; for a lazy
        variable only rows with a non-zero gradient (or `row_mask`) move."""
        index = self._get_variable_index(variable)
        multiplier = self._multiplier_of[index]
        if multiplier != 1.0:
            delta = delta * ops.cast(multiplier, delta.dtype)
        if self._lazy_of[index]:
            if row_mask is None:
                if gradient is None:
                    gradient = self._step_gradients[index]
                row_mask = _row_mask(gradient)
            delta = ops.where(row_mask, delta, ops.zeros_like(delta))
        self.assign_add(variable, delta)

    # ------------------------------------------------------------------ the update

    def _update_period(self):
        """Micro-steps per real update."""
        return self.gradient_accumulation_steps or 1

    def _update_gate(self):
        """None when every `apply` is a real update, else a boolean tensor (Tiger)."""
        return None

    def _real_updates(self):
        """Real updates done before the current one."""
        period = self._update_period()
        return self._iterations if period == 1 else ops.floor_divide(self._iterations, period)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self._step_gradients = {self._get_variable_index(v): g
                                for g, v in zip(grads, trainable_variables)}
        try:
            if self._functional:
                for grad, variable in zip(grads, trainable_variables):
                    self.update_step(grad, variable, learning_rate)
            else:
                super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._step_gradients = None

    def _update(self, grads, trainable_variables, gate):
        """Clip, run every `update_step`, then Lookahead and EMA (gated by `gate`)."""
        grads = self._clip_gradients([_dense(g) for g in grads])
        self._apply_weight_decay(trainable_variables)
        if self.lookahead_steps is not None:
            self._start_slow_weights()
        self._backend_update_step(grads, trainable_variables, self.learning_rate)
        if self.lookahead_steps is not None:
            self._lookahead(gate)
        if self.ema_momentum is not None:
            self._update_ema(gate)

    def _backend_apply_gradients(self, grads, trainable_variables):
        if not self.gradient_accumulation_steps:
            self._update(grads, trainable_variables, self._update_gate())
            return
        steps = self.gradient_accumulation_steps
        is_update_step = ops.equal((self._iterations + 1) % steps, 0)
        grads = [ops.convert_to_tensor(g) for g in grads]
        accumulators = [self._accumulated_gradients[self._get_variable_index(v)]
                        for v in trainable_variables]
        skip = {id(a) for a in accumulators} | {id(self._iterations)}
        if isinstance(self._learning_rate, keras.Variable):
            skip.add(id(self._learning_rate))
        targets = list(self._trainable_variables) + [
            v for v in self.variables if id(v) not in skip]

        def update_branch():
            # The update runs in a StatelessScope seeded with the current values: its
            # assignments are collected and returned, so only the branch taken by the
            # conditional does the optimizer math, on every backend and under jit.
            mapping = _outer_stateless_mapping()
            seed = keras.StatelessScope(
                state_mapping=[(v, ops.convert_to_tensor(v)) for v in
                               list(self._trainable_variables) + list(self.variables)])
            mapping.update(seed.state_mapping)
            seed.state_mapping = mapping
            averaged = [(ops.cast(g, a.dtype) + ops.convert_to_tensor(a)) / steps
                        for g, a in zip(grads, accumulators)]
            self._functional = True
            try:
                with seed as scope:
                    self._update(averaged, trainable_variables, None)
            finally:
                self._functional = False
            new_values = [scope.get_current_value(v) for v in targets]
            return new_values + [ops.zeros(a.shape, dtype=a.dtype) for a in accumulators]

        def accumulated():
            return [ops.convert_to_tensor(a) + ops.cast(g, a.dtype)
                    for g, a in zip(grads, accumulators)]

        def accumulate_branch():
            return [ops.convert_to_tensor(v) for v in targets] + accumulated()

        known = _concrete_bool(is_update_step)
        if known is None:  # traced (jit, tf.function): a conditional in the graph
            values = ops.cond(is_update_step, update_branch, accumulate_branch)
        elif known:  # eager: decide in Python rather than compile a conditional per call
            values = update_branch()
        else:  # eager micro-step: only the accumulators change
            targets, values = [], accumulated()
        for variable, value in zip(targets + accumulators, values):
            variable.assign(value)

    # ------------------------------------------------------------------ Lookahead, EMA

    def _start_slow_weights(self):
        """Before the first real update the slow weights take the current weights."""
        first = ops.equal(self._real_updates(), 0)
        for variable, slow in zip(self._trainable_variables, self._slow_weights):
            if slow is not None:
                self.assign(slow, ops.where(first, ops.convert_to_tensor(variable),
                                            ops.convert_to_tensor(slow)))

    def _lookahead(self, gate):
        """After every `lookahead_steps`-th real update: slow ← slow + α(θ − slow), θ ← slow."""
        sync = ops.equal((self._real_updates() + 1) % self.lookahead_steps, 0)
        if gate is not None:
            sync = ops.logical_and(sync, gate)
        for variable, slow in zip(self._trainable_variables, self._slow_weights):
            if slow is None:
                continue
            alpha = ops.cast(self.lookahead_alpha, variable.dtype)
            theta, slow_value = ops.convert_to_tensor(variable), ops.convert_to_tensor(slow)
            new_slow = ops.where(sync, slow_value + alpha * (theta - slow_value), slow_value)
            self.assign(slow, new_slow)
            self.assign(variable, ops.where(sync, new_slow, theta))

    def _update_ema(self, gate):
        """ema ← μ·ema + (1 − μ)·θ after every real update (bert4keras' EMA)."""
        for variable, ema in zip(self._trainable_variables, self._ema_weights):
            if ema is None:
                continue
            momentum = ops.cast(self.ema_momentum, variable.dtype)
            old = ops.convert_to_tensor(ema)
            new = momentum * old + (1 - momentum) * ops.convert_to_tensor(variable)
            if gate is not None:
                new = ops.where(gate, new, old)
            self.assign(ema, new)

    def apply_ema_weights(self, bias_correction=True):
        """Keep a copy of the live weights, then load the EMA weights into the model:
        ema / (1 − μ^t) with t the number of real updates (or the raw EMA without
        `bias_correction`). `reset_old_weights()` restores the copy."""
        if self.ema_momentum is None:
            raise ValueError("apply_ema_weights() needs an optimizer built with `ema_momentum`")
        if not self.built:
            raise ValueError("apply_ema_weights(): the optimizer has not been built/used yet")
        updates = int(ops.convert_to_numpy(self._iterations)) // self._update_period()
        if bias_correction and updates == 0:
            raise ValueError("apply_ema_weights(): no update has been applied yet, the "
                             "bias-corrected EMA is undefined")
        scale = 1.0 - self.ema_momentum ** updates if bias_correction else 1.0
        self._old_weights = [np.array(ops.convert_to_numpy(v)) for v in self._trainable_variables]
        for variable, ema in zip(self._trainable_variables, self._ema_weights):
            if ema is not None:
                variable.assign(ops.convert_to_numpy(ema) / scale)

    def reset_old_weights(self):
        """Put back the weights saved by the last `apply_ema_weights()`."""
        if self._old_weights is None:
            raise ValueError("reset_old_weights(): call apply_ema_weights() first")
        for variable, value in zip(self._trainable_variables, self._old_weights):
            variable.assign(value)

    def finalize_variable_values(self, var_list):
        """Nothing: `fit` leaves the trained weights in the model (bert4keras semantics;
        Keras' `use_ema` would write the EMA in). Use `apply_ema_weights()`."""

    # ------------------------------------------------------------------ config

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight_decay": self.weight_decay,
                "lr_multipliers": dict(self.lr_multipliers),
                "lazy_variables": list(self.lazy_variables),
                "lazy_embeddings": self.lazy_embeddings,
                "ema_momentum": self.ema_momentum,
                "lookahead_steps": self.lookahead_steps,
                "lookahead_alpha": self.lookahead_alpha,
            }
        )
        return config


class DecoupledOptimizer(Optimizer):
    """Base class: subclasses compute a direction `d` per variable and call
    `_apply_direction(variable, d, lr)`, which applies (as bert4keras' Adam wrapped by
    `extend_with_weight_decay` and then `extend_with_layer_adaptation` does)

        Δ = −lr·d − lr·λ·θ            (the decay term only for variables not excluded)
        Δ ← r·Δ,  r = ‖θ‖ / ‖Δ / max(lr, ε)‖   (r = 1 if either norm is 0, or if
                                                 layer adaptation is off/excluded)
        θ ← θ + Δ                     (then `lr_multipliers` and the lazy row mask of
                                       `Optimizer._apply_delta`)

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
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
        self._weight_decay_exclusions = patterns_argument(
            exclude_from_weight_decay, "exclude_from_weight_decay")
        self.layer_adaptation = bool(layer_adaptation)
        self._layer_adaptation_exclusions = patterns_argument(
            exclude_from_layer_adaptation, "exclude_from_layer_adaptation")

    def _decays(self, variable):
        return (
            bool(self.weight_decay)
            and self._use_weight_decay(variable)
            and not matches_any(variable_path(self, variable), self._weight_decay_exclusions)
        )

    def _adapts(self, variable):
        return self.layer_adaptation and not matches_any(
            variable_path(self, variable), self._layer_adaptation_exclusions)

    def _apply_direction(self, variable, direction, lr, gradient=None):
        delta = -lr * direction
        if self._decays(variable):
            delta = delta - lr * ops.cast(self.weight_decay, variable.dtype) * variable
        if self._adapts(variable):
            scaled = delta / ops.maximum(lr, ops.cast(keras.config.epsilon(), variable.dtype))
            x_norm, d_norm = _norm(variable), _norm(scaled)
            usable = ops.logical_and(x_norm > 0, d_norm > 0)
            ratio = ops.where(usable, x_norm / ops.where(usable, d_norm, 1.0), 1.0)
            delta = delta * ratio
        self._apply_delta(variable, delta, gradient)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "exclude_from_weight_decay": list(self._weight_decay_exclusions),
                "layer_adaptation": self.layer_adaptation,
                "exclude_from_layer_adaptation": list(self._layer_adaptation_exclusions),
            }
        )
        return config


def _dense(gradient):
    """The gradient as a dense tensor. TensorFlow gives an embedding's gradient as
    IndexedSlices with one row per looked-up id, repeats included; elementwise ops
    (Adam's square, Lion's sign) act on those rows before the repeats are summed,
    which is not the update of the summed gradient. Densifying sums them first."""
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        import tensorflow as tf  # only TensorFlow makes IndexedSlices

        return tf.convert_to_tensor(gradient)
    return gradient
