"""Opening a checkpoint of any supported format, and telling families apart."""
import collections.abc
import os
import re

from kerasformer.convert.tf_checkpoint import TFCheckpoint


def open_checkpoint(checkpoint):
    """Returns a mapping tensor name -> array for `checkpoint`.

    Args:
        checkpoint: a mapping (returned as is), or the path of an original TF
            checkpoint: its prefix (`.../bert_model.ckpt`), `.index` or `.data-*`
            file, or a directory holding one.

    Raises:
        FileNotFoundError: naming the path when nothing loadable is there.
    """
    if isinstance(checkpoint, collections.abc.Mapping):
        return checkpoint
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(
            "checkpoint must be a path or a mapping of tensor names to arrays, got "
            f"{type(checkpoint).__name__}"
        )
    return TFCheckpoint(os.fspath(checkpoint))


# Distinctive tensor names of each family's original checkpoints, most specific first.
_FAMILY_SIGNS = [
    ("gau_alpha", r"^GAU_alpha/encoder/layer_\d+/gau/"),
    ("gpt2", r"^gpt/transformer/layer_\d+/attention/input/LayerNorm/"),
    ("bert", r"^bert/embeddings/position_embeddings$"),
    ("roformer", r"^bert/encoder/layer_\d+/attention/output/LayerNorm/gamma$"),
    ("roformer_v2", r"^bert/encoder/layer_\d+/attention/self/query/kernel$"),
]


def guess_family(names):
    """The family whose original checkpoints use these tensor names, or None."""
    names = list(names)
    for family, pattern in _FAMILY_SIGNS:
        if any(re.search(pattern, name) for name in names):
            return family
    return None


def family_hint(names, family):
    """Advice for a checkpoint that does not fit `family`, or None."""
    guess = guess_family(names)
    if guess is None or guess == family:
        return None
    return (
        f"These tensor names look like a {guess!r} checkpoint, not {family!r}: "
        f"try model={guess!r}."
    )
