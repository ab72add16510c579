"""bert4keras' `backend` module on Keras 3: `keras`, `K` and bert4keras' helpers.

A bert4keras training script starts with

    from bert4keras.backend import keras, K
    from bert4keras.backend import sequence_masking, multilabel_categorical_crossentropy

and keeps working after the import becomes `from kerasformer.backend import ...`:

- `keras` is Keras 3 itself.
- `K` offers the Keras-2 `keras.backend` functions such scripts call (`K.sum`,
  `K.batch_dot`, `K.sparse_categorical_crossentropy`, `K.eval`, ...), with Keras 2's
  argument names and defaults, written with `keras.ops` so they run on JAX, TensorFlow
  and PyTorch and inside jit-compiled training steps. A function Keras 3 cannot offer
  (`K.gradients`, `K.function`, `K.rnn`, ...) raises an `AttributeError` that says so
  and names the Keras 3 way.
- bert4keras' own helpers (`sequence_masking`, the multi-label cross-entropies,
  `piecewise_linear`, `search_layer`, `set_gelu`, ...) are module functions and are
  also reachable as `K.<name>`, as bert4keras patched some of them onto `K`.

Differences from Keras 2 that a script may meet:
- `K.shape(x)` is a tuple (ints where the size is static), not a tensor: index and
  slice it, but `K.shape(x) * 2` is tuple repetition. Static sizes keep reshapes
  jit-compatible; `K.prod` of a tuple of ints is an int for the same reason.
- There is no global learning phase: `K.in_train_phase(x, alt, training)` needs the
  `training` argument of the calling layer's `call`, and `K.learning_phase()` raises.
- Random functions inside a jit-compiled function (JAX) need a seed generator:
  `K.random_uniform(shape, seed=self.seed_generator)` with a
  `keras.random.SeedGenerator` created in the layer's `__init__`.
"""
import math
import os

import keras
import numpy as np
from keras import ops

# The model class is registered with keras.saving on import, so that after the usual
# `from kerasformer.backend import keras, K`, `keras.saving.load_model` finds it, as
# bert4keras' imports registered its custom objects.
from kerasformer.architectures import base as _architectures  # noqa: F401
from kerasformer.layers import activations as _activations
from kerasformer.layers.attention import attention_normalize as _attention_normalize
from kerasformer.layers.rotary import apply_rotary_position_embeddings, sinusoidal_embeddings
from kerasformer.layers.sequence import align, sequence_masking
from kerasformer.optimizers.schedules import piecewise_linear

__all__ = [
    "keras", "K", "is_tf_keras", "do_recompute", "align", "apply_rotary_position_embeddings",
    "attention_normalize", "batch_gather", "divisible_temporal_padding", "dtype", "flatten",
    "gelu_erf", "gelu_tanh", "infinity", "leaky_relu", "multilabel_categorical_crossentropy",
    "piecewise_linear", "pool1d", "recompute_grad", "reshape", "root_mean_square",
    "search_layer", "sequence_masking", "set_gelu", "Sinusoidal", "sinusoidal_embeddings",
    "sparse_multilabel_categorical_crossentropy", "swish", "where",
]

# bert4keras switched between Keras 2.3 and tf.keras; here it is always Keras 3.
is_tf_keras = False
# bert4keras' RECOMPUTE=1 switch; kerasformer recomputes with Transformer(remat=True).
do_recompute = False

_RECOMPUTE_HINT = (
    "kerasformer does not recompute layers by decorator: build the model with "
    "build_transformer_model(..., remat=True) (Transformer(remat=True)), which "
    "rematerialises each block on every backend with its dropout masks replayed; "
    "keras.remat and keras.RematScope are no substitute on layers with dropout (on JAX "
    "a tracer error; on TensorFlow an error or other dropout masks: docs/training.md)"
)


# --------------------------------------------------------------------------------------
# bert4keras.backend's own functions
# --------------------------------------------------------------------------------------


def gelu_erf(x):
    """Exact GELU, `0.5·x·(1 + erf(x/√2))`."""
    return keras.activations.gelu(x, approximate=False)


gelu_tanh = _activations.gelu_tanh


