"""AdaFactor with bert4keras numerics (`AdaFactorV2`), decoupled decay and LAMB as options."""
import keras
import numpy as np
from keras import ops

from kerasformer.optimizers._base import DecoupledOptimizer, matches_any, variable_path


def _rms(x):
    return ops.sqrt(ops.mean(ops.square(x)))


def factored_axes(shape, min_dim_size_to_factor=128):
    """bert4keras' `factored_shape` decision for a variable of static `shape`.

    Returns None (keep a full second moment) or `(row_axis, col_axis)`: the axis of the
    largest dimension (reduced away in `vr`) and the axis of the second-largest one
    (reduced away in `vc`), over *all* dimensions, not only the last two. A variable is
    factored when it has ≥ 2 dimensions and its second-largest dimension is at least
    `min_dim_size_to_factor`. Ties are broken as bert4keras does, by `np.argpartition`
    (the reconstruction is symmetric in the two axes, so ties change nothing).
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        return None
    order = np.argpartition(np.array(shape), -2)
    largest, second = int(order[-1]), int(order[-2])
    if shape[second] < min_dim_size_to_factor:
        return None
    return largest, second


class _RelativeStep(keras.optimizers.schedules.LearningRateSchedule):
    """bert4keras' `learning_rate=None`: min(1e-2, 1/√t)·scale with t = step + 1."""

    def __init__(self, scale=1.0):
        self.scale = float(scale)

    def __call__(self, step):
        t = ops.cast(step, "float32") + 1.0
        return ops.minimum(1.0 / ops.sqrt(t), 0.01) * self.scale

    def get_config(self):
        return {"scale": self.scale}


