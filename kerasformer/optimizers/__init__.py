"""Optimizers and schedules with bert4keras numerics on Keras 3 (any backend).

- `Adam`: bert4keras' Adam (ε outside the root, `bias_correction` switch), with
  decoupled weight decay (AdamW) and LAMB layer adaptation as options.
- `Lion`: bert4keras' defaults (3e-4, 0.95, 0.98), same decay/LAMB options.
- `Tiger`: bojone/tiger, incl. parameter-wise lr, NaN guard and free gradient
  accumulation (`grad_accum_steps`).
- `AdaFactor`: bert4keras' AdaFactor (factored second moments kept as row/column
  vectors only, optional β1, update clipping, parameter scale), same decay/LAMB options.
- `PiecewiseLinear`: bert4keras' `lr_schedule={step: multiplier}` as a schedule.

Every optimizer also takes what bert4keras added with `extend_with_*` (those factories
themselves, with bert4keras' argument names, are in `kerasformer.optimizers.compat` and
exported here):

- `lr_multipliers={pattern: m}`: the update of matching variables is multiplied by m
  (several matching patterns multiply) — `paramwise_lr_schedule`.
- `lazy_variables=[patterns]`: rows (last axis) with an all-zero gradient are not
  updated; the optimizer slots still evolve as for a zero gradient —
  `include_in_lazy_optimization`. `lazy_embeddings=True` does it for every variable
  whose path contains "embeddings"; on by default for `Lion` and `Tiger`, whose sign
  steps otherwise carry rarely seen tokens' rows to ±1/λ.
- `ema_momentum=0.999`: bert4keras' EMA of the weights (zero-initialised, one update
  per real update); `optimizer.apply_ema_weights(bias_correction=True)` swaps it in
  (EMA / (1 − μ^t)), `optimizer.reset_old_weights()` swaps back. `fit` never writes it
  into the model (Keras' `use_ema` is refused).
- `lookahead_steps=k, lookahead_alpha=α`: Lookahead; after every k-th real update
  slow ← slow + α(θ − slow) and θ ← slow; slow starts at the weights before the first
  update.
- Keras' `gradient_accumulation_steps=k` (not `Tiger`, which has `grad_accum_steps`):
  the update uses the mean of k micro-batch gradients, `iterations` counts updates,
  learning-rate schedules count micro-steps; the optimizer math runs only on the update
  micro-step (on JAX too, where Keras' own implementation runs it every micro-step).

Per variable: direction → decay → LAMB → `lr_multipliers` → lazy mask; then Lookahead,
then EMA. Patterns are regexes searched in `variable.path` (layer name + weight name,
e.g. "Transformer-0-FeedForward-Norm/gamma"), as bert4keras searched TF variable names.
"""
from kerasformer.optimizers.adafactor import AdaFactor
from kerasformer.optimizers.adam import Adam
from kerasformer.optimizers.compat import (
    extend_with_exponential_moving_average,
    extend_with_exponential_moving_average_v2,
    extend_with_gradient_accumulation,
    extend_with_gradient_accumulation_v2,
    extend_with_layer_adaptation,
    extend_with_layer_adaptation_v2,
    extend_with_lazy_optimization,
    extend_with_lazy_optimization_v2,
    extend_with_lookahead,
    extend_with_lookahead_v2,
    extend_with_parameter_wise_lr,
    extend_with_parameter_wise_lr_v2,
    extend_with_piecewise_linear_lr,
    extend_with_piecewise_linear_lr_v2,
    extend_with_weight_decay,
    extend_with_weight_decay_v2,
)
from kerasformer.optimizers.lion import Lion
from kerasformer.optimizers.schedules import PiecewiseLinear, piecewise_linear
from kerasformer.optimizers.tiger import Tiger

__all__ = [
    "AdaFactor", "Adam", "Lion", "PiecewiseLinear", "Tiger", "piecewise_linear",
    "extend_with_exponential_moving_average", "extend_with_exponential_moving_average_v2",
    "extend_with_gradient_accumulation", "extend_with_gradient_accumulation_v2",
    "extend_with_layer_adaptation", "extend_with_layer_adaptation_v2",
    "extend_with_lazy_optimization", "extend_with_lazy_optimization_v2",
    "extend_with_lookahead", "extend_with_lookahead_v2",
    "extend_with_parameter_wise_lr", "extend_with_parameter_wise_lr_v2",
    "extend_with_piecewise_linear_lr", "extend_with_piecewise_linear_lr_v2",
    "extend_with_weight_decay", "extend_with_weight_decay_v2",
]
