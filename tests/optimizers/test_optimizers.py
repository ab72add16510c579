"""kerasformer.optimizers against NumPy implementations written from bert4keras' and
Tiger's update formulas (docs: /work/shared/research/bert4keras-spec.md §1.7, training.md §3.1).

Every weight of a tiny model (Embedding + Dense + LayerNormalization, bert4keras layer
names) gets the gradient g = C + A·θ, known in closed form, so the reference can follow
several steps: eagerly through `apply_gradients`, and inside `model.fit` (jit-compiled on
JAX) where the same gradient comes from a regulariser ∑(C·θ + A/2·θ²) and a zero data loss.
"""
import json
import re

import keras
import numpy as np
import pytest
from keras import ops

from kerasformer.optimizers import Adam, Lion, PiecewiseLinear, Tiger, piecewise_linear

A = 0.5
STEPS = 6
SHAPES = {
    "Embedding-Token/embeddings": (6, 4),
    "Transformer-0-FeedForward/kernel": (4, 3),
    "Transformer-0-FeedForward/bias": (3,),
    "Transformer-0-FeedForward-Norm/gamma": (3,),
    "Transformer-0-FeedForward-Norm/beta": (3,),
}
_rng = np.random.default_rng(0)
C = {name: _rng.normal(0.0, 1.0, shape) for name, shape in SHAPES.items()}
INIT = {name: _rng.normal(0.0, 0.5, shape) + (1.0 if name.endswith("gamma") else 0.0)
        for name, shape in SHAPES.items()}


# ----------------------------------------------------------------------------- reference


def np_lr(lr, schedule, t):
    """Learning rate at micro-step t: a float, or (base, {step: multiplier})."""
    if schedule is None:
        return lr
    points = sorted(schedule.items())
    if points[0][0] != 0:
        points = [(0, 0.0)] + points
    return lr * np.interp(t, [p[0] for p in points], [p[1] for p in points])


def excluded(name, patterns):
    return any(re.search(p, name) for p in patterns or [])


def finish(name, theta, direction, lr, o):
    """Δ = −lr·d − lr·λ·θ, then the LAMB ratio ‖θ‖/‖Δ/max(lr, 1e-7)‖."""
    delta = -lr * direction
    if o.get("weight_decay") and not excluded(name, o.get("exclude_from_weight_decay")):
        delta = delta - lr * o["weight_decay"] * theta
    if o.get("layer_adaptation") and not excluded(name, o.get("exclude_from_layer_adaptation")):
        x_norm = np.linalg.norm(theta)
        d_norm = np.linalg.norm(delta / max(lr, 1e-7))
        if x_norm > 0 and d_norm > 0:
            delta = delta * x_norm / d_norm
    return theta + delta


def reference(kind, o, schedule=None, steps=STEPS, grads=None):
    params = {k: v.copy() for k, v in INIT.items()}
    state = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in params.items()}
    for t in range(steps):
        g_all = grads(t, params) if grads else {k: C[k] + A * params[k] for k in params}
        lr = np_lr(o.get("learning_rate"), schedule, t)
        for name, theta in params.items():
            g, (m, v) = g_all[name], state[name]
            if kind == "adam":
                b1, b2 = o.get("beta_1", 0.9), o.get("beta_2", 0.999)
                m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
                state[name] = [m, v]
                mh, vh = m, v
                if o.get("bias_correction", True):
                    mh, vh = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
                params[name] = finish(name, theta, mh / (np.sqrt(vh) + o.get("epsilon", 1e-6)), lr, o)
            elif kind == "lion":
                b1, b2 = o.get("beta_1", 0.95), o.get("beta_2", 0.98)
                params[name] = finish(name, theta, np.sign(b1 * m + (1 - b1) * g), lr, o)
                state[name][0] = b2 * m + (1 - b2) * g
            else:  # tiger
                beta, k = o.get("beta", 0.965), o.get("grad_accum_steps", 1)
                lam, s = o.get("weight_decay", 0.01), o.get("shrink_ratio", 0.99)
                lr_t = lr * (np_lr(1.0, o["lr_schedule"], t) if o.get("lr_schedule") else 1.0)
                lr_t = lr_t if (t + 1) % k == 0 else 0.0
                b1 = beta if t % k == 0 else 1.0
                nan = np.isnan(g).any()
                if nan:
                    b1, g = 1.0, np.zeros_like(g)
                m = b1 * m + (1 - beta) / k * g
                state[name][0] = m
                if name.endswith(("bias", "beta", "gamma")):
                    eta, decay = 0.5 * lr_t, 0.0
                elif "embeddings" in name:
                    eta = lr_t * np.sqrt((theta**2).mean(-1, keepdims=True))
                    decay = lam
                else:
                    eta, decay = lr_t * np.sqrt((theta**2).mean()), lam
                c = 1.0 if name.endswith("gamma") else 0.0
                params[name] = (theta - c) * s + c if nan else theta - eta * (np.sign(m) + decay * theta)
    return params


# ----------------------------------------------------------------------------- keras side


