"""von Mises–Fisher sampling: UniVAE's reparameterisation (kexue.fm/archives/8404, /8475).

The vMF distribution on the unit sphere of R^d has density ∝ exp(κ·μᵀz). A sample is
`z = w·μ + sqrt(1 − w²)·ν` (Ulrich 1984; Wood 1994), where `w = μᵀz` has density
∝ exp(κw)·(1 − w²)^((d−3)/2) on [−1, 1], and ν, independent of w, is uniform on the
unit sphere of the tangent space of μ.

bojone's UniVAE draws w from a table of 10⁷ numerically inverted CDF samples built
once per (κ, d): a discretised approximation. Here w comes from Wood's rejection
sampler, exact in distribution, drawn on the fly with `keras.ops.while_loop` (under
jit on JAX, TensorFlow and PyTorch alike).
"""
import math
import numbers

import keras
from keras import ops
from keras.src.backend import random_seed_dtype


class _TensorSeed(keras.random.SeedGenerator):
    """A seed stream whose state is a tensor (a loop variable), not a Keras variable.

    keras.random takes a seed tensor on JAX only; every backend takes a
    `SeedGenerator` and draws through its `next()`. A real generator would assign its
    state variable inside the loop body: a leaked tracer under JAX. This one holds
    its state as a plain tensor, which the loop carries.
    """

    def __init__(self, state):  # no variable: the parent's __init__ is not called
        self.name = "vmf_seed_stream"
        self._initial_seed = None
        self.state_tensor = state

    def next(self, ordered=True):
        seed = self.state_tensor
        step = ops.convert_to_tensor([0, 1], dtype=keras.backend.standardize_dtype(seed.dtype))
        self.state_tensor = ops.add(seed, step)
        return seed


def _check(kappa, dim):
    if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) or not (
        0 < kappa < math.inf
    ):
        raise ValueError(f"kappa must be a positive float, got {kappa!r}")
    if dim is None or dim < 2:
        raise ValueError(f"vMF sampling needs a known last dimension d >= 2, got {dim}")


def _wood_constants(kappa, dim):
    """Wood's envelope constants for (κ, d), in Python floats (float64).

    `b = (d−1) / (2κ + sqrt(4κ² + (d−1)²))`: Wood's
    `(−2κ + sqrt(4κ² + (d−1)²)) / (d−1)` with the cancellation removed (the two forms
    are equal; the textbook one loses every digit for κ ≫ d).

    Returns:
        (b, 2κb/(1+b), log((1+b)/2)).
    """
    m = dim - 1.0
    b = m / (2.0 * kappa + math.sqrt(4.0 * kappa * kappa + m * m))
    return b, 2.0 * kappa * b / (1.0 + b), math.log((1.0 + b) / 2.0)


def _wood_proposal(x, y, kappa, dim):
    """`(1 − w, log acceptance ratio)` of Wood's proposal `w = (1 − (1+b)z) / (1 − (1−b)z)`
    for `z = x / (x + y)` ~ Beta((d−1)/2, (d−1)/2) (x, y: independent χ²_{d−1}).

    With `x0 = (1−b)/(1+b)`, `c = κ·x0 + (d−1)·log(1 − x0²)`, Wood accepts w when
    `κw + (d−1)·log(1 − x0·w) − c ≥ log u`. With `D = 1 − (1−b)z = (y + bx)/(x + y)`
    the same quantities are, exactly: `1 − w = 2bz/D`, `w − x0 = 2b(1 − 2z)/((1+b)D)`,
    `1 − x0·w = 2b/((1+b)D)`, `1 − x0² = 4b/(1+b)²`, so the left-hand side is
    `2κb/(1+b)·(1 − 2z)/D + (d−1)·(log((1+b)/2) − log D)`, here written in x and y. No
    difference of nearly equal numbers remains (the textbook form subtracts
    `κ·x0` from `κ·w`, both near κ when κ is large, and `1 − (1−b)z` cancels for z
    near 1 and small b), and `1 − w` keeps its relative precision for
    `sqrt(1 − w²)` (from a float32 w it would lose its digits as κ grows, all of them
    near κ = 10⁸ for d = 16).
    """
    b, scale, log_half = _wood_constants(kappa, dim)
    denominator = y + b * x  # D·(x + y)
    one_minus_w = 2.0 * b * x / denominator
    log_ratio = scale * (y - x) / denominator + (dim - 1.0) * (
        log_half - ops.log(denominator) + ops.log(x + y)
    )
    return one_minus_w, log_ratio


def _chi2_pair(shape, degrees, seed):
    """Two independent χ²_k draws of `shape` (sums of k squared standard normals):
    `x / (x + y)` is Beta(k/2, k/2) exactly (χ²_k is 2·Gamma(k/2)), and neither z nor
    1 − z is formed by a subtraction."""
    normal = keras.random.normal(tuple(shape) + (2, degrees), dtype="float32", seed=seed)
    chi2 = ops.sum(ops.square(normal), axis=-1)
    return chi2[..., 0], chi2[..., 1]


