"""LoRA fine-tuning with Keras' own `Dense.enable_lora`, and merging it back.

    from kerasformer.training.lora import enable_lora, merge_lora

    model = build_transformer_model(config, checkpoint, model="gpt2", remat=True)
    enable_lora(model, rank=8)          # q/k/v/o of every attention layer; all else frozen
    model.compile(optimizer=AdaFactor(1e-3, exclude_from_parameter_scale=["lora_kernel"]),
                  loss=...)
    model.fit(...)                      # only lora_kernel_a / lora_kernel_b move
    merge_lora(model)                   # kernel += (alpha / rank) · A·B; LoRA weights gone
    model.transformer.save_weights_as_checkpoint("out/bert_model.ckpt")  # the normal layout

A LoRA Dense layer (Keras 3, `keras/src/layers/core/dense.py`) computes with the kernel
`W + (alpha / rank) · A·B`: `A` (`lora_kernel_a`, `in × rank`, He-uniform) and `B`
(`lora_kernel_b`, `rank × out`, zeros, so training starts from the base model), both
float32 whatever the policy, the base kernel `W` frozen. `merge_lora` writes that
kernel into `W` with the same operations (in the variable's dtype: float32, or
bfloat16 under a `"bfloat16"` policy, as Keras' forward pass casts it) and removes
`A` and `B`, so the model has its ordinary variables again: `save_weights`,
presets (`Task.save_preset`), `save_weights_as_checkpoint` and the strict loaders see
the layout of a model that never had LoRA. (Keras' own `save_weights` of a LoRA
model writes merged kernels too, but cast to the compute dtype — bfloat16 under
`mixed_bfloat16` — and `save_weights_as_checkpoint` has no names for A and B.)

Which layers: `targets` names Dense layers. A name without "/" is a projection of the
attention layers (`MultiHeadAttention`'s q_dense, k_dense, v_dense, o_dense; the
gated attention unit's i_dense, o_dense) or a Dense layer of the model itself
("Pooler-Dense", "MLM-Dense"); a target with "/" is a regular expression
matched in full against the Dense layer's path (its kernel's path without "/kernel",
with or without the model's `prefix`), e.g. `r"Transformer-\\d+-FeedForward/(i0|o)_dense"`.
Every target must match at least one layer.

Optimizers: LoRA's `B` starts at zero, so an optimizer whose step is proportional to
the parameter's own scale never moves it. `AdaFactor` does that unless told
(`exclude_from_parameter_scale=["lora_kernel"]`); `Tiger` steps LoRA kernels by its
plain learning rate, as Lion and Adam step every weight.
"""
import gc
import numbers
import re
import weakref

import keras

from kerasformer.checks import check_integer

__all__ = ["ATTENTION_PROJECTIONS", "enable_lora", "lora_layers", "merge_lora"]

# The attention projections of MultiHeadAttention (GPT-2, BERT, RoFormer, RoFormerV2).
ATTENTION_PROJECTIONS = ("q_dense", "k_dense", "v_dense", "o_dense")

# model -> variables that enable_lora froze (and merge_lora makes trainable again)
_FROZEN = weakref.WeakKeyDictionary()


def _attention_classes():
    from kerasformer.layers.attention import MultiHeadAttention
    from kerasformer.layers.gau import GatedAttentionUnit

    return (MultiHeadAttention, GatedAttentionUnit)


def _resolve(model_or_transformer):
    """`(keras model, Transformer or None)` of a model, a Transformer or a task."""
    from kerasformer.architectures.base import Transformer, transformer_of

    obj = model_or_transformer
    if isinstance(obj, Transformer):
        return obj.build(), obj
    if isinstance(obj, keras.Model):
        return obj, transformer_of(obj)
    transformer = getattr(obj, "transformer", None)  # a task (CausalLanguageModel, ...)
    if isinstance(transformer, Transformer):
        return transformer.build(), transformer
    raise TypeError(
        "expected a keras.Model, a kerasformer Transformer or a task, got "
        f"{type(obj).__name__}"
    )


