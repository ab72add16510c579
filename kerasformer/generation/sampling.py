"""Sampling restrictions: small functions that compose, as optax composes transforms.

A `Restriction` turns the candidates of one decoding step — logits over a set of
token ids — into fewer or reshaped candidates: `temperature(t)`, `top_k(k)`,
`top_p(p)`, and whatever a user writes the same way (a repetition penalty, a banned
token list). The decode loop applies them in order and then draws one token by
inverse-CDF sampling. What changes the traced program (which restrictions, `k`) is
the restriction's `static` part and goes into the compile key; what does not (`t`,
`p`) is its `value`, an input of the compiled loop, so changing it never recompiles.
"""
import dataclasses
from typing import Callable

from keras import ops

from kerasformer.checks import check_integer

# Logit of a removed candidate: far below any real logit, yet finite.
REMOVED = -1e30


@dataclasses.dataclass(frozen=True)
class Candidates:
    """The tokens still in play at one step.

    Attributes:
        logits: float32 `(rows, n)`.
        ids: int32 `(rows, n)` token ids of the columns, or None when column i is
            token i (the whole vocabulary).
        sorted: whether the columns are in descending order of logit.
    """

    logits: object
    ids: object = None
    sorted: bool = False


@dataclasses.dataclass(frozen=True)
class Restriction:
    """One transform of `Candidates`.

    Attributes:
        name: what it is, part of the compile key.
        static: hashable parameters fixed at trace time (part of the compile key).
        value: float parameter fed to the compiled loop at each call.
        apply: `(candidates, value) -> candidates`, traceable; `value` is a scalar
            tensor.
    """

    name: str
    static: tuple
    value: float
    apply: Callable

    @property
    def key(self):
        return (self.name, self.static)


def temperature(t):
    """Divides the logits by `t` (> 0)."""
    if not t > 0:
        raise ValueError(f"temperature must be positive, got {t!r}")

    def apply(candidates, value):
        return dataclasses.replace(candidates, logits=candidates.logits / value)

    return Restriction("temperature", (), float(t), apply)


def top_k(k):
    """Keeps the `k` most probable tokens."""
    k = check_integer(k, "topk")

    def apply(candidates, value):
        logits, columns = ops.top_k(candidates.logits, k)  # sorted, descending
        columns = ops.cast(columns, "int32")
        ids = columns if candidates.ids is None else ops.take_along_axis(candidates.ids, columns, axis=-1)
        return Candidates(logits, ids, sorted=True)

    return Restriction("top_k", (k,), 0.0, apply)


def top_p(p):
    """Keeps, in order of probability, the tokens up to and including the first at
    which the cumulative probability reaches `p` (bert4keras' nucleus rule)."""
    if not 0 < p <= 1:
        raise ValueError(f"topp must be in (0, 1], got {p!r}")

    def apply(candidates, value):
        probabilities = _softmax(candidates.logits)
        if candidates.sorted:
            before = ops.cumsum(probabilities, axis=-1) - probabilities
            keep = before < value
        else:
            # No sort of the vocabulary (slow under XLA on CPU): the same set is every
            # token at least as probable as the nucleus threshold.
            keep = probabilities >= nucleus_threshold(probabilities, value)[:, None]
        logits = ops.where(keep, candidates.logits, REMOVED)
        return dataclasses.replace(candidates, logits=logits)

    return Restriction("top_p", (), float(p), apply)


def restrict(logits, restrictions, values):
    """Applies `restrictions` in order to full-vocabulary `logits` (rows, vocab);
    `values` holds their runtime values in the same order."""
    candidates = Candidates(ops.cast(logits, "float32"))
    for index, restriction in enumerate(restrictions):
        candidates = restriction.apply(candidates, values[index])
    return candidates


def draw(candidates, uniforms):
    """One token id per row, by inverse-CDF sampling with uniforms in [0, 1)."""
    probabilities = _softmax(candidates.logits)
    cumulative = ops.cumsum(probabilities, axis=-1)
    threshold = uniforms * cumulative[:, -1]
    choice = ops.sum(ops.cast(cumulative <= threshold[:, None], "int32"), axis=-1)
    choice = ops.minimum(choice, ops.shape(cumulative)[-1] - 1)
    if candidates.ids is None:
        return ops.cast(choice, "int32")
    return ops.cast(ops.take_along_axis(candidates.ids, choice[:, None], axis=-1)[:, 0], "int32")


def nucleus_threshold(probabilities, topp):
    """Per row, the largest t with `sum(p[p >= t]) >= topp`: the smallest probability
    that top-p sampling keeps.

    Found exactly by bisection over float32 bit patterns, which order non-negative
    floats like their values: 31 masked sums instead of a sort.
    """
    probabilities = ops.cast(probabilities, "float32")  # the bisection runs on its bits
    rows = ops.shape(probabilities)[0]
    target = ops.minimum(topp, ops.sum(probabilities, axis=-1))  # topp=1 keeps all
    low = ops.zeros((rows,), "int32")  # the bits of 0.0, which keeps every token
    high = ops.full((rows,), 0x3F800001, "int32")  # just above 1.0, which keeps none

    def halve(_, bounds):
        low, high = bounds
        middle = low + (high - low) // 2
        threshold = ops.view(middle, "float32")[:, None]
        mass = ops.sum(ops.where(probabilities >= threshold, probabilities, 0.0), axis=-1)
        enough = mass >= target
        return ops.where(enough, middle, low), ops.where(enough, high, middle)

    low, _ = ops.fori_loop(0, 31, halve, (low, high))
    return ops.view(low, "float32")


def _softmax(logits):
    # Written out: with top_k(1) the axis has one entry, which keras.ops.softmax
    # warns about although it is exactly what is meant.
    exponentials = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
    return exponentials / ops.sum(exponentials, axis=-1, keepdims=True)