def _wood_loop(kappa, dim):
    """`(condition, body)` of the rejection loop for (κ, d), over
    `(1 − w, accepted, seed state)`: every element draws a proposal and a uniform each
    round, and the pending ones keep their proposal if it is accepted."""

    def pending(one_minus_w, done, state):
        return ops.logical_not(ops.all(done))

    def round_(one_minus_w, done, state):
        shape = ops.shape(one_minus_w)
        draws = _TensorSeed(state)
        x, y = _chi2_pair(shape, dim - 1, draws)
        u = keras.random.uniform(shape, dtype="float32", seed=draws)
        proposal, log_ratio = _wood_proposal(x, y, kappa, dim)
        accept = ops.greater_equal(log_ratio, ops.log(u))  # a NaN proposal is refused
        fresh = ops.logical_and(accept, ops.logical_not(done))
        return (ops.where(fresh, proposal, one_minus_w), ops.logical_or(done, accept),
                draws.state_tensor)

    return pending, round_


def sample_vmf(mu, kappa, seed=None):
    """Samples von Mises–Fisher vectors with mean directions `mu` and concentration κ.

    `z = w·μ + sqrt(1 − w²)·ν`: w by Wood (1994)'s rejection sampler (proposals
    from Beta((d−1)/2, (d−1)/2), drawn as a ratio of χ² variables), ν the normalised
    projection of a standard normal vector on the tangent space of μ.

    Exact in distribution: rejection sampling returns a draw from exactly the target
    density whatever the envelope, and every element redraws (a fresh Beta proposal
    and uniform) until accepted, in a `keras.ops.while_loop` with no cap on the
    rounds, so no element is truncated or filled in. An isotropic normal vector
    projected on the (d−1)-dimensional tangent space is isotropic there, so its
    direction is uniform on that sphere, and independent of w. Cost: Wood's
    acceptance rate (computed by quadrature) is 0.78 at UniVAE's κ = 32, d = 16, so
    1.28 expected trials per element; 0.92 at κ = 32, d = 64; → 1 as κ → 0; and no
    lower than 0.66 (d = 2, κ → ∞) over d = 2…768, κ = 0.01…10⁸. Each round redraws
    the whole batch (static shapes), so a batch of n takes about
    log(n)/log(1/(1 − rate)) rounds: about 4 for UniVAE's 128 vectors per layer.

    Numerically stable for large κ: Wood's constants are formed without cancellation
    (see `_wood_proposal`), in float64 at trace time; the rest is float32.

    Args:
        mu: float `(..., d)`, unit vectors (d ≥ 2, static), as UniVAE's L2-normalised
            projections; not renormalised here.
        kappa: positive Python float.
        seed: int, `keras.random.SeedGenerator` or None (Keras' global generator,
            which JAX refuses under jit), drawn from once.

    Returns:
        `(..., d)` unit vectors in `mu`'s dtype (computed in float32). The gradient
        with respect to `mu` flows through μ and ν (the reparameterisation); w does
        not depend on `mu`.
    """
    dim = mu.shape[-1]
    _check(kappa, dim)
    kappa = float(kappa)
    out_dtype = keras.backend.standardize_dtype(mu.dtype)
    mu = ops.cast(mu, "float32")
    shape = tuple(ops.shape(mu)[:-1]) + (1,)

    # One draw from `seed`: the key of the stream that feeds ν and the loop.
    key = keras.random.randint((2,), 0, 2**31 - 1, dtype="int32", seed=seed)
    stream = _TensorSeed(ops.cast(key, random_seed_dtype()))
    epsilon = keras.random.normal(ops.shape(mu), dtype="float32", seed=stream)

    one_minus_w, _, _ = ops.while_loop(
        *_wood_loop(kappa, dim),
        (ops.zeros(shape, "float32"), ops.zeros(shape, "bool"), stream.state_tensor),
    )
    one_minus_w = ops.stop_gradient(one_minus_w)
    w = 1.0 - one_minus_w
    sine = ops.sqrt(ops.maximum(one_minus_w * (2.0 - one_minus_w), 0.0))
    nu = epsilon
    for _ in range(2):  # projected twice: ε nearly along μ leaves float32 residue once
        nu = nu - ops.sum(nu * mu, axis=-1, keepdims=True) * mu
    nu = nu / ops.sqrt(ops.sum(ops.square(nu), axis=-1, keepdims=True))
    return ops.cast(w * mu + sine * nu, out_dtype)


@keras.saving.register_keras_serializable(package="kerasformer")
class VonMisesFisherSampling(keras.layers.Layer):
    """vMF reparameterisation (bert4keras-era `vonMisesFisherSampling` of UniVAE).

    In training, `sample_vmf(mu, kappa)`: a vector on the unit sphere around each
    mean direction. Otherwise (inference, an encoder's μ) the input unchanged.
    bojone's layer samples always, from a precomputed table of w; this one samples
    exactly (see `sample_vmf`) and only when training.

    Args:
        kappa: positive float, the concentration (UniVAE: 32).
        seed: int or None, the seed of the layer's `SeedGenerator`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float `(..., d)`, unit vectors.
        training: bool; sample when True.
    """

    def __init__(self, kappa, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check(kappa, 2)
        self.kappa = float(kappa)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if training:
            return sample_vmf(inputs, self.kappa, seed=self.seed_generator)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"kappa": self.kappa, "seed": self.seed})
        return config