@keras.saving.register_keras_serializable(package="kerasformer")
class AdaFactor(DecoupledOptimizer):
    """bert4keras' `AdaFactor` (arXiv 1804.04235; `AdaFactorV2`), optionally with
    `extend_with_weight_decay` and `extend_with_layer_adaptation` folded in.

    With t = iterations + 1, per variable θ with gradient g:
        β2_t = `beta2`, or 1 − t^(−0.8) when `beta2` is None
        g2 = g² + ε1
        factored (see below):  vr ← β2_t·vr + (1−β2_t)·mean(g2 over the largest axis)
                               vc ← β2_t·vc + (1−β2_t)·mean(g2 over the 2nd-largest axis)
                               v̂ = vr·vc / mean(vr over the 2nd-largest axis)
        otherwise:             v ← β2_t·v + (1−β2_t)·g2,  v̂ = v
        u = g / √(v̂ + ε1)                          (ε1 enters twice, as in bert4keras)
        u ← u / max(1, RMS(u)/`clipping_threshold`)   (skipped when it is None)
        if β1 > 0:  m ← β1·m + (1−β1)·u,  u = m
        u ← u·max(ε2, RMS(θ))        (if `multiply_by_parameter_scale` and the path does
                                      not match `exclude_from_parameter_scale`)
        Δ = −lr·u − lr·λ·θ,  θ ← θ + r·Δ   (decay λ and LAMB ratio r as in `Adam`)

    A variable is factored when it has ≥ 2 dimensions and its second-largest dimension
    (over all dimensions) is ≥ `min_dim_size_to_factor`; then only `vr` and `vc` are kept
    (a + b numbers for an (a, b) kernel, each stored with the reduced axis as size 1),
    never a full-size slot; `m` exists only when `beta1 > 0`.

    `learning_rate=None` is bert4keras' relative step min(1e-2, 1/√t) (×0.05 when
    `multiply_by_parameter_scale` is False); a float or a schedule
    (e.g. `PiecewiseLinear`) is used as given. Patterns are regexes searched in
    `variable.path`. bert4keras' CLUE recipe: `AdaFactor(5e-4, beta1=0.9,
    min_dim_size_to_factor=10**6)` (never factors).
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta1=0.0,
        beta2=None,
        epsilon1=1e-30,
        epsilon2=1e-3,
        multiply_by_parameter_scale=True,
        clipping_threshold=1.0,
        min_dim_size_to_factor=128,
        exclude_from_parameter_scale=None,
        weight_decay=None,
        exclude_from_weight_decay=None,
        layer_adaptation=False,
        exclude_from_layer_adaptation=None,
        name="adafactor",
        **kwargs,
    ):
        relative_step = learning_rate is None
        if relative_step:
            learning_rate = _RelativeStep(1.0 if multiply_by_parameter_scale else 0.05)
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            exclude_from_weight_decay=exclude_from_weight_decay,
            layer_adaptation=layer_adaptation,
            exclude_from_layer_adaptation=exclude_from_layer_adaptation,
            name=name,
            **kwargs,
        )
        self._relative_step = relative_step
        self.beta1 = float(beta1)
        self.beta2 = None if beta2 is None else float(beta2)
        self.epsilon1 = float(epsilon1)
        self.epsilon2 = float(epsilon2)
        self.multiply_by_parameter_scale = bool(multiply_by_parameter_scale)
        self.clipping_threshold = None if clipping_threshold is None else float(clipping_threshold)
        self.min_dim_size_to_factor = int(min_dim_size_to_factor)
        self._parameter_scale_exclusions = list(exclude_from_parameter_scale or [])

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._factored, self._vr, self._vc, self._v, self._m = [], [], [], [], []
        for variable in variables:
            if self._overwrite_variable_with_gradient(variable):
                for slots in (self._factored, self._vr, self._vc, self._v, self._m):
                    slots.append(None)
                continue
            axes = factored_axes(variable.shape, self.min_dim_size_to_factor)
            self._factored.append(axes)
            prefix = str(getattr(variable, "path", variable.name)).replace("/", "_")
            if axes is None:
                self._vr.append(None)
                self._vc.append(None)
                self._v.append(self.add_variable_from_reference(variable, "v"))
            else:
                row_shape, col_shape = list(variable.shape), list(variable.shape)
                row_shape[axes[0]] = 1
                col_shape[axes[1]] = 1
                self._vr.append(self.add_variable(
                    tuple(row_shape), dtype=variable.dtype, name=f"{prefix}_vr"))
                self._vc.append(self.add_variable(
                    tuple(col_shape), dtype=variable.dtype, name=f"{prefix}_vc"))
                self._v.append(None)
            self._m.append(
                self.add_variable_from_reference(variable, "m") if self.beta1 > 0 else None)

    def _scales(self, variable):
        return self.multiply_by_parameter_scale and not matches_any(
            variable_path(self, variable), self._parameter_scale_exclusions)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        eps1 = ops.cast(self.epsilon1, dtype)
        if self.beta2 is None:
            t = ops.cast(self.iterations + 1, dtype)
            beta2 = 1.0 - ops.power(t, ops.cast(-0.8, dtype))
        else:
            beta2 = ops.cast(self.beta2, dtype)
        index = self._get_variable_index(variable)
        axes = self._factored[index]

        g2 = ops.square(g) + eps1
        if axes is None:
            v = self._v[index]
            v_hat = beta2 * v + (1.0 - beta2) * g2
            self.assign(v, v_hat)
        else:
            row_axis, col_axis = axes
            vr, vc = self._vr[index], self._vc[index]
            vr_t = beta2 * vr + (1.0 - beta2) * ops.mean(g2, axis=row_axis, keepdims=True)
            vc_t = beta2 * vc + (1.0 - beta2) * ops.mean(g2, axis=col_axis, keepdims=True)
            self.assign(vr, vr_t)
            self.assign(vc, vc_t)
            v_hat = vr_t * vc_t / ops.mean(vr_t, axis=col_axis, keepdims=True)

        u = g / ops.sqrt(v_hat + eps1)
        if self.clipping_threshold is not None:
            u = u / ops.maximum(1.0, _rms(u) / ops.cast(self.clipping_threshold, dtype))
        if self.beta1 > 0:
            m = self._m[index]
            beta1 = ops.cast(self.beta1, dtype)
            u = beta1 * m + (1.0 - beta1) * u
            self.assign(m, u)
        if self._scales(variable):
            u = u * ops.maximum(_rms(variable), ops.cast(self.epsilon2, dtype))
        self._apply_direction(variable, u, lr)

    def get_config(self):
        config = super().get_config()
        if self._relative_step and isinstance(self._learning_rate, _RelativeStep):
            config["learning_rate"] = None
        config.update(
            {
                "beta1": self.beta1,
                "beta2": self.beta2,
                "epsilon1": self.epsilon1,
                "epsilon2": self.epsilon2,
                "multiply_by_parameter_scale": self.multiply_by_parameter_scale,
                "clipping_threshold": self.clipping_threshold,
                "min_dim_size_to_factor": self.min_dim_size_to_factor,
                "exclude_from_parameter_scale": list(self._parameter_scale_exclusions),
            }
        )
        return config
