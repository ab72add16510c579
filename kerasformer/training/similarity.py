"""Training SimBERT and RoFormer-Sim: the published objectives as one trainable model,
and the batches each objective needs (bert4keras-spec.md §3.9–3.10).

| objective | network | loss |
|---|---|---|
| `simbert` (SimBERT v1) | UniLM + linear pooler, MLM softmax | seq2seq CE on the target + in-batch contrastive CE, scale 30 |
| `stage1` (RoFormer-Sim) | UniLM + linear pooler, MLM logits, dropout 0.2 | seq2seq CE + contrastive CE, scale 20; half of the sources corrupted (whole-word mask / keep / random) |
| `stage2` (RoFormer-Sim) | as stage 1 | seq2seq CE + `100 · mean((VₛVₛᵀ − VₜVₜᵀ)²)` against a teacher's vectors |
| `supervised` (RoFormer-Sim-FT) | encoder + linear pooler, dropout 0.2 | 5-class CE on `[a, b, |a − b|]`, binary pairs vs NLI labels masked apart |
| `cosent` | encoder + linear pooler | CoSENT ranking loss on scored pairs, scale 20 |
| `cosent_seq2seq` | UniLM + linear pooler, MLM logits | CoSENT on the sources' vectors + seq2seq CE on the positive pairs only |

`cosent_seq2seq` is this project's: CoSENT alone leaves the generator untrained and,
sharing every weight with the encoder, degrades it; keeping the seq2seq loss on a
batch's positive pairs fine-tunes the vectors on scored pairs while the model still
paraphrases. A source's pooled vector sees the source alone (the UniLM mask keeps
segment 0 blind to segment 1), so row `a→b` carries `a`'s vector as encoding `a`
would.

Batches hold adjacent rows: `a→b`, `b→a` for the generative objectives; `a`, `b`
encoded alone for the encoder-only ones. CoSENT batches come from one source file
each: a 0–5 score and a 0/1 label do not compare. `SimilarityTraining` wraps the network in
`MicroBatched` for `micro_batches > 1`, so the similarity losses keep the negatives
of the whole batch (`--grad-accum` of the training example).

A `SimilarityModel` task trains through a copy of its network built for training
(logits MLM head, the recipe's dropout): `SimilarityTraining.from_task(task, ...)`,
then `export_to(task)` writes the trained weights back for encoding, generation
and `save_preset`.
"""
import dataclasses

import keras
import numpy as np
from keras import ops

from kerasformer.data import Group, text_segmentate, truncate_sequences
from kerasformer.evaluation import label_cut
from kerasformer.models.task import pad_rows
from kerasformer.training import losses
from kerasformer.training.masking import corrupt_source
from kerasformer.training.micro_batches import MicroBatched
from kerasformer.training.pretraining import shuffled
from kerasformer.training.weights import copy_weights, rebuilt

# What RoFormer-Sim and SimBERT cut texts at before encoding (`text_segmentate`).
SEPARATORS, STRIPS = "\n。！？!?；;，, ", "；;，, "


@dataclasses.dataclass(frozen=True)
class Objective:
    """One published training objective.

    Attributes:
        name: its name on the command line.
        generative: trains the UniLM seq2seq head on `a→b` / `b→a` samples.
        similarity: "contrastive", "distillation", "classification" or "cosent".
        scale: the cosine scale of the contrastive / CoSENT losses.
        corruption: probability that a source text is corrupted (stage 1, 2).
        dropout_rate: the recipe's hidden dropout (None: the model's own).
        cut: texts are cut at `cut(maxlen)` characters (`text_segmentate`).
    """

    name: str
    generative: bool
    similarity: str
    scale: float = 20.0
    corruption: float = 0.0
    dropout_rate: float = None
    cut: object = None

    @property
    def ranks_and_generates(self):
        """CoSENT on scored pairs while their positives train the generator."""
        return self.generative and self.similarity == "cosent"


OBJECTIVES = {
    objective.name: objective
    for objective in (
        Objective("simbert", True, "contrastive", scale=30.0, cut=lambda maxlen: maxlen - 2),
        Objective("stage1", True, "contrastive", scale=20.0, corruption=0.5,
                  dropout_rate=0.2, cut=lambda maxlen: maxlen * 1.2),
        Objective("stage2", True, "distillation", corruption=0.5, dropout_rate=0.2,
                  cut=lambda maxlen: maxlen * 1.2),
        Objective("supervised", False, "classification", dropout_rate=0.2,
                  cut=lambda maxlen: maxlen * 1.2),
        Objective("cosent", False, "cosent", scale=20.0, cut=lambda maxlen: maxlen * 1.2),
        Objective("cosent_seq2seq", True, "cosent", scale=20.0,
                  cut=lambda maxlen: maxlen * 1.2),
    )
}


