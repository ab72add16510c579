"""Masked-LM pre-training of any encoder architecture, from scratch or continued.

The pieces a pre-training run needs besides `fit` and an optimizer:

- the objective: `masked_lm_cross_entropy` (a Keras loss) and `MaskedLMAccuracy` (its
  metric), over the positions whose target is not 0 (`kerasformer.training.masking`'s
  convention);
- the data: `mlm_batches`, batches of `([token_ids, segment_ids], targets)` read
  lazily from any iterable of texts (`TextFiles` for one-sentence-per-line files),
  shuffled in a bounded buffer, packed into full sequences and masked afresh each time
  a sentence comes round (RoBERTa's dynamic masking);
- the models: `mlm_transformer` (a new one of any architecture from a config dict),
  `continued_transformer` (the weights of a checkpoint or preset that
  `kerasformer.models.load` reads), both with the MLM head as logits, and
  `masked_lm_task`, the trained weights as a `MaskedLanguageModel` (probabilities)
  that `save_preset` writes and `fill_mask` uses.
"""
import itertools

import keras
import numpy as np
from keras import ops

from kerasformer.training.masking import (
    mask_tokens,
    packed_sequences,
    special_token_ids,
    word_spans,
)
from kerasformer.training.weights import copy_weights, rebuilt


# ------------------------------------------------------------------ the objective


def masked_lm_cross_entropy(targets, predictions, from_logits=True):
    """Sparse cross-entropy over the predicted positions (`targets != 0`), averaged
    over every predicted token of the batch.

    Returns that mean as a scalar rather than one value per row. The MLM output of the
    package's models carries Keras' padding mask, and Keras reweights a loss's values
    by it (by `total / valid` at valid positions) before averaging: per-row values
    (the `seq2seq_cross_entropy` trick) would then be weighted by row length — or, of
    shape `(batch,)`, fail to broadcast against the `(batch, length)` mask — whereas a
    scalar comes through that reweighting unchanged, with or without a mask.

    Args:
        targets: int `(batch, length)`: the id to predict, 0 where nothing is.
        predictions: `(batch, length, vocab)` logits (or probabilities).
        from_logits: whether `predictions` are logits (`with_mlm="linear"`).

    Returns:
        A float32 scalar; 0 for a batch without predicted positions.
    """
    targets = ops.cast(targets, "int32")
    predicted = ops.cast(ops.not_equal(targets, 0), "float32")
    losses = keras.losses.sparse_categorical_crossentropy(
        targets, ops.cast(predictions, "float32"), from_logits=from_logits)
    return ops.sum(losses * predicted) / ops.maximum(ops.sum(predicted), 1.0)