def set_gelu(version):
    """Chooses what the activation name `"gelu"` means in kerasformer layers.

    bert4keras rebinds the Keras custom object `"gelu"`; here the choice changes how
    `kerasformer.layers.activations.get_activation` resolves `"gelu"` (the name in
    `hidden_act` of a checkpoint config), for every kerasformer layer built afterwards
    in this process. It is process-wide state, as in bert4keras: a saved model keeps
    the name "gelu", so call `set_gelu` before loading it too — or, better, spell the
    activation out (`hidden_act="gelu_tanh"`). `keras.layers.Dense(activation="gelu")`
    is Keras' own exact GELU either way.

    Args:
        version: "erf" (the default: exact GELU) or "tanh" (the tanh approximation).
    """
    _activations.set_gelu(version)


def infinity():
    """The large finite number that older bert4keras used for masking, 1e12."""
    return 1e12


def root_mean_square(x, axis=None, keepdims=False):
    """`sqrt(mean(x²))` over `axis`."""
    return ops.sqrt(ops.mean(ops.square(x), axis=axis, keepdims=keepdims))


def swish(x):
    """`x · sigmoid(x)`."""
    return ops.silu(x)


def leaky_relu(x, alpha=0.2):
    """Leaky ReLU with bert4keras' default slope 0.2."""
    return ops.leaky_relu(x, negative_slope=alpha)


def dtype(x):
    """The dtype name of a tensor or variable, None for a Python number."""
    value = getattr(x, "dtype", None)
    return None if value is None else keras.backend.standardize_dtype(value)


def where(cond, x, y):
    """`ops.where` with broadcasting; Python numbers take the other side's dtype
    (floatx when both are numbers), and a non-bool condition is cast to bool."""
    if dtype(cond) != "bool":
        cond = ops.cast(cond, "bool")
    x_dtype, y_dtype = dtype(x), dtype(y)
    if x_dtype is None and y_dtype is None:
        x_dtype = y_dtype = keras.config.floatx()
    x = ops.convert_to_tensor(x, dtype=x_dtype or y_dtype)
    y = ops.convert_to_tensor(y, dtype=y_dtype or x_dtype)
    return ops.where(cond, x, y)


def reshape(tensor, *args):
    """`reshape(x, shape)`, or per-axis reshapes `reshape(x, shape1, axis1, ...)`.

    With pairs, axis `axis_i` of `x` is replaced by the dimensions `shape_i` (at most
    one -1 each): `reshape(x, (heads, -1), 2)` splits axis 2 into heads.
    """
    if len(args) == 1:
        return ops.reshape(tensor, args[0])
    if len(args) % 2:
        raise ValueError("reshape takes a shape, or (shape, axis) pairs")
    sizes = list(ops.shape(tensor))
    new = [[size] for size in sizes]
    for shape, axis in zip(args[::2], args[1::2]):
        shape = list(shape)
        if shape.count(-1) > 1:
            raise ValueError(f"at most one -1 per axis, got {shape}")
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape[shape.index(-1)] = sizes[axis] // known
        new[axis] = shape
    return ops.reshape(tensor, [size for group in new for size in group])


def flatten(tensor, start=None, end=None):
    """Merges axes `start..end-1` into one (all axes by default)."""
    sizes = list(ops.shape(tensor))
    start = start or 0
    end = end or len(sizes)
    merged = _prod(sizes[start:end])
    return ops.reshape(tensor, sizes[:start] + [merged] + sizes[end:])


def batch_gather(params, indices):
    """`params[b..., indices[b..., k], ...]` for every batch position `b...`.

    The batch axes are all axes of `indices` but its last (tf.gather with
    `batch_dims = ndim(indices) - 1`).
    """
    indices = ops.cast(indices, "int32")
    batch_dims = len(indices.shape) - 1
    extra = len(params.shape) - len(indices.shape)
    expanded = indices
    for _ in range(extra):
        expanded = ops.expand_dims(expanded, -1)
    if extra:
        target = tuple(ops.shape(indices)) + tuple(ops.shape(params)[batch_dims + 1:])
        expanded = ops.broadcast_to(expanded, target)
    return ops.take_along_axis(params, expanded, axis=batch_dims)


def pool1d(x, pool_size, strides=1, padding="valid", data_format=None, pool_mode="max"):
    """1-D max or average pooling of `(batch, seq, dim)`."""
    pool = ops.max_pool if pool_mode == "max" else ops.average_pool
    return pool(x, pool_size, strides=strides, padding=padding, data_format=data_format)


