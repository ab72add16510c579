"""The SimBERT / RoFormer-Sim objectives as Keras losses (bert4keras-spec.md §3.9–3.10).

Both see the whole batch, so under `MicroBatched` they keep the big batch's negatives.
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
    vectors = ops.cast(vectors, "float32")
    vectors = vectors / ops.maximum(ops.norm(vectors, axis=-1, keepdims=True), 1e-12)
    similarities = ops.matmul(vectors, ops.transpose(vectors))
    batch_size = ops.shape(vectors)[0]
    similarities = (similarities - 1e12 * ops.eye(batch_size)) * scale
    return keras.losses.sparse_categorical_crossentropy(
        paired_labels(batch_size), similarities, from_logits=True)


def seq2seq_cross_entropy(token_ids, segment_ids, predictions, from_logits=False):
    """UniLM's loss per row: token t+1 predicted at position t, counted where
    segment_ids[t+1] is 1 (the target segment). Rows are divided by the batch's mean
    target length, so the mean over rows (Keras' reduction) is bert4keras' masked mean
    over all target tokens of the batch."""
    targets = token_ids[:, 1:]
    mask = ops.cast(segment_ids[:, 1:], "float32")
    losses = keras.losses.sparse_categorical_crossentropy(
        targets, ops.cast(predictions[:, :-1], "float32"), from_logits=from_logits)
    return ops.sum(losses * mask, axis=1) / ops.maximum(ops.mean(ops.sum(mask, axis=1)), 1e-7)
