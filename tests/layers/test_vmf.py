"""von Mises–Fisher sampling: the distribution of w = μᵀz and of the tangent direction
against their analytic forms, seeds, the layer, and a compiled training step."""
import keras
import numpy as np
import pytest
from scipy import stats
from scipy.special import ive

from kerasformer.layers import VonMisesFisherSampling, sample_vmf
from kerasformer.layers.vmf import _wood_proposal
from tests.helpers import run_layer_test, to_numpy

N = 20000
CASES = [(1.0, 3), (10.0, 16), (32.0, 16), (100.0, 64)]
# each proposal costs 2(d − 1) normal draws: fewer samples for d = 64 keep JAX's
# unoptimised test build (XLA_FLAGS in conftest.py) fast; the tolerances follow
SIZES = {64: 5000}


def unit_vectors(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype("float32")


def mean_ratio(kappa, d):
    """A_d(κ) = I_{d/2}(κ) / I_{d/2−1}(κ) = E[μᵀz]."""
    return ive(d / 2, kappa) / ive(d / 2 - 1, kappa)


def w_cdf(kappa, d):
    """The CDF of w: density ∝ exp(κw)·(1 − w²)^((d−3)/2) on [−1, 1], integrated on a
    fine grid (closed form for d = 3)."""
    if d == 3:
        return lambda w: (np.exp(kappa * (w - 1)) - np.exp(-2 * kappa)) / -np.expm1(-2 * kappa)
    grid = np.linspace(-1, 1, 400001)[1:-1]
    log_density = kappa * (grid - 1) + (d - 3) / 2 * np.log1p(-(grid**2))
    density = np.exp(log_density - log_density.max())
    cdf = np.concatenate([[0], np.cumsum((density[1:] + density[:-1]) / 2)])
    return lambda w: np.interp(w, grid, cdf / cdf[-1])


def assert_mean_close(values, expected, sigmas=5):
    error = sigmas * values.std(axis=0, ddof=1) / np.sqrt(len(values))
    assert np.all(np.abs(values.mean(axis=0) - expected) <= error), (
        values.mean(axis=0), expected, error)


@pytest.fixture(scope="module")
def samples():
    """(κ, d) -> (μ, z): N samples around N random directions."""
    return {
        (kappa, d): (mu, to_numpy(sample_vmf(mu, kappa, seed=i)))
        for i, (kappa, d) in enumerate(CASES)
        for mu in [unit_vectors(SIZES.get(d, N), d, seed=i)]
    }


@pytest.mark.parametrize("kappa,d", CASES)
def test_w_has_the_vmf_distribution(samples, kappa, d):
    mu, z = samples[kappa, d]
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1, atol=1e-5)
    w = np.sum(z.astype("float64") * mu, axis=-1)
    assert_mean_close(w, mean_ratio(kappa, d))
    # E[1 − w²] = (d − 1)·A_d(κ)/κ, through the tangent component (accurate in float32)
    tangent = z - w[:, None] * mu
    assert_mean_close(np.sum(tangent**2, axis=-1), (d - 1) * mean_ratio(kappa, d) / kappa)
    # the whole distribution, not only moments
    assert stats.kstest(w, w_cdf(kappa, d)).pvalue > 1e-3