def get_objective(objective):
    if isinstance(objective, Objective):
        return objective
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[objective]


class SimilarityTraining(keras.Model):
    """The network of a similarity model with an objective's losses, for `fit`.

    Inputs are dicts of `token_ids`, `segment_ids` (and `teacher_vectors` for
    `stage2`, `seq2seq_weights` — 1 for the rows of positive pairs — for
    `cosent_seq2seq`); targets are the row labels of `supervised` / `cosent` (zeros
    otherwise). Logged: `loss`, `similarity_loss` and, for generative objectives,
    `seq2seq_loss`.

    Args:
        transformer: a built UniLM `Transformer` with a linear pooler (outputs
            `[pooled, mlm]`); its MLM head gives logits (`with_mlm="linear"`) or
            probabilities.
        objective: a name of `OBJECTIVES` or an `Objective`.
        scale: overrides the objective's cosine scale.
        micro_batches: run each batch in this many micro-batches with the big
            batch's gradient (`MicroBatched`).
        remat: recompute micro-batches in the backward pass (the memory saving).
    """

    def __init__(self, transformer, objective="stage1", scale=None, micro_batches=1,
                 remat=True, **kwargs):
        super().__init__(**kwargs)
        if transformer.application != "unilm" or not transformer.with_pool:
            raise ValueError("similarity training needs a UniLM model with a pooler "
                             "(application='unilm', with_pool='linear')")
        self.transformer = transformer
        self.objective = get_objective(objective)
        self.scale = float(scale if scale is not None else self.objective.scale)
        self.from_logits = transformer.with_mlm not in (True, "softmax")
        network = transformer.build()
        if not self.objective.generative:
            # Only the encoder trains: the MLM head gets no gradient and no decay.
            network = keras.Model(network.inputs, network.outputs[0])
        self.network = MicroBatched(network, micro_batches, remat) if micro_batches > 1 else network
        self.classifier = None
        if self.objective.similarity == "classification":
            self.classifier = keras.layers.Dense(5, use_bias=False, name="Pair-Classifier",
                                                 dtype=transformer.dtype)
        self.similarity_tracker = keras.metrics.Mean(name="similarity_loss")
        self.seq2seq_tracker = (keras.metrics.Mean(name="seq2seq_loss")
                                if self.objective.generative else None)

    @classmethod
    def from_task(cls, task, objective="stage1", dropout_rate=None, **kwargs):
        """Training for a `SimilarityModel`: a copy of its network with a logits MLM
        head and the recipe's dropout (or `dropout_rate`), holding the task's weights."""
        objective = get_objective(objective)
        rate = dropout_rate if dropout_rate is not None else objective.dropout_rate
        overrides = {"with_mlm": "linear"} | ({} if rate is None else {"dropout_rate": rate})
        transformer = rebuilt(task.transformer, **overrides)
        copy_weights(task.model, transformer.model, strict=True)
        return cls(transformer, objective, **kwargs)

    def export_to(self, task):
        """Writes the trained weights into `task`'s model (same architecture)."""
        copy_weights(self.transformer.model, task.model, strict=True)

    def call(self, inputs, training=None):
        outputs = self.network([inputs["token_ids"], inputs["segment_ids"]], training=training)
        if self.objective.generative:
            vectors, mlm = outputs
            return {"vectors": vectors, "mlm": mlm}
        vectors = outputs  # the encoder-only network has the pooled vectors alone
        if self.classifier is not None:
            return {"vectors": vectors, "classes": self.classifier(losses.pair_features(vectors))}
        return {"vectors": vectors}

    def loss_terms(self, x, y, y_pred):
        """The objective's losses of one batch, by name (scalars)."""
        terms = {}
        if self.objective.generative:
            terms["seq2seq_loss"] = ops.mean(losses.seq2seq_cross_entropy(
                x["token_ids"], x["segment_ids"], y_pred["mlm"], from_logits=self.from_logits,
                row_weights=x.get("seq2seq_weights")))
        kind, vectors = self.objective.similarity, y_pred["vectors"]
        if kind == "contrastive":
            similarity = ops.mean(losses.in_batch_contrastive(vectors, self.scale))
        elif kind == "distillation":
            similarity = ops.mean(losses.similarity_distillation(vectors, x["teacher_vectors"]))
        elif kind == "classification":
            similarity = ops.mean(losses.pair_classification(y, y_pred["classes"]))
        else:
            similarity = losses.cosent(vectors, y, self.scale)
        terms["similarity_loss"] = similarity
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.loss_terms(x, y, y_pred)
        self.similarity_tracker.update_state(terms["similarity_loss"])
        if self.seq2seq_tracker is not None:
            self.seq2seq_tracker.update_state(terms["seq2seq_loss"])
        total = sum(terms.values())
        for extra in self.losses:
            total = total + ops.sum(ops.cast(extra, "float32"))
        return total