def divisible_temporal_padding(x, n):
    """Right-pads the time axis of `(batch, seq, ...)` to a multiple of `n`."""
    length = ops.shape(x)[1]
    pad = (-length) % n
    return ops.pad(x, [[0, 0], [0, pad]] + [[0, 0]] * (len(x.shape) - 2))


def attention_normalize(a, mask=None, axis=-1, method="softmax", bias=None, length_floor=16):
    """bert4keras' `attention_normalize` on kerasformer's implementation.

    Args:
        a: attention logits.
        mask: `(batch, seq)` mask of the keys along `axis` (bert4keras' convention).
        axis: the normalised axis.
        method: "softmax", "softmax_plus" or "squared_relu".
        bias: bool mask or float bias broadcastable to `a` (see `sequence_masking`).
        length_floor: `softmax_plus` floor on the key count: 16 as in bert4keras
            0.11.5 (kerasformer's layers default to 1, the training-time value).

    Returns:
        float32 weights. A row with every key masked is uniform, not NaN as in
        bert4keras, because masked logits are -1e9 rather than -inf.
    """
    a, full_mask = sequence_masking(a, mask, 0.0, axis, bias, return_mask=True)
    if full_mask is not None:
        full_mask = ops.broadcast_to(full_mask, ops.shape(a))
    if axis not in (-1, len(a.shape) - 1):
        a = ops.moveaxis(a, axis, -1)
        full_mask = None if full_mask is None else ops.moveaxis(full_mask, axis, -1)
    weights = _attention_normalize(a, full_mask, method=method, length_floor=length_floor)
    if axis not in (-1, len(a.shape) - 1):
        weights = ops.moveaxis(weights, -1, axis)
    return weights


def multilabel_categorical_crossentropy(y_true, y_pred):
    """Multi-label cross-entropy on logits (https://kexue.fm/archives/7359, /9064).

    `log(1 + Σ_neg e^{s}·(1−y)) + log(1 + Σ_pos e^{−s}·y)` over the last axis, with
    soft labels `y_true` in [0, 1]. Scores equal to -inf (e.g. masked GlobalPointer
    spans) are ignored. Predict the classes whose score is > 0.

    Returns:
        The loss per row: `y_pred.shape[:-1]`.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    kept = ops.not_equal(y_pred, float("-inf"))
    negative = ops.where(kept, y_pred, float("-inf")) + ops.log(1 - y_true)
    positive = ops.where(kept, -y_pred, float("-inf")) + ops.log(y_true)
    zeros = ops.zeros_like(y_pred[..., :1])
    negative = ops.logsumexp(ops.concatenate([negative, zeros], axis=-1), axis=-1)
    positive = ops.logsumexp(ops.concatenate([positive, zeros], axis=-1), axis=-1)
    return negative + positive


def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False):
    """Multi-label cross-entropy with the positive classes given by index.

    Args:
        y_true: `(..., num_positive)` indices of the positive classes (cast to int).
        y_pred: `(..., num_classes)` logits.
        mask_zero: index 0 is padding in `y_true` (it then cannot be a class).

    Returns:
        The loss per row: `y_pred.shape[:-1]`. The negative part,
        `log(Σ_all e^s − Σ_pos e^s)`, is computed as bert4keras does:
        `log Σ_all + log(1 − e^{logΣ_pos − logΣ_all})`, clipped at epsilon.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    zeros = ops.zeros_like(y_pred[..., :1])
    y_pred = ops.concatenate([y_pred, zeros], axis=-1)
    if mask_zero:
        infs = zeros + float("inf")
        y_pred = ops.concatenate([infs, y_pred[..., 1:]], axis=-1)
    positives = batch_gather(y_pred, y_true)
    positive_loss = ops.logsumexp(-ops.concatenate([positives, zeros], axis=-1), axis=-1)
    if mask_zero:
        y_pred = ops.concatenate([-infs, y_pred[..., 1:]], axis=-1)
        positives = batch_gather(y_pred, y_true)
    all_loss = ops.logsumexp(y_pred, axis=-1)
    aux_loss = ops.logsumexp(positives, axis=-1) - all_loss
    aux_loss = ops.clip(1 - ops.exp(aux_loss), keras.config.epsilon(), 1)
    return positive_loss + all_loss + ops.log(aux_loss)


