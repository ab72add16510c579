"""The SimBERT / RoFormer-Sim objectives as Keras losses (bert4keras-spec.md §3.9–3.10),
and CoSENT.

Batches hold adjacent pairs (rows 2k and 2k+1). The similarity losses see the whole
batch, so under `MicroBatched` they keep the big batch's negatives.
"""
import keras
from keras import ops


def paired_labels(batch_size):
    """The positive of row i is row i xor 1: batches hold adjacent a→b, b→a samples."""
    index = ops.arange(batch_size)
    return index + 1 - 2 * (index % 2)


def in_batch_contrastive(vectors, scale=30.0):
    """SimBERT's similarity loss per row: cosine similarities to every other row of the
    batch, scaled (30 in SimBERT v1, 20 in RoFormer-Sim), softmax cross-entropy with
    row i xor 1 as the target; the diagonal is excluded (−1e12)."""
    vectors = _normalise(vectors)
    similarities = ops.matmul(vectors, ops.transpose(vectors))
    batch_size = ops.shape(vectors)[0]
    similarities = (similarities - 1e12 * ops.eye(batch_size)) * scale
    return keras.losses.sparse_categorical_crossentropy(
        paired_labels(batch_size), similarities, from_logits=True)


def seq2seq_cross_entropy(token_ids, segment_ids, predictions, from_logits=False,
                          row_weights=None):
    """UniLM's loss per row: token t+1 predicted at position t, counted where
    segment_ids[t+1] is 1 (the target segment). Rows are divided by the batch's mean
    target length, so the mean over rows (Keras' reduction) is bert4keras' masked mean
    over all target tokens of the batch. `row_weights` (one 0/1 per row) leaves rows
    out of both the sum and the mean length."""
    targets = token_ids[:, 1:]
    mask = ops.cast(segment_ids[:, 1:], "float32")
    if row_weights is not None:
        mask = mask * ops.cast(ops.reshape(row_weights, (-1, 1)), "float32")
    losses = keras.losses.sparse_categorical_crossentropy(
        targets, ops.cast(predictions[:, :-1], "float32"), from_logits=from_logits)
    return ops.sum(losses * mask, axis=1) / ops.maximum(ops.mean(ops.sum(mask, axis=1)), 1e-7)


def similarity_distillation(vectors, teacher_vectors, weight=100.0):
    """RoFormer-Sim stage 2's loss per row: the student's cosine-similarity matrix
    regressed onto the teacher's, `weight · mean((VₛVₛᵀ − VₜVₜᵀ)²)` (no diagonal
    masking, no scale); the mean over rows is the original's mean over the matrix.
    Teacher vectors are normalised here too, so raw pooled outputs may be passed."""
    student = _normalise(vectors)
    teacher = _normalise(teacher_vectors)
    difference = (ops.matmul(student, ops.transpose(student))
                  - ops.matmul(teacher, ops.transpose(teacher)))
    return weight * ops.mean(ops.square(difference), axis=1)


def pair_features(vectors):
    """`[a, b, |a − b|]` of adjacent rows (a = rows 0, 2, …; b = rows 1, 3, …), each
    pair's features repeated on both of its rows, as RoFormer-Sim's supervised
    head sees them: shape `(batch, 3 · dim)`."""
    first, second = vectors[0::2], vectors[1::2]
    features = ops.concatenate([first, second, ops.abs(first - second)], axis=1)
    return ops.repeat(features, 2, axis=0)


# Classes of RoFormer-Sim's supervised head: a binary pair is 0 / 1, an NLI pair 2-4.
NLI_CLASSES = {"contradiction": 2, "entailment": 3, "neutral": 4}


def pair_classification(labels, logits):
    """RoFormer-Sim's supervised loss per row: softmax cross-entropy over 5 classes
    where a binary label (< 1.5) competes only among {0, 1} and an NLI label only
    among {2, 3, 4} (the other logits −1e12)."""
    labels = ops.reshape(labels, (-1,))
    logits = ops.cast(logits, "float32")
    binary = ops.cast(labels < 1.5, "float32")[:, None]
    nli_only = ops.convert_to_tensor([[0.0, 0.0, 1.0, 1.0, 1.0]])
    masked = logits - 1e12 * (binary * nli_only + (1 - binary) * (1 - nli_only))
    return keras.losses.sparse_categorical_crossentropy(
        ops.cast(labels, "int32"), masked, from_logits=True)


def cosent(vectors, scores, scale=20.0):
    """CoSENT (Su, kexue.fm/archives/8847) over adjacent pairs: for every two pairs
    where pair i is scored higher than pair j, the cosine of i should exceed that of
    j; `log(1 + Σ_{sᵢ > sⱼ} exp(scale · (cos j − cos i)))`. `scores` holds one score
    per row (both rows of a pair carry the pair's score). Returns the scalar."""
    vectors = _normalise(vectors)
    cosines = ops.sum(vectors[0::2] * vectors[1::2], axis=1) * scale
    pair_scores = ops.cast(ops.reshape(scores, (-1,))[0::2], "float32")
    ordered = ops.cast(pair_scores[:, None] > pair_scores[None, :], "float32")
    differences = cosines[None, :] - cosines[:, None] - (1 - ordered) * 1e12
    return ops.logsumexp(ops.concatenate([ops.zeros((1,)), ops.reshape(differences, (-1,))]))


def _normalise(vectors):
    vectors = ops.cast(vectors, "float32")
    return vectors / ops.maximum(ops.norm(vectors, axis=-1, keepdims=True), 1e-12)