def similarity_task(task):
    """A `SimilarityModel` to train from any loaded task: the task itself when it is
    one; for a RoFormer or BERT masked LM, its weights in the UniLM network with a
    linear pooler, the pooler newly initialised — how the original scripts start
    (`ignore_invalid_weights=True` on an MLM checkpoint)."""
    from kerasformer import families
    from kerasformer.models import SimilarityModel

    if task.task == "similarity":
        return task
    architecture = task.transformer.architecture
    # RoFormer-Sim's stage 1 starts from RoFormer's char checkpoint, SimBERT from BERT.
    similarity_families = families.of_task("similarity")
    if task.task != "masked_lm" or architecture not in similarity_families:
        raise ValueError(
            f"a {task.task} model of architecture {architecture!r} cannot start a "
            f"similarity model: use a similarity model, or a masked LM of "
            f"{' or '.join(similarity_families)}")
    family = families.get(similarity_families[architecture])
    transformer = rebuilt(task.transformer, **family.build)
    fresh = copy_weights(task.model, transformer.model)
    if any("Pooler" not in path for path in fresh):
        raise ValueError(f"weights missing from the masked LM: {fresh}")
    return SimilarityModel(transformer, task.tokenizer, family.name, task.tokenizer_config,
                           **family.task_options)


# ---------------------------------------------------------------------- batches


def similarity_batches(sources, tokenizer, objective, batch_size, maxlen=64, seed=0,
                       teacher=None, threshold=None, segment=None, shuffle_buffer=10_000):
    """Endless training batches of an objective from pair and group records.

    Args:
        sources: a list with one entry per file, drawn from in turn (each equally
            often, as the original scripts interleave their corpora; for `cosent`
            batch by batch, since scores of different sets do not compare): a list of
            records (`kerasformer.data.Pair` / `Group`), reshuffled every pass, or a
            callable returning a fresh iterator of them for each pass, e.g.
            `functools.partial(read_pairs, path, streaming=True)`, for files larger
            than memory (shuffled through a buffer).
        tokenizer: the model's `Tokenizer`.
        objective: a name of `OBJECTIVES` or an `Objective`.
        batch_size: int, even: rows per batch (pairs × 2).
        maxlen: int, tokens per text (generative rows hold up to 2·maxlen).
        seed: int, the seed of every random choice (order, groups, corruption).
        teacher: for `stage2`, a `SimilarityModel` encoding the source texts.
        threshold: a numeric label above it is a positive (default 0.5, or 2.5
            for listed sets scored 0–5; give it for streamed 0–5 sets).
        segment: word segmenter for the corruption (default jieba).
        shuffle_buffer: records held to shuffle a streamed source.

    Yields:
        `(inputs, labels)`: a dict of int32 `token_ids`, `segment_ids` (padded to a
        multiple of 16) and, for stage 2, float32 `teacher_vectors`, for
        `cosent_seq2seq` float32 `seq2seq_weights` (1 for the rows of positive
        pairs); float32 row labels (class ids for `supervised`, scores for the
        CoSENT objectives, zeros otherwise).
    """
    objective = get_objective(objective)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2 \
            or batch_size % 2:
        raise ValueError(f"batch_size must be an even integer >= 2 (rows of pairs), "
                         f"got {batch_size!r}")
    if objective.similarity == "distillation" and teacher is None:
        raise ValueError("the stage2 objective distils a teacher: pass teacher=...")
    rng = np.random.default_rng(seed)
    # CoSENT ranks every pair of a batch against every other: one set per batch
    pairs_per_turn = batch_size // 2 if objective.similarity == "cosent" else 1
    pairs = _pair_stream(sources, objective, rng, threshold, shuffle_buffer, pairs_per_turn)
    cut = objective.cut(maxlen)
    while True:
        rows, labels, texts, positives = [], [], [], []
        while len(rows) < batch_size:
            first, second, label, positive = next(pairs)
            first, second = _first_piece(first, cut), _first_piece(second, cut)
            if objective.generative:
                for source, target in ((first, second), (second, first)):
                    rows.append(_seq2seq_row(tokenizer, source, target, maxlen, objective,
                                             rng, segment))
                    texts.append(source)
            else:
                for text in (first, second):
                    token_ids = tokenizer.encode(text, maxlen=maxlen)[0]
                    rows.append((token_ids, [0] * len(token_ids)))
            labels.extend([label, label])
            positives.extend([positive, positive])
        inputs = _pad(rows)
        if teacher is not None and objective.similarity == "distillation":
            inputs["teacher_vectors"] = teacher.encode(texts).astype(np.float32)
        if objective.ranks_and_generates:
            inputs["seq2seq_weights"] = np.asarray(positives, np.float32)
        yield inputs, np.asarray(labels, np.float32)