def search_layer(inputs, name, exclude_from=None):
    """Finds the layer called `name` upstream of a symbolic tensor or a layer.

    Walks the functional graph from `inputs` (a `KerasTensor` of a functional model,
    e.g. `model.outputs[0]`, or a layer) towards the inputs, looking into nested
    models' layers on the way — as bert4keras does to find `Embedding-Token` for
    adversarial training.

    Returns:
        The layer, or None.
    """
    exclude_from = set() if exclude_from is None else exclude_from
    if isinstance(inputs, keras.Operation):
        layer = inputs
    else:
        history = getattr(inputs, "_keras_history", None)
        if history is None:
            raise TypeError(
                "search_layer needs a layer or a symbolic tensor of a functional model "
                f"(e.g. model.outputs[0]), got {type(inputs).__name__}"
            )
        layer = history[0]
    if layer.name == name:
        return layer
    if layer in exclude_from:
        return None
    exclude_from.add(layer)
    if isinstance(layer, keras.Model):
        for sublayer in layer.layers:
            if sublayer.name == name:
                return sublayer
    for node in layer._inbound_nodes:
        for parent in node.parent_nodes:
            found = search_layer(parent.operation, name, exclude_from)
            if found is not None:
                return found
    return None


def recompute_grad(call):
    """bert4keras' recompute decorator for a layer's `call`.

    bert4keras applies it only when `RECOMPUTE=1` is set and otherwise returns `call`
    unchanged; kerasformer does the same when the variable is unset and refuses it
    when it is set, as decorating a `call` cannot rematerialise on every backend.
    """
    if os.environ.get("RECOMPUTE", "0").lower() in ("1", "true", "yes", "on"):
        raise NotImplementedError(f"RECOMPUTE=1: {_RECOMPUTE_HINT}")
    return call


@keras.saving.register_keras_serializable(package="kerasformer")
class Sinusoidal(keras.initializers.Initializer):
    """Initializer: the `(rows, dim)` table of interleaved sinusoidal embeddings."""

    def __call__(self, shape, dtype=None):
        rows, dim = shape
        table = sinusoidal_embeddings(ops.arange(rows, dtype="float32"), dim)
        return ops.cast(table, dtype or keras.config.floatx())


# --------------------------------------------------------------------------------------
# K: Keras 2's backend functions on keras.ops
# --------------------------------------------------------------------------------------


def _prod(values):
    """Product of sizes: an int when they are all ints, else a tensor."""
    if all(isinstance(v, (int, np.integer)) for v in values):
        return int(math.prod(int(v) for v in values))
    return ops.prod(ops.stack([ops.cast(v, "int32") for v in values]))


def _floatx(dtype_):
    return dtype_ or keras.config.floatx()


def _prod_k(x, axis=None, keepdims=False):
    if isinstance(x, (tuple, list)) and axis is None and not keepdims:
        return _prod(list(x))
    return ops.prod(x, axis=axis, keepdims=keepdims)


def _int_shape(x):
    return tuple(None if d is None else int(d) for d in x.shape)


def _sqrt(x):
    # Keras 2 clips negative inputs to 0 before the square root.
    return ops.sqrt(ops.maximum(x, 0))


def _clip(x, min_value, max_value):
    numbers = (int, float, np.number)
    if isinstance(min_value, numbers) and isinstance(max_value, numbers):
        max_value = max(max_value, min_value)  # Keras 2 lifts a max below the min
    min_value = float("-inf") if min_value is None else min_value
    max_value = float("inf") if max_value is None else max_value
    return ops.clip(x, min_value, max_value)


def _dot(x, y):
    """Keras 2's (numpy's) `dot`: the last axis of `x` with the second-to-last of `y`."""
    y_axis = 0 if len(y.shape) == 1 else len(y.shape) - 2
    return ops.tensordot(x, y, axes=([len(x.shape) - 1], [y_axis]))


