"""Training on several devices with `keras.distribution`: data and model parallelism.

Keras 3.15 implements `keras.distribution` for JAX only: its TensorFlow module is a
DTensor prototype marked "DO NOT USE" and it has no PyTorch implementation (one
appeared in Keras 3.16 development). So these helpers run on the JAX backend and
raise `NotImplementedError`, naming the backend, on the others; there, use
`tf.distribute` or `torch.distributed` directly.

- `data_parallel(devices=None)`: every device holds the whole model and a slice of
  each batch (`keras.distribution.DataParallel`).
- `model_parallel(transformer, mesh_shape)`: a `(data, model)` device mesh; the
  weights are split over the model axis by the architecture's layout map
  (`Transformer.get_layout_map`, Megatron-style tensor parallelism) and the batch
  over the data axis (`keras.distribution.ModelParallel`).

Both set the global distribution (`keras.distribution.set_distribution`) and return
it; variables take their layout when they are created, so set it before building the
model (`build_transformer_model`, `kerasformer.models.load`), and call
`keras.distribution.set_distribution(None)` to go back to one device. Or keep the
distribution local: `with distribution.scope(): model = build_transformer_model(...)`,
and run `fit` in the same scope.

`check_layout_map(layout_map, model)` lists what a layout map leaves unmatched or
cannot split evenly; a model built with `Transformer.build(weights_follow=True)`
(zeros, no random initialisation) is enough to check the paths and shapes of a large
configuration on one device.
"""
import math
import re

import keras

__all__ = ["check_layout_map", "data_parallel", "device_mesh", "model_parallel"]

DATA_AXIS = "batch"
MODEL_AXIS = "model"


def _require_backend(what):
    """Raises `NotImplementedError` unless `keras.distribution` works on this backend."""
    backend = keras.backend.backend()
    if backend != "jax":
        raise NotImplementedError(
            f"{what} needs the JAX backend, not {backend!r}: keras.distribution in "
            f"Keras {keras.__version__} is implemented for JAX only (its TensorFlow "
            "version is an unsupported DTensor prototype and it has no PyTorch "
            "version). Run with KERAS_BACKEND=jax, or distribute with "
            f"{'tf.distribute' if backend == 'tensorflow' else 'torch.distributed'} "
            "yourself."
        )


def data_parallel(devices=None):
    """Sets (and returns) a `keras.distribution.DataParallel` distribution.

    Each device holds the whole model and trains on an equal slice of every batch
    (batch sizes must be multiples of the number of devices); gradients are averaged
    across devices, so the numbers are those of one device with the whole batch.

    Args:
        devices: optional list of devices (`keras.distribution.list_devices()`
            names); default every accelerator, or every CPU device when there is none.

    Raises:
        NotImplementedError: on backends other than JAX.
    """
    _require_backend("kerasformer.distribution.data_parallel")
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return distribution


def device_mesh(mesh_shape, devices=None, data_parallel_dim_name=DATA_AXIS,
                model_parallel_dim_name=MODEL_AXIS):
    """A `(data, model)` `keras.distribution.DeviceMesh`.

    Args:
        mesh_shape: `(data, model)` sizes whose product is the number of devices,
            or an int: the model-parallel size, the data-parallel one being the
            number of devices divided by it.
        devices: optional list of devices; default all of them.
        data_parallel_dim_name, model_parallel_dim_name: the axis names.
    """
    _require_backend("kerasformer.distribution.device_mesh")
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    if isinstance(mesh_shape, int):
        if mesh_shape < 1 or len(devices) % mesh_shape:
            raise ValueError(
                f"a model-parallel size of {mesh_shape} does not divide the "
                f"{len(devices)} devices"
            )
        mesh_shape = (len(devices) // mesh_shape, mesh_shape)
    mesh_shape = tuple(int(size) for size in mesh_shape)
    if len(mesh_shape) != 2 or math.prod(mesh_shape) != len(devices):
        raise ValueError(
            f"mesh_shape must be (data, model) sizes whose product is the number of "
            f"devices ({len(devices)}), got {mesh_shape}"
        )
    return keras.distribution.DeviceMesh(
        mesh_shape, [data_parallel_dim_name, model_parallel_dim_name], devices
    )


def model_parallel(transformer, mesh_shape, devices=None,
                   data_parallel_dim_name=DATA_AXIS, model_parallel_dim_name=MODEL_AXIS,
                   shard_weights_over_data=True):
    """Sets (and returns) a `keras.distribution.ModelParallel` distribution for an
    architecture.

    Args:
        transformer: the architecture whose layout map splits the weights: a
            `Transformer` not built yet (e.g. `builder.make_transformer(...)`), a
            `Transformer` subclass, or an architecture name ("roformer", ...).
        mesh_shape: `(data, model)` sizes, or the model-parallel size (see
            `device_mesh`).
        devices: optional list of devices; default all of them.
        data_parallel_dim_name, model_parallel_dim_name: the mesh axis names.
        shard_weights_over_data: also split the other axis of the large weights
            over the data axis (ZeRO-3 / FSDP style); False keeps them whole on each
            data-parallel replica.

    Raises:
        NotImplementedError: on backends other than JAX.
        ValueError: for a model that is already built (its variables exist and
            would not be split: build it after this call).
    """
    _require_backend("kerasformer.distribution.model_parallel")
    architecture = _architecture(transformer)
    mesh = device_mesh(mesh_shape, devices, data_parallel_dim_name, model_parallel_dim_name)
    layout_map = architecture.get_layout_map(
        mesh,
        model_parallel_dim_name=model_parallel_dim_name,
        data_parallel_dim_name=data_parallel_dim_name if shard_weights_over_data else None,
    )
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name=data_parallel_dim_name
    )
    keras.distribution.set_distribution(distribution)
    return distribution


