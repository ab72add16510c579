"""What every task shares: a model family, its tokenizer, compiled calls, presets."""
import keras
import numpy as np

from kerasformer.generation.compile import compile_model_function

# Token lengths are padded up to a multiple of this, so calls reuse compilations.
LENGTH_BUCKET = 16

# Builder arguments that describe how weights were loaded, not the model.
_LOADING_ARGUMENTS = ("keep_tokens", "compound_tokens", "ignore_invalid_weights", "dtype", "name")


class Task:
    """A model family with its tokenizer, ready for one job.

    Args:
        transformer: the built `Transformer`.
        tokenizer: its `kerasformer.tokenizers.Tokenizer`.
        family: the checkpoint family ("roformer-sim", "roformer-v2", ...).
        tokenizer_config: how the tokenizer was made (`vocab` path, `do_lower_case`,
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
        """Task settings recorded in presets (what `__init__` takes besides the model)."""
        return {}

    def preset_arguments(self):
        """Constructor arguments that rebuild this model without its checkpoint."""
        arguments = getattr(self.transformer, "arguments", None)
        if arguments is None:
            raise ValueError(
                "only models from build_transformer_model or kerasformer.models.load "
                "can be saved as presets"
            )
        arguments = {k: v for k, v in arguments.items() if k not in _LOADING_ARGUMENTS}
        arguments["vocab_size"] = self.transformer.vocab_size  # after keep/compound tokens
        return arguments

    def save_preset(self, directory, source=None):
        """Saves the task as a Keras preset directory that `kerasformer.models.load`
        accepts (config.json + model.weights.h5 + tokenizer assets)."""
        from kerasformer.hub.presets import save_preset

        if "vocab" not in self.tokenizer_config:
            raise ValueError("this task was built without tokenizer_config['vocab']")
        return save_preset(self, directory, source)

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