def _batch_dot(x, y, axes=None):
    """Keras 2's `batch_dot`: per batch entry, `tensordot` over `axes`."""
    x_ndim, y_ndim = len(x.shape), len(y.shape)
    if x_ndim < 2 or y_ndim < 2:
        raise ValueError("batch_dot needs tensors of rank >= 2")
    if axes is None:
        axes = (x_ndim - 1, y_ndim - 2) if y_ndim > 2 else (x_ndim - 1, y_ndim - 1)
    elif isinstance(axes, int):
        axes = (axes, axes)
    x_axis, y_axis = axes[0] % x_ndim, axes[1] % y_ndim
    if 0 in (x_axis, y_axis):
        raise ValueError("batch_dot cannot contract the batch axis")
    x = ops.moveaxis(x, x_axis, -1)
    y = ops.moveaxis(y, y_axis, 1)
    x_rest = tuple(ops.shape(x)[1:-1])
    y_rest = tuple(ops.shape(y)[2:])
    batch = ops.shape(x)[0]
    x2 = ops.reshape(x, (batch, _prod(list(x_rest)) if x_rest else 1, ops.shape(x)[-1]))
    y2 = ops.reshape(y, (batch, ops.shape(y)[1], _prod(list(y_rest)) if y_rest else 1))
    result = ops.reshape(ops.matmul(x2, y2), (batch,) + x_rest + y_rest)
    if len(result.shape) == 1:
        result = ops.expand_dims(result, 1)
    return result


def _switch(condition, then_expression, else_expression):
    """Keras 2's `switch`: a lower-rank condition is aligned on the LEADING axes."""
    then_expression = then_expression() if callable(then_expression) else then_expression
    else_expression = else_expression() if callable(else_expression) else else_expression
    condition = ops.cast(condition, "bool")
    then_expression = ops.convert_to_tensor(then_expression)
    while 0 < len(condition.shape) < len(then_expression.shape):
        condition = ops.expand_dims(condition, -1)
    return where(condition, then_expression, else_expression)


def _in_train_phase(x, alt, training=None):
    if training is None:
        raise ValueError(
            "K.in_train_phase needs training=...: Keras 3 has no global learning phase. "
            "Give your layer's call a `training=None` argument (Keras fills it in fit, "
            "evaluate and predict) and pass it on"
        )
    if isinstance(training, (bool, int)):
        chosen = x if training else alt
        return chosen() if callable(chosen) else chosen
    return _switch(training, x, alt)


def _in_test_phase(x, alt, training=None):
    return _in_train_phase(alt, x, training=training)


def _one_hot(indices, num_classes):
    return ops.one_hot(ops.cast(indices, "int32"), num_classes, dtype=keras.config.floatx())


def _l2_normalize(x, axis=None):
    x = ops.convert_to_tensor(x)
    squares = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squares, 1e-12))


def _stop_gradient(variables):
    if isinstance(variables, (list, tuple)):
        return [ops.stop_gradient(v) for v in variables]
    return ops.stop_gradient(variables)


def _constant(value, dtype=None, shape=None, name=None):
    tensor = ops.convert_to_tensor(value, dtype=_floatx(dtype))
    return tensor if shape is None else ops.broadcast_to(tensor, shape)


def _set_value(x, value):
    x.assign(value)


def _batch_set_value(tuples):
    for x, value in tuples:
        x.assign(value)


def _random_binomial(shape, p=0.0, dtype=None, seed=None):
    draws = keras.random.uniform(shape, dtype="float32", seed=seed)
    return ops.cast(ops.less(draws, p), _floatx(dtype))


def _repeat(x, n):
    """`(batch, dim)` → `(batch, n, dim)`."""
    return ops.repeat(ops.expand_dims(x, 1), n, axis=1)


def _arange(start, stop=None, step=1, dtype="int32"):
    if stop is None and not hasattr(start, "shape") and start < 0:
        start = 0
    return ops.arange(start, stop, step, dtype=dtype)


def _hard_sigmoid(x):
    # Keras 2's piecewise-linear sigmoid (Keras 3's hard_sigmoid has slope 1/6).
    return ops.clip(0.2 * ops.convert_to_tensor(x) + 0.5, 0.0, 1.0)


def _temporal_padding(x, padding=(1, 1)):
    return ops.pad(x, [[0, 0], list(padding), [0, 0]])


def _map_fn(fn, elems, name=None, dtype=None):
    return ops.map(fn, elems)


