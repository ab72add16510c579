"""BERT-of-Theseus: compressing a fine-tuned classifier by module replacement
(Xu et al. 2020, https://arxiv.org/abs/2002.02925; Su, https://kexue.fm/archives/7575).

The predecessor — a fine-tuned `TextClassifier`, or a `SimilarityModel` whose sentence
vectors are to be kept, with N blocks — is frozen. Its blocks
are cut into M modules of N/M consecutive blocks; the successor has one block per
module. In each training step, for each module, ONE Bernoulli(p) draw decides whether
the successor block runs in place of the module (p: the replacement rate). The
successor thus learns to take over each module in the context of the others. At
inference (`training=False`) the successor runs alone; `successor_task()` is it as a
stand-alone task of the predecessor's kind.

For a classifier the output is the (shared, frozen) head's probabilities, trained with
the labels' cross-entropy. For a similarity model it is the sentence vector of the
successor's own pooler (a frozen copy of the predecessor's), trained with any loss of
vectors — RoFormer-Sim's own distillation, the predecessor's vectors as targets
(`kerasformer.training.losses.similarity_distillation`), or CoSENT on scored pairs.

What follows the official implementation (JetRunner/BERT-of-Theseus):

- the successor's block i starts as the predecessor's block i (`init="first"`,
  the official deep copies of the first M layers; `init="every_kth"` takes blocks
  0, k, 2k, … — the first block of each module, as DistilBERT takes every other
  layer —, `init=None` keeps a given successor's own weights, as bert4keras' example
  loads a pre-trained M-layer model);
- only the successor's blocks train: the predecessor, the classifier head and the
  embeddings stay frozen. The embeddings are the successor's own layers, copied from
  the predecessor (the official model shares them, frozen: the same numbers);
  `train_embeddings=True` trains them (bert4keras' example trains its successor's
  embeddings), `train_head=True` the head;
- one draw per module per step, and only the chosen path runs (`keras.ops.cond`: a
  real conditional under `jit` on JAX and TensorFlow, an `if` on PyTorch), unlike
  bert4keras' example, which runs both paths and mixes them (twice the cost), and
  also mixes the two embedding outputs;
- the replacement rate is constant (`ConstantReplacement(p, replacing_steps)`: p,
  then 1 once `replacing_steps` optimizer updates are done) or linear
  (`LinearReplacement(b, k)`: `p_t = min(1, k·t + b)`), `t` the optimizer updates
  done before the step (`optimizer.iterations`, read inside the compiled step), as
  the official schedulers step once per optimizer step. The official code refuses
  p = 0; here p = 0 runs the predecessor alone (useful to check a set-up).

Dropout inside a module keeps working under the conditional: each block's dropout
seeds are advanced outside it and read as explicit inputs inside
(`kerasformer.training.replay.replayable`), so neither branch leaks a state update.
"""
import re

import keras
from keras import ops

from kerasformer.training.replay import replayable, seed_generators

INITS = ("first", "every_kth", None)
# A block's variables: `Transformer-{index}-{layer}/...` after the transformer's prefix.
BLOCK_PATH = re.compile(r"^Transformer-(\d+)-(.*)$")
# Config entries a successor may set otherwise than its predecessor.
FREE_ARGUMENTS = ("num_hidden_layers", "dropout_rate", "attention_dropout_rate", "name",
                  "prefix", "remat")