class LinearQuadratic(keras.regularizers.Regularizer):
    """∑(C·θ + A/2·θ²): gradient C + A·θ."""

    def __init__(self, c):
        self.c = np.asarray(c, "float32")

    def __call__(self, x):
        return ops.sum(ops.convert_to_tensor(self.c) * x) + 0.5 * A * ops.sum(x * x)


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
    "adam": (Adam, "adam", {"learning_rate": 0.01}, None),
    "adam-no-bias-correction-eps": (
        Adam, "adam", {"learning_rate": 0.01, "bias_correction": False, "epsilon": 1e-3}, None),
    "adamw": (Adam, "adam", {"learning_rate": 0.02, "weight_decay": 0.1,
                             "exclude_from_weight_decay": ["Norm", "bias"]}, SCHEDULE),
    "lamb": (Adam, "adam", {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.9,
                            "weight_decay": 0.1, "exclude_from_weight_decay": ["Norm", "bias"],
                            "layer_adaptation": True,
                            "exclude_from_layer_adaptation": ["Norm", "bias"]}, SCHEDULE),
    "lamb-all": (Adam, "adam", {"learning_rate": 0.02, "weight_decay": 0.05,
                                "layer_adaptation": True}, None),
    "lion": (Lion, "lion", {"learning_rate": 0.01}, None),
    "lion-decay-lamb": (Lion, "lion", {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.99,
                                       "weight_decay": 0.2, "exclude_from_weight_decay": ["Norm"],
                                       "layer_adaptation": True,
                                       "exclude_from_layer_adaptation": ["bias"]}, SCHEDULE),
    "tiger": (Tiger, "tiger", {"learning_rate": 0.01}, None),
    "tiger-accum-schedule": (Tiger, "tiger", {"learning_rate": 0.02, "beta": 0.9, "weight_decay": 0.1,
                                              "grad_accum_steps": 2, "lr_schedule": {3: 1.0}},
                             SCHEDULE),
}


def make(case):
    cls, kind, options, schedule = CASES[case]
    kwargs = dict(options)
    if schedule is not None:
        kwargs["learning_rate"] = PiecewiseLinear(schedule, learning_rate=options["learning_rate"])
    return cls(**kwargs), kind, options, schedule


@pytest.mark.backends
@pytest.mark.parametrize("case", list(CASES))
def test_apply_gradients_matches_numpy(case):
    optimizer, kind, options, schedule = make(case)
    model = tiny_model()
    variables = model.trainable_variables
    for _ in range(STEPS):
        grads = [C[v.path] + A * ops.convert_to_numpy(v) for v in variables]
        optimizer.apply_gradients(zip([g.astype("float32") for g in grads], variables))
    assert int(ops.convert_to_numpy(optimizer.iterations)) == STEPS
    assert_close(weights(model), reference(kind, options, schedule))


@pytest.mark.backends
@pytest.mark.parametrize("case", ["adam", "lamb", "lion-decay-lamb", "tiger-accum-schedule"])
def test_fit_matches_numpy(case):
    optimizer, kind, options, schedule = make(case)
    model = tiny_model(regularised=True)
    model.compile(optimizer=optimizer, loss=lambda y_true, y_pred: 0.0 * ops.mean(y_pred))
    x = np.zeros((STEPS, 2), "int32")
    y = np.zeros((STEPS, 2, 3), "float32")
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    assert_close(weights(model), reference(kind, options, schedule))


@pytest.mark.backends
@pytest.mark.parametrize("kind", [Adam, Lion])
def test_repeated_embedding_ids_update_with_the_summed_gradient(kind):
    """An embedding looked up with repeated ids (segment ids, padding) gets, on
    TensorFlow, IndexedSlices with one row per lookup: the update must be that of the
    summed gradient, as on the other backends (regression: Adam squared the rows
    before they were summed)."""
    layer = keras.layers.Embedding(3, 2, embeddings_initializer="ones")
    ids = np.array([[0, 0, 1, 0]], "int32")
    model = keras.Sequential([keras.Input((4,), dtype="int32"), layer])
    optimizer = kind(0.1)
    model.compile(optimizer=optimizer, loss=lambda y, p: ops.sum(p * y))
    targets = np.arange(8, dtype="float32").reshape(1, 4, 2)
    model.train_on_batch(ids, targets)
    gradient = np.zeros((3, 2), "float32")
    np.add.at(gradient, ids[0], targets[0])  # the summed gradient of each row
    if kind is Adam:  # first step: m̂ = g, v̂ = g², direction g / (|g| + ε)
        direction = gradient / (np.abs(gradient) + 1e-6)
    else:  # Lion's first step: sign((1 − β1) g)
        direction = np.sign(gradient)
    expected = 1 - 0.1 * direction
    np.testing.assert_allclose(ops.convert_to_numpy(layer.embeddings), expected, atol=1e-5)


