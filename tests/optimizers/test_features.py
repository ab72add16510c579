"""The generic options of kerasformer.optimizers (lr multipliers, lazy rows, EMA,
Lookahead, Keras' gradient accumulation done once per update) against a NumPy reference
written from the formulas (bert4keras' `extend_with_*` semantics, training.md §2.2–3.3).

A "probe" model holds weights with bert4keras paths; sample j of the data gives weight θ
the gradient D_j + A·θ (D_j known per sample, A per weight), so the reference can follow
micro-batches whose gradients differ, embedding rows that get no gradient, and the
big-batch mean that gradient accumulation must reproduce.
"""
import json

import keras
import numpy as np
import pytest
from keras import ops

from kerasformer.optimizers import Adam, Lion, PiecewiseLinear, Tiger
from tests.optimizers.test_optimizers import excluded, np_lr

SHAPES = {
    "Embedding-Token/embeddings": (6, 4),
    "Transformer-0-FeedForward/kernel": (4, 3),
    "Transformer-0-FeedForward/bias": (3,),
    "Transformer-0-FeedForward-Norm/gamma": (3,),
    "Transformer-0-FeedForward-Norm/beta": (3,),
}
# the embeddings and the bias get no A·θ term, so their zero gradients stay zero
A = {"Transformer-0-FeedForward/kernel": 0.5, "Transformer-0-FeedForward-Norm/gamma": 0.3,
     "Transformer-0-FeedForward-Norm/beta": 0.2}
SAMPLES = 12
_rng = np.random.default_rng(1)
INIT = {name: (_rng.normal(0.0, 0.5, shape) + (1.0 if name.endswith("gamma") else 0.0))
        .astype("float32") for name, shape in SHAPES.items()}
DATA = {name: _rng.normal(0.0, 1.0, (SAMPLES,) + shape).astype("float32")
        for name, shape in SHAPES.items()}
# sample j touches embedding row j % 3 only (rows 3–5 never); odd samples leave the bias alone
DATA["Embedding-Token/embeddings"] *= (np.arange(6)[None, :, None] == np.arange(SAMPLES)[:, None, None] % 3)
DATA["Transformer-0-FeedForward/bias"][1::2] = 0.0


def np_grads(t, params):
    return {k: DATA[k][t].astype(np.float64) + A.get(k, 0.0) * params[k] for k in params}


# ----------------------------------------------------------------------------- reference


def multiplier(name, o):
    factor = 1.0
    for pattern, value in (o.get("lr_multipliers") or {}).items():
        if excluded(name, [pattern]):
            factor *= value
    return factor


def lazy(name, o, default_embeddings):
    return excluded(name, o.get("lazy_variables")) or (
        o.get("lazy_embeddings", default_embeddings) and "embeddings" in name)


def row_hit(g):
    return np.any(g != 0, axis=-1, keepdims=True)


def decoupled_delta(name, theta, direction, lr, o):
    delta = -lr * direction
    if o.get("weight_decay") and not excluded(name, o.get("exclude_from_weight_decay")):
        delta = delta - lr * o["weight_decay"] * theta
    if o.get("layer_adaptation") and not excluded(name, o.get("exclude_from_layer_adaptation")):
        x_norm, d_norm = np.linalg.norm(theta), np.linalg.norm(delta / max(lr, 1e-7))
        if x_norm > 0 and d_norm > 0:
            delta = delta * x_norm / d_norm
    return delta


def clip(g, o):
    if o.get("clipnorm"):
        return g * o["clipnorm"] / max(np.linalg.norm(g), o["clipnorm"])
    return g


