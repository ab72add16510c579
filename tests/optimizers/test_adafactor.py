"""kerasformer.optimizers.AdaFactor against a NumPy implementation written from
bert4keras' `AdaFactorV2` formulas (docs: /work/shared/research/bert4keras-spec.md §1.7,
training.md §2.5), and its memory property: a factored (a, b) weight keeps a + b numbers.

Every weight of a tiny model (bert4keras layer names) gets the gradient g = C + A·θ, known
in closed form, so the reference can follow several steps: eagerly through
`apply_gradients`, and inside `model.fit` (jit-compiled on JAX and TensorFlow) where the
same gradient comes from a regulariser ∑(C·θ + A/2·θ²) and a zero data loss. The model
has 1-D weights, (a, b) kernels and one 3-D kernel whose two largest dimensions are not
the last two, so the factoring axes are exercised as bert4keras chooses them.
"""
import json

import keras
import numpy as np
import pytest
from keras import ops

from kerasformer.optimizers import AdaFactor, PiecewiseLinear
from tests.optimizers.test_optimizers import LinearQuadratic, excluded, finish

A = 0.5
STEPS = 6
SHAPES = {
    "Embedding-Token/embeddings": (6, 4),
    "Transformer-0-FeedForward/kernel": (4, 3),
    "Transformer-0-FeedForward/bias": (3,),
    "Transformer-0-FeedForward-Norm/gamma": (3,),
    "Transformer-0-FeedForward-Norm/beta": (3,),
    "Transformer-0-Einsum/kernel": (3, 2, 5),
}
_rng = np.random.default_rng(1)
C = {name: _rng.normal(0.0, 1.0, shape) for name, shape in SHAPES.items()}
INIT = {name: _rng.normal(0.0, 0.5, shape) + (1.0 if name.endswith("gamma") else 0.0)
        for name, shape in SHAPES.items()}


# ----------------------------------------------------------------------------- reference


def np_lr(o, schedule, t):
    """Learning rate at step t (0-based): None → relative step, else base × schedule."""
    if o.get("learning_rate", 1e-3) is None:
        lr = min(1.0 / np.sqrt(t + 1), 1e-2)
        return lr if o.get("multiply_by_parameter_scale", True) else 0.05 * lr
    lr = o.get("learning_rate", 1e-3)
    if schedule is None:
        return lr
    points = sorted(schedule.items())
    if points[0][0] != 0:
        points = [(0, 0.0)] + points
    return lr * np.interp(t, [p[0] for p in points], [p[1] for p in points])


def rms(x):
    return np.sqrt(np.mean(np.square(x)))


def factor_axes(shape, min_dim):
    """(axis of the largest dim, axis of the second-largest) or None."""
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda i: shape[i])
    if shape[order[-2]] < min_dim:
        return None
    return order[-1], order[-2]


def reference(o, schedule=None, steps=STEPS):
    params = {k: v.copy() for k, v in INIT.items()}
    min_dim = o.get("min_dim_size_to_factor", 128)
    eps1, eps2 = o.get("epsilon1", 1e-30), o.get("epsilon2", 1e-3)
    b1, clip = o.get("beta1", 0.0), o.get("clipping_threshold", 1.0)
    state = {}
    for name, theta in params.items():
        axes = factor_axes(theta.shape, min_dim)
        if axes is None:
            state[name] = {"v": np.zeros_like(theta), "m": np.zeros_like(theta)}
        else:
            state[name] = {"vr": np.zeros_like(theta.mean(axes[0], keepdims=True)),
                           "vc": np.zeros_like(theta.mean(axes[1], keepdims=True)),
                           "m": np.zeros_like(theta)}
    for t in range(steps):
        lr = np_lr(o, schedule, t)
        b2 = o.get("beta2") if o.get("beta2") is not None else 1.0 - (t + 1.0) ** -0.8
        for name, theta in params.items():
            g, s = C[name] + A * theta, state[name]
            g2 = g * g + eps1
            axes = factor_axes(theta.shape, min_dim)
            if axes is None:
                s["v"] = b2 * s["v"] + (1 - b2) * g2
                v_hat = s["v"]
            else:
                row, col = axes
                s["vr"] = b2 * s["vr"] + (1 - b2) * g2.mean(row, keepdims=True)
                s["vc"] = b2 * s["vc"] + (1 - b2) * g2.mean(col, keepdims=True)
                v_hat = s["vr"] * s["vc"] / s["vr"].mean(col, keepdims=True)
            u = g / np.sqrt(v_hat + eps1)
            if clip is not None:
                u = u / max(1.0, rms(u) / clip)
            if b1 > 0:
                s["m"] = b1 * s["m"] + (1 - b1) * u
                u = s["m"]
            if o.get("multiply_by_parameter_scale", True) and not excluded(
                    name, o.get("exclude_from_parameter_scale")):
                u = u * max(eps2, rms(theta))
            params[name] = finish(name, theta, u, lr, o)
    return params