def _dense_path(dense):
    """The Dense layer's path: its kernel's path without "/kernel"."""
    return dense._kernel.path.rpartition("/")[0]


def _dense_layers(model):
    """`[(path, Dense layer, the model's top-level layer holding it)]`, in model order."""
    found, seen = [], set()
    for top in model.layers:
        for layer in top._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, keras.layers.Dense) and id(layer) not in seen and layer.built:
                seen.add(id(layer))
                found.append((_dense_path(layer), layer, top))
    return found


def _matches(target, path, layer, top, prefix):
    if "/" not in target:
        if layer is top:  # a Dense layer of the model itself, by name
            return path in (target, prefix + target)
        return layer.name == target and isinstance(top, _attention_classes())
    return bool(re.fullmatch(target, path)
                or (prefix and path.startswith(prefix)
                    and re.fullmatch(target, path[len(prefix):])))


def _forget_compiled(model, transformer):
    """Drops compiled functions that captured the old list of variables: the decode
    loop's and task's (per transformer) and the Keras model's train/test/predict."""
    if transformer is not None:
        transformer.compiled_functions.clear()
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def lora_layers(model_or_transformer):
    """Paths of the Dense layers that have LoRA enabled."""
    model, _ = _resolve(model_or_transformer)
    return [path for path, layer, _ in _dense_layers(model) if layer.lora_enabled]