def reference(kind, o, schedule=None, steps=SAMPLES, grads=np_grads):
    """Weights, raw EMA and number of real updates after `steps` micro-steps."""
    accum = o.get("gradient_accumulation_steps") or 1           # Keras' (mean) accumulation
    tiger_k = o.get("grad_accum_steps", 1) if kind == "tiger" else 1
    params = {k: v.astype(np.float64) for k, v in INIT.items()}
    slots = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in params.items()}
    acc = {k: np.zeros_like(v) for k, v in params.items()}
    touched = {}
    ema = {k: np.zeros_like(v) for k, v in params.items()}
    slow, n = None, 0
    for t in range(steps):
        g_all = grads(t, params)
        if accum > 1:
            for k in acc:
                acc[k] = acc[k] + g_all[k]
            if (t + 1) % accum:
                continue
            g_all, acc = {k: acc[k] / accum for k in acc}, {k: np.zeros_like(v) for k, v in acc.items()}
        lr = np_lr(o["learning_rate"], schedule, t)
        if o.get("lookahead_steps") and slow is None:
            slow = {k: v.copy() for k, v in params.items()}
        for name, theta in params.items():
            g, (m, v) = clip(g_all[name], o), slots[name]
            mask = row_hit(g)
            if kind == "adam":
                b1, b2 = o.get("beta_1", 0.9), o.get("beta_2", 0.999)
                m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
                slots[name] = [m, v]
                mh, vh = m / (1 - b1 ** (n + 1)), v / (1 - b2 ** (n + 1))
                delta = decoupled_delta(name, theta, mh / (np.sqrt(vh) + 1e-6), lr, o)
            elif kind == "lion":
                b1, b2 = o.get("beta_1", 0.95), o.get("beta_2", 0.98)
                delta = decoupled_delta(name, theta, np.sign(b1 * m + (1 - b1) * g), lr, o)
                slots[name][0] = b2 * m + (1 - b2) * g
            else:  # tiger, micro-step t
                beta, lam = o.get("beta", 0.965), o.get("weight_decay", 0.01)
                lr_t = lr if (t + 1) % tiger_k == 0 else 0.0
                m = (beta if t % tiger_k == 0 else 1.0) * m + (1 - beta) / tiger_k * g
                slots[name][0] = m
                if name.endswith(("bias", "beta", "gamma")):
                    eta, decay = 0.5 * lr_t, 0.0
                elif "embeddings" in name:
                    eta, decay = lr_t * np.sqrt((theta ** 2).mean(-1, keepdims=True)), lam
                else:
                    eta, decay = lr_t * np.sqrt((theta ** 2).mean()), lam
                delta = -eta * (np.sign(m) + decay * theta)
                if tiger_k > 1:
                    mask = mask if t % tiger_k == 0 else (mask | touched[name])
                    touched[name] = mask
            delta = delta * multiplier(name, o)
            if lazy(name, o, default_embeddings=kind in ("lion", "tiger")):
                delta = np.where(mask, delta, 0.0)
            params[name] = theta + delta
        if (t + 1) % tiger_k:
            continue  # Tiger's non-update micro-step: no EMA, no Lookahead
        if o.get("lookahead_steps") and (n + 1) % o["lookahead_steps"] == 0:
            alpha = o.get("lookahead_alpha", 0.5)
            slow = {k: slow[k] + alpha * (params[k] - slow[k]) for k in params}
            params = {k: v.copy() for k, v in slow.items()}
        if o.get("ema_momentum"):
            mu = o["ema_momentum"]
            ema = {k: mu * ema[k] + (1 - mu) * params[k] for k in params}
        n += 1
    return params, ema, n


# ----------------------------------------------------------------------------- keras side


class Probe(keras.layers.Layer):
    """Weights named like bert4keras'; per sample j the loss term ⟨D_j, θ⟩ + A/2·‖θ‖²."""

    def __init__(self, weight_names, **kwargs):
        super().__init__(**kwargs)
        self.weight_names = weight_names
        self.probes = []
        for weight in weight_names:
            path = f"{self.name}/{weight}"
            variable = self.add_weight(shape=SHAPES[path], name=weight, initializer="zeros")
            self.probes.append((variable, path))

    def call(self, index):
        total = 0.0
        for variable, path in self.probes:
            coefficients = ops.take(ops.convert_to_tensor(DATA[path]), index[:, 0], axis=0)
            axes = tuple(range(1, len(coefficients.shape)))
            total = total + ops.sum(coefficients * variable, axis=axes)
            total = total + 0.5 * A.get(path, 0.0) * ops.sum(variable * variable)
        return total

    def get_config(self):
        return {**super().get_config(), "weight_names": self.weight_names}


class Row(keras.layers.Layer):
    """The embedding row sample j looks up: j % 3."""

    def call(self, index):
        return index % 3