def _architecture(transformer):
    from kerasformer import architectures
    from kerasformer.architectures.base import Transformer

    if isinstance(transformer, str):
        return architectures.get(transformer)
    if isinstance(transformer, type) and issubclass(transformer, Transformer):
        return transformer
    if isinstance(transformer, Transformer):
        if transformer.model is not None:
            raise ValueError(
                "this model is already built: its variables were placed when they "
                "were created. Call model_parallel() first, then build the model "
                "(build_transformer_model / kerasformer.models.load / "
                "Transformer.build)."
            )
        return type(transformer)
    if isinstance(getattr(transformer, "transformer", None), Transformer):
        raise ValueError(
            "this model is already built: its variables were placed when they were "
            "created. Call model_parallel() with the architecture first, then build "
            "the model."
        )
    raise TypeError(
        "transformer must be an architecture name, a Transformer subclass or an "
        f"unbuilt Transformer, got {transformer!r}"
    )


def check_layout_map(layout_map, model, allow_unused_keys=False):
    """Checks a `LayoutMap` against a model's weights; raises `ValueError` listing
    every problem.

    - each weight matches exactly one key: several are ambiguous (Keras raises
      unless one is the exact path), none leaves the weight replicated silently
      (an all-None layout replicates it deliberately);
    - each key matches a weight (unless `allow_unused_keys`): a dead key is a
      misspelt rule;
    - each split axis divides evenly by the size of its mesh axes (JAX refuses to
      place an array that does not).

    Args:
        layout_map: `keras.distribution.LayoutMap` (with its device mesh).
        model: a Keras model, or a list of variables.
        allow_unused_keys: bool. Accept keys that match no weight (a layout map
            of an architecture checked against a model without some of its heads).

    Returns:
        `{variable path: the layout's axes}` of every weight.
    """
    variables = model.weights if hasattr(model, "weights") else list(model)
    mesh = layout_map.device_mesh
    sizes = dict(zip(mesh.axis_names, mesh.shape)) if mesh is not None else {}
    problems, used, layouts = [], set(), {}
    keys = list(layout_map)
    for variable in variables:
        matches = [key for key in keys if re.fullmatch(key, variable.path)]
        if not matches:
            problems.append(f"{variable.path} {tuple(variable.shape)} matches no key")
            continue
        if len(matches) > 1:
            problems.append(f"{variable.path} matches several keys: {matches}")
            continue
        used.add(matches[0])
        axes = tuple(layout_map[matches[0]].axes)
        layouts[variable.path] = axes
        if len(axes) > len(variable.shape):
            problems.append(
                f"{variable.path} has {len(variable.shape)} axes, its layout {axes} more"
            )
            continue
        for dim, axis in zip(variable.shape, axes):
            names = () if axis is None else (axis,) if isinstance(axis, str) else tuple(axis)
            split = math.prod(sizes.get(name, 1) for name in names)
            if split > 1 and dim % split:
                problems.append(
                    f"{variable.path} {tuple(variable.shape)}: an axis of {dim} does not "
                    f"divide over {axes} (mesh {sizes})"
                )
    if not allow_unused_keys:
        problems.extend(f"key {key!r} matches no weight" for key in keys if key not in used)
    if problems:
        raise ValueError("layout map problems:\n  " + "\n  ".join(problems))
    return layouts