# ----------------------------------------------------------------------------- keras side


def tiny_model(regularised=False):
    reg = (lambda name: LinearQuadratic(C[name])) if regularised else (lambda name: None)
    inputs = keras.Input((2,), dtype="int32")
    x = keras.layers.Embedding(6, 4, name="Embedding-Token",
                               embeddings_regularizer=reg("Embedding-Token/embeddings"))(inputs)
    x = keras.layers.Dense(3, name="Transformer-0-FeedForward",
                           kernel_regularizer=reg("Transformer-0-FeedForward/kernel"),
                           bias_regularizer=reg("Transformer-0-FeedForward/bias"))(x)
    x = keras.layers.LayerNormalization(name="Transformer-0-FeedForward-Norm",
                                        gamma_regularizer=reg("Transformer-0-FeedForward-Norm/gamma"),
                                        beta_regularizer=reg("Transformer-0-FeedForward-Norm/beta"))(x)
    x = keras.layers.EinsumDense("abc,cde->abde", output_shape=(2, 2, 5), name="Transformer-0-Einsum",
                                 kernel_regularizer=reg("Transformer-0-Einsum/kernel"))(x)
    model = keras.Model(inputs, x)
    for variable in model.trainable_variables:
        variable.assign(INIT[variable.path].astype("float32"))
    return model


def weights(model):
    return {v.path: np.asarray(ops.convert_to_numpy(v)) for v in model.trainable_variables}


def assert_close(actual, expected):
    assert set(actual) == set(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)


SCHEDULE = {2: 1.0, 4: 0.5}
CASES = {
    # every ≥2-D weight factored, β2 = 1 − t^−0.8, no momentum
    "factored": ({"learning_rate": 0.01, "min_dim_size_to_factor": 2}, None),
    # (6, 4) factored; (4, 3) and (3, 2, 5) full; momentum, fixed β2, schedule, exclusions
    "momentum-schedule": ({"learning_rate": 0.05, "beta1": 0.9, "beta2": 0.99,
                           "min_dim_size_to_factor": 4,
                           "exclude_from_parameter_scale": ["Norm", "bias"]}, SCHEDULE),
    # bert4keras' defaults: nothing this small is factored
    "defaults": ({"learning_rate": 0.01}, None),
    "decay-noscale-noclip": ({"learning_rate": 0.002, "min_dim_size_to_factor": 2,
                              "multiply_by_parameter_scale": False, "clipping_threshold": None,
                              "epsilon1": 1e-2, "weight_decay": 0.1,
                              "exclude_from_weight_decay": ["Norm", "bias"]}, None),
    "decay-lamb-clip": ({"learning_rate": 0.02, "beta1": 0.5, "min_dim_size_to_factor": 3,
                         "clipping_threshold": 0.5, "epsilon2": 0.8, "weight_decay": 0.05,
                         "layer_adaptation": True,
                         "exclude_from_layer_adaptation": ["Norm", "bias"]}, SCHEDULE),
    "relative-step": ({"learning_rate": None, "min_dim_size_to_factor": 2}, None),
    "relative-step-noscale": ({"learning_rate": None, "multiply_by_parameter_scale": False,
                               "beta1": 0.8}, None),
}


def make(case):
    options, schedule = CASES[case]
    kwargs = dict(options)
    if schedule is not None:
        kwargs["learning_rate"] = PiecewiseLinear(schedule, learning_rate=options["learning_rate"])
    return AdaFactor(**kwargs), options, schedule


@pytest.mark.backends
@pytest.mark.parametrize("case", list(CASES))
def test_apply_gradients_matches_numpy(case):
    optimizer, options, schedule = make(case)
    model = tiny_model()
    variables = model.trainable_variables
    for _ in range(STEPS):
        grads = [C[v.path] + A * ops.convert_to_numpy(v) for v in variables]
        optimizer.apply_gradients(zip([g.astype("float32") for g in grads], variables))
    assert int(ops.convert_to_numpy(optimizer.iterations)) == STEPS
    assert_close(weights(model), reference(options, schedule))


@pytest.mark.backends
@pytest.mark.parametrize("case", ["factored", "momentum-schedule", "decay-lamb-clip",
                                  "relative-step"])
def test_fit_matches_numpy(case):
    optimizer, options, schedule = make(case)
    model = tiny_model(regularised=True)
    # XLA on JAX and TensorFlow; torch.compile is not what this test is about
    model.compile(optimizer=optimizer, loss=lambda y_true, y_pred: 0.0 * ops.mean(y_pred),
                  jit_compile=keras.backend.backend() != "torch")
    x = np.zeros((STEPS, 2), "int32")
    y = np.zeros((STEPS, 2, 2, 5), "float32")
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    assert int(ops.convert_to_numpy(optimizer.iterations)) == STEPS
    assert_close(weights(model), reference(options, schedule))