def _variable(value, dtype=None, name=None, constraint=None):
    return keras.Variable(value, dtype=_floatx(dtype), name=name, constraint=constraint)


def _sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    return ops.sparse_categorical_crossentropy(
        ops.cast(target, "int32"), output, from_logits=from_logits, axis=axis
    )


_K_FUNCTIONS = {
    # reductions
    "sum": lambda x, axis=None, keepdims=False: ops.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis=None, keepdims=False: ops.mean(x, axis=axis, keepdims=keepdims),
    "max": lambda x, axis=None, keepdims=False: ops.max(x, axis=axis, keepdims=keepdims),
    "min": lambda x, axis=None, keepdims=False: ops.min(x, axis=axis, keepdims=keepdims),
    "prod": _prod_k,
    "std": lambda x, axis=None, keepdims=False: ops.std(x, axis=axis, keepdims=keepdims),
    "var": lambda x, axis=None, keepdims=False: ops.var(x, axis=axis, keepdims=keepdims),
    "any": lambda x, axis=None, keepdims=False: ops.any(x, axis=axis, keepdims=keepdims),
    "all": lambda x, axis=None, keepdims=False: ops.all(x, axis=axis, keepdims=keepdims),
    "logsumexp": lambda x, axis=None, keepdims=False: ops.logsumexp(
        x, axis=axis, keepdims=keepdims),
    "argmax": lambda x, axis=-1: ops.argmax(x, axis=axis),
    "argmin": lambda x, axis=-1: ops.argmin(x, axis=axis),
    "cumsum": lambda x, axis=0: ops.cumsum(x, axis=axis),
    "cumprod": lambda x, axis=0: ops.cumprod(x, axis=axis),
    # element-wise
    "abs": ops.abs, "exp": ops.exp, "log": ops.log, "sqrt": _sqrt, "square": ops.square,
    "sign": ops.sign, "round": ops.round, "sin": ops.sin, "cos": ops.cos,
    "pow": lambda x, a: ops.power(x, a),
    "clip": _clip,
    "maximum": ops.maximum, "minimum": ops.minimum,
    "equal": ops.equal, "not_equal": ops.not_equal, "greater": ops.greater,
    "greater_equal": ops.greater_equal, "less": ops.less, "less_equal": ops.less_equal,
    "switch": _switch, "where": where,
    # activations
    "softmax": lambda x, axis=-1: ops.softmax(x, axis=axis),
    "relu": lambda x, alpha=0.0, max_value=None, threshold=0.0: keras.activations.relu(
        x, negative_slope=alpha, max_value=max_value, threshold=threshold),
    "elu": lambda x, alpha=1.0: keras.activations.elu(x, alpha=alpha),
    "sigmoid": ops.sigmoid, "hard_sigmoid": _hard_sigmoid, "tanh": ops.tanh,
    "softplus": ops.softplus, "softsign": ops.softsign,
    # losses
    "categorical_crossentropy": lambda target, output, from_logits=False, axis=-1: (
        ops.categorical_crossentropy(target, output, from_logits=from_logits, axis=axis)),
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "binary_crossentropy": lambda target, output, from_logits=False: ops.binary_crossentropy(
        target, output, from_logits=from_logits),
    "l2_normalize": _l2_normalize,
    # shapes and layout
    "shape": lambda x: tuple(ops.shape(x)),
    "int_shape": _int_shape,
    "ndim": lambda x: len(x.shape),
    "dtype": dtype,
    "cast": lambda x, dtype: ops.cast(x, dtype),
    "reshape": reshape,
    "flatten": flatten,
    "batch_flatten": lambda x: ops.reshape(x, (ops.shape(x)[0], -1)),
    "permute_dimensions": lambda x, pattern: ops.transpose(x, tuple(pattern)),
    "transpose": ops.transpose,
    "expand_dims": lambda x, axis=-1: ops.expand_dims(x, axis),
    "squeeze": lambda x, axis: ops.squeeze(x, axis),
    "concatenate": lambda tensors, axis=-1: ops.concatenate(list(tensors), axis=axis),
    "stack": lambda x, axis=0: ops.stack(list(x), axis=axis),
    "tile": lambda x, n: ops.tile(x, [n] if isinstance(n, int) else n),
    "repeat_elements": lambda x, rep, axis: ops.repeat(x, rep, axis=axis),
    "repeat": _repeat,
    "reverse": lambda x, axes: ops.flip(x, axis=axes),
    "gather": lambda reference, indices: ops.take(reference, indices, axis=0),
    "one_hot": _one_hot,
    "temporal_padding": _temporal_padding,
    "dot": _dot,
    "batch_dot": _batch_dot,
    "bias_add": lambda x, bias, data_format=None: ops.add(x, bias),
    "stop_gradient": _stop_gradient,
    "map_fn": _map_fn,
    # constructors and values
    "arange": _arange,
    "ones": lambda shape, dtype=None, name=None: ops.ones(shape, dtype=_floatx(dtype)),
    "zeros": lambda shape, dtype=None, name=None: ops.zeros(shape, dtype=_floatx(dtype)),
    "eye": lambda size, dtype=None, name=None: ops.eye(size, dtype=_floatx(dtype)),
    "ones_like": lambda x, dtype=None, name=None: ops.ones_like(x, dtype=dtype),
    "zeros_like": lambda x, dtype=None, name=None: ops.zeros_like(x, dtype=dtype),
    "constant": _constant,
    "variable": _variable,
    "eval": ops.convert_to_numpy,
    "get_value": ops.convert_to_numpy,
    "batch_get_value": lambda tensors: [ops.convert_to_numpy(t) for t in tensors],
    "set_value": _set_value,
    "batch_set_value": _batch_set_value,
    "count_params": lambda x: int(math.prod(_int_shape(x))),
    "is_tensor": ops.is_tensor,
    "is_keras_tensor": keras.backend.is_keras_tensor,
    # random
    "random_uniform": lambda shape, minval=0.0, maxval=1.0, dtype=None, seed=None: (
        keras.random.uniform(shape, minval, maxval, dtype=_floatx(dtype), seed=seed)),
    "random_normal": lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None: (
        keras.random.normal(shape, mean, stddev, dtype=_floatx(dtype), seed=seed)),
    "truncated_normal": lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None: (
        keras.random.truncated_normal(shape, mean, stddev, dtype=_floatx(dtype), seed=seed)),
    "random_binomial": _random_binomial,
    "dropout": lambda x, level, noise_shape=None, seed=None: keras.random.dropout(
        x, level, noise_shape=noise_shape, seed=seed),
    # training phase
    "in_train_phase": _in_train_phase,
    "in_test_phase": _in_test_phase,
    # configuration
    "floatx": keras.config.floatx,
    "set_floatx": keras.config.set_floatx,
    "epsilon": keras.config.epsilon,
    "set_epsilon": keras.config.set_epsilon,
    "image_data_format": keras.config.image_data_format,
    "backend": keras.config.backend,
    "clear_session": keras.backend.clear_session,
    # bert4keras' helpers, which it also exposed on K (or scripts reach through it)
    "sequence_masking": sequence_masking,
    "align": align,
    "batch_gather": batch_gather,
    "infinity": infinity,
    "root_mean_square": root_mean_square,
    "attention_normalize": attention_normalize,
    "apply_rotary_position_embeddings": apply_rotary_position_embeddings,
    "sinusoidal_embeddings": sinusoidal_embeddings,
    "multilabel_categorical_crossentropy": multilabel_categorical_crossentropy,
    "sparse_multilabel_categorical_crossentropy": sparse_multilabel_categorical_crossentropy,
    "piecewise_linear": piecewise_linear,
    "search_layer": search_layer,
    "set_gelu": set_gelu,
    "gelu_erf": gelu_erf,
    "gelu_tanh": gelu_tanh,
    "swish": swish,
    "leaky_relu": leaky_relu,
    "pool1d": pool1d,
    "divisible_temporal_padding": divisible_temporal_padding,
}