class RowProbe(keras.layers.Layer):
    """⟨D_j[j % 3], looked-up row⟩: through a real `Embedding` (sparse gradients,
    IndexedSlices on TensorFlow), the table gets the gradient D_j."""

    def call(self, inputs):
        index, vectors = inputs
        rows = DATA["Embedding-Token/embeddings"][np.arange(SAMPLES), np.arange(SAMPLES) % 3]
        coefficients = ops.take(ops.convert_to_tensor(rows), index[:, 0], axis=0)
        return ops.sum(coefficients * vectors[:, 0, :], axis=-1)


CUSTOM_OBJECTS = {"Probe": Probe, "Row": Row, "RowProbe": RowProbe}


def probe_model():
    index = keras.Input((1,), dtype="int32")
    vectors = keras.layers.Embedding(6, 4, name="Embedding-Token")(Row()(index))
    outputs = [RowProbe()([index, vectors]),
               Probe(["kernel", "bias"], name="Transformer-0-FeedForward")(index),
               Probe(["gamma", "beta"], name="Transformer-0-FeedForward-Norm")(index)]
    model = keras.Model(index, keras.layers.Add()(outputs))
    for variable in model.trainable_variables:
        variable.assign(INIT[variable.path])
    return model


def weights(model):
    return {v.path: np.asarray(ops.convert_to_numpy(v)) for v in model.trainable_variables}


def assert_close(actual, expected, atol=1e-5):
    assert set(actual) == set(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=atol, err_msg=name)


def ema_slots(optimizer, model):
    return {v.path: np.asarray(ops.convert_to_numpy(e))
            for v, e in zip(optimizer._trainable_variables, optimizer._ema_weights)}


SCHEDULE = {3: 1.0, 9: 0.5}
MULTIPLIERS = {"Transformer": 2.0, "Norm": 0.5, "bias$": 3.0}
CASES = {
    "adam-multipliers": (Adam, "adam", {"learning_rate": 0.01, "lr_multipliers": MULTIPLIERS}, None),
    "adam-lazy-decay": (Adam, "adam", {"learning_rate": 0.01, "weight_decay": 0.1,
                                       "lazy_variables": ["Embedding", "bias"]}, None),
    "lion-lazy-default": (Lion, "lion", {"learning_rate": 0.01, "weight_decay": 0.1}, None),
    "adam-ema": (Adam, "adam", {"learning_rate": 0.01, "ema_momentum": 0.9}, None),
    "adam-lookahead": (Adam, "adam", {"learning_rate": 0.05, "lookahead_steps": 3,
                                      "lookahead_alpha": 0.4}, None),
    "adam-accum3-clip": (Adam, "adam", {"learning_rate": 0.02, "gradient_accumulation_steps": 3,
                                        "clipnorm": 1.0, "weight_decay": 0.1}, SCHEDULE),
    "lamb-everything": (Adam, "adam", {
        "learning_rate": 0.02, "weight_decay": 0.05, "exclude_from_weight_decay": ["Norm", "bias"],
        "layer_adaptation": True, "exclude_from_layer_adaptation": ["Norm", "bias"],
        "lr_multipliers": MULTIPLIERS, "lazy_variables": ["Embedding"], "ema_momentum": 0.8,
        "lookahead_steps": 2, "gradient_accumulation_steps": 2, "clipnorm": 1.0}, SCHEDULE),
    "lion-everything": (Lion, "lion", {
        "learning_rate": 0.01, "weight_decay": 0.1, "lr_multipliers": {"kernel": 0.5},
        "ema_momentum": 0.7, "lookahead_steps": 2, "lookahead_alpha": 0.6,
        "gradient_accumulation_steps": 3}, None),
    "tiger-accum-everything": (Tiger, "tiger", {
        "learning_rate": 0.02, "beta": 0.9, "weight_decay": 0.1, "grad_accum_steps": 2,
        "lr_multipliers": {"Norm": 2.0}, "ema_momentum": 0.8, "lookahead_steps": 2}, SCHEDULE),
}


def make(case):
    cls, kind, options, schedule = CASES[case]
    kwargs = dict(options)
    if schedule is not None:
        kwargs["learning_rate"] = PiecewiseLinear(schedule, learning_rate=options["learning_rate"])
    return cls(**kwargs), kind, options, schedule


def check(optimizer, model, kind, options, schedule, steps=SAMPLES):
    expected, ema, updates = reference(kind, options, schedule, steps=steps,
                                       grads=lambda t, params: np_grads(t % SAMPLES, params))
    assert_close(weights(model), expected)
    period = options.get("gradient_accumulation_steps") or options.get("grad_accum_steps") or 1
    assert updates == steps // period
    if options.get("ema_momentum"):
        assert_close(ema_slots(optimizer, model), ema)
    return ema, updates


