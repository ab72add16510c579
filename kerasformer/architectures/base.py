"""What every architecture shares: hyper-parameters, layers by name, the Keras model.

An architecture is a `Transformer` subclass, as in bert4keras: it creates its Keras
layers under bert4keras' names (so `model.get_layer("Embedding-Token")` and freezing by
name keep working), wires them into a functional `TransformerModel`, and describes its
checkpoint variables as one `WeightMap` per layout. The same methods that build the
symbolic model also run eagerly or under jit with a KV cache: that is the decoder
protocol (`max_positions`, `init_caches`, `call_with_cache`, `logits`), which the one
decode loop asks instead of guessing.
"""
import contextlib
import contextvars
import dataclasses
import inspect
import math

import keras
import numpy as np
from keras.src.backend.common import global_state
from keras.src.backend.common.masking import get_keras_mask, set_keras_mask
from keras.src.layers.layer import CallContext

from kerasformer.convert.checkpoints import canonical_hf_names, checkpoint_layout, open_checkpoint
from kerasformer.convert.weights import Source, Transform, load_weights, plan_weights
from kerasformer.layers.masks import APPLICATIONS, AttentionMask

# Constructor arguments that say how weights are loaded, not what the model is: a
# model's config (presets, `.keras` files) leaves them out.
LOADING_ARGUMENTS = ("keep_tokens", "compound_tokens", "ignore_invalid_weights")
# Constructor arguments that are tensors of the caller's graph: a model built with them
# is a plain functional `keras.Model`, saved by its graph rather than by this config.
GRAPH_ARGUMENTS = (
    "layer_norm_cond", "layer_norm_cond_hidden_size", "layer_norm_cond_hidden_act",
    "additional_input_layers",
)

# Axis roles of `Transformer.layout_rules`: sharded over the model-parallel mesh axis,
# or over the data-parallel one.
MODEL = "model"
DATA = "data"
# Layout-map keys match a variable path with any prefix before the layer name.
LAYOUT_PREFIX = ".*"

# While set, a dict (shape, dtype) -> zeros that kerasformer's initializers return.
_WEIGHTS_FOLLOW = contextvars.ContextVar("weights_follow", default=None)


@contextlib.contextmanager
def _weights_follow():
    """Within this context kerasformer's random initializers return zeros: for models
    whose every weight is loaded right after they are built, random initialisation
    is wasted work (one compiled RNG kernel per shape on JAX) and memory."""
    token = _WEIGHTS_FOLLOW.set({})
    try:
        yield
    finally:
        _WEIGHTS_FOLLOW.reset(token)


@contextlib.contextmanager
def _training_call_context(training):
    """Layers called within this context (without an explicit `training`) get
    `training`, as if called inside a Keras model's call with it.

    A rematerialised block is re-run by TensorFlow's and PyTorch's backward pass,
    outside the model's call: without this, its dropout would be off in the
    recomputed pass. (Keras keeps the inherited `training` in a private call
    context; there is no public way to set it.)
    """
    previous = global_state.get_global_attribute("current_call_ctx")
    context = CallContext(entry_layer=None)
    context.set_value("training", training)
    global_state.set_global_attribute("current_call_ctx", context)
    try:
        yield
    finally:
        global_state.set_global_attribute("current_call_ctx", previous)


def _placeholder_zeros(shape, dtype):
    """Zeros for a variable whose value is about to be replaced.

    JAX arrays are immutable and a JAX variable takes the array it is given, so every
    variable of one shape can hold the same zeros until its weights arrive: the model
    then never holds a second, throw-away copy of its weights. The other backends
    copy into (and later assign in place within) each variable's own buffer.
    """
    dtype = keras.backend.standardize_dtype(dtype or "float32")
    if keras.config.backend() != "jax":
        return np.zeros(shape, dtype)
    shared = _WEIGHTS_FOLLOW.get()
    key = (tuple(shape), dtype)
    if key not in shared:
        shared[key] = keras.ops.zeros(shape, dtype)
    return shared[key]


@keras.saving.register_keras_serializable(package="kerasformer")
class TruncatedNormal(keras.initializers.Initializer):
    """Truncated normal (±2σ), as Keras', but zeros while weights are about to be loaded
    (`Transformer.build(weights_follow=True)`).

    Args:
        stddev: float. σ before truncation.
        seed: optional int.
    """

    def __init__(self, stddev=0.02, seed=None):
        self.stddev = stddev
        self.seed = seed

    def scale(self, shape):
        return self.stddev

    def __call__(self, shape, dtype=None):
        if _WEIGHTS_FOLLOW.get() is not None:
            return _placeholder_zeros(shape, dtype)
        return keras.random.truncated_normal(
            shape, stddev=self.scale(shape), dtype=dtype, seed=self.seed
        )

    def get_config(self):
        return {"stddev": self.stddev, "seed": self.seed}

    def __eq__(self, other):  # by value: layers are asked for twice with fresh copies
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.get_config().items()))))


