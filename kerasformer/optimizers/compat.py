"""bert4keras' optimizer factories (`extend_with_*`) on top of kerasformer's optimizers.

Each factory takes one of our optimizer classes (`Adam`, `Lion`, `Tiger`, `AdaFactor`,
or a class an earlier factory returned) and an optional class name, and returns a thin
subclass whose constructor accepts bert4keras' argument names and maps them onto our
constructor arguments, so bert4keras training scripts run unchanged:

    AdamW = extend_with_weight_decay(Adam, 'AdamW')
    AdamWLR = extend_with_piecewise_linear_lr(AdamW, 'AdamWLR')
    optimizer = AdamWLR(learning_rate=1e-3, weight_decay_rate=0.01,
                        exclude_from_weight_decay=['Norm', 'bias'], lr_schedule={1000: 1})

is `Adam(learning_rate=PiecewiseLinear({1000: 1}, 1e-3), weight_decay=0.01,
exclude_from_weight_decay=['Norm', 'bias'])`. The `_v2` names are aliases.

| factory (bert4keras argument = default)            | our argument                   |
|----------------------------------------------------|--------------------------------|
| extend_with_weight_decay: weight_decay_rate=0.01,  | weight_decay,                  |
|   exclude_from_weight_decay=[]                     | exclude_from_weight_decay      |
| extend_with_layer_adaptation:                      | layer_adaptation=True,         |
|   exclude_from_layer_adaptation=[]                 | exclude_from_layer_adaptation  |
| extend_with_piecewise_linear_lr: lr_schedule={0: 1}| learning_rate=PiecewiseLinear  |
| extend_with_gradient_accumulation:                 | gradient_accumulation_steps   |
|   grad_accum_steps=2                               | (Tiger: its grad_accum_steps) |
| extend_with_lookahead: steps_per_slow_update=5,    | lookahead_steps,               |
|   slow_step_size=0.5                               | lookahead_alpha                |
| extend_with_lazy_optimization:                     | lazy_variables                 |
|   include_in_lazy_optimization=[]                  |                                |
| extend_with_exponential_moving_average:            | ema_momentum                   |
|   ema_momentum=0.999                               |                                |
| extend_with_parameter_wise_lr:                     | lr_multipliers (keys escaped:  |
|   paramwise_lr_schedule={}                         | bert4keras matched substrings) |

Deliberate differences from bert4keras:
- Gradient accumulation is Keras' exact one: the update uses the mean of the last k
  micro-batch gradients (the big-batch mean). bert4keras' `_v2` updated on micro-step
  t with the k gradients *before* t (its first update used zeros, and the last k−1
  gradients of a run were never used) and counted bias correction in micro-steps; ours
  counts real updates (`optimizer.iterations`). Learning-rate schedules (`lr_schedule`)
  count micro-steps, like bert4keras.
- The order of the wrappers does not matter: every optimizer applies, per variable,
  direction → weight decay → layer adaptation → parameter-wise lr → lazy mask, then
  Lookahead, then EMA (bert4keras' `pretraining.py` order for decay and LAMB).
- Lookahead's slow weights start from the weights before the first update and are
  synchronised after the k-th, 2k-th… update (the paper). bert4keras zero-initialised
  them and synchronised on its first step, which scaled every weight by α.
- EMA is updated once per real update (not per micro-step); `fit` never writes it into
  the model: call `optimizer.apply_ema_weights()` / `optimizer.reset_old_weights()`.
- Classes are registered for Keras serialisation as "kerasformer.compat>NAME"; recreate
  them (call the factories) before `keras.saving.load_model`, as bert4keras needed its
  custom objects.
"""
import inspect
import numbers
import re

import keras

from kerasformer.optimizers._base import DecoupledOptimizer, Optimizer, patterns_argument
from kerasformer.optimizers.schedules import PiecewiseLinear
from kerasformer.optimizers.tiger import Tiger

_UNSET = object()


def _check_base(base, factory):
    if not (inspect.isclass(base) and issubclass(base, Optimizer)):
        raise TypeError(f"{factory}() extends kerasformer optimizers (Adam, Lion, Tiger, "
                        f"AdaFactor or a class made by extend_with_*), got {base!r}")


def _finish(cls, base, name, suffix):
    name = name or f"{base.__name__}{suffix}"
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be a class name, got {name!r}")
    cls.__name__ = cls.__qualname__ = name
    cls.__module__ = __name__
    return keras.saving.register_keras_serializable(package="kerasformer.compat", name=name)(cls)


def _exclusive(kwargs, ours, theirs, value):
    if value is not _UNSET and ours in kwargs:
        raise ValueError(f"pass either `{theirs}` (bert4keras) or `{ours}`, not both")


