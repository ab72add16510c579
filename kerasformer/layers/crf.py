"""Linear-chain conditional random field as a Keras layer (bert4keras' CRF).

The layer itself only marks padding: its output is its input (the per-token label
scores, "emissions") with `-inf` at padded positions. The learning happens in its loss
methods, which read the padding back from those `-inf`s and use the transition matrix
`trans`:

    crf = ConditionalRandomField(lr_multiplier=1000)
    scores = crf(keras.layers.Dense(num_labels)(sequence_output))
    model = keras.Model(inputs, scores)
    model.compile(optimizer, loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])

For Viterbi decoding read the effective transitions with
`keras.ops.convert_to_numpy(crf.trans)` (bert4keras scripts: `K.eval(crf.trans)`).
`crf.get_weights()[0]` is the stored variable, which is `trans / lr_multiplier`, the
same as in bert4keras: it equals `trans` only when `lr_multiplier == 1`.
"""
import keras
from keras import ops

from kerasformer.layers.sequence import sequence_masking


def _forward_backward(emissions, keep, trans):
    """log Z of a linear-chain CRF and its exact gradient (the forward-backward pass).

    Args:
        emissions: float32 `(batch, seq, labels)`, zero at padded positions.
        keep: float32 `(batch, seq, 1)`, 1 at real positions and 0 at padding.
        trans: float32 `(labels, labels)` transition scores.

    Returns:
        `(log_z, grad_fn)`: `log_z` is `(batch,)` and `grad_fn(upstream)` gives the
        gradients with respect to `(emissions, keep, trans)` (none for `keep`).

    The recursion is bert4keras': `α_0 = e_0`, and at each later position
    `α_t = k_t·(logsumexp_i(α_{t−1}[i] + trans[i, :]) + e_t) + (1 − k_t)·α_{t−1}`, so
    padding carries the state on; `log Z = logsumexp(α_last)`. The gradient runs the
    same recursion backwards (its adjoint) in a second scan instead of differentiating
    through the first: that needs no per-step `(labels, labels)` intermediates, and
    TensorFlow cannot XLA-compile the gradient of Keras' `scan` (its while loop has
    no maximum iteration count), while it compiles two forward scans fine.
    """
    emissions, keep, trans = (ops.convert_to_tensor(x) for x in (emissions, keep, trans))
    first = emissions[:, 0]
    if emissions.shape[1] == 1:  # a single position: no transitions
        def grad_single(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            grad_first = upstream[:, None] * ops.softmax(first, axis=1)
            return (ops.expand_dims(grad_first, 1), ops.zeros_like(keep), ops.zeros_like(trans))

        return ops.logsumexp(first, axis=1), grad_single

    # Each scan runs over ONE time-major tensor, `[values, keep]` on the last axis:
    # Keras' TensorFlow scan fails on several inputs of unknown length.
    labels = emissions.shape[2]
    steps_keep = ops.transpose(keep[:, 1:], (1, 0, 2))
    steps = ops.concatenate([ops.transpose(emissions[:, 1:], (1, 0, 2)), steps_keep], axis=2)

    def forward(alpha, step):
        emission, k = step[:, :labels], step[:, labels:]
        scores = ops.logsumexp(ops.expand_dims(alpha, 2) + trans[None], axis=1) + emission
        alpha = k * scores + (1.0 - k) * alpha
        return alpha, alpha

    last, alphas = ops.scan(forward, first, steps)
    log_z = ops.logsumexp(last, axis=1)

    def grad_fn(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream
        # d log Z / d α_last, then backwards: d/dα_{t−1} from d/dα_t.
        grad_last = ops.cast(upstream, "float32")[:, None] * ops.softmax(last, axis=1)
        previous = ops.concatenate([first[None], alphas], axis=0)[:-1]  # α_{t−1} per step

        def backward(carry, step):
            grad_alpha, grad_trans = carry
            alpha_previous, k = step[:, :labels], step[:, labels:]
            paths = ops.expand_dims(alpha_previous, 2) + trans[None]  # (batch, from, to)
            # Posterior of the previous label given each current label.
            weights = ops.exp(paths - ops.logsumexp(paths, axis=1, keepdims=True))
            flow = ops.expand_dims(k, 2) * ops.expand_dims(grad_alpha, 1) * weights
            grad_trans = grad_trans + ops.sum(flow, axis=0)
            grad_previous = (1.0 - k) * grad_alpha + ops.sum(flow, axis=2)
            return (grad_previous, grad_trans), (k * grad_alpha, grad_trans)

        init = (grad_last, ops.zeros_like(trans))
        (grad_first, grad_trans), (grad_steps, _) = ops.scan(
            backward, init, ops.concatenate([previous, steps_keep], axis=2), reverse=True
        )
        grad_emissions = ops.concatenate([grad_first[None], grad_steps], axis=0)
        return (ops.transpose(grad_emissions, (1, 0, 2)), ops.zeros_like(keep), grad_trans)

    return log_z, grad_fn


# `log_partition(emissions, keep, trans)`: the `(batch,)` log Z, differentiable on every
# backend (under jit / XLA too) through `_forward_backward`'s gradient.
log_partition = ops.custom_gradient(_forward_backward)


@keras.saving.register_keras_serializable(package="kerasformer")
class ConditionalRandomField(keras.layers.Layer):
    """Linear-chain CRF over `(batch, seq, num_labels)` emission scores.

    The loss of a label path `y` is `log Z − score(y)`, where
    `score(y) = Σ_t e[t, y_t] + Σ_t trans[y_t, y_{t+1}]` over the real (unpadded)
    positions and `log Z` is its log-sum-exp over all paths (the forward algorithm).

    Args:
        lr_multiplier: number. The variable holds `trans / lr_multiplier` and the layer
            uses `lr_multiplier × variable`, so the transitions learn as if their
            learning rate were larger (bert4keras' trick for fine-tuning a CRF on top
            of a pretrained encoder with a small learning rate).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, seq, num_labels)` emission scores.
        mask: optional `(batch, seq)` padding mask (the Keras mask of `inputs`).

    Returns:
        The emissions in float32 with `-inf` at padded positions (no Keras mask: the
        `-inf`s carry the padding to the losses and metrics).
    """

    def __init__(self, lr_multiplier=1, **kwargs):
        super().__init__(**kwargs)
        self.lr_multiplier = lr_multiplier
        self.supports_masking = True
        self._trans = None

    def build(self, input_shape):
        num_labels = input_shape[-1]
        # Glorot-uniform transitions, stored divided by the multiplier: scaling a
        # Glorot variance by 1/m² scales the drawn values by 1/m.
        initializer = keras.initializers.VarianceScaling(
            scale=1.0 / float(self.lr_multiplier) ** 2, mode="fan_avg", distribution="uniform"
        )
        self._trans = self.add_weight(
            name="trans", shape=(num_labels, num_labels), initializer=initializer
        )

    @property
    def trans(self):
        """The effective `(num_labels, num_labels)` transition scores, `trans[i, j]`
        for label i followed by label j."""
        if self.lr_multiplier != 1:
            return self.lr_multiplier * ops.convert_to_tensor(self._trans)
        return self._trans

    def call(self, inputs, mask=None):
        return sequence_masking(ops.cast(inputs, "float32"), mask, float("-inf"), 1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_spec(self, inputs, mask=None):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def _real_positions(self, y_pred):
        """`(batch, seq, 1)` bool: positions that the layer did not mask."""
        return ops.all(ops.not_equal(y_pred, float("-inf")), axis=2, keepdims=True)

    def target_score(self, y_true, y_pred):
        """Unnormalised score of the one-hot label paths `y_true`, `(batch,)`."""
        trans = ops.cast(self.trans, y_pred.dtype)
        emission_score = ops.einsum("bni,bni->b", y_true, y_pred)
        transition_score = ops.einsum("bni,ij,bnj->b", y_true[:, :-1], trans, y_true[:, 1:])
        return emission_score + transition_score

    def dense_loss(self, y_true, y_pred):
        """Negative log-likelihood of one-hot label paths, `(batch,)`.

        Args:
            y_true: `(batch, seq, num_labels)` one-hot labels.
            y_pred: this layer's output.
        """
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "float32")
        real = self._real_positions(y_pred)
        y_true = ops.where(real, y_true, 0.0)
        y_pred = ops.where(real, y_pred, 0.0)
        target = self.target_score(y_true, y_pred)
        trans = ops.cast(ops.convert_to_tensor(self.trans), "float32")
        return log_partition(y_pred, ops.cast(real, "float32"), trans) - target

    def sparse_loss(self, y_true, y_pred):
        """Negative log-likelihood of integer label paths `(batch, seq)`, `(batch,)`."""
        y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        y_true = ops.one_hot(y_true, ops.shape(self._trans)[0])
        return self.dense_loss(y_true, y_pred)

    def dense_accuracy(self, y_true, y_pred):
        """Per-token accuracy of the emissions' argmax on one-hot labels, padding excluded."""
        return self.sparse_accuracy(ops.argmax(y_true, axis=2), y_pred)

    def sparse_accuracy(self, y_true, y_pred):
        """Per-token accuracy of the emissions' argmax on integer labels, padding
        excluded (a rough training-time signal: it ignores the transitions)."""
        real = ops.cast(self._real_positions(y_pred)[..., 0], "float32")
        y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=2), "int32")
        correct = ops.cast(ops.equal(y_true, predicted), "float32")
        return ops.sum(correct * real) / ops.sum(real)

    def get_config(self):
        config = super().get_config()
        config.update({"lr_multiplier": self.lr_multiplier})
        return config