def enable_lora(model_or_transformer, rank, targets=ATTENTION_PROJECTIONS, alpha=None,
                freeze=True):
    """Enables LoRA (`keras.layers.Dense.enable_lora`) on the Dense layers `targets`
    names, and freezes every other weight.

    Args:
        model_or_transformer: a Keras model (from `build_transformer_model`, or any
            model), a `Transformer` (built here if it is not), or a task
            (`kerasformer.models.load(...)`).
        rank: int > 0. Rank of the update `A·B`.
        targets: names of attention projections or of the model's own Dense layers,
            or path patterns with "/" (see the module's docstring). Default: q, k, v
            and o of every attention layer.
        alpha: LoRA's alpha (> 0); the update is scaled by `alpha / rank`. Default
            `rank` (scale 1), as Keras.
        freeze: bool. Make every weight but the LoRA ones non-trainable (True), or
            only the targets' kernels, as Keras does (False: biases, norms and
            embeddings keep training).

    Returns:
        list of str: paths of the Dense layers LoRA was enabled on, in model order.

    Call it before `compile`: an optimizer is built for the variables the model had
    when it first trained. Variables created under a `keras.distribution` (set
    before this call) take its layout; LoRA weights are replicated (layout maps name
    the base weights only).

    Raises:
        ValueError: rank or alpha not positive, no targets, a target that matches no
            Dense layer, LoRA already enabled on a layer, a frozen layer.
    """
    rank = check_integer(rank, "rank")
    rank = int(rank)
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, numbers.Real)
                              or not alpha > 0):
        raise ValueError(f"alpha must be a positive number (or None for rank), got {alpha!r}")
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    if not targets:
        raise ValueError("targets is empty: name at least one Dense layer")
    for target in targets:
        if not isinstance(target, str) or not target:
            raise ValueError(f"targets must be non-empty strings, got {target!r}")
        if "/" in target:
            try:
                re.compile(target)
            except re.error as error:
                raise ValueError(
                    f"target {target!r} is not a regular expression: {error}") from None

    model, transformer = _resolve(model_or_transformer)
    prefix = transformer.prefix if transformer is not None else ""
    dense_layers = _dense_layers(model)
    chosen, unmatched = [], []
    for target in targets:
        hits = [(path, layer, top) for path, layer, top in dense_layers
                if _matches(target, path, layer, top, prefix)]
        if not hits:
            unmatched.append(target)
        chosen += [hit for hit in hits if all(hit[1] is not c[1] for c in chosen)]
    order = {id(layer): index for index, (_, layer, _) in enumerate(dense_layers)}
    chosen.sort(key=lambda hit: order[id(hit[1])])
    if unmatched:
        names = sorted({layer.name for _, layer, top in dense_layers
                        if layer is not top and isinstance(top, _attention_classes())})
        own = [layer.name for _, layer, top in dense_layers if layer is top]
        example = next((p for p, layer, top in dense_layers if layer is not top), None)
        raise ValueError(
            f"no Dense layer matches target(s) {', '.join(map(repr, unmatched))}: bare "
            f"names are attention projections (here: {', '.join(names) or 'none'}) or "
            f"Dense layers of the model itself (here: {', '.join(own) or 'none'}); a "
            f"target with '/' is a regular expression over paths such as {example!r}"
        )
    for path, layer, top in chosen:
        if layer.lora_enabled:
            raise ValueError(f"LoRA is already enabled on {path!r}: merge_lora first")
        if not (model.trainable and top.trainable and layer.trainable):
            raise ValueError(f"{path!r} is frozen (trainable=False): its LoRA weights "
                             "would not train")

    for _, layer, _ in chosen:
        layer.enable_lora(rank, lora_alpha=None if alpha is None else float(alpha))
    lora = {id(v) for _, layer, _ in chosen for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    frozen = _FROZEN.setdefault(model, [])
    frozen += [layer._kernel for _, layer, _ in chosen]  # frozen by Keras
    if freeze:
        for variable in model.weights:
            if id(variable) not in lora and variable.trainable:
                variable.trainable = False
                frozen.append(variable)
    _forget_compiled(model, transformer)
    return [path for path, _, _ in chosen]


def merge_lora(model_or_transformer):
    """Folds every LoRA update into its kernel and removes the LoRA weights.

    Each kernel becomes `W + (alpha / rank) · A·B`, computed as Keras' LoRA Dense
    computes it, in the kernel variable's dtype: the model computes what it computed
    with LoRA (exactly in float32; under a "bfloat16" policy the stored kernel is
    the rounded sum, as Keras' forward pass rounds it). The weights `enable_lora`
    froze are trainable again, and the model saves and loads in the ordinary layout.

    Returns:
        list of str: paths of the Dense layers merged.

    Raises:
        ValueError: no layer has LoRA enabled, or a LoRA layer is quantized (save
            it with `save_weights`, which requantizes the merged kernel).
    """
    model, transformer = _resolve(model_or_transformer)
    merged = [(path, layer) for path, layer, _ in _dense_layers(model) if layer.lora_enabled]
    if not merged:
        raise ValueError("no layer of this model has LoRA enabled: nothing to merge")
    for path, layer in merged:
        if layer.quantization_mode is not None:
            raise ValueError(f"{path!r} is quantized ({layer.quantization_mode}): merge_lora "
                             "handles float kernels only")
    for path, layer in merged:
        kernel = layer._kernel
        delta = (layer.lora_alpha / layer.lora_rank) * keras.ops.matmul(
            layer.lora_kernel_a, layer.lora_kernel_b)
        kernel.assign(keras.ops.cast(keras.ops.add(kernel, delta), kernel.dtype))
        for name in ("lora_kernel_a", "lora_kernel_b"):
            # What Keras' Layer.__delattr__ does but its gc.collect(), which costs a
            # second in a big process, per variable: collected once below instead.
            layer._untrack_variable(getattr(layer, name))
            super(keras.layers.Layer, layer).__delattr__(name)
        layer.lora_enabled = False
        layer.lora_rank = None
        layer.lora_alpha = None
    gc.collect()  # the LoRA weights' buffers go now, not at some later collection
    for variable in _FROZEN.pop(model, []):
        variable.trainable = True
    for _, layer in merged:  # LoRA enabled elsewhere than here: Keras froze it
        layer._kernel.trainable = True
    _forget_compiled(model, transformer)
    return [path for path, _ in merged]