@dataclasses.dataclass
class ForwardContext:
    """Tensors every block of one forward pass needs.

    Attributes:
        attention_mask: bool `(batch, queries or 1, keys)`.
        rotary_embeddings: `(batch or 1, seq, key_size)` RoPE table, or None.
        position_ids: `(batch or 1, seq)` positions of the tokens, where layers need
            them (attention rotating by relative position itself, ReRoPE; UniVAE's
            latent slot), or None: 0…seq − 1.
        caches: list of per-layer `(key_cache, value_cache)` when decoding with a
            KV cache; each block replaces its entry with the updated cache.
        cache_update_index: int scalar, where the current tokens go in the caches.
    """

    attention_mask: object = None
    rotary_embeddings: object = None
    position_ids: object = None
    caches: list | None = None
    cache_update_index: object = None


def transformer_of(model):
    """The `Transformer` whose outputs `model` returns: a `TransformerModel`, or a
    functional model cut from one's tensors (bert4keras scripts'
    `Model(bert.inputs, bert.outputs[1])`); None for any other model."""
    if isinstance(model, TransformerModel):
        return model.transformer
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    owners = {id(getattr(tensor, OWNER, None)) for tensor in outputs or ()}
    transformer = getattr(outputs[0], OWNER, None) if outputs else None
    if transformer is None or len(owners) != 1 or len(inputs) != len(transformer.inputs) \
            or not all(a is b for a, b in zip(inputs, transformer.inputs)):
        return None
    return transformer


# The attribute of a built Transformer's output tensors that names it (they outlive the
# TransformerModel when a script keeps only a model cut from them).
OWNER = "_kerasformer_transformer"


@keras.saving.register_keras_serializable(package="kerasformer")
class TransformerModel(keras.Model):
    """The functional Keras model of a `Transformer`, which owns its config.

    `get_config` holds the architecture and its constructor arguments, so `.keras`
    files and `from_config` rebuild the same `Transformer` (reachable as
    `.transformer`), and a model loaded from a file can still be decoded from.
    """

    def __init__(self, transformer, inputs, outputs, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=transformer.name, **kwargs)
        self.transformer = transformer

    def call(self, inputs, training=None, mask=None, **kwargs):
        transformer = self.transformer
        if not (training and transformer.remat) or kwargs:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        # Training with remat: the same layers run block by block, each block
        # rematerialised (`Transformer.call_rematerialised`), instead of the graph.
        inputs = keras.tree.flatten(self._standardize_inputs(inputs))  # one input: a tensor
        for x, x_mask in zip(inputs, keras.tree.flatten(mask) if mask is not None else ()):
            if x_mask is not None:
                set_keras_mask(x, x_mask)
        outputs = transformer.call_rematerialised(
            dict(zip(transformer.input_names, inputs)), training=training
        )
        return outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else outputs

    def get_config(self):
        return self.transformer.get_config()

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kerasformer import architectures

        config = dict(config)
        architecture = architectures.get(config.pop("architecture"))
        return architecture.from_config(config).build()


