"""Training networks are copies: a task's model rebuilt with the heads and dropout a
recipe trains with (MLM logits, no pooler, dropout 0.2), and the trained weights
written back into a model built for inference. Both go by weight path, which is
bert4keras' layer names and equal in both builds."""
from keras import ops


def rebuilt(transformer, **overrides):
    """A new, built `Transformer` of `transformer`'s config with `overrides`
    (constructor arguments such as `with_mlm="linear"`, `dropout_rate=0.2`)."""
    from kerasformer import architectures

    config = transformer.get_config()
    architecture = config.pop("architecture")
    config.update(overrides)
    copy = architectures.get(architecture).from_config(config)
    copy.build()
    return copy


def copy_weights(source, target, strict=False):
    """Copies the weights of `source` (a Keras model) into those of `target` with the
    same path and shape.

    Args:
        strict: raise unless every weight of `target` is found in `source`.

    Returns:
        The paths of `target`'s weights that were not copied.
    """
    available = {weight.path: weight for weight in source.weights}
    missing = []
    for weight in target.weights:
        found = available.get(weight.path)
        if found is None or tuple(found.shape) != tuple(weight.shape):
            missing.append(weight.path)
            continue
        # A copy, not the same array: JAX's train step donates (frees) the buffers
        # of the variables it updates, which would free the other model's too.
        weight.assign(ops.copy(found.value))
    if strict and missing:
        raise ValueError(f"weights not found in the source model: {', '.join(missing)}")
    return missing