class ReplacementSchedule:
    """The replacement rate `p_t` after `t` optimizer updates (a float or a scalar
    tensor `t`; returns the same kind)."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError


class ConstantReplacement(ReplacementSchedule):
    """`p`, and 1 from `replacing_steps` updates on (the official
    `ConstantReplacementScheduler`; None: `p` throughout).

    Args:
        rate: float in [0, 1].
        replacing_steps: int or None.
    """

    def __init__(self, rate=0.5, replacing_steps=None):
        self.rate = _check_rate(rate, "rate")
        if replacing_steps is not None and (isinstance(replacing_steps, bool)
                                            or not isinstance(replacing_steps, int)
                                            or replacing_steps < 0):
            raise ValueError(f"replacing_steps must be a non-negative integer or None, "
                             f"got {replacing_steps!r}")
        self.replacing_steps = replacing_steps

    def __call__(self, step):
        if self.replacing_steps is None:
            return self.rate if _is_number(step) else ops.full((), self.rate, "float32")
        if _is_number(step):
            return 1.0 if step >= self.replacing_steps else self.rate
        return ops.where(ops.greater_equal(step, self.replacing_steps), 1.0, self.rate)

    def get_config(self):
        return {"rate": self.rate, "replacing_steps": self.replacing_steps}


class LinearReplacement(ReplacementSchedule):
    """`p_t = min(1, k·t + b)` (the official `LinearReplacementScheduler`; its README
    runs `b = 0.3, k = 0.0006`).

    Args:
        base_rate: float in [0, 1], `b`.
        k: float ≥ 0, the increase per optimizer update.
    """

    def __init__(self, base_rate=0.3, k=0.0006):
        self.base_rate = _check_rate(base_rate, "base_rate")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not k >= 0:
            raise ValueError(f"k must be a number >= 0, got {k!r}")
        self.k = float(k)

    def __call__(self, step):
        if _is_number(step):
            return min(1.0, self.k * step + self.base_rate)
        return ops.minimum(1.0, self.k * ops.cast(step, "float32") + self.base_rate)

    def get_config(self):
        return {"base_rate": self.base_rate, "k": self.k}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_rate(rate, name):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {rate!r}")
    return float(rate)


class Theseus(keras.Model):
    """A predecessor and its successor in one model for `fit`.

    Inputs are `[token_ids, segment_ids]` (`TextClassifier.encode_batch`; for a
    similarity model, token ids of texts encoded alone and zero segments); outputs the
    head's probabilities (compile with `sparse_categorical_crossentropy`), or, for a
    similarity model, the pooled sentence vectors (compile with a loss of vectors,
    e.g. `lambda teacher, vectors: similarity_distillation(vectors, teacher)` with the
    predecessor's vectors as targets). Logged besides the loss: `replacement_rate`,
    the mean p of the epoch's steps.

    Args:
        predecessor: the fine-tuned `TextClassifier`, or a `SimilarityModel` (N
            blocks). Its model is frozen in place (`trainable = False`), as
            bert4keras' script freezes it; set it back to train the predecessor again.
        successor: M, the successor's number of blocks (N divisible by M; the
            successor is the predecessor's architecture and config with M blocks),
            or an encoder `Transformer` of that architecture and config with M
            blocks (dropout, name and prefix may differ).
        replacement_rate: a float p (constant), or a `ReplacementSchedule`
            (`ConstantReplacement`, `LinearReplacement`, or one's own).
        init: how the successor starts: "first" (block i ← predecessor block i, the
            official), "every_kth" (block i ← predecessor block i·N/M), or None (as
            it is; for a given successor). Embeddings are copied unless None.
        train_embeddings: bool. Train the successor's embeddings (official: frozen;
            with `init=None` and a pre-trained successor, as bert4keras' example,
            its embeddings are not the fine-tuned ones: train them).
        train_head: bool. Train the classifier head, or the successor's pooler
            (official: frozen).
        seed: int. Seed of the replacement draws.
        **kwargs: `keras.Model` arguments (`name`).

    Attributes:
        predecessor: the `TextClassifier` or `SimilarityModel`.
        successor: the successor's `Transformer`.
        schedule: the `ReplacementSchedule`.
        head: the predecessor's `ClassifierHead`, shared; None for a similarity model
            (the successor's pooler ends the forward pass).
    """

    def __init__(self, predecessor, successor, replacement_rate=0.5, init="first",
                 train_embeddings=False, train_head=False, seed=None, **kwargs):
        from kerasformer.models.classifier import TextClassifier
        from kerasformer.models.similarity import SimilarityModel

        kwargs.setdefault("name", "theseus")
        super().__init__(**kwargs)
        if not isinstance(predecessor, (TextClassifier, SimilarityModel)):
            raise TypeError("the predecessor must be a fine-tuned TextClassifier or a "
                            f"SimilarityModel, got {type(predecessor).__name__}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.schedule = (replacement_rate if isinstance(replacement_rate, ReplacementSchedule)
                         else ConstantReplacement(replacement_rate))
        self.predecessor = predecessor
        self.successor = _successor(predecessor.transformer, successor, init is not None)
        before = predecessor.transformer.num_hidden_layers
        self.num_modules = self.successor.num_hidden_layers
        self.blocks_per_module = before // self.num_modules
        if init is not None:
            stride = 1 if init == "first" else self.blocks_per_module
            _initialise(self.successor, predecessor.transformer, stride)

        predecessor.model.trainable = False
        in_blocks = {name for names in self.successor.block_layers.values() for name in names}
        for name, layer in self.successor.layers.items():
            if name not in in_blocks:  # the embeddings (and weightless mask / position layers)
                layer.trainable = bool(train_embeddings)
        self.head = getattr(predecessor, "head", None)
        if self.head is not None:
            self.head.trainable = bool(train_head)
        else:
            for name in ("Pooler", "Pooler-Dense"):
                self.successor.layers[self.successor.prefix + name].trainable = bool(train_head)
        # Tracked, so that the trainers see every variable the steps read.
        self.predecessor_encoder = predecessor.encoder
        self.successor_encoder = self.successor.model
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rate_tracker = keras.metrics.Mean(name="replacement_rate")
        self._step = None  # the optimizer's update count inside a JAX train step
        self.built = True

    # --------------------------------------------------------------- the rate

    def replacement_rate(self, step=None):
        """p after `step` optimizer updates (default: the optimizer's count now)."""
        if step is None:
            optimizer = getattr(self, "optimizer", None)
            step = 0 if optimizer is None else int(ops.convert_to_numpy(optimizer.iterations))
        return float(self.schedule(step))

    def _current_rate(self):
        """p of the running step, as a tensor: from the optimizer's iterations (on JAX
        the value the train step was given, see `compute_loss_and_updates`)."""
        step = self._step
        if step is None:
            optimizer = getattr(self, "optimizer", None)
            step = 0 if optimizer is None else optimizer.iterations
        return ops.cast(self.schedule(ops.cast(ops.convert_to_tensor(step), "float32")), "float32")

    def compute_loss_and_updates(self, *args, optimizer_variables=None, **kwargs):
        # JAX's train step reads the optimizer's variables as inputs; the model's call
        # would otherwise read `iterations` as a constant of the compiled step.
        optimizer = getattr(self, "optimizer", None)
        if optimizer_variables is None or optimizer is None:
            return super().compute_loss_and_updates(
                *args, optimizer_variables=optimizer_variables, **kwargs)
        with keras.StatelessScope(state_mapping=list(zip(optimizer.variables,
                                                         optimizer_variables))):
            self._step = ops.convert_to_tensor(optimizer.iterations)
        try:
            return super().compute_loss_and_updates(
                *args, optimizer_variables=optimizer_variables, **kwargs)
        finally:
            self._step = None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
        if training:
            self.rate_tracker.update_state(self._current_rate())
            if keras.backend.backend() == "torch":
                # A step that replaced no module reads no trainable weight: PyTorch's
                # backward would fail on a loss without a graph. A zero term keeps
                # every trainable weight in it (a zero gradient, as on JAX and
                # TensorFlow, and as PyTorch's zeroed gradients of 2020 were).
                loss = loss + sum(ops.sum(variable.value) * 0.0
                                  for variable in self.trainable_variables)
        return loss

    # ---------------------------------------------------------------- forward

    def call(self, inputs, training=None):
        successor = self.successor
        if isinstance(inputs, dict):
            inputs = [inputs[name] for name in successor.input_names]
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(inputs) != len(successor.input_names):
            raise ValueError(f"Theseus takes {successor.input_names}, got {len(inputs)} inputs")
        feed = dict(zip(successor.input_names, inputs))
        context = successor.compute_context(feed)
        x = successor.apply_embeddings(feed, context)
        if not training:
            for index in range(self.num_modules):
                x = successor.apply_main_layers(x, index, context)
        else:
            replaced = ops.less(keras.random.uniform((self.num_modules,), seed=self.seed_generator),
                                self._current_rate())
            for index in range(self.num_modules):
                x = self._module(x, index, context, replaced[index])
        if self.head is None:
            return successor.apply_pooler(x)  # (batch, hidden)
        return self.head([x, feed["token_ids"]])

    def _module(self, x, index, context, replaced):
        """Module `index` in training: the successor's block if `replaced`, else the
        predecessor's blocks of the module — one of them runs."""
        successor, predecessor = self.successor, self.predecessor.transformer
        first = index * self.blocks_per_module
        blocks = range(first, first + self.blocks_per_module)

        def run_successor(y):
            return successor.apply_main_layers(y, index, context)

        def run_predecessor(y):
            for block in blocks:
                y = predecessor.apply_main_layers(y, block, context)
            return y

        new = _replayed(run_successor, _block_generators(successor, [index]))
        old = _replayed(run_predecessor, _block_generators(predecessor, blocks))
        return ops.cond(replaced, lambda: new(x), lambda: old(x))

    # ----------------------------------------------------------------- export

    def successor_task(self):
        """The successor as a stand-alone task of the predecessor's kind (copies of
        the weights as they are now): a `TextClassifier` with the head, or a
        `SimilarityModel` (its MLM head the predecessor's); `save_preset`, or
        fine-tune it further alone (bert4keras' third phase)."""
        from kerasformer.training.weights import copy_weights, rebuilt

        predecessor = self.predecessor
        transformer = rebuilt(self.successor)
        copy_weights(self.successor.model, transformer.model, strict=True)
        task = type(predecessor)(transformer, predecessor.tokenizer, predecessor.family,
                                 predecessor.tokenizer_config, **predecessor.task_options())
        if self.head is not None:
            copy_weights(self.head, task.head, strict=True)
        return task


def _replayed(function, generators):
    """`function(x)` whose dropout reads seed states drawn now, outside any branch."""
    if not generators:
        return function
    states = [generator.next() for generator in generators]
    run = replayable(function, generators, remat=False)
    return lambda x: run(*states, x)


def _block_generators(transformer, blocks):
    generators = []
    for block in blocks:
        for name in transformer.block_layers[block]:
            for generator in seed_generators(transformer.layers[name]):
                if all(generator is not known for known in generators):
                    generators.append(generator)
    return generators


def _successor(predecessor, successor, weights_follow):
    """The successor `Transformer`, built and checked against the predecessor (one
    made here is built without random initialisation when `weights_follow`: every
    weight is copied next)."""
    from kerasformer import architectures
    from kerasformer.architectures.base import Transformer

    config = predecessor.get_config()
    if successor is predecessor:
        raise ValueError("the successor must be another Transformer than the predecessor's")
    if isinstance(successor, Transformer):
        other = successor.get_config()
        differing = sorted(key for key in {*config, *other} - set(FREE_ARGUMENTS)
                           if config.get(key) != other.get(key))
        if differing:
            raise ValueError("the successor must be the predecessor's architecture and "
                             f"config but for its depth; {', '.join(differing)} differ")
        successor.build()
    else:
        if isinstance(successor, bool) or not isinstance(successor, int) or successor < 1:
            raise ValueError("successor must be a number of blocks or a Transformer, got "
                             f"{successor!r}")
        if not weights_follow:
            raise ValueError("init=None keeps a given successor's weights; a successor "
                             "made here starts from the predecessor: init='first' or 'every_kth'")
        config["num_hidden_layers"] = successor
        successor = architectures.get(config.pop("architecture")).from_config(config)
        successor.build(weights_follow=weights_follow)
    before, after = predecessor.num_hidden_layers, successor.num_hidden_layers
    if after > before or before % after:
        raise ValueError(f"the predecessor's {before} blocks must split into the successor's "
                         f"{after} modules of equal size")
    return successor


def _initialise(successor, predecessor, stride):
    """Copies the predecessor's embeddings into the successor, and its block
    `i·stride` into the successor's block i (by variable path)."""
    sources = {weight.path[len(predecessor.prefix):]: weight
               for weight in predecessor.model.weights}
    for weight in successor.model.weights:
        path = weight.path[len(successor.prefix):]
        match = BLOCK_PATH.match(path)
        if match:
            path = f"Transformer-{int(match[1]) * stride}-{match[2]}"
        source = sources.get(path)
        if source is None or tuple(source.shape) != tuple(weight.shape):
            raise ValueError(f"the predecessor has no weight {path!r} of shape "
                             f"{tuple(weight.shape)} for the successor's {weight.path!r}")
        # A copy: JAX's train step donates the buffers of the variables it updates.
        weight.assign(ops.copy(source.value))
