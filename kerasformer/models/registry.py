"""`kerasformer.models.load`: the one entry point from a checkpoint to a ready task."""
import os

from kerasformer.models.builder import build_transformer_model
from kerasformer.models.similarity import SimilarityModel
from kerasformer.tokenizers import Tokenizer

# Task families: the architecture they are built on and how the original recipes use it.
TASKS = {
    "simbert": {"model": "bert", "sampling": {"topk": 5}},
    "roformer-sim": {"model": "roformer", "sampling": {"topp": 0.95}},
}
ALIASES = {"roformer_sim": "roformer-sim", "simbertv2": "roformer-sim", "simbert-v2": "roformer-sim"}

ORIGINAL_LAYOUT = ("bert_config.json", "bert_model.ckpt.index", "vocab.txt")


def task_family(family):
    """Canonical task family name, or a ValueError listing the known ones."""
    if not isinstance(family, str):
        raise TypeError(f"family must be a string, got {family!r}")
    name = family.lower().replace("_", "-")
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise ValueError(f"unknown family {family!r}; available: {', '.join(TASKS)}")
    return name


def load(name_or_path, family=None, text_maxlen=64, dtype=None):
    """Loads a SimBERT or RoFormer-Sim checkpoint as a `SimilarityModel`.

    Args:
        name_or_path: a local directory in the original release layout
            (`bert_config.json`, `bert_model.ckpt.*`, `vocab.txt`).
        family: "simbert" or "roformer-sim".
        text_maxlen: int. Tokens kept of each input text.
        dtype: Keras dtype policy (e.g. "mixed_bfloat16"), or None for the default.

    Returns:
        A `SimilarityModel` with `encode`, `generate`, `similar` and `search`.
    """
    path = os.fspath(name_or_path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint directory at {path!r}")
    if family is None:
        raise ValueError(f"pass family= for {path!r}: one of {', '.join(TASKS)}")
    family = task_family(family)
    missing = [f for f in ORIGINAL_LAYOUT if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise FileNotFoundError(
            f"{path!r} is not an original checkpoint directory: missing {', '.join(missing)}"
        )
    transformer = build_transformer_model(
        os.path.join(path, "bert_config.json"),
        os.path.join(path, "bert_model.ckpt"),
        model=TASKS[family]["model"],
        application="unilm",
        with_pool="linear",
        return_keras_model=False,
        dtype=dtype,
    )
    tokenizer = Tokenizer(os.path.join(path, "vocab.txt"), do_lower_case=True)
    return SimilarityModel(
        transformer, tokenizer, text_maxlen=text_maxlen, sampling=TASKS[family]["sampling"]
    )
