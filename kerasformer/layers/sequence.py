"""Masking helpers for `(batch, seq, ...)` tensors and the mask-merging `Concatenate1D`.

`sequence_masking` is bert4keras' way of applying a `(batch, seq)` padding mask to any
axis (or several) of a tensor; the CRF and GlobalPointer layers mark padding with
`-inf` through it, and `kerasformer.backend` re-exports it for training scripts.
"""
import keras
from keras import ops

# Values that may be spelled as strings, as bert4keras' docstrings allow.
_NAMED_VALUES = {"-inf": float("-inf"), "inf": float("inf")}


def align(tensor, axes, ndim=None):
    """Batched `expand_dims`: dimension `i` of `tensor` becomes dimension `axes[i]`.

    Args:
        tensor: a tensor with `len(axes)` dimensions.
        axes: list of int, the target position of each dimension, in increasing
            order; negative positions count from the end of the result.
        ndim: int, rank of the result; defaults to `max(axes) + 1`, which needs
            non-negative axes.

    Returns:
        `tensor` reshaped with size-1 dimensions everywhere else, e.g.
        `align(x, [0, 3], 4)` turns `(b, n)` into `(b, 1, 1, n)`.
    """
    if len(axes) != len(tensor.shape):
        raise ValueError(
            f"align needs one axis per dimension: got axes={axes} for a tensor of "
            f"rank {len(tensor.shape)}"
        )
    if ndim is None:
        if min(axes) < 0:
            raise ValueError(f"align needs ndim when an axis is negative, got axes={axes}")
        ndim = max(axes) + 1
    positions = [axis % ndim for axis in axes]
    if positions != sorted(set(positions)):
        raise ValueError(f"align's axes must be distinct and increasing, got {axes}")
    for position in range(ndim):
        if position not in positions:
            tensor = ops.expand_dims(tensor, position)
    return tensor


def _is_bool(x):
    return keras.backend.standardize_dtype(getattr(x, "dtype", type(x))) == "bool"


def sequence_masking(x, mask=None, value=0.0, axis=None, bias=None, return_mask=False):
    """Replaces the padded positions of `x` by `value` (bert4keras semantics).

    Args:
        x: tensor of rank >= 2, e.g. `(batch, seq, dim)` or `(batch, heads, seq, seq)`.
        mask: `(batch, seq)` mask (bool, or 0/1 numbers); None means no padding.
        value: what masked entries become: a number, `"-inf"` or `"inf"`.
        axis: the axis of `x` that `mask` runs along (default 1), or a list of axes,
            each of which must be unmasked for an entry to be kept (GlobalPointer
            masks both span ends with `[2, 3]`).
        bias: optional extra term broadcastable to `x`: a bool tensor is ANDed into
            the mask; a float tensor is added to the kept entries.
        return_mask: also return the mask that was applied (None when there was none).

    Returns:
        The masked `x`, and the applied bool mask when `return_mask` is set.
    """
    value = _NAMED_VALUES.get(value, value) if isinstance(value, str) else value
    x = ops.convert_to_tensor(x)
    if mask is None and bias is None:
        return (x, None) if return_mask else x
    if mask is None:
        if _is_bool(bias):
            mask = bias
            x = ops.where(mask, x, value)
        else:
            x = x + ops.cast(bias, x.dtype)
        return (x, mask) if return_mask else x
    rank = len(x.shape)
    axes = [1] if axis is None else (list(axis) if isinstance(axis, (list, tuple)) else [axis])
    axes = [a % rank for a in axes]
    if not _is_bool(mask):
        mask = ops.cast(mask, "bool")
    full_mask = None
    for a in axes:
        aligned = align(mask, [0, a], rank)
        full_mask = aligned if full_mask is None else ops.logical_and(full_mask, aligned)
    if bias is None:
        x = ops.where(full_mask, x, value)
    elif _is_bool(bias):
        full_mask = ops.logical_and(full_mask, bias)
        x = ops.where(full_mask, x, value)
    else:
        x = ops.where(full_mask, x + ops.cast(bias, x.dtype), value)
    return (x, full_mask) if return_mask else x


@keras.saving.register_keras_serializable(package="kerasformer")
class Concatenate1D(keras.layers.Layer):
    """Concatenates sequences along the time axis and merges their padding masks.

    `keras.layers.Concatenate(axis=1)` drops or rejects masks when only some inputs
    have one; here an input without a mask counts as all real tokens.

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `(batch, seq_i, dim)` tensors.

    Returns:
        `(batch, sum(seq_i), dim)`, with the concatenated mask when any input has one.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.concatenate(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        masks = [
            ops.ones_like(x[..., 0], dtype="bool") if m is None else ops.cast(m, "bool")
            for x, m in zip(inputs, mask)
        ]
        return ops.concatenate(masks, axis=1)

    def compute_output_shape(self, input_shape):
        lengths = [shape[1] for shape in input_shape]
        length = None if any(n is None for n in lengths) else sum(lengths)
        return (input_shape[0][0], length) + tuple(input_shape[0][2:])
