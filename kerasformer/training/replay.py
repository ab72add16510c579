"""Random draws that a recomputation replays exactly.

Keras keeps random state in `SeedGenerator` variables that `Dropout` advances as a side
effect. Inside a rematerialised function (`keras.remat`) that side effect is either an
error (JAX: a leaked tracer) or a different mask in the recomputed pass (TensorFlow),
so the gradient would belong to another network. `replayable` makes the seed states
explicit inputs of the function, read through a `StatelessScope` without side effects;
callers advance the generators once, outside. (PyTorch's unseeded dropout draws from
torch's global generator, whose state `torch.utils.checkpoint` saves and restores.)
"""
import keras
from keras import ops
from keras.src.backend.common.stateless_scope import get_stateless_scope

# Call i of a step draws with seed + i·SEED_STRIDE: distinct streams per call, and
# call 0 draws exactly what the plain model would.
SEED_STRIDE = 7919


def seed_generators(model):
    """Every `SeedGenerator` owned by `model`'s layers (dropout, noise, ...)."""
    generators, seen = [], set()
    for layer in model._flatten_layers(include_self=True):
        # Keras tracks a layer's generators in `_seed_generators` (no public accessor).
        for generator in getattr(layer, "_seed_generators", []):
            if id(generator) not in seen:
                seen.add(id(generator))
                generators.append(generator)
    return generators


def offset_seeds(states, index):
    """The seed states of call `index`: each state's seed shifted by index·SEED_STRIDE."""
    return [ops.add(state, ops.convert_to_tensor([index * SEED_STRIDE, 0], state.dtype))
            for state in states]


def scope_with(overrides):
    """A `StatelessScope` that reads `overrides` ((variable, value) pairs) and otherwise
    what the enclosing scope reads (the JAX trainer runs the model inside one)."""
    scope = keras.StatelessScope()
    outer = get_stateless_scope()
    if outer is not None:
        scope.state_mapping.update(outer.state_mapping)
    for variable, value in overrides:
        scope.state_mapping[id(variable)] = value
    return scope


def replayable(function, generators, remat=True):
    """`g(*seed_states, *args)`: `function(*args)` with `generators` reading the given
    seed states (one per generator, as `SeedGenerator.next()` returns them) and no
    side effects, rematerialised with `keras.remat` unless `remat` is False."""
    count = len(generators)

    def run(*flat):
        states, arguments = flat[:count], flat[count:]
        with scope_with(zip((g.state for g in generators), states)):
            return function(*arguments)

    return keras.remat(run) if remat else run