# Keras 2 functions with no Keras 3 counterpart, and what to use instead.
_NOT_PROVIDED = {
    "gradients": "compute gradients in a custom train_step (jax.grad / tf.GradientTape / "
                 "torch autograd), or add the penalty as a loss",
    "function": "call the model (model(x) or model.predict(x)) or build a keras.Model "
                "from the tensors you need",
    "placeholder": "use keras.Input",
    "rnn": "write the recurrence with keras.ops.scan (see ConditionalRandomField)",
    "update": "use variable.assign(value)",
    "update_add": "use variable.assign_add(value)",
    "update_sub": "use variable.assign_sub(value)",
    "moving_average_update": "use variable.assign(...) with the moving-average formula",
    "get_session": "Keras 3 has no sessions",
    "set_session": "Keras 3 has no sessions",
    "symbolic": "Keras 3 needs no symbolic decorator; drop it",
    "recompute_grad": _RECOMPUTE_HINT,
    "ctc_batch_cost": "use keras.losses.CTC",
    "print_tensor": "print(keras.ops.convert_to_numpy(x)) where the code runs eagerly "
                    "(a model called outside fit/predict, or compile(run_eagerly=True)); "
                    "in compiled code use jax.debug.print (JAX) or tf.print (TensorFlow) "
                    "- Keras 3 has no keras.ops.print",
    # Keras 3's convolution and pooling ops take any rank; Keras 2 had one per rank.
    **{name: "use keras.ops.conv (any rank; strides, data_format and dilation_rate as in "
             "Keras 2, padding 'valid' or 'same')" for name in ("conv1d", "conv2d", "conv3d")},
    **{name: "use keras.ops.conv_transpose (it takes output_padding, not output_shape)"
       for name in ("conv2d_transpose", "conv3d_transpose")},
    **{name: "use keras.ops.separable_conv"
       for name in ("separable_conv1d", "separable_conv2d")},
    "depthwise_conv2d": "use keras.ops.depthwise_conv",
    **{name: "use keras.ops.max_pool or keras.ops.average_pool (for Keras 2's pool_mode); "
             "pass strides: Keras 2's default is 1, keras.ops' is pool_size"
       for name in ("pool2d", "pool3d")},
    "resize_images": "use keras.ops.image.resize (a target size, not factors) or "
                     "keras.layers.UpSampling2D",
    "learning_phase": "Keras 3 has no global learning phase; read the `training` argument "
                      "of your layer's call() (Keras fills it in fit, evaluate and predict)",
    "set_learning_phase": "Keras 3 has no global learning phase; pass training=True/False "
                          "when calling the model",
}


