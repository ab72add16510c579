"""Adam with bert4keras numerics (AdamW and LAMB as options)."""
import keras
from keras import ops

from kerasformer.optimizers._base import DecoupledOptimizer


@keras.saving.register_keras_serializable(package="kerasformer")
class Adam(DecoupledOptimizer):
    """bert4keras' `Adam`, optionally with `extend_with_weight_decay` (AdamW) and
    `extend_with_layer_adaptation` (LAMB) folded in.

    With t = iterations + 1:
        m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
        m̂ = m/(1−β1^t), v̂ = v/(1−β2^t)     (m̂ = m, v̂ = v if not `bias_correction`)
        d = m̂ / (√v̂ + ε)                   (ε outside the root, default 1e-6)
        Δ = −lr·d − lr·λ·θ                  (λ = `weight_decay`, skipped for variables
                                             whose path matches `exclude_from_weight_decay`)
        θ ← θ + r·Δ                         (r = LAMB trust ratio ‖θ‖/‖Δ/lr‖ if
                                             `layer_adaptation`, else 1)
    `lr` is the current learning rate, schedule included. Patterns are regexes searched
    in `variable.path`, e.g. `['Norm', 'bias']`. bert4keras' LAMB recipe:
    `Adam(1.76e-3, weight_decay=0.01, exclude_from_weight_decay=['Norm', 'bias'],
    layer_adaptation=True, exclude_from_layer_adaptation=['Norm', 'bias'])`.

    The generic options of `kerasformer.optimizers` apply as well (`lr_multipliers`,
    `lazy_variables`, `lazy_embeddings`, `ema_momentum`, `lookahead_steps`/`_alpha`,
    Keras' `gradient_accumulation_steps`, under which t counts real updates).
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        bias_correction=True,
        weight_decay=None,
        exclude_from_weight_decay=None,
        layer_adaptation=False,
        exclude_from_layer_adaptation=None,
        name="adam",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            exclude_from_weight_decay=exclude_from_weight_decay,
            layer_adaptation=layer_adaptation,
            exclude_from_layer_adaptation=exclude_from_layer_adaptation,
            name=name,
            **kwargs,
        )
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.bias_correction = bool(bias_correction)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums, self._velocities = self.add_optimizer_variables(variables, ["m", "v"])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]

        m_t = beta_1 * m + (1 - beta_1) * g
        v_t = beta_2 * v + (1 - beta_2) * ops.square(g)
        self.assign(m, m_t)
        self.assign(v, v_t)
        if self.bias_correction:
            t = ops.cast(self.iterations + 1, dtype)
            m_t = m_t / (1 - ops.power(beta_1, t))
            v_t = v_t / (1 - ops.power(beta_2, t))
        direction = m_t / (ops.sqrt(v_t) + ops.cast(self.epsilon, dtype))
        self._apply_direction(variable, direction, lr, gradient)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "bias_correction": self.bias_correction,
            }
        )
        return config