@pytest.mark.backends
@pytest.mark.parametrize("case", list(CASES))
def test_apply_gradients_matches_numpy(case):
    optimizer, kind, options, schedule = make(case)
    model = probe_model()
    train_eagerly(model, optimizer)
    check(optimizer, model, kind, options, schedule)


@keras.saving.register_keras_serializable(package="kerasformer_tests")
def mean_output(y_true, y_pred):
    return ops.mean(y_pred)


def fit(model, optimizer, steps=SAMPLES, epochs=1, callbacks=()):
    """`model.fit`, one sample per micro-batch (jit-compiled on JAX)."""
    model.compile(optimizer=optimizer, loss=mean_output)
    x = np.arange(steps, dtype="int32")[:, None]
    model.fit(x, np.zeros((steps,), "float32"), batch_size=1, epochs=epochs, shuffle=False,
              verbose=0, callbacks=list(callbacks))


def train_eagerly(model, optimizer, steps=SAMPLES):
    """`optimizer.apply_gradients` with the reference's gradients, step by step."""
    variables = model.trainable_variables
    for t in range(steps):
        current = {v.path: ops.convert_to_numpy(v).astype(np.float64) for v in variables}
        g = np_grads(t, current)
        optimizer.apply_gradients([(g[v.path].astype("float32"), v) for v in variables])