def test_tangent_direction_is_uniform_and_independent_of_w(samples):
    mu, z = samples[CASES[0]]  # d = 3: the tangent direction is an angle
    mu, z = mu.astype("float64"), z.astype("float64")
    w = np.sum(z * mu, axis=-1)
    tangent = z - w[:, None] * mu
    # each μ's tangent plane in an orthonormal basis (e1, e2)
    e1 = np.array([1.0, 0, 0]) - mu[:, :1] * mu
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    e2 = np.cross(mu, e1)
    nu = np.stack([np.sum(tangent * e1, -1), np.sum(tangent * e2, -1)], axis=-1)
    nu /= np.linalg.norm(nu, axis=-1, keepdims=True)
    # mean 0, covariance I/(d − 1), its angle uniform, and unrelated to w
    assert_mean_close(nu, np.zeros(2))
    products = np.stack([nu[:, 0] ** 2, nu[:, 1] ** 2, nu[:, 0] * nu[:, 1]], axis=-1)
    assert_mean_close(products, [0.5, 0.5, 0])
    angle = np.arctan2(nu[:, 1], nu[:, 0])
    assert stats.kstest(angle, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
    for component in nu.T:
        assert abs(stats.pearsonr(w, component)[0]) < 5 / np.sqrt(len(w))


def test_stable_acceptance_ratio_is_woods():
    z = np.linspace(0.001, 0.999, 999)
    x, y = (keras.ops.convert_to_tensor(v.astype("float32")) for v in (z, 1 - z))
    for kappa in (0.5, 32.0, 1e3):
        for d in (3, 16, 64):
            # Wood (1994), in float64 with the textbook constants
            b = (-2 * kappa + np.sqrt(4 * kappa**2 + (d - 1) ** 2)) / (d - 1)
            x0 = (1 - b) / (1 + b)
            c = kappa * x0 + (d - 1) * np.log(1 - x0**2)
            w = (1 - (1 + b) * z) / (1 - (1 - b) * z)
            log_ratio = kappa * w + (d - 1) * np.log(1 - x0 * w) - c
            one_minus_w, actual = to_numpy(_wood_proposal(x, y, kappa, d))
            np.testing.assert_allclose(one_minus_w, 1 - w, rtol=1e-5)
            np.testing.assert_allclose(actual, log_ratio, rtol=1e-4, atol=1e-4)
            assert np.all(actual <= 1e-5)  # Wood's envelope bounds the ratio by 1 (float32)
    # κ = 10⁹, where a float32 w is 1: the ratio is finite and 1 − w resolved
    one_minus_w, log_ratio = to_numpy(_wood_proposal(x, y, 1e9, 16))
    assert np.all(np.isfinite(log_ratio)) and np.all(one_minus_w > 0)


def test_seeds_reproduce(samples):
    mu, z = samples[CASES[0]]
    np.testing.assert_array_equal(to_numpy(sample_vmf(mu, CASES[0][0], seed=0)), z)

    mu = unit_vectors(64, 16)
    layer = VonMisesFisherSampling(10.0, seed=3)
    draw = to_numpy(layer(mu, training=True))
    np.testing.assert_array_equal(
        to_numpy(VonMisesFisherSampling(10.0, seed=3)(mu, training=True)), draw)
    assert not np.allclose(to_numpy(layer(mu, training=True)), draw)  # the stream moves on
    np.testing.assert_array_equal(to_numpy(layer(mu)), mu)  # not training: μ itself
    np.testing.assert_array_equal(to_numpy(layer(mu, training=False)), mu)


def test_layer_config_and_saving(tmp_path):
    mu = unit_vectors(4, 16)
    output = run_layer_test(VonMisesFisherSampling, {"kappa": 32, "seed": 1}, mu,
                            expected_shape=(4, 16), tmp_path=tmp_path)
    np.testing.assert_array_equal(to_numpy(output), mu)
    assert VonMisesFisherSampling(32, seed=1).get_config()["kappa"] == 32.0
    for kappa in (0, -1.0, float("inf"), "32", True):
        with pytest.raises(ValueError, match="kappa"):
            VonMisesFisherSampling(kappa)
    with pytest.raises(ValueError, match="d >= 2"):
        sample_vmf(np.ones((3, 1), "float32"), 1.0, seed=0)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="jax.jit and jax.grad")
def test_jit_and_gradient_on_jax(samples):
    import jax

    kappa, d = CASES[1]
    mu, expected = samples[kappa, d]
    weights = np.random.default_rng(1).normal(size=mu.shape).astype("float32")

    def loss(m):
        z = sample_vmf(m, kappa, seed=1)
        return (z * weights).sum(), z

    # under jit: the same draws as eagerly, and a gradient with respect to μ (the
    # reparameterisation) through the function that holds the while loop
    gradient, z = jax.jit(jax.grad(loss, has_aux=True))(mu)
    np.testing.assert_allclose(to_numpy(z), expected, atol=1e-5)
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).sum() > 0


def test_trains_in_a_compiled_step():
    # fit compiles the step (jit on JAX, tf.function on TensorFlow): the loop runs in
    # it, the gradient reaches the layers before the sampling, and the layer's seed
    # state advances (JAX's trainer writes it back).
    inputs = keras.Input((4,))
    mu = keras.layers.UnitNormalization()(keras.layers.Dense(8, name="encode")(inputs))
    sampling = VonMisesFisherSampling(16.0, seed=0)
    outputs = keras.layers.Dense(1)(sampling(mu))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x[:, :1]
    kernel = to_numpy(model.get_layer("encode").kernel)
    seed_state = to_numpy(sampling.seed_generator.state)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(to_numpy(model.get_layer("encode").kernel), kernel)
    assert not np.array_equal(to_numpy(sampling.seed_generator.state), seed_state)
    # inference is deterministic: the layer passes μ through
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