class Transformer:
    """Base of the architectures.

    Subclasses implement `get_inputs`, `compute_context`, `apply_embeddings`,
    `apply_main_layers`, `apply_final_layers`, `weight_map` (bert4keras' names) and
    the checkpoint recognition class methods, and are registered with
    `kerasformer.architectures.register`.

    Args:
        vocab_size: int. Rows of the token embedding (replaced by the length of
            `keep_tokens`, plus `compound_tokens`, when those are given).
        hidden_size: int. Width of the blocks.
        num_hidden_layers: int. Number of blocks.
        num_attention_heads: int. Heads per attention layer.
        intermediate_size: int. Feed-forward width.
        hidden_act: str or list. Feed-forward activation ("gelu" is the erf GELU).
        dropout_rate: float. Hidden dropout (bert4keras skips the layers at 0).
        attention_dropout_rate: float. Dropout on attention weights.
        embedding_size: int. Embedding width; an `Embedding-Mapping` projects it to
            `hidden_size` when they differ (ALBERT-style factorisation).
        attention_head_size: int. Value head size; default `hidden_size // heads`.
        attention_key_size: int. Query/key head size; default the value head size.
        sequence_length: int. Fixed input length, or None for any length.
        keep_tokens: list of ints. Keep only these rows of the checkpoint's token
            embedding (and MLM bias), in this order — vocabulary pruning.
        compound_tokens: list. Extra tokens appended to the vocabulary, each the
            (weighted) average of existing rows: a list of ids, or `(ids, weights)`.
        application: "encoder", "lm" (causal) or "unilm" (seq2seq by segment).
        ignore_invalid_weights: bool. Load what matches and warn about the rest,
            instead of raising.
        prefix: str. Prepended to every layer name (to hold two models in one graph).
        name: str. Name of the Keras model.
        dtype: Keras dtype policy for every layer (e.g. "mixed_bfloat16"); softmax,
            norms and output probabilities are computed in float32 regardless.
        remat: bool. Gradient checkpointing: in training, each block is
            rematerialised as one unit — only its input is kept for the backward
            pass, which recomputes the block — with dropout replayed exactly (the
            recomputed pass draws the masks of the first). Same numbers, one more
            forward pass of the blocks, activation memory of one block instead of
            all. The graph, layer names and weights are those of `remat=False`;
            only how training runs differs (see `call_rematerialised`).
            (`keras.RematScope` is no substitute in Keras 3.15: around a model
            with dropout it fails on JAX — the `training` flag becomes a tracer —
            and on TensorFlow — keyword arguments in graph mode — and
            `keras.remat` around dropout leaks a tracer on JAX and recomputes other
            masks on TensorFlow.)
        layer_norm_cond: a `(batch, features)` Keras tensor of the caller's graph
            that conditions every layer normalisation (Conditional Layer
            Normalization, bert4keras' option of the same name): each gain and bias
            is shifted by a zero-initialised Dense of it, trained from there.
        layer_norm_cond_hidden_size: int. First map the condition through a
            bias-free Dense of this width in each normalisation.
        layer_norm_cond_hidden_act: activation of that Dense ("linear").
        additional_input_layers: a `keras.Input` or a list of them, appended to the
            model's inputs — those that `layer_norm_cond` is computed from.
            With either, `build()` returns a plain functional `keras.Model` over
            `[token_ids, segment_ids, *additional_input_layers]`; the conditional
            Dense layers start at their initializers, not from a checkpoint, and the
            compiled decode loop does not feed the condition (generate with a
            subclassed `AutoRegressiveDecoder`, as bert4keras' examples do).
    """

    architecture = None  # the `model=` name in build_transformer_model
    aliases = ()  # other `model=` names
    hf_model_types = ()  # `model_type`s of Hugging Face configs of this architecture
    # Hyper-parameters a config must provide (the rest have defaults).
    required_arguments = (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "hidden_act",
    )

    def __init__(
        self,
        vocab_size,
        hidden_size,
        num_hidden_layers,
        num_attention_heads,
        intermediate_size,
        hidden_act,
        dropout_rate=None,
        attention_dropout_rate=None,
        embedding_size=None,
        attention_head_size=None,
        attention_key_size=None,
        sequence_length=None,
        keep_tokens=None,
        compound_tokens=None,
        application="encoder",
        ignore_invalid_weights=False,
        prefix=None,
        name=None,
        dtype=None,
        remat=False,
        layer_norm_cond=None,
        layer_norm_cond_hidden_size=None,
        layer_norm_cond_hidden_act=None,
        additional_input_layers=None,
    ):
        for arg, value in [
            ("vocab_size", vocab_size),
            ("hidden_size", hidden_size),
            ("num_hidden_layers", num_hidden_layers),
            ("num_attention_heads", num_attention_heads),
            ("intermediate_size", intermediate_size),
        ]:
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if application not in APPLICATIONS:
            raise ValueError(
                f"application must be one of {APPLICATIONS}, got {application!r}"
            )
        if keep_tokens is not None:
            keep_tokens = [int(i) for i in keep_tokens]
            vocab_size = len(keep_tokens)
        if compound_tokens is not None:
            compound_tokens = [_compound_item(item) for item in compound_tokens]
            vocab_size += len(compound_tokens)
        if attention_head_size is None:
            if hidden_size % num_attention_heads:
                raise ValueError(
                    f"hidden_size {hidden_size} is not a multiple of "
                    f"num_attention_heads {num_attention_heads}; pass "
                    "attention_head_size explicitly"
                )
            attention_head_size = hidden_size // num_attention_heads
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = hidden_act
        self.dropout_rate = dropout_rate or 0.0
        self.attention_dropout_rate = attention_dropout_rate or 0.0
        self.embedding_size = int(embedding_size or hidden_size)
        self.attention_head_size = int(attention_head_size)
        self.attention_key_size = int(attention_key_size or attention_head_size)
        self.sequence_length = sequence_length
        self.keep_tokens = keep_tokens
        self.compound_tokens = compound_tokens
        self.application = application
        self.ignore_invalid_weights = ignore_invalid_weights
        self.prefix = prefix or ""
        self.name = name
        self.dtype = dtype
        self.remat = bool(remat)
        self.layer_norm_cond = _check_condition(layer_norm_cond)
        self.layer_norm_cond_hidden_size = layer_norm_cond_hidden_size
        self.layer_norm_cond_hidden_act = layer_norm_cond_hidden_act
        if additional_input_layers is not None and not isinstance(additional_input_layers, list):
            additional_input_layers = [additional_input_layers]
        for tensor in additional_input_layers or ():
            if not isinstance(tensor, keras.KerasTensor):
                raise TypeError(
                    f"additional_input_layers must hold keras.Input tensors, got {tensor!r}"
                )
        self.additional_input_layers = additional_input_layers
        if self.layer_norm_cond is None and (layer_norm_cond_hidden_size is not None
                                             or layer_norm_cond_hidden_act is not None):
            raise ValueError("layer_norm_cond_hidden_size / _act need a layer_norm_cond")
        if self.remat and self.is_graph_extended:
            raise ValueError(
                "remat cannot rematerialise a model with layer_norm_cond or "
                "additional_input_layers (their tensors belong to the caller's graph)"
            )
        self.layers = {}  # prefixed name -> layer, in creation order
        self.block_layers = {}  # block index -> names of the layers its first call created
        self.input_names = None  # keys of `get_inputs()`, in the model's input order
        self._layer_arguments = {}  # prefixed name -> (cls, kwargs) it was created with
        self.attention_layers = {}  # block index -> its (cache-holding) attention layer
        self._compiled_functions = {}
        self.inputs = self.outputs = self.model = None
        self.load_report = None

    # ------------------------------------------------------------------ layers

    @property
    def initializer(self):
        """Kernel and embedding initializer (BERT's truncated normal, σ = 0.02)."""
        return TruncatedNormal(stddev=0.02)

    def layer(self, name, cls, **kwargs):
        """The layer called `name` (prefixed), created as `cls(**kwargs)` on first use.

        Every layer gets the model's dtype policy unless `dtype` is given. Asking
        again for `name` returns the same layer; asking with another class or other
        arguments is an error, not a silently different layer.
        """
        name = self.prefix + name
        kwargs.setdefault("dtype", self.dtype)
        if name not in self.layers:
            self.layers[name] = cls(name=name, **kwargs)
            self._layer_arguments[name] = (cls, kwargs)
        elif self._layer_arguments[name] != (cls, kwargs):
            first_cls, first = self._layer_arguments[name]
            changed = sorted(
                key for key in {*first, *kwargs} if first.get(key) != kwargs.get(key)
            )
            raise ValueError(
                f"layer {name!r} was created as {first_cls.__name__} with other arguments "
                f"than now {cls.__name__} ({', '.join(changed) or 'class'} differ)"
            )
        return self.layers[name]

    @property
    def is_graph_extended(self):
        """Whether the model takes tensors of the caller's graph (`GRAPH_ARGUMENTS`)."""
        return self.layer_norm_cond is not None or bool(self.additional_input_layers)

    def norm_arguments(self):
        """The conditional-normalisation arguments of every layer normalisation."""
        if self.layer_norm_cond is None:
            return {}
        return {
            "conditional": True,
            "hidden_units": self.layer_norm_cond_hidden_size,
            "hidden_activation": self.layer_norm_cond_hidden_act or "linear",
            "hidden_initializer": self.initializer,
        }

    def normalize(self, layer, x):
        """Calls a normalisation layer on `x`, with the condition when there is one."""
        if self.layer_norm_cond is None:
            return layer(x)
        return layer([x, self.layer_norm_cond])

    def dropout(self, x, name, rate=None):
        """Dropout named `name`, skipped entirely at rate 0 (as in bert4keras)."""
        rate = self.dropout_rate if rate is None else rate
        if not rate:
            return x
        return self.layer(name, keras.layers.Dropout, rate=rate)(x)

    def call_attention(self, layer, x, index, context):
        """Calls an attention layer of block `index`, threading its KV cache."""
        self.attention_layers[index] = layer
        kwargs = {"attention_mask": context.attention_mask}
        if context.rotary_embeddings is not None:
            kwargs["rotary_embeddings"] = context.rotary_embeddings
        if context.position_ids is not None:
            kwargs["position_ids"] = context.position_ids
        if context.caches is None:
            return layer(x, **kwargs)
        x, context.caches[index] = layer(
            x,
            cache=context.caches[index],
            cache_update_index=context.cache_update_index,
            **kwargs,
        )
        return x

    # ------------------------------------------------------------------- model

    def get_inputs(self):
        """The `keras.Input`s of the model, as a dict name -> Input."""
        raise NotImplementedError

    def compute_context(self, inputs):
        """The attention mask (and position tables) shared by all blocks."""
        mask = self.layer("Attention-Mask", AttentionMask, application=self.application)
        context = ForwardContext(
            attention_mask=mask(inputs["token_ids"], inputs.get("segment_ids")),
            position_ids=inputs.get("position_ids"),
        )
        return self.add_positions(context, inputs)

    def add_positions(self, context, inputs):
        """Adds the position tables the blocks need (RoPE) to `context`."""
        return context

    def apply_embeddings(self, inputs, context):
        raise NotImplementedError

    def apply_main_layers(self, x, index, context):
        raise NotImplementedError

    def apply_final_layers(self, x, context):
        raise NotImplementedError

    def call(self, inputs):
        """Runs the whole model on a dict of inputs; returns its outputs."""
        context = self.compute_context(inputs)
        x = self.apply_embeddings(inputs, context)
        for index in range(self.num_hidden_layers):
            created = len(self.layers)
            x = self.apply_main_layers(x, index, context)
            self.block_layers.setdefault(index, list(self.layers)[created:])
        return self.apply_final_layers(x, context)

    def call_rematerialised(self, inputs, training=None):
        """`call` with each block rematerialised as one unit (`remat=True` training).

        The functional model runs this instead of its graph when it trains with
        `remat`: the same layers on the same tensors, but each block is a
        rematerialised function (`keras.remat`; on JAX a custom VJP, see
        `kerasformer.training.replay.rematerialise`) of its input and of the context tensors, so the backward
        pass keeps the block's input only and recomputes the rest.
        Dropout inside a block is replayed: the block's seed generators advance once,
        here, and the block reads their states as explicit inputs
        (`kerasformer.training.replay`), so the recomputed pass draws the masks of
        the first — and the masks the plain model would have drawn. `training`
        reaches the block's layers explicitly, as TensorFlow and PyTorch re-run the
        block outside the model's call.
        """
        with _training_call_context(training):
            context = self.compute_context(inputs)
            x = self.apply_embeddings(inputs, context)
            for index in range(self.num_hidden_layers):
                x = self._rematerialised_block(x, index, context, training)
            return self.apply_final_layers(x, context)

    def _rematerialised_block(self, x, index, context, training):
        from kerasformer.training.replay import rematerialise, replayable, seed_generators

        if index not in self.block_layers:
            raise RuntimeError(
                f"remat: no layers are recorded for block {index}; a Transformer "
                "subclass that overrides `call` must record `block_layers` as "
                "`Transformer.call` does"
            )
        generators = []
        for name in self.block_layers[index]:
            for generator in seed_generators(self.layers[name]):
                if all(generator is not g for g in generators):
                    generators.append(generator)
        states = [generator.next() for generator in generators]
        # The context's tensors are explicit inputs of the block, never closures.
        names = [
            field.name for field in dataclasses.fields(context)
            if getattr(context, field.name) is not None
        ]
        values = [getattr(context, name) for name in names]
        # TensorFlow's recomputation cannot take boolean inputs (the mask): they
        # travel as uint8.
        booleans = [keras.backend.standardize_dtype(v.dtype) == "bool" for v in values]
        values = [
            keras.ops.cast(v, "uint8") if boolean else v for v, boolean in zip(values, booleans)
        ]

        def block(x, *values):
            values = [
                keras.ops.cast(v, "bool") if boolean else v
                for v, boolean in zip(values, booleans)
            ]
            with _training_call_context(training):
                block_context = dataclasses.replace(context, **dict(zip(names, values)))
                return self.apply_main_layers(x, index, block_context)

        weights = []
        for name in self.block_layers[index]:
            for weight in self.layers[name].weights:
                if all(weight is not w for w in weights):
                    weights.append(weight)
        mask = get_keras_mask(x)
        run = replayable(block, generators, remat=False)  # run(*states, x, *values)
        x = rematerialise(run, weights)(*states, x, *values)
        if mask is not None:  # a block keeps the padding mask of its input
            set_keras_mask(x, mask)
        return x

    def call_with_cache(self, inputs, attention_mask, caches, cache_update_index):
        """Runs the embeddings and blocks on new tokens, reading and filling KV caches.

        The one forward pass of decoding: the same layers as the Keras model, on
        explicit positions and masks, so any architecture decodes with one loop.

        Args:
            inputs: dict with `token_ids`, `segment_ids` (if the model has
                segments) and `position_ids`, each `(batch, new_tokens)`.
            attention_mask: bool `(batch, new_tokens or 1, cache_length)`.
            caches: list of per-block caches from `init_caches`.
            cache_update_index: int scalar, cache position of the first new token.

        Returns:
            `(hidden states (batch, new_tokens, hidden_size), updated caches)`.
        """
        context = self.cache_context(inputs, attention_mask, caches, cache_update_index)
        context = self.add_positions(context, inputs)
        x = self.apply_embeddings(inputs, context)
        for index in range(self.num_hidden_layers):
            x = self.apply_main_layers(x, index, context)
        return x, context.caches

    def cache_context(self, inputs, attention_mask, caches, cache_update_index):
        """The `ForwardContext` of a `call_with_cache` pass (before its positions)."""
        return ForwardContext(
            attention_mask=attention_mask,
            position_ids=inputs.get("position_ids"),
            caches=list(caches),
            cache_update_index=cache_update_index,
        )

    def init_caches(self, batch_size, max_length):
        """Zero KV caches for `call_with_cache`, one per block."""
        self.build()
        return [
            self.attention_layers[index].init_cache(batch_size, max_length)
            for index in range(self.num_hidden_layers)
        ]

    # -------------------------------------------------------- decoder protocol

    def logits(self, x):
        """Vocabulary logits of hidden states `x` through the (tied) LM head."""
        raise NotImplementedError(f"{self.architecture} has no language-model head")

    def max_positions(self):
        """The longest sequence the model can take, or None when positions are
        unbounded (rotary)."""
        return None

    @property
    def uses_segments(self):
        """Whether the model takes segment ids next to token ids."""
        return False

    @property
    def causal_prefix(self):
        """Whether a prefix token sees only the prefix before it (a causal LM), not
        the whole prefix (a UniLM source)."""
        return self.application == "lm"

    def can_decode(self):
        """None if the decode loop can run this model, else the reason it cannot."""
        if self.application not in ("unilm", "lm"):
            return (
                "decoding needs a model built with application='unilm' or 'lm', not "
                f"{self.application!r}"
            )
        if self.is_graph_extended:
            return (
                "the decode loop feeds token and segment ids only, not the inputs of "
                "layer_norm_cond / additional_input_layers"
            )
        return None

    def build(self, weights_follow=False):
        """Creates the functional `TransformerModel` (once) and returns it.

        Args:
            weights_follow: bool. Every weight is about to be loaded: create the
                variables without random initialisation.
        """
        if self.model is None:
            # the conditional Dense layers are not loaded: they keep their initializers
            weights_follow = weights_follow and self.layer_norm_cond is None
            context = _weights_follow() if weights_follow else contextlib.nullcontext()
            with context:
                inputs = self.get_inputs()
                outputs = self.call(inputs)
            self.input_names = list(inputs)
            self.inputs = list(inputs.values()) + list(self.additional_input_layers or ())
            self.outputs = outputs if isinstance(outputs, list) else [outputs]
            # one input is not a list: a model of token ids alone takes a bare array
            inputs = self.inputs[0] if len(self.inputs) == 1 else self.inputs
            if self.is_graph_extended:
                self.model = keras.Model(inputs, outputs, name=self.name)
            else:
                self.model = TransformerModel(self, inputs, outputs)
            for tensor in self.outputs:
                setattr(tensor, OWNER, self)
        return self.model

    # ------------------------------------------------------------ distribution

    @classmethod
    def layout_rules(cls):
        """How each weight of this architecture is sharded: `{path regex: axes}`.

        Keys are regular expressions that fully match a variable path without the
        `prefix` (e.g. `r"Transformer-\\d+-FeedForward/o_dense/kernel"`); values give,
        per axis of the variable, `MODEL` (sharded over the model-parallel mesh
        axis), `DATA` (sharded over the data-parallel axis, ZeRO-3 / FSDP style: each
        replica stores a slice and XLA gathers it where it is used) or None
        (not sharded). A rule whose axes are all None replicates its variables
        deliberately: every weight of the architecture matches exactly one rule.
        The base class has none (everything replicated).
        """
        return {}

    @classmethod
    def get_layout_map(
        cls, device_mesh, model_parallel_dim_name="model", data_parallel_dim_name="batch"
    ):
        """A `keras.distribution.LayoutMap` of this architecture's weights.

        For `keras.distribution.ModelParallel` (JAX): Megatron-style tensor
        parallelism over `model_parallel_dim_name` — attention query/key/value and
        feed-forward input kernels split by output column (heads, hidden units),
        attention and feed-forward output kernels split by input row, so each
        block needs one reduction per sub-layer — with the token, segment and
        position tables split along their hidden axis (vocabularies need not be
        divisible by the mesh; hidden sizes are). The other axis of each projection
        kernel is split over `data_parallel_dim_name` (ZeRO-3 / FSDP; pass None to
        keep weights whole on every data-parallel replica). Norms, output biases and
        small heads are replicated. See `layout_rules` for the table and
        `kerasformer.distribution` for ready-made distributions.

        Keys match variable paths with any layer-name prefix, so models built with
        `prefix=` are covered too.

        Args:
            device_mesh: `keras.distribution.DeviceMesh` with both axes.
            model_parallel_dim_name: str. Mesh axis that splits the weights.
            data_parallel_dim_name: str or None. Mesh axis of the batch, which also
                splits the other axis of the large weights; None: not at all.
        """
        names = {MODEL: model_parallel_dim_name, DATA: data_parallel_dim_name}
        layout_map = keras.distribution.LayoutMap(device_mesh)
        for pattern, axes in cls.layout_rules().items():
            layout_map[LAYOUT_PREFIX + pattern] = tuple(names.get(axis) for axis in axes)
        return layout_map

    # ----------------------------------------------------------------- weights

    def weight_map(self, layout="tf"):
        """The `WeightMap` of checkpoints of `layout`.

        Args:
            layout: "tf" for the original TF checkpoints (names like
                `bert/encoder/layer_0/...`), "hf" for PyTorch / safetensors files in
                the Hugging Face layout (names like `roformer.encoder.layer.0...`).
        """
        raise NotImplementedError

    @classmethod
    def standard_config(cls, config):
        """`config` in bert4keras' keys (`hidden_size`, `num_hidden_layers`, ...): an
        architecture whose Hugging Face configs name them otherwise translates here."""
        return config

    @classmethod
    def recognises_checkpoint(cls, names):
        """Whether tensor names (of either layout) are those of this architecture's
        checkpoints. Architectures make their tests exclusive of each other's."""
        return False

    @classmethod
    def recognises_config(cls, config):
        """Whether a Hugging Face config.json describes this architecture."""
        return str(config.get("model_type", "")).lower() in cls.hf_model_types

    def vocab_transform(self):
        """Applies `keep_tokens` / `compound_tokens` to rows of vocabulary tensors."""
        keep, compound = self.keep_tokens, self.compound_tokens
        if keep is None and compound is None:
            return None

        def apply(array):
            array = array.astype(np.float32)
            if keep is not None:
                if keep and max(keep) >= len(array):
                    raise ValueError(
                        f"keep_tokens refers to id {max(keep)} but the checkpoint "
                        f"vocabulary has {len(array)} tokens"
                    )
                array = array[keep]
            if compound is not None:
                extra = [np.average(array[ids], 0, weights) for ids, weights in compound]
                array = np.concatenate([array, np.stack(extra)]).astype(np.float32)
            return array

        def shape(source_shape):
            rows = source_shape[0] if keep is None else len(keep)
            return (rows + len(compound or ()),) + tuple(source_shape[1:])

        return Transform("vocabulary", apply, shape)

    def load_weights_from_checkpoint(self, checkpoint, mapping=None, progress=None):
        """Fills the model from a checkpoint, strictly (see `convert.weights`).

        Args:
            checkpoint: an original TF checkpoint (prefix, `.index` file or
                directory), a `pytorch_model.bin` or `.safetensors` file in the
                Hugging Face layout, or a mapping of tensor names to arrays.
            mapping: optional weight map (variable path without prefix -> source
                name or `Source`) replacing `weight_map()`.
            progress: optional label of a progress bar over the variables.

        Returns:
            The `LoadReport` (also kept as `self.load_report`).
        """
        self.build(weights_follow=not self.ignore_invalid_weights)
        variables = {variable.path: variable for variable in self.checkpoint_variables()}
        source, weight_map, original = self.checkpoint_source(checkpoint, mapping)
        self.load_report = load_weights(
            variables,
            source,
            weight_map,
            ignore_invalid_weights=self.ignore_invalid_weights,
            source_description=_describe(checkpoint),
            hint=lambda report: architecture_hint(original.keys(), self.architecture),
            progress=progress,
        )
        return self.load_report

    def checkpoint_source(self, checkpoint, mapping=None):
        """`(tensors, weight map, opened checkpoint)`: the checkpoint opened, under the
        names its layout's weight map reads (canonical HF names), and that map with
        the model's variable paths (prefix included)."""
        original = open_checkpoint(checkpoint)
        weight_map = self.weight_map(checkpoint_layout(original.keys()))
        if mapping is not None:
            weight_map = dataclasses.replace(weight_map, sources=dict(mapping))
        source = original
        if weight_map.prefix:
            source = canonical_hf_names(original, weight_map.prefix)
        weight_map = dataclasses.replace(weight_map, sources={
            self.prefix + path: src if not isinstance(src, str) else Source(src)
            for path, src in weight_map.sources.items()
        })
        return source, weight_map, original

    def plan_checkpoint(self, checkpoint, variables):
        """What loading `checkpoint` into `variables` (path -> anything with a
        `.shape`) reads: `(tensors, [(variable path, Source)])`, checked strictly as
        `load_weights_from_checkpoint` checks, without reading a tensor."""
        source, weight_map, original = self.checkpoint_source(checkpoint)
        _, planned = plan_weights(
            variables, source, weight_map, source_description=_describe(checkpoint),
            hint=lambda report: architecture_hint(original.keys(), self.architecture))
        return source, planned

    @classmethod
    def skeleton_config(cls, config):
        """`config` (of `get_config`) with every width 2 per head: a model with the same
        layers and variable names as `config`'s, in no memory to speak of. The
        vocabulary and positions stay (they decide no layer), as does the depth."""
        heads = config["num_attention_heads"]
        skeleton = {**config, "dtype": None, "hidden_size": 2 * heads, "intermediate_size": 2}
        for key in ("attention_head_size", "attention_key_size"):
            if config.get(key) is not None:
                skeleton[key] = 2
        embedding = config.get("embedding_size")
        if embedding is not None:
            skeleton["embedding_size"] = 2 * heads if embedding == config["hidden_size"] else 3
        return skeleton

    def abstract_variables(self):
        """{path: variable} of the variables a checkpoint fills, each with its shape
        and dtype but no value: a copy of this model built in a stateless scope that
        does not initialise them, so a converter can plan a 2.6B-parameter model in
        no memory."""
        copy = type(self).from_config(self.get_config())
        with keras.StatelessScope(initialize_variables=False):
            copy.build(weights_follow=True)
        variables = copy.checkpoint_variables()
        # Keras keeps variables created in a stateless scope in a global list and
        # initialises them all at the next scope's exit: these must never be.
        ours = {id(variable) for variable in variables}
        pending = global_state.get_global_attribute("uninitialized_variables") or []
        global_state.set_global_attribute(
            "uninitialized_variables", [v for v in pending if id(v) not in ours])
        return {variable.path: variable for variable in variables}

    def save_weights_as_checkpoint(self, filename, mapping=None, dtype=None):
        """Writes the weights as an original TF checkpoint (bert4keras' method), with
        the tensor names of `weight_map("tf")`: bert4keras, TensorFlow and
        `load_weights_from_checkpoint` read it back.

        Args:
            filename: checkpoint prefix, e.g. "out/bert_model.ckpt" (the `.index`,
                `.data-00000-of-00001` and `checkpoint` files are written atomically).
            mapping: optional {variable path: tensor name} replacing the weight map.
            dtype: optional numpy dtype to store the tensors as (e.g. "float16").

        A pruned or extended vocabulary (`keep_tokens`, `compound_tokens`) is saved as
        the model has it, as bert4keras does.
        """
        from kerasformer.convert.tf_checkpoint import write_checkpoint

        self.build()
        sources = dict(mapping) if mapping is not None else self.weight_map("tf").sources
        tensors = []
        for variable in self.checkpoint_variables():
            path = variable.path[len(self.prefix):]
            source = sources.get(path)
            if isinstance(source, str):
                source = Source(source)
            if not isinstance(source, Source):
                why = f": {source.reason}" if source is not None else ""
                raise ValueError(
                    f"variable {variable.path!r} has no tensor name in the {self.architecture} "
                    f"TF checkpoint layout{why}; pass mapping= to name it"
                )
            value = keras.ops.convert_to_numpy(variable)
            if source.transform is not None:
                if source.transform.name == "transpose":
                    value = np.ascontiguousarray(value.T)
                elif source.transform.name != "vocabulary":
                    raise ValueError(f"cannot invert the {source.transform.name!r} transform "
                                     f"of {variable.path!r}")
            if dtype is not None:
                value = value.astype(dtype)
            tensors.append((source.name, value))
        write_checkpoint(filename, tensors)

    def checkpoint_variables(self):
        """The variables a checkpoint fills: all of the model's, but for the layers of
        the caller's graph and the conditional normalisations' Dense layers."""
        if not self.is_graph_extended:
            return list(self.model.weights)
        added = {id(variable) for layer in self.layers.values()
                 for variable in getattr(layer, "condition_weights", ())}
        return [variable for layer in self.layers.values() for variable in layer.weights
                if id(variable) not in added]

    # ------------------------------------------------------------------ config

    def get_config(self):
        """The architecture and the constructor arguments that rebuild this model
        (without those that only say how weights were loaded)."""
        config = {"architecture": self.architecture}
        if self.is_graph_extended:
            raise ValueError(
                "a model built with layer_norm_cond / additional_input_layers has no "
                "config of its own: save its Keras model, which keeps the whole graph"
            )
        for name in sorted(self.argument_names() - {*LOADING_ARGUMENTS, *GRAPH_ARGUMENTS}):
            config[name] = getattr(self, name)
        config["vocab_size"] = self.vocab_size  # after keep_tokens / compound_tokens
        config["prefix"] = self.prefix or None
        if self.dtype is not None and not isinstance(self.dtype, str):
            config["dtype"] = keras.dtype_policies.serialize(self.dtype)
        return config

    @classmethod
    def from_config(cls, config):
        """The (unbuilt) `Transformer` of a `get_config()` dict."""
        config = dict(config)
        config.pop("architecture", None)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    @classmethod
    def argument_names(cls):
        """Every constructor argument of the architecture, through its base classes."""
        names = set()
        for klass in cls.__mro__:
            if klass is object or not issubclass(klass, Transformer):
                continue
            for parameter in inspect.signature(klass.__init__).parameters.values():
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                    names.add(parameter.name)
        names.discard("self")
        return names

    @property
    def compiled_functions(self):
        """Compiled decoding / encoding functions of this model, by shape bucket."""
        return self._compiled_functions

    @property
    def num_parameters(self):
        return int(sum(math.prod(w.shape) for w in self.build().weights))