@pytest.mark.backends
@pytest.mark.parametrize("case", ["lamb-everything", "lion-everything", "tiger-accum-everything"])
def test_fit_matches_numpy(case):
    """`fit` (jit-compiled on JAX), one sample per micro-batch: with accumulation the
    reference updates with the mean of the k samples' gradients, the big-batch mean.
    Two epochs, with bert4keras' evaluator pattern at each epoch's end: EMA weights in,
    (evaluate,) old weights back; training goes on from the trained weights."""
    optimizer, kind, options, schedule = make(case)
    model = probe_model()
    seen = []

    class Evaluator(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            optimizer.apply_ema_weights()
            seen.append(weights(model))
            optimizer.reset_old_weights()

    fit(model, optimizer, epochs=2, callbacks=[Evaluator()] if options.get("ema_momentum") else [])
    ema, updates = check(optimizer, model, kind, options, schedule, steps=2 * SAMPLES)
    assert int(ops.convert_to_numpy(optimizer._iterations)) == 2 * SAMPLES  # micro-steps
    if options.get("ema_momentum"):
        mu = options["ema_momentum"]
        assert_close(seen[-1], {k: v / (1 - mu ** updates) for k, v in ema.items()})
        # `fit` ends with `finalize_variable_values`: it leaves the trained weights alone
        assert not np.allclose(weights(model)["Transformer-0-FeedForward/kernel"],
                               seen[-1]["Transformer-0-FeedForward/kernel"])


def test_jax_accumulation_runs_the_update_only_in_the_conditional():
    """On JAX the optimizer math sits inside `cond`, not at the top level of the step
    (Keras' own implementation computes it on every micro-step)."""
    if keras.backend.backend() != "jax":
        pytest.skip("inspects a jaxpr")
    import jax

    def primitives(jaxpr):
        """Primitive names at the top level, and anywhere inside `cond` branches."""
        top, in_cond = set(), set()

        def subjaxprs(params):
            for value in params.values():
                for item in value if isinstance(value, (tuple, list)) else [value]:
                    item = getattr(item, "jaxpr", item)  # ClosedJaxpr → Jaxpr
                    if hasattr(item, "eqns"):
                        yield item

        def walk(inner, found):
            for eqn in inner.eqns:
                found.add(eqn.primitive.name)
                for sub in subjaxprs(eqn.params):
                    walk(sub, in_cond if eqn.primitive.name == "cond" else found)

        walk(jaxpr, top)
        return top, in_cond

    def traced(optimizer):
        model = probe_model()
        optimizer.build(model.trainable_variables)
        grads = [ops.ones(v.shape) for v in model.trainable_variables]

        def step(opt_vars, train_vars):
            return optimizer.stateless_apply(opt_vars, grads, train_vars)

        return jax.make_jaxpr(step)([v.value for v in optimizer.variables],
                                    [v.value for v in model.trainable_variables]).jaxpr

    jaxpr = traced(Adam(0.01, gradient_accumulation_steps=3, ema_momentum=0.9))
    top, in_cond = primitives(jaxpr)
    assert "cond" in top and "sqrt" not in top and "sqrt" in in_cond, jaxpr
    top, _ = primitives(traced(keras.optimizers.Adam(0.01, gradient_accumulation_steps=3)))
    assert "sqrt" in top  # the check tells Keras' own implementation apart


def test_accumulation_leaves_slots_alone_between_updates():
    optimizer = Adam(0.01, gradient_accumulation_steps=3, ema_momentum=0.9, lookahead_steps=2)
    model = probe_model()
    variables = model.trainable_variables
    for t in range(2):
        g = np_grads(t, {v.path: ops.convert_to_numpy(v).astype(np.float64) for v in variables})
        optimizer.apply_gradients([(g[v.path].astype("float32"), v) for v in variables])
        slots = [ops.convert_to_numpy(v) for v in optimizer.variables if "accumulator" not in v.path
                 and "iteration" not in v.path]
        assert all(not np.any(s) for s in slots if s.ndim)  # m, v, ema, slow: still zero
    assert_close(weights(model), INIT)


# ----------------------------------------------------------------------------- the embedding drift


def drift(optimizer, steps):
    """One gradient on embedding row 0, then `steps` steps without any for it."""
    model = keras.Sequential([keras.Input((1,), dtype="int32"),
                              keras.layers.Embedding(3, 4, name="Embedding-Token")])
    table = model.trainable_variables[0]
    table.assign(np.full((3, 4), 0.1, "float32"))
    trajectory = []
    for t in range(steps + 1):
        g = np.zeros((3, 4), "float32")
        if t == 0:
            g[0] = [1.0, -1.0, 1.0, -1.0]
        g[1] = 0.5  # another row keeps being used
        optimizer.apply_gradients([(g, table)])
        trajectory.append(np.array(ops.convert_to_numpy(table)[0]))
    return np.array(trajectory)


@pytest.mark.backends
def test_sign_optimisers_drift_of_unused_embedding_rows_and_its_remedy():
    """training.md §3.1: after one gradient, a zero gradient decays m but sign(m) stays,
    so a row keeps stepping by lr·(sign(m) + λθ) towards −sign(m)/λ; lazy rows stay put."""
    g0 = np.array([1.0, -1.0, 1.0, -1.0])
    lam, steps = 0.5, 60
    off = drift(Lion(0.2, weight_decay=lam, lazy_embeddings=False), steps)
    limit = -g0 / lam  # −sign(m)/λ = ∓2, approached step after step
    np.testing.assert_allclose(off[-1], limit, atol=0.01)
    assert np.all(np.diff(np.abs(off - limit).max(-1)) < 0)
    on = drift(Lion(0.2, weight_decay=lam), steps)
    np.testing.assert_allclose(on[1:], np.repeat(on[:1], steps, axis=0))  # moved once, then never

    # Tiger (per-row RMS learning rate, λ = 0.01: the limit is ±100): every step moves the
    # row the same way, by lr·RMS(row)·|sign(m) + λθ| ≥ 0.99·lr·RMS(row)
    off = drift(Tiger(0.1, lazy_embeddings=False), 30)
    assert np.all(np.sign(np.diff(off, axis=0)) == -np.sign(g0))
    assert np.abs(off[-1] - off[0]).min() > 0.3
    on = drift(Tiger(0.1), 30)
    np.testing.assert_allclose(on[1:], np.repeat(on[:1], 30, axis=0))


# ----------------------------------------------------------------------------- EMA methods


@pytest.mark.backends
def test_apply_ema_weights_and_reset_old_weights():
    optimizer, kind, options, schedule = make("adam-ema")
    model = probe_model()
    train_eagerly(model, optimizer, steps=5)
    trained = weights(model)
    _, ema, updates = reference(kind, options, schedule, steps=5)
    optimizer.apply_ema_weights()
    assert_close(weights(model), {k: v / (1 - 0.9 ** updates) for k, v in ema.items()})
    optimizer.reset_old_weights()
    assert_close(weights(model), trained, atol=0)
    optimizer.apply_ema_weights(bias_correction=False)
    assert_close(weights(model), ema)
    optimizer.reset_old_weights()
    assert_close(weights(model), trained, atol=0)


def test_ema_bias_correction_counts_real_updates():
    optimizer = Tiger(0.01, grad_accum_steps=2, ema_momentum=0.5)
    variable = keras.Variable(np.ones((2, 2), "float32"), name="kernel")
    for _ in range(4):  # two real updates
        optimizer.apply_gradients([(np.ones((2, 2), "float32"), variable)])
    raw = ops.convert_to_numpy(optimizer._ema_weights[0])
    optimizer.apply_ema_weights()
    np.testing.assert_allclose(ops.convert_to_numpy(variable), raw / (1 - 0.5 ** 2), rtol=1e-6)


def test_ema_method_errors():
    with pytest.raises(ValueError, match="ema_momentum"):
        Adam().apply_ema_weights()
    optimizer = Adam(ema_momentum=0.9)
    with pytest.raises(ValueError, match="built"):
        optimizer.apply_ema_weights()
    optimizer.build([keras.Variable(np.ones(2, "float32"))])
    with pytest.raises(ValueError, match="no update"):
        optimizer.apply_ema_weights()
    with pytest.raises(ValueError, match="apply_ema_weights"):
        optimizer.reset_old_weights()


# ----------------------------------------------------------------------------- config, errors


@pytest.mark.parametrize("case", list(CASES))
def test_config_round_trip(case):
    optimizer, *_ = make(case)
    restored = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert type(restored) is type(optimizer)
    assert restored.get_config() == optimizer.get_config()


def test_model_with_all_options_saves_and_loads(tmp_path):
    optimizer, *_ = make("lamb-everything")
    model = probe_model()
    model.compile(optimizer=optimizer, loss=mean_output)
    train_eagerly(model, optimizer, steps=5)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, compile=True, custom_objects=CUSTOM_OBJECTS)
    assert type(restored.optimizer) is Adam
    assert restored.optimizer.get_config() == optimizer.get_config()
    assert [v.path for v in restored.optimizer.variables] == [v.path for v in optimizer.variables]
    for a, b in zip(restored.optimizer.variables, optimizer.variables):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


