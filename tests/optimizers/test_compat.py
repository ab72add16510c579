"""bert4keras' `extend_with_*` factories (kerasformer.optimizers.compat) build the same
optimizers as our constructor arguments: a bert4keras pretraining fragment trains to the
same weights as the composed `Adam`, and bad arguments are named."""
import json

import keras
import numpy as np
import pytest
from keras import ops

from kerasformer.optimizers import (
    Adam,
    Lion,
    PiecewiseLinear,
    Tiger,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_layer_adaptation,
    extend_with_lazy_optimization,
    extend_with_lookahead,
    extend_with_parameter_wise_lr,
    extend_with_piecewise_linear_lr,
    extend_with_weight_decay,
)
from kerasformer.optimizers import compat
from tests.optimizers.test_features import (
    CUSTOM_OBJECTS, SAMPLES, assert_close, fit, mean_output, probe_model, train_eagerly, weights)


def lamb_classes():
    # as in bert4keras' pretraining/pretraining.py
    AdamW = extend_with_weight_decay(Adam, "AdamW")
    AdamWLR = extend_with_piecewise_linear_lr(AdamW, "AdamWLR")
    AdamWLRG = extend_with_gradient_accumulation(AdamWLR, "AdamWLRG")
    return extend_with_layer_adaptation(AdamWLRG, "LAMB")


LAMB_ARGUMENTS = dict(learning_rate=1e-3, weight_decay_rate=0.01,
                      exclude_from_weight_decay=["Norm", "bias"],
                      exclude_from_layer_adaptation=["Norm", "bias"],
                      lr_schedule={10: 1, 20: 0.1}, grad_accum_steps=2)


def composed_lamb():
    return Adam(learning_rate=PiecewiseLinear({10: 1, 20: 0.1}, learning_rate=1e-3),
                weight_decay=0.01, exclude_from_weight_decay=["Norm", "bias"],
                layer_adaptation=True, exclude_from_layer_adaptation=["Norm", "bias"],
                gradient_accumulation_steps=2)


def without_name(config):
    return {k: v for k, v in config.items() if k != "name"}


@pytest.mark.backends
def test_bert4keras_lamb_fragment_trains_like_the_composed_adam():
    LAMB = lamb_classes()
    optimizer = LAMB(**LAMB_ARGUMENTS)
    assert isinstance(optimizer, Adam) and type(optimizer).__name__ == "LAMB"
    assert without_name(optimizer.get_config()) == without_name(composed_lamb().get_config())
    ours, theirs = probe_model(), probe_model()
    fit(ours, composed_lamb())
    fit(theirs, optimizer)
    assert_close(weights(theirs), weights(ours), atol=0)
    assert int(ops.convert_to_numpy(optimizer.iterations)) == SAMPLES // 2


def test_the_other_factories_map_onto_our_arguments():
    Optimizer = extend_with_lookahead(
        extend_with_exponential_moving_average(
            extend_with_lazy_optimization(
                extend_with_parameter_wise_lr(Lion, "LionP"), "LionPL"), "LionPLE"), "LionPLEL")
    theirs = Optimizer(0.01, paramwise_lr_schedule={"Norm": 0.5, "FeedForward/": 2.0},
                       include_in_lazy_optimization=["bias"], ema_momentum=0.9,
                       steps_per_slow_update=3, slow_step_size=0.4)
    ours = Lion(0.01, lr_multipliers={"Norm": 0.5, "FeedForward/": 2.0},
                lazy_variables=["bias"], ema_momentum=0.9, lookahead_steps=3, lookahead_alpha=0.4)
    assert without_name(theirs.get_config()) == without_name(ours.get_config())
    models = probe_model(), probe_model()
    for model, optimizer in zip(models, (theirs, ours)):
        train_eagerly(model, optimizer, steps=7)
    assert_close(weights(models[0]), weights(models[1]), atol=0)
    theirs.apply_ema_weights()
    ours.apply_ema_weights()
    assert_close(weights(models[0]), weights(models[1]), atol=0)


