"""What every task shares: an architecture, its tokenizer, compiled calls, presets."""
import keras
import numpy as np

from kerasformer.generation.compile import compile_model_function

# Token lengths are padded up to a multiple of this, so calls reuse compilations.
LENGTH_BUCKET = 16

class Task:
    """An architecture with its tokenizer, ready for one job.

    Args:
        transformer: the `Transformer` (built here if it is not yet).
        tokenizer: its `kerasformer.tokenizers.Tokenizer`.
        family: the family ("roformer-sim", "roformer-v2", ...; see
            `kerasformer.families`).
        tokenizer_config: the tokenizer's recipe (`vocab` path, `do_lower_case`,
            `pre_tokenize`), needed to save a preset.
    """

    task = None  # "similarity", "masked_lm"

    def __init__(self, transformer, tokenizer, family=None, tokenizer_config=None):
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.family = family
        self.tokenizer_config = dict(tokenizer_config or {})
        self.model = transformer.build()

    def task_options(self):
        """The task's own settings (what `__init__` takes besides the model)."""
        return {}

    def get_config(self):
        """What rebuilds this task around its transformer (see `from_config`)."""
        return {
            "task": self.task,
            "family": self.family,
            "tokenizer": dict(self.tokenizer_config),
            "options": self.task_options(),
        }

    @classmethod
    def from_config(cls, config, transformer, tokenizer=None):
        """The task of a `get_config()` dict around `transformer`; the tokenizer is
        made from the config's recipe unless given."""
        if config.get("task", cls.task) != cls.task:
            raise ValueError(f"a {config['task']} config cannot make a {cls.task} task")
        if tokenizer is None:
            from kerasformer.tokenizers.recipes import make_tokenizer

            tokenizer = make_tokenizer(config["tokenizer"])
        return cls(transformer, tokenizer, config.get("family"), config["tokenizer"],
                   **config.get("options", {}))

    def save_preset(self, directory, source=None):
        """Saves the task as a preset directory that `kerasformer.models.load`
        accepts (config.json + model.weights.h5 + tokenizer assets)."""
        from kerasformer import presets

        return presets.save(self, directory, source)

    def compiled(self, name, function):
        """`function(*arrays)` of the model's layers, compiled once and kept."""
        key = ("task", name)
        functions = self.transformer.compiled_functions
        if key not in functions:
            functions[key] = compile_model_function(function, self.model.variables)
        return functions[key]

    def pad(self, batch):
        """Token-id lists as an int32 array padded to bucket shapes (a power-of-two
        number of rows, a multiple of LENGTH_BUCKET columns)."""
        width = -(-max(len(ids) for ids in batch) // LENGTH_BUCKET) * LENGTH_BUCKET
        rows = 1 << (len(batch) - 1).bit_length()
        token_ids = np.zeros((rows, width), np.int32)
        for row, ids in enumerate(batch):
            token_ids[row, :len(ids)] = ids
        return token_ids


def check_texts(texts):
    """A list of non-empty strings, or a clear error naming the bad one."""
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {index} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise ValueError(f"text {index} is empty")
    return list(texts)


def to_numpy(tensor):
    return keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32"))


def pad_rows(rows):
    """`(token_ids, segment_ids)` of `(token ids, segment ids)` rows: int32 arrays padded
    with 0 to the longest row rounded up to a multiple of LENGTH_BUCKET (few shapes, few
    compilations)."""
    width = -(-max(len(ids) for ids, _ in rows) // LENGTH_BUCKET) * LENGTH_BUCKET
    token_ids = np.zeros((len(rows), width), np.int32)
    segment_ids = np.zeros((len(rows), width), np.int32)
    for row, (ids, segments) in enumerate(rows):
        token_ids[row, :len(ids)] = ids
        segment_ids[row, :len(segments)] = segments
    return token_ids, segment_ids


def model_source(source, tokenizer=None, tokenizer_config=None, load_kwargs=None):
    """`(transformer, tokenizer, tokenizer_config)` of what a task is made from: a built
    `Transformer` (with `tokenizer` given), a loaded task, or what
    `kerasformer.models.load` takes (loaded with `load_kwargs`). A given `tokenizer` /
    `tokenizer_config` takes precedence over the source's."""
    from kerasformer.architectures.base import Transformer

    load_kwargs = load_kwargs or {}
    if load_kwargs and isinstance(source, (Transformer, Task)):
        raise TypeError(f"{', '.join(load_kwargs)}: arguments of a source to load, not of "
                        f"a {type(source).__name__}")
    if isinstance(source, Transformer):
        if tokenizer is None:
            raise ValueError("a Transformer source needs tokenizer= (and tokenizer_config= "
                             "naming its vocab, to save presets)")
        return source, tokenizer, tokenizer_config
    if not isinstance(source, Task):
        from kerasformer.loading import load

        source = load(source, **load_kwargs)
    return (source.transformer, tokenizer or source.tokenizer,
            tokenizer_config or source.tokenizer_config)