def _integer(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(value, name, low, high, low_open=True, high_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high))
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high if high is not None else '∞'}" \
                   f"{')' if high_open or high is None else ']'}"
        raise ValueError(f"`{name}` must be a number in {interval}, got {value!r}")
    return float(value)


def extend_with_weight_decay(BaseOptimizer, name=None):
    """bert4keras' `extend_with_weight_decay`: `weight_decay_rate=0.01` (θ ← θ_new −
    lr·λ·θ), `exclude_from_weight_decay=[]` (regexes searched in `variable.path`)."""
    _check_base(BaseOptimizer, "extend_with_weight_decay")

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, weight_decay_rate=_UNSET, **kwargs):
            _exclusive(kwargs, "weight_decay", "weight_decay_rate", weight_decay_rate)
            if "weight_decay" not in kwargs:
                rate = 0.01 if weight_decay_rate is _UNSET else weight_decay_rate
                kwargs["weight_decay"] = _real(rate, "weight_decay_rate", 0, None, low_open=False)
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "WeightDecay")


def extend_with_layer_adaptation(BaseOptimizer, name=None):
    """bert4keras' `extend_with_layer_adaptation` (LAMB's trust ratio ‖θ‖/‖Δ/lr‖ on the
    whole update, decay included), `exclude_from_layer_adaptation=[]`."""
    _check_base(BaseOptimizer, "extend_with_layer_adaptation")
    if not issubclass(BaseOptimizer, DecoupledOptimizer):
        raise TypeError(f"extend_with_layer_adaptation(): {BaseOptimizer.__name__} has no "
                        "layer adaptation (Tiger scales its steps by RMS(θ) itself)")

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("layer_adaptation", True)
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "LayerAdaptation")


def extend_with_piecewise_linear_lr(BaseOptimizer, name=None):
    """bert4keras' `extend_with_piecewise_linear_lr`: `lr_schedule={step: multiplier}`
    (linear from 0 at step 0, micro-steps) → `learning_rate=PiecewiseLinear(...)`."""
    _check_base(BaseOptimizer, "extend_with_piecewise_linear_lr")
    default_lr = inspect.signature(BaseOptimizer.__init__).parameters.get("learning_rate")
    default_lr = None if default_lr is None else default_lr.default

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, lr_schedule=None, **kwargs):
            if lr_schedule is not None:
                if not isinstance(lr_schedule, dict) or not lr_schedule:
                    raise ValueError("`lr_schedule` must be a non-empty dict {step: "
                                     f"multiplier}}, got {lr_schedule!r}")
                args = list(args)
                if args:
                    learning_rate = args.pop(0)
                else:
                    learning_rate = kwargs.pop("learning_rate", default_lr)
                if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
                    raise TypeError("`lr_schedule` multiplies a constant `learning_rate`; "
                                    f"got learning_rate={learning_rate!r}")
                try:
                    schedule = PiecewiseLinear(lr_schedule, learning_rate=learning_rate)
                except (TypeError, ValueError) as error:
                    raise ValueError(f"`lr_schedule`: {error}") from None
                kwargs["learning_rate"] = schedule
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "PiecewiseLinearLR")


def extend_with_gradient_accumulation(BaseOptimizer, name=None):
    """bert4keras' `extend_with_gradient_accumulation`: `grad_accum_steps=2`, mapped to
    Keras' exact averaging accumulation `gradient_accumulation_steps` (Tiger: its own
    free `grad_accum_steps`); see the module docstring for the difference."""
    _check_base(BaseOptimizer, "extend_with_gradient_accumulation")
    tiger = issubclass(BaseOptimizer, Tiger)

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, grad_accum_steps=_UNSET, **kwargs):
            if tiger:  # the same name and meaning; only bert4keras' default differs
                steps = 2 if grad_accum_steps is _UNSET else grad_accum_steps
                kwargs["grad_accum_steps"] = _integer(steps, "grad_accum_steps", 1)
            else:
                _exclusive(kwargs, "gradient_accumulation_steps", "grad_accum_steps",
                           grad_accum_steps)
                if "gradient_accumulation_steps" not in kwargs:
                    steps = 2 if grad_accum_steps is _UNSET else grad_accum_steps
                    steps = _integer(steps, "grad_accum_steps", 1)
                    kwargs["gradient_accumulation_steps"] = steps if steps > 1 else None
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "GradientAccumulation")


