"""bert4keras' piecewise-linear learning-rate multiplier as a Keras 3 schedule."""
import keras
from keras import ops


def _normalise(schedule):
    """`{step: value}` or `[(step, value), ...]` → sorted list of (int, float) pairs."""
    items = schedule.items() if isinstance(schedule, dict) else schedule
    points = sorted((int(step), float(value)) for step, value in items)
    if not points:
        raise ValueError("a piecewise-linear schedule needs at least one (step, value) point")
    steps = [step for step, _ in points]
    if len(set(steps)) != len(steps):
        raise ValueError(f"duplicate steps in the schedule: {steps}")
    return points


def piecewise_linear(step, schedule, from_zero=True):
    """Value of a piecewise-linear function of `step` (a tensor or a number).

    `schedule` maps steps to values, e.g. `{1000: 1, 2000: 0.1}`: the value rises
    linearly from 0 at step 0 to 1 at step 1000, falls linearly to 0.1 at step 2000 and
    stays 0.1 afterwards. With `from_zero` (bert4keras' behaviour) a schedule without
    the key 0 gets the point (0, 0.0) in front; without it the first value holds before
    the first key. Returns a float32 tensor.
    """
    points = _normalise(schedule)
    if from_zero and points[0][0] != 0:
        points = [(0, 0.0)] + points
    t = ops.cast(step, "float32")
    # Walk the segments from the last one backwards: each `where` decides whether t lies
    # at or after the segment's start, else defers to the earlier segments.
    last_step, last_value = points[-1]
    result = ops.full_like(t, last_value)
    for (t0, v0), (t1, v1) in reversed(list(zip(points[:-1], points[1:]))):
        ramp = v0 + (v1 - v0) / (t1 - t0) * (t - t0)
        result = ops.where(t >= t1, result, ramp)
    return ops.where(t >= points[0][0], result, ops.full_like(t, points[0][1]))


@keras.saving.register_keras_serializable(package="kerasformer")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate × piecewise_linear(step, schedule)`, bert4keras' `lr_schedule`.

    `PiecewiseLinear({1000: 1, 2000: 0.1}, learning_rate=1e-3)` warms up linearly from 0
    to 1e-3 over steps 0–1000, decays linearly to 1e-4 at step 2000 and stays there.
    Steps are the optimizer's raw micro-step counter, as in bert4keras (with gradient
    accumulation, scale the keys by the number of accumulation steps).
    """

    def __init__(self, schedule, learning_rate=1.0):
        self.schedule = {step: value for step, value in _normalise(schedule)}
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        return self.learning_rate * piecewise_linear(step, self.schedule)

    def get_config(self):
        # A list of pairs survives JSON, whose object keys would turn into strings.
        return {"schedule": [[step, value] for step, value in sorted(self.schedule.items())],
                "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