def test_keras_weight_decay_is_not_applied_twice():
    optimizer = Adam(0.01, weight_decay=0.1)
    assert optimizer.get_config()["weight_decay"] == 0.1
    model = tiny_model()
    variables = model.trainable_variables
    grads = [np.zeros(v.shape, "float32") for v in variables]
    optimizer.apply_gradients(zip(grads, variables))
    # zero gradient → zero Adam direction; only one decay step θ(1 − lr·λ)
    for v in variables:
        np.testing.assert_allclose(ops.convert_to_numpy(v), INIT[v.path] * (1 - 0.01 * 0.1), rtol=1e-6)


def test_keras_exclude_from_weight_decay_method_is_honoured():
    optimizer = Adam(0.01, weight_decay=0.1, exclude_from_weight_decay=["Norm"])
    model = tiny_model()
    variables = model.trainable_variables
    optimizer.exclude_from_weight_decay(var_names=["kernel"])
    optimizer.apply_gradients(zip([np.zeros(v.shape, "float32") for v in variables], variables))
    for v in variables:
        decayed = not ("Norm" in v.path or "kernel" in v.path)
        np.testing.assert_allclose(ops.convert_to_numpy(v),
                                   INIT[v.path] * (1 - 0.001 * decayed), rtol=1e-6)


@pytest.mark.backends
def test_tiger_nan_gradient_skips_and_shrinks():
    optimizer = Tiger(learning_rate=0.01)
    model = tiny_model()
    variables = model.trainable_variables

    def grads(t, params):
        g = {k: C[k] + A * params[k] for k in params}
        if t == 2:
            g["Transformer-0-FeedForward/kernel"] = g["Transformer-0-FeedForward/kernel"].copy()
            g["Transformer-0-FeedForward/kernel"][0, 1] = np.nan
            g["Transformer-0-FeedForward-Norm/gamma"] = np.full((3,), np.nan)
        return g

    for t in range(4):
        current = {v.path: ops.convert_to_numpy(v).astype(np.float64) for v in variables}
        g = grads(t, current)
        optimizer.apply_gradients(zip([g[v.path].astype("float32") for v in variables], variables))
    assert_close(weights(model), reference("tiger", {"learning_rate": 0.01}, steps=4, grads=grads))


@pytest.mark.backends
def test_piecewise_linear_values():
    schedule = PiecewiseLinear({1000: 1, 2000: 0.1}, learning_rate=2.0)
    steps = [0, 500, 1000, 1500, 2000, 3000]
    got = [float(ops.convert_to_numpy(schedule(step))) for step in steps]
    np.testing.assert_allclose(got, [0.0, 1.0, 2.0, 1.1, 0.2, 0.2], rtol=1e-6, atol=1e-7)
    # with the key 0 the schedule starts from its value, not from 0
    got = ops.convert_to_numpy(piecewise_linear(np.array([0, 5, 10, 20]), {0: 1.0, 10: 0.0}))
    np.testing.assert_allclose(got, [1.0, 0.5, 0.0, 0.0], atol=1e-7)
    # bert4keras' from_zero=False: the first value holds before the first key
    got = ops.convert_to_numpy(piecewise_linear(np.array([0, 5, 15]), {10: 1.0, 20: 3.0}, from_zero=False))
    np.testing.assert_allclose(got, [1.0, 1.0, 2.0], atol=1e-7)


def test_piecewise_linear_config_round_trip():
    schedule = PiecewiseLinear({2000: 0.1, 1000: 1}, learning_rate=1e-3)
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(schedule))))
    assert isinstance(restored, PiecewiseLinear)
    assert restored.schedule == {1000: 1.0, 2000: 0.1} and restored.learning_rate == 1e-3
    assert restored.get_config() == schedule.get_config()


@pytest.mark.parametrize("case", list(CASES))
def test_optimizer_config_round_trip(case):
    optimizer, *_ = make(case)
    restored = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert type(restored) is type(optimizer)
    assert restored.get_config() == optimizer.get_config()
    if CASES[case][3] is not None:
        assert isinstance(restored._learning_rate, PiecewiseLinear)


def test_defaults_follow_bert4keras():
    adam, lion, tiger = Adam(), Lion(), Tiger()
    assert (adam.epsilon, adam.bias_correction, adam.weight_decay) == (1e-6, True, None)
    assert (lion.beta_1, lion.beta_2, lion.weight_decay) == (0.95, 0.98, None)
    assert np.isclose(float(ops.convert_to_numpy(lion.learning_rate)), 3e-4)
    assert (tiger.beta, tiger.weight_decay, tiger.shrink_ratio, tiger.grad_accum_steps) == (0.965, 0.01, 0.99, 1)
    with pytest.raises(ValueError):
        Tiger(gradient_accumulation_steps=2)


@pytest.mark.parametrize("case", ["lamb", "tiger-accum-schedule"])
def test_model_with_optimizer_saves_and_loads(case, tmp_path):
    optimizer, *_ = make(case)
    model = tiny_model()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.zeros((2, 2), "int32"), np.ones((2, 2, 3), "float32"), batch_size=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, compile=True)
    assert type(restored.optimizer) is type(optimizer)
    assert restored.optimizer.get_config() == optimizer.get_config()
    assert int(ops.convert_to_numpy(restored.optimizer.iterations)) == 2
    for a, b in zip(restored.optimizer.variables, optimizer.variables):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