def extend_with_lookahead(BaseOptimizer, name=None):
    """bert4keras' `extend_with_lookahead`: `steps_per_slow_update=5` (k),
    `slow_step_size=0.5` (α), counted in real updates."""
    _check_base(BaseOptimizer, "extend_with_lookahead")

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, steps_per_slow_update=_UNSET, slow_step_size=_UNSET, **kwargs):
            _exclusive(kwargs, "lookahead_steps", "steps_per_slow_update", steps_per_slow_update)
            _exclusive(kwargs, "lookahead_alpha", "slow_step_size", slow_step_size)
            if "lookahead_steps" not in kwargs:
                steps = 5 if steps_per_slow_update is _UNSET else steps_per_slow_update
                kwargs["lookahead_steps"] = _integer(steps, "steps_per_slow_update", 1)
            if "lookahead_alpha" not in kwargs:
                alpha = 0.5 if slow_step_size is _UNSET else slow_step_size
                kwargs["lookahead_alpha"] = _real(alpha, "slow_step_size", 0, 1)
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "Lookahead")


def extend_with_lazy_optimization(BaseOptimizer, name=None):
    """bert4keras' `extend_with_lazy_optimization`: `include_in_lazy_optimization=[]`
    (regexes); rows with an all-zero gradient are not updated (slots still evolve)."""
    _check_base(BaseOptimizer, "extend_with_lazy_optimization")

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, include_in_lazy_optimization=_UNSET, **kwargs):
            _exclusive(kwargs, "lazy_variables", "include_in_lazy_optimization",
                       include_in_lazy_optimization)
            if include_in_lazy_optimization is not _UNSET:
                kwargs["lazy_variables"] = patterns_argument(
                    include_in_lazy_optimization, "include_in_lazy_optimization")
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "LazyOptimization")


def extend_with_exponential_moving_average(BaseOptimizer, name=None):
    """bert4keras' `extend_with_exponential_moving_average`: `ema_momentum=0.999`;
    `apply_ema_weights(bias_correction=True)` and `reset_old_weights()`."""
    _check_base(BaseOptimizer, "extend_with_exponential_moving_average")

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, ema_momentum=0.999, **kwargs):
            kwargs["ema_momentum"] = _real(ema_momentum, "ema_momentum", 0, 1, high_open=True)
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "EMA")


def extend_with_parameter_wise_lr(BaseOptimizer, name=None):
    """bert4keras' `extend_with_parameter_wise_lr`: `paramwise_lr_schedule={name: m}`
    multiplies the update of every variable whose name contains `name` (substring, all
    matches multiplied) → `lr_multipliers` with the keys regex-escaped."""
    _check_base(BaseOptimizer, "extend_with_parameter_wise_lr")

    class NewOptimizer(BaseOptimizer):
        def __init__(self, *args, paramwise_lr_schedule=_UNSET, **kwargs):
            _exclusive(kwargs, "lr_multipliers", "paramwise_lr_schedule", paramwise_lr_schedule)
            if paramwise_lr_schedule is not _UNSET:
                if not isinstance(paramwise_lr_schedule, dict):
                    raise TypeError("`paramwise_lr_schedule` must be a dict {name: "
                                    f"multiplier}}, got {paramwise_lr_schedule!r}")
                for key, value in paramwise_lr_schedule.items():
                    if not isinstance(key, str):
                        raise TypeError(f"`paramwise_lr_schedule` keys must be strings, got {key!r}")
                    _real(value, f"paramwise_lr_schedule[{key!r}]", 0, None, low_open=False)
                kwargs["lr_multipliers"] = {re.escape(k): float(v)
                                            for k, v in paramwise_lr_schedule.items()}
            super().__init__(*args, **kwargs)

    return _finish(NewOptimizer, BaseOptimizer, name, "ParameterWiseLR")


extend_with_weight_decay_v2 = extend_with_weight_decay
extend_with_layer_adaptation_v2 = extend_with_layer_adaptation
extend_with_piecewise_linear_lr_v2 = extend_with_piecewise_linear_lr
extend_with_gradient_accumulation_v2 = extend_with_gradient_accumulation
extend_with_lookahead_v2 = extend_with_lookahead
extend_with_lazy_optimization_v2 = extend_with_lazy_optimization
extend_with_exponential_moving_average_v2 = extend_with_exponential_moving_average
extend_with_parameter_wise_lr_v2 = extend_with_parameter_wise_lr

__all__ = [
    "extend_with_weight_decay", "extend_with_layer_adaptation",
    "extend_with_piecewise_linear_lr", "extend_with_gradient_accumulation",
    "extend_with_lookahead", "extend_with_lazy_optimization",
    "extend_with_exponential_moving_average", "extend_with_parameter_wise_lr",
    "extend_with_weight_decay_v2", "extend_with_layer_adaptation_v2",
    "extend_with_piecewise_linear_lr_v2", "extend_with_gradient_accumulation_v2",
    "extend_with_lookahead_v2", "extend_with_lazy_optimization_v2",
    "extend_with_exponential_moving_average_v2", "extend_with_parameter_wise_lr_v2",
]