def _not_provided_message(name):
    hint = _NOT_PROVIDED.get(name)
    if hint is None and hasattr(ops, name):
        hint = f"use keras.ops.{name} (check its arguments against Keras 2's)"
    elif hint is None:
        hint = "write it with keras.ops, keras.random or keras.config"
    return f"K.{name} is not provided by kerasformer.backend (Keras 3 has no K.{name}): {hint}"


class _KerasTwoBackend:
    """`K`: Keras 2's backend functions, implemented with `keras.ops`.

    Every function takes Keras 2's arguments and defaults (`K.cumsum(x)` sums along
    axis 0, `K.batch_dot` follows Keras 2's axes rule, `K.switch` aligns a lower-rank
    condition on the leading axes). `dir(K)` lists what is provided; any other name
    raises an AttributeError naming the Keras 3 way.
    """

    def __init__(self, functions):
        self.__dict__.update(functions)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(_not_provided_message(name))

    def __dir__(self):
        return sorted(self.__dict__)

    def __repr__(self):
        backend_name = keras.config.backend()
        return f"<kerasformer.backend.K: Keras 2 backend functions on keras.ops ({backend_name})>"


K = _KerasTwoBackend(_K_FUNCTIONS)

# bert4keras.backend names that kerasformer leaves out, and why.
_MODULE_NOT_PROVIDED = {
    "get_available_gpus": "use keras.distribution.list_devices('gpu')",
    "symbolic": "Keras 3 needs no symbolic decorator; drop it",
    "graph_mode_decorator": "a TensorFlow 1 helper with no Keras 3 counterpart",
    "set_infinity": "kerasformer masks with -inf or finite -1e9 per function; "
                    "infinity() is a constant 1e12",
}


def __getattr__(name):
    if name in _MODULE_NOT_PROVIDED:
        raise AttributeError(
            f"kerasformer.backend.{name} is not provided: {_MODULE_NOT_PROVIDED[name]}"
        )
    raise AttributeError(f"module 'kerasformer.backend' has no attribute {name!r}")
