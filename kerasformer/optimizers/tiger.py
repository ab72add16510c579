"""Tiger (bojone/tiger, https://kexue.fm/archives/9512) on Keras 3."""
import numbers
import re

import keras
from keras import ops

from kerasformer.optimizers._base import Optimizer, _row_mask, variable_path
from kerasformer.optimizers.schedules import _normalise, piecewise_linear


def _rms(x, axis=None):
    return ops.sqrt(ops.mean(ops.square(x), axis=axis, keepdims=axis is not None))


@keras.saving.register_keras_serializable(package="kerasformer")
class Tiger(Optimizer):
    """Tiger: sign momentum with one β, parameter-wise learning rates, built-in
    gradient accumulation and a NaN-gradient guard.

    With t the micro-step counter (`optimizer._iterations`) and k = `grad_accum_steps`:
        b1 = β if t % k == 0 else 1,   b2 = (1−β)/k
        lr_t = lr·piecewise_linear(t, lr_schedule) if (t+1) % k == 0 else 0
        m ← b1·m + b2·g                (the momentum doubles as the accumulator)
        θ ← θ − lr_θ·(sign(m) + λ_θ·θ)
    Parameter-wise rules on `variable.path` (bert4keras/Tiger variable names):
        regex `bias|beta|gamma`   → lr_θ = 0.5·lr_t, λ_θ = 0
        contains `embeddings`     → lr_θ = lr_t·RMS(θ) per row (last axis)
        contains `lora_kernel`    → lr_θ = lr_t, λ_θ = 0 (LoRA's B starts at zero: a
                                    step in proportion to RMS(θ) would never move it)
        anything else             → lr_θ = lr_t·RMS(θ) over the whole tensor
    NaN guard: if any element of g is NaN, m is kept (b1 = 1, g = 0) and the step is
    replaced by a shrink toward the initial value: θ ← (θ − c)·s + c, with s =
    `shrink_ratio` and c = 1 for `gamma` variables, 0 otherwise.

    `learning_rate` may itself be a schedule (it sees the same micro-step counter);
    `lr_schedule` (Tiger's own `{step: multiplier}` dict) multiplies it. Keras'
    `gradient_accumulation_steps` and `weight_decay` arguments are not used: pass
    `grad_accum_steps` and `weight_decay` here.

    The generic options of `kerasformer.optimizers` apply to the step Δ (shrink
    included): `lr_multipliers`, `lazy_variables`, `ema_momentum`, `lookahead_steps`;
    EMA and Lookahead act on real updates only (every k-th micro-step).
    `lazy_embeddings` is on by default: embedding rows whose gradient is zero do not
    move, which stops the drift of rare tokens' rows to ±1/λ (a zero gradient decays m
    but keeps sign(m)). With k > 1 a row counts as touched when it had a non-zero
    gradient in any micro-step of the window (a small per-row flag slot is kept).
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta=0.965,
        weight_decay=0.01,
        grad_accum_steps=1,
        lr_schedule=None,
        shrink_ratio=0.99,
        lazy_embeddings=True,
        name="tiger",
        **kwargs,
    ):
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError("Tiger accumulates in its momentum: use `grad_accum_steps`, "
                             "not `gradient_accumulation_steps`")
        if not (isinstance(grad_accum_steps, numbers.Integral)
                and not isinstance(grad_accum_steps, bool) and grad_accum_steps >= 1):
            raise ValueError(f"`grad_accum_steps` must be an integer >= 1, got {grad_accum_steps!r}")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         lazy_embeddings=lazy_embeddings, name=name, **kwargs)
        self.beta = beta
        self.grad_accum_steps = int(grad_accum_steps)
        self.lr_schedule = None if lr_schedule is None else dict(_normalise(lr_schedule))
        self.shrink_ratio = shrink_ratio

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums = self.add_optimizer_variables(variables, "m")
        self._touched = [None] * len(variables)
        if self.grad_accum_steps > 1:
            for i, variable in enumerate(variables):
                if self._lazy_of[i] and self._momentums[i] is not None:
                    shape = tuple(variable.shape[:-1]) + (1,) if len(variable.shape) else ()
                    prefix = variable.path.replace("/", "_")
                    self._touched[i] = self.add_variable(
                        shape, dtype=variable.dtype, name=f"{prefix}_touched")

    def _update_period(self):
        return self.grad_accum_steps

    def _update_gate(self):
        if self.grad_accum_steps == 1:
            return None
        return ops.equal((self._iterations + 1) % self.grad_accum_steps, 0)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        k = self.grad_accum_steps
        t = self._iterations
        beta = ops.cast(self.beta, dtype)
        lr = ops.cast(learning_rate, dtype)
        if self.lr_schedule is not None:
            lr = lr * ops.cast(piecewise_linear(t, self.lr_schedule), dtype)
        if k > 1:
            lr = ops.where(ops.equal((t + 1) % k, 0), lr, ops.zeros_like(lr))
            b1 = ops.where(ops.equal(t % k, 0), beta, ops.ones_like(beta))
        else:
            b1 = beta
        b2 = (1 - beta) / k

        index = self._get_variable_index(variable)
        row_mask = None
        if self._lazy_of[index]:
            row_mask = _row_mask(gradient)
            touched = self._touched[index]
            if touched is not None:  # rows hit in any micro-step of the window
                row_mask = ops.where(ops.equal(t % k, 0), row_mask,
                                     ops.logical_or(row_mask, touched > 0))
                self.assign(touched, ops.cast(row_mask, touched.dtype))

        g = ops.cast(gradient, dtype)
        is_nan = ops.any(ops.isnan(g))
        b1 = ops.where(is_nan, ops.ones_like(b1), b1)
        g = ops.where(is_nan, ops.zeros_like(g), g)

        name = variable_path(self, variable)
        decay = ops.cast(self.weight_decay or 0.0, dtype)
        centre = 0.0
        if re.search("bias|beta|gamma", name):
            lr, decay = lr * 0.5, ops.cast(0.0, dtype)
            if "gamma" in name:
                centre = 1.0
        elif "lora_kernel" in name:
            decay = ops.cast(0.0, dtype)
        elif "embeddings" in name:
            lr = lr * _rms(variable, axis=-1)
        else:
            lr = lr * _rms(variable)

        m = self._momentums[index]
        m_t = b1 * m + b2 * g
        self.assign(m, m_t)
        step = -lr * (ops.sign(m_t) + decay * variable)
        shrink = (variable - centre) * ops.cast(self.shrink_ratio - 1.0, dtype)
        self._apply_delta(variable, ops.where(is_nan, shrink, step), row_mask=row_mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta": self.beta,
                "grad_accum_steps": self.grad_accum_steps,
                "lr_schedule": None if self.lr_schedule is None
                else [[s, v] for s, v in sorted(self.lr_schedule.items())],
                "shrink_ratio": self.shrink_ratio,
            }
        )
        return config
