"""Lion with bert4keras' defaults (`LionV2`), decoupled decay and LAMB as options."""
import keras
from keras import ops

from kerasformer.optimizers._base import DecoupledOptimizer


@keras.saving.register_keras_serializable(package="kerasformer")
class Lion(DecoupledOptimizer):
    """bert4keras' `Lion` (arXiv 2302.06675) with its defaults lr=3e-4, β1=0.95, β2=0.98:

        d = sign(β1·m + (1−β1)·g)
        Δ = −lr·d − lr·λ·θ       (decay only with `weight_decay`, bert4keras'
                                  `extend_with_weight_decay`; exclusions by path regex)
        θ ← θ + r·Δ              (r: LAMB trust ratio if `layer_adaptation`, else 1)
        m ← β2·m + (1−β2)·g

    `lazy_embeddings` is on by default: rows of variables whose path contains
    "embeddings" do not move when their gradient is zero. Without it a rarely seen
    token's row keeps stepping by lr·sign(m) after its last gradient (m decays, its
    sign does not) and settles at −sign(m)/λ under weight decay. The other generic
    options of `kerasformer.optimizers` apply as well.
    """

    def __init__(
        self,
        learning_rate=3e-4,
        beta_1=0.95,
        beta_2=0.98,
        weight_decay=None,
        exclude_from_weight_decay=None,
        layer_adaptation=False,
        exclude_from_layer_adaptation=None,
        lazy_embeddings=True,
        name="lion",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            exclude_from_weight_decay=exclude_from_weight_decay,
            layer_adaptation=layer_adaptation,
            exclude_from_layer_adaptation=exclude_from_layer_adaptation,
            lazy_embeddings=lazy_embeddings,
            name=name,
            **kwargs,
        )
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums = self.add_optimizer_variables(variables, "m")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        direction = ops.sign(beta_1 * m + (1 - beta_1) * g)
        self._apply_direction(variable, direction, lr, gradient)
        self.assign(m, beta_2 * m + (1 - beta_2) * g)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