@keras.saving.register_keras_serializable(package="kerasformer")
class MaskedLMAccuracy(keras.metrics.Metric):
    """The share of predicted positions (`targets != 0`) whose most probable token is
    the target, counted over every batch since the last reset (not a mean of batch
    means). Keras' padding mask, if any, is ignored: predicted positions are never
    padding."""

    def __init__(self, name="mlm_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        targets = ops.cast(y_true, "int32")
        predicted = ops.cast(ops.not_equal(targets, 0), "float32")
        guesses = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        hits = ops.cast(ops.equal(guesses, targets), "float32") * predicted
        self.correct.assign_add(ops.sum(hits))
        self.count.assign_add(ops.sum(predicted))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


# ------------------------------------------------------------------------ the data


class TextFiles:
    """The non-blank lines of text files, stripped, read lazily on every iteration
    (so `mlm_batches` can go round the corpus again).

    Args:
        *paths: paths of UTF-8 text files, one sentence (or document) per line.
    """

    def __init__(self, *paths):
        if not paths:
            raise ValueError("TextFiles needs at least one file")
        self.paths = paths

    def __iter__(self):
        for path in self.paths:
            with open(path, encoding="utf-8") as file:
                for line in file:
                    line = line.strip()
                    if line:
                        yield line


def shuffled(items, buffer_size, rng):
    """`items` in a random order, holding at most `buffer_size` of them at a time:
    each item read replaces a random one of the buffer, which is yielded (a buffer of
    0 or 1 keeps the order)."""
    if buffer_size <= 1:
        yield from items
        return
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        index = rng.integers(buffer_size)
        yield buffer[index]
        buffer[index] = item
    rng.shuffle(buffer)
    yield from buffer


def mlm_batches(texts, tokenizer, batch_size, maxlen, rng, whole_word=False, pack=True,
                rate=0.15, shuffle_buffer=10_000, epochs=None, segment=None):
    """Masked-LM training batches from a stream of texts.

    Each pass reads `texts` once, shuffles them in a buffer of `shuffle_buffer`,
    tokenises them, packs them (`pack_sentences`' layout, `[CLS] s1 [SEP] s2 [SEP]`)
    and masks every sequence with `mask_tokens` as it is batched — so a sentence gets
    new masks every time it comes round. Sequences are padded to `maxlen`, so every
    batch has one shape (one compilation). The last batch of a finite run is filled
    up with `[CLS] [SEP]` rows, which predict nothing.

    Args:
        texts: iterable of str (blank ones are skipped), e.g. `TextFiles(path)`;
            it must be iterable again (a list, `TextFiles`) unless `epochs=1`.
        tokenizer: the `Tokenizer` (with [CLS], [SEP], [MASK]).
        batch_size: int, sequences per batch.
        maxlen: int ≥ 3, tokens per sequence.
        rng: `numpy.random.Generator` for shuffling and masking.
        whole_word: mask whole words (jieba's, or `segment`'s) instead of tokens.
        pack: pack several sentences into a sequence; False: one per sequence. A
            sentence longer than `maxlen` is cut into pieces either way.
        rate: the probability that a token (a word, with `whole_word`) is predicted.
        shuffle_buffer: texts held for shuffling (0: read in order).
        epochs: passes over `texts`, or None for no end.
        segment: optional callable `text -> words` for `whole_word`; default jieba.

    Yields:
        `([token_ids, segment_ids], targets)`, int32 arrays `(batch_size, maxlen)`;
        segment ids are 0, targets 0 where nothing is predicted.
    """
    if epochs != 1 and iter(texts) is texts:
        raise ValueError("texts is an iterator, which cannot be read again: pass a list, "
                         "a TextFiles or another re-iterable collection, or epochs=1")
    for role in ("start_id", "end_id", "mask_id"):
        if getattr(tokenizer, role) is None:
            raise ValueError(f"masked-LM batches need a tokenizer with a {role[:-3]} token")
    specials = special_token_ids(tokenizer)

    def sentences():
        passes = itertools.count() if epochs is None else range(epochs)
        for _ in passes:
            for text in shuffled((t for t in texts if t.strip()), shuffle_buffer, rng):
                if not whole_word:
                    yield tokenizer.encode(text)[0], None
                    continue
                spans = word_spans(tokenizer, text, segment)
                ids = [tokenizer.start_id, *itertools.chain.from_iterable(spans),
                       tokenizer.end_id]
                yield ids, [len(span) for span in spans]

    rows = []
    for token_ids, spans in packed_sequences(sentences(), maxlen, pack=pack):
        rows.append(mask_tokens(token_ids, rng, tokenizer.vocab_size, tokenizer.mask_id,
                                rate, special_ids=specials, spans=spans))
        if len(rows) == batch_size:
            yield _batch(rows, maxlen)
            rows = []
    if rows:
        empty = np.array([tokenizer.start_id, tokenizer.end_id]), np.zeros(2, np.int32)
        yield _batch(rows + [empty] * (batch_size - len(rows)), maxlen)


def _batch(rows, maxlen):
    """`(inputs, targets)` pairs as padded `([token_ids, segment_ids], targets)`."""
    token_ids = np.zeros((len(rows), maxlen), np.int32)
    targets = np.zeros((len(rows), maxlen), np.int32)
    for row, (inputs, row_targets) in enumerate(rows):
        token_ids[row, :len(inputs)] = inputs
        targets[row, :len(row_targets)] = row_targets
    return [token_ids, np.zeros_like(token_ids)], targets


# ---------------------------------------------------------------------- the models


def mlm_transformer(architecture, config, **overrides):
    """A new `Transformer` of `architecture` with the MLM head as logits, built.

    Args:
        architecture: "roformer", "roformer_v2", "gau_alpha", "bert" (any registered
            architecture with an MLM head).
        config: a `bert_config.json`-style dict (e.g. `kerasformer.training.sizes.
            size_config(...)`).
        **overrides: constructor arguments that win over the config (`dropout_rate`,
            `remat`, `dtype`, ...).

    Returns:
        The built `Transformer`; its `.model` maps `[token_ids, segment_ids]` to MLM
        logits `(batch, length, vocab)`.
    """
    from kerasformer.models.builder import make_transformer

    arguments = {"application": "encoder", "with_mlm": "linear", **overrides}
    transformer = make_transformer(architecture, config, **arguments)
    transformer.build()
    return transformer


def continued_transformer(source, **load_options):
    """The weights of a checkpoint in a new MLM `Transformer`, for continued pre-training.

    `source` is anything `kerasformer.models.load` takes (a preset, a checkpoint
    directory, a manifest name). The result has the loaded model's configuration as
    an encoder (no pooler, no UniLM mask) with the MLM head as logits; every weight
    it shares with the loaded model (by path and shape) is copied, the others — e.g.
    the MLM head of a checkpoint published without one — keep their initialisation.

    Args:
        source: what to load.
        **load_options: passed to `kerasformer.models.load` (`family=`, ...).

    Returns:
        `(transformer, task)`: the built `Transformer`, and the loaded task, whose
        `tokenizer` and `tokenizer_config` the run goes on with.
    """
    from kerasformer.models import load

    task = load(source, **load_options)
    heads = {head: False for head in ("with_pool", "with_nsp")
             if head in task.transformer.get_config()}
    transformer = rebuilt(task.transformer, application="encoder", with_mlm="linear", **heads)
    copy_weights(task.model, transformer.model)
    return transformer, task


def masked_lm_task(transformer, tokenizer, tokenizer_config, family=None):
    """A `MaskedLanguageModel` (MLM probabilities, what `fill_mask` and presets
    expect) holding the weights of a trained MLM `Transformer`.

    Args:
        transformer: the trained `Transformer` (MLM head as logits or probabilities).
        tokenizer: its `Tokenizer`.
        tokenizer_config: its recipe, `{"vocab": path, "do_lower_case": ...}`: the
            preset copies the vocabulary from there.
        family: the preset's family; default the architecture's MLM family.

    Returns:
        The `MaskedLanguageModel`, ready for `save_preset(directory)`.
    """
    from kerasformer import families
    from kerasformer.models import MaskedLanguageModel

    inference = rebuilt(transformer, with_mlm=True, remat=False)
    copy_weights(transformer.model, inference.model, strict=True)
    family = family or families.of_task("masked_lm").get(transformer.architecture)
    return MaskedLanguageModel(inference, tokenizer, family, tokenizer_config)