def _check_condition(condition):
    """`layer_norm_cond`: None, or a `(batch, features)` Keras tensor."""
    if condition is None:
        return None
    if not isinstance(condition, keras.KerasTensor):
        raise TypeError(
            "layer_norm_cond must be a Keras tensor of the caller's graph (say the output "
            f"of an Embedding of an extra keras.Input), got {type(condition).__name__}"
        )
    if len(condition.shape) != 2:
        raise ValueError(
            f"layer_norm_cond must be (batch, features), got shape {tuple(condition.shape)}"
        )
    return condition


def _compound_item(item):
    """Normalises a `compound_tokens` item to `(ids, weights)`."""
    if isinstance(item, tuple) and len(item) == 2 and not np.isscalar(item[0]):
        ids, weights = item
    else:
        ids, weights = item, [1] * len(item)
    ids, weights = [int(i) for i in ids], list(weights)
    if not ids or len(ids) != len(weights):
        raise ValueError(f"invalid compound_tokens item {item!r}")
    return ids, weights


def architecture_hint(names, architecture):
    """Advice for a checkpoint that does not fit `architecture`, or None."""
    from kerasformer import architectures

    guess = architectures.recognise_checkpoint(names)
    if guess is None or guess == architecture:
        return None
    return (
        f"These tensor names look like a {guess!r} checkpoint, not {architecture!r}: "
        f"try model={guess!r}."
    )


def _describe(checkpoint):
    if isinstance(checkpoint, (str, bytes)) or hasattr(checkpoint, "__fspath__"):
        return f"checkpoint {str(checkpoint)!r}"
    return "the checkpoint"
