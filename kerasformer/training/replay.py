"""Random draws that a recomputation replays exactly.

Keras keeps random state in `SeedGenerator` variables that `Dropout` advances as a side
effect. Inside a rematerialised function (`keras.remat`) that side effect is either an
error (JAX: a leaked tracer) or a different mask in the recomputed pass (TensorFlow),
so the gradient would belong to another network. `replayable` makes the seed states
explicit inputs of the function, read through a `StatelessScope` without side effects;
callers advance the generators once, outside. (PyTorch's unseeded dropout draws from
torch's global generator, whose state `torch.utils.checkpoint` saves and restores.)

`rematerialise` is `keras.remat` with a recomputation that XLA cannot move back into
the forward pass (per-block gradient checkpointing, `Transformer(remat=True)`).
"""
import keras
from keras import ops
from keras.src.backend.common.stateless_scope import get_stateless_scope
from keras.src.backend.common.variables import AutocastScope

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


def rematerialise(function, variables):
    """`keras.remat(function)`; on JAX, a rematerialisation that XLA cannot undo.

    `jax.checkpoint` leaves it to XLA to schedule the recomputation, and XLA:CPU
    hoists every block's recomputation into the forward pass (or CSEs it away), so an
    unrolled stack of checkpointed blocks takes as much memory as without remat, or
    more. Here the recomputation of a block takes its inputs plus zero times an
    element of the cotangent of its output: a data dependency that no compiler may
    remove (x·0 is not 0 for floats), so each block is recomputed when the backward
    pass reaches it, and only then (a non-finite cotangent then makes the whole
    block's gradient non-finite, as mixed-precision loss scaling expects). `variables`
    — every weight `function` reads — are explicit inputs of the custom VJP (read
    through a `StatelessScope`), so their gradients flow; any other state `function`
    reads must be passed as arguments.
    """
    if keras.backend.backend() != "jax":
        return keras.remat(function)
    import jax

    def with_values(values, *args):
        with scope_with(zip(variables, values)):
            return function(*args)

    @jax.custom_vjp
    def run(values, *args):
        return with_values(values, *args)

    def forward(values, *args):
        return with_values(values, *args), (values, args)

    def backward(residuals, cotangent):
        values, args = residuals
        anchor = keras.tree.flatten(cotangent)[0].reshape(-1)[0] * 0
        args = [
            arg + anchor.astype(arg.dtype) if jax.numpy.issubdtype(arg.dtype, jax.numpy.inexact)
            else arg
            for arg in args
        ]
        _, vjp = jax.vjp(with_values, values, *args)
        return vjp(cotangent)

    run.defvjp(forward, backward)

    def call(*args):
        with AutocastScope(None):  # the stored values: each layer casts as it reads
            values = [variable.value for variable in variables]
        return run(values, *args)

    return call