@pytest.mark.parametrize("kwargs, message", [
    ({"lookahead_steps": -1}, "lookahead_steps"),
    ({"lookahead_steps": 0}, "lookahead_steps"),
    ({"lookahead_steps": 2.5}, "lookahead_steps"),
    ({"lookahead_steps": 2, "lookahead_alpha": 0}, "lookahead_alpha"),
    ({"lookahead_alpha": 1.5}, "lookahead_alpha"),
    ({"ema_momentum": 1.0}, "ema_momentum"),
    ({"ema_momentum": 0}, "ema_momentum"),
    ({"ema_momentum": -0.5}, "ema_momentum"),
    ({"use_ema": True}, "use_ema"),
    ({"ema_overwrite_frequency": 10}, "ema_overwrite_frequency"),
    ({"gradient_accumulation_steps": 1}, "gradient_accumulation_steps"),
    ({"gradient_accumulation_steps": 2.5}, "gradient_accumulation_steps"),
    ({"lr_multipliers": ["Norm"]}, "lr_multipliers"),
    ({"lr_multipliers": {"Norm": -1.0}}, "lr_multipliers"),
    ({"lr_multipliers": {"(": 2.0}}, "lr_multipliers"),
    ({"lazy_variables": ["["]}, "lazy_variables"),
    ({"lazy_variables": [3]}, "lazy_variables"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"exclude_from_weight_decay": ["("]}, "exclude_from_weight_decay"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Adam(**kwargs)


def test_tiger_argument_errors():
    with pytest.raises(ValueError, match="grad_accum_steps"):
        Tiger(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        Tiger(grad_accum_steps=0)
    with pytest.raises(ValueError, match="ema_momentum"):
        Tiger(ema_momentum=2.0)


def test_defaults():
    assert Lion().lazy_embeddings and Tiger().lazy_embeddings and not Adam().lazy_embeddings
    adam = Adam()
    assert (adam.ema_momentum, adam.lookahead_steps, adam.lr_multipliers, adam.lazy_variables) == (
        None, None, {}, [])
    assert Adam(lazy_variables="Embedding").lazy_variables == ["Embedding"]  # one pattern
