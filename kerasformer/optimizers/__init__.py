"""Optimizers and schedules with bert4keras numerics on Keras 3 (any backend).

- `Adam`: bert4keras' Adam (ε outside the root, `bias_correction` switch), with
  decoupled weight decay (AdamW) and LAMB layer adaptation as options.
- `Lion`: bert4keras' defaults (3e-4, 0.95, 0.98), same decay/LAMB options.
- `Tiger`: bojone/tiger, incl. parameter-wise lr, NaN guard and free gradient
  accumulation (`grad_accum_steps`).
- `PiecewiseLinear`: bert4keras' `lr_schedule={step: multiplier}` as a schedule.

Exclusion patterns are regexes searched in `variable.path` (layer name + weight name,
e.g. "Transformer-0-FeedForward-Norm/gamma"), as bert4keras searched TF variable names.
"""
from kerasformer.optimizers.adam import Adam
from kerasformer.optimizers.lion import Lion
from kerasformer.optimizers.schedules import PiecewiseLinear, piecewise_linear
from kerasformer.optimizers.tiger import Tiger

__all__ = ["Adam", "Lion", "PiecewiseLinear", "Tiger", "piecewise_linear"]