def slot_shapes(optimizer, variable):
    index = optimizer._get_variable_index(variable)
    return [tuple(s.shape) for s in (optimizer._vr[index], optimizer._vc[index],
                                     optimizer._v[index], optimizer._m[index]) if s is not None]


def state_elements(optimizer):
    skip = {id(optimizer._iterations), id(optimizer._learning_rate)}
    return sum(int(np.prod(v.shape)) for v in optimizer.variables if id(v) not in skip)


@pytest.mark.backends
def test_factored_weights_keep_only_row_and_column_vectors():
    model = tiny_model()
    variables = {v.path: v for v in model.trainable_variables}
    optimizer = AdaFactor(min_dim_size_to_factor=2)
    optimizer.build(model.trainable_variables)
    assert slot_shapes(optimizer, variables["Embedding-Token/embeddings"]) == [(1, 4), (6, 1)]
    assert slot_shapes(optimizer, variables["Transformer-0-FeedForward/kernel"]) == [(1, 3), (4, 1)]
    # (3, 2, 5): the two largest dims are axes 2 and 0, not the last two
    assert slot_shapes(optimizer, variables["Transformer-0-Einsum/kernel"]) == [(3, 2, 1), (1, 2, 5)]
    assert slot_shapes(optimizer, variables["Transformer-0-FeedForward/bias"]) == [(3,)]
    assert state_elements(optimizer) == (6 + 4) + (4 + 3) + (6 + 10) + 3 * 3

    # the bert4keras threshold: (200, 300) is factored at 128, (100, 300) is not
    inputs = keras.Input((200,))
    big = keras.Model(inputs, keras.layers.Dense(100, name="b")(keras.layers.Dense(300, name="a")(inputs)))
    optimizer = AdaFactor()
    optimizer.build(big.trainable_variables)
    assert state_elements(optimizer) == (200 + 300) + 300 + 100 * 300 + 100
    assert not any(tuple(v.shape) == (200, 300) for v in optimizer.variables)
    momentum = AdaFactor(beta1=0.9)
    momentum.build(big.trainable_variables)
    assert state_elements(momentum) == state_elements(optimizer) + 200 * 300 + 300 + 300 * 100 + 100


@pytest.mark.backends
def test_relative_step_learning_rate():
    optimizer = AdaFactor(learning_rate=None)
    unscaled = AdaFactor(learning_rate=None, multiply_by_parameter_scale=False)
    for iterations, expected in [(0, 0.01), (99, 0.01), (9999, 0.01), (39999, 0.005), (999999, 0.001)]:
        for opt, scale in ((optimizer, 1.0), (unscaled, 0.05)):
            opt.iterations.assign(iterations)
            np.testing.assert_allclose(float(ops.convert_to_numpy(opt.learning_rate)),
                                       expected * scale, rtol=1e-6)
    assert optimizer.get_config()["learning_rate"] is None
    assert np.isclose(float(ops.convert_to_numpy(AdaFactor().learning_rate)), 1e-3)


def test_defaults_follow_bert4keras():
    opt = AdaFactor()
    assert (opt.beta1, opt.beta2, opt.epsilon1, opt.epsilon2) == (0.0, None, 1e-30, 1e-3)
    assert (opt.multiply_by_parameter_scale, opt.clipping_threshold, opt.min_dim_size_to_factor) == (
        True, 1.0, 128)
    assert (opt.weight_decay, opt.layer_adaptation) == (None, False)


@pytest.mark.parametrize("case", list(CASES))
def test_config_round_trip(case):
    optimizer, options, schedule = make(case)
    restored = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert type(restored) is AdaFactor
    assert restored.get_config() == optimizer.get_config()
    if schedule is not None:
        assert isinstance(restored._learning_rate, PiecewiseLinear)
    if options["learning_rate"] is None:
        assert restored.get_config()["learning_rate"] is None
        np.testing.assert_allclose(float(ops.convert_to_numpy(restored.learning_rate)),
                                   float(ops.convert_to_numpy(optimizer.learning_rate)))


def test_model_with_adafactor_saves_and_loads(tmp_path):
    optimizer, *_ = make("momentum-schedule")
    model = tiny_model()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.zeros((2, 2), "int32"), np.ones((2, 2, 2, 5), "float32"), batch_size=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, compile=True)
    assert type(restored.optimizer) is AdaFactor
    assert restored.optimizer.get_config() == optimizer.get_config()
    assert int(ops.convert_to_numpy(restored.optimizer.iterations)) == 2
    assert len(restored.optimizer.variables) == len(optimizer.variables)
    for a, b in zip(restored.optimizer.variables, optimizer.variables):
        assert a.shape == b.shape
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