def _pair_stream(sources, objective, rng, threshold, shuffle_buffer, pairs_per_turn=1):
    """Endless `(text_a, text_b, label, positive)`, the sources drawn from in turn,
    `pairs_per_turn` at a time."""
    if isinstance(sources, (str, bytes)) or not sources:
        raise ValueError("sources must be a non-empty list of record lists (one per file)")
    streams = [_records_forever(source, index, objective, rng, threshold, shuffle_buffer)
               for index, source in enumerate(sources)]
    while True:
        for stream in streams:
            for _ in range(pairs_per_turn):
                record, limit = next(stream)
                if isinstance(record, Group):
                    first, second = rng.choice(len(record.texts), 2, replace=False)
                    yield (record.texts[first], record.texts[second],
                           _label(1.0, objective, limit), True)
                else:
                    yield (record.text_a, record.text_b, _label(record.label, objective, limit),
                           _is_positive(record.label, limit))


def _records_forever(source, index, objective, rng, threshold, shuffle_buffer):
    """`(record, threshold)` of one source's usable records, pass after pass: a list
    in a new permutation each pass; a callable (a streaming reader) called again for
    each pass and shuffled through a buffer of `shuffle_buffer` records."""
    def usable(record, limit):
        return not hasattr(record, "label") or _label(record.label, objective, limit) is not None

    def nothing_usable():
        return ValueError(
            f"source {index} has no usable records for the {objective.name} objective"
            + (" (it needs labelled or unlabelled pairs)" if objective.ranks_and_generates
               else " (generative objectives train on positive pairs and groups only)"
               if objective.generative else " (it needs labelled pairs)"))

    if callable(source):
        limit = 0.5 if threshold is None else threshold
        while True:
            found = False
            for record in shuffled(source(), shuffle_buffer, rng):
                if usable(record, limit):
                    found = True
                    yield record, limit
            if not found:
                raise nothing_usable()
    records = list(source)
    limit = threshold if threshold is not None else _default_threshold(records)
    records = [record for record in records if usable(record, limit)]
    if not records:
        raise nothing_usable()
    while True:
        for record_index in rng.permutation(len(records)).tolist():
            yield records[record_index], limit


def _default_threshold(records):
    """Where positives start: 0.5 for 0/1 labels, 2.5 for 0–5 scores (the evaluation's
    rule, RoFormer-Sim's)."""
    return label_cut([r.label for r in records if isinstance(getattr(r, "label", None), float)])


def _is_positive(label, threshold):
    """A paraphrase to generate: unlabelled pairs are positives."""
    return label is None or label == "entailment" or isinstance(label, float) and label > threshold


def _label(label, objective, threshold):
    """The training label of a pair's label for the objective, or None to skip it."""
    if objective.ranks_and_generates and label is None:
        return 1.0  # a set of positives alone: nothing to rank, only paraphrases to learn
    if objective.generative and not objective.ranks_and_generates:
        return 0.0 if _is_positive(label, threshold) else None
    if label is None:
        return None
    if objective.similarity == "classification":
        if isinstance(label, str):
            return float(losses.NLI_CLASSES[label]) if label in losses.NLI_CLASSES else None
        return float(label > threshold)
    if isinstance(label, str):  # CoSENT ranks entailment over neutral over contradiction
        return {"entailment": 2.0, "neutral": 1.0, "contradiction": 0.0}.get(label)
    return float(label)


def _first_piece(text, cut):
    pieces = text_segmentate(text, cut, SEPARATORS, STRIPS)
    return pieces[0] if pieces else text


def _seq2seq_row(tokenizer, source, target, maxlen, objective, rng, segment):
    """`[CLS] source [SEP] target [SEP]` with segments 0 | 1, the source corrupted
    with the objective's probability, jointly truncated to 2·maxlen tokens."""
    if objective.corruption and rng.random() < objective.corruption:
        source_ids = list(corrupt_source(tokenizer, source, rng, maxlen=maxlen,
                                         segment=segment)[0])
    else:
        source_ids = tokenizer.encode(source)[0]
    target_ids = tokenizer.encode(target)[0][1:]
    truncate_sequences(2 * maxlen, -2, source_ids, target_ids)
    return source_ids + target_ids, [0] * len(source_ids) + [1] * len(target_ids)


def _pad(rows):
    token_ids, segment_ids = pad_rows(rows)
    return {"token_ids": token_ids, "segment_ids": segment_ids}