def test_defaults_follow_bert4keras():
    config = extend_with_weight_decay(Adam)().get_config()
    assert (config["weight_decay"], config["exclude_from_weight_decay"]) == (0.01, [])
    assert extend_with_layer_adaptation(Adam)().layer_adaptation
    assert extend_with_gradient_accumulation(Adam)().gradient_accumulation_steps == 2
    assert extend_with_gradient_accumulation(Adam)(grad_accum_steps=1).gradient_accumulation_steps is None
    assert extend_with_gradient_accumulation(Tiger)().grad_accum_steps == 2  # Tiger's own
    lookahead = extend_with_lookahead(Adam)()
    assert (lookahead.lookahead_steps, lookahead.lookahead_alpha) == (5, 0.5)
    assert extend_with_exponential_moving_average(Adam)().ema_momentum == 0.999
    assert extend_with_lazy_optimization(Adam)().lazy_variables == []
    assert extend_with_parameter_wise_lr(Adam)().lr_multipliers == {}
    # substring semantics: a "." in a bert4keras key is a dot, not "any character"
    assert extend_with_parameter_wise_lr(Adam)(
        paramwise_lr_schedule={"a.b": 2}).lr_multipliers == {r"a\.b": 2.0}
    schedule = extend_with_piecewise_linear_lr(Adam)(2e-3, lr_schedule={100: 1})._learning_rate
    assert isinstance(schedule, PiecewiseLinear) and schedule.learning_rate == 2e-3
    assert schedule.schedule == {100: 1.0}
    assert compat.extend_with_weight_decay_v2 is extend_with_weight_decay
    assert type(extend_with_weight_decay(Adam)()).__name__ == "AdamWeightDecay"


def test_config_and_model_round_trips(tmp_path):
    LAMB = lamb_classes()
    optimizer = LAMB(**LAMB_ARGUMENTS)
    restored = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert type(restored) is LAMB and restored.get_config() == optimizer.get_config()

    EMA = extend_with_exponential_moving_average(extend_with_lookahead(Tiger), "TigerLE")
    model = probe_model()
    model.compile(optimizer=EMA(0.01, steps_per_slow_update=2), loss=mean_output)
    train_eagerly(model, model.optimizer, steps=4)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS)
    assert type(loaded.optimizer) is EMA
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


@pytest.mark.parametrize("factory, base, kwargs, message", [
    (lamb_classes, None, {**LAMB_ARGUMENTS, "grad_accum_steps": 0}, "grad_accum_steps"),
    (lamb_classes, None, {**LAMB_ARGUMENTS, "grad_accum_steps": 2.5}, "grad_accum_steps"),
    (lamb_classes, None, {**LAMB_ARGUMENTS, "weight_decay": 0.1}, "weight_decay_rate"),
    (lamb_classes, None, {**LAMB_ARGUMENTS, "weight_decay_rate": -1}, "weight_decay_rate"),
    (lamb_classes, None, {**LAMB_ARGUMENTS, "lr_schedule": [(10, 1)]}, "lr_schedule"),
    (lamb_classes, None, {**LAMB_ARGUMENTS, "gradient_accumulation_steps": 4}, "grad_accum_steps"),
    (lamb_classes, None, {**LAMB_ARGUMENTS, "weight_decay_rates": 0.1}, "weight_decay_rates"),
    (extend_with_piecewise_linear_lr, Adam,
     {"learning_rate": PiecewiseLinear({1: 1}), "lr_schedule": {1: 1}}, "lr_schedule"),
    (extend_with_lookahead, Adam, {"steps_per_slow_update": 0}, "steps_per_slow_update"),
    (extend_with_lookahead, Adam, {"slow_step_size": 1.5}, "slow_step_size"),
    (extend_with_exponential_moving_average, Adam, {"ema_momentum": 1.5}, "ema_momentum"),
    (extend_with_exponential_moving_average, Adam, {"ema_momentum": None}, "ema_momentum"),
    (extend_with_lazy_optimization, Adam, {"include_in_lazy_optimization": [1]},
     "include_in_lazy_optimization"),
    (extend_with_parameter_wise_lr, Adam, {"paramwise_lr_schedule": ["Norm"]},
     "paramwise_lr_schedule"),
    (extend_with_parameter_wise_lr, Adam, {"paramwise_lr_schedule": {"Norm": "x"}},
     "paramwise_lr_schedule"),
    (extend_with_gradient_accumulation, Tiger, {"grad_accum_steps": 0}, "grad_accum_steps"),
])
def test_bad_arguments_are_named(factory, base, kwargs, message):
    cls = factory() if base is None else factory(base)
    with pytest.raises((ValueError, TypeError), match=message):
        cls(**kwargs)


def test_bad_bases_are_refused():
    with pytest.raises(TypeError, match="layer adaptation"):
        extend_with_layer_adaptation(Tiger)
    with pytest.raises(TypeError, match="kerasformer optimizers"):
        extend_with_weight_decay(keras.optimizers.Adam)
    with pytest.raises(ValueError, match="name"):
        extend_with_weight_decay(Adam, "not a name")
