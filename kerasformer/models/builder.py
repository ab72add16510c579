"""`build_transformer_model`: bert4keras' entry point, with its arguments and defaults."""
import difflib
import os

from kerasformer import architectures
from kerasformer.presets import read_json

# Config-file keys the builder turns into constructor arguments; accepted as keyword
# arguments too, as bert4keras merges both before reading them.
CONFIG_KEYS = (
    "max_position_embeddings", "hidden_dropout_prob", "attention_probs_dropout_prob",
    "type_vocab_size",
)

# bert4keras build() options that kerasformer does not implement.
UNSUPPORTED_OPTIONS = (
    "attention_caches", "residual_attention_scores", "autoresize_weights", "layers",
)


def read_config(config_path):
    """Reads a `bert_config.json` / HF `config.json`, with errors that name the file."""
    return read_json(config_path, "config")


def transformer_arguments(architecture, config, kwargs, config_path=None):
    """Constructor arguments of `architecture` from a config dict and explicit kwargs.

    Config keys the architecture does not know are ignored (configs carry many, such as
    `initializer_range`); explicit keyword arguments it does not know are errors, so
    a misspelt option never goes unnoticed.
    """
    config = architecture.standard_config(config)
    accepted = architecture.argument_names()
    unsupported = sorted(set(kwargs) & set(UNSUPPORTED_OPTIONS))
    if unsupported:
        raise TypeError(
            f"bert4keras option(s) {', '.join(unsupported)} are not supported by "
            "kerasformer"
        )
    unknown = sorted(set(kwargs) - accepted - set(CONFIG_KEYS))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, accepted, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise TypeError(
            f"unknown argument(s) for model {architecture.architecture!r}: {', '.join(hints)}"
        )
    if "hidden_act" in config:
        from kerasformer.layers.activations import check_config_activation

        where = f"config {os.fspath(config_path)!r}: " if config_path else ""
        try:
            check_config_activation(config["hidden_act"])
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where}{error}") from None
    merged = {**config, **kwargs}
    # bert4keras' derived defaults.
    merged.setdefault("max_position", merged.get("max_position_embeddings", 512))
    merged.setdefault("dropout_rate", merged.get("hidden_dropout_prob"))
    merged.setdefault("attention_dropout_rate", merged.get("attention_probs_dropout_prob"))
    merged.setdefault("segment_vocab_size", merged.get("type_vocab_size", 2))
    missing = [key for key in architecture.required_arguments if key not in merged]
    if missing:
        where = f"config {os.fspath(config_path)!r}" if config_path else "the arguments"
        message = f"{where} is missing required key(s): {', '.join(missing)}"
        described = architectures.recognise_config(config) if config else None
        if described is not None and described != architecture.architecture:
            message += (
                f"; the config describes a {described!r} model, not "
                f"{architecture.architecture!r}: is the model (or family) right?"
            )
        raise ValueError(message)
    return {key: value for key, value in merged.items() if key in accepted}


def build_transformer_model(
    config_path=None,
    checkpoint_path=None,
    model="bert",
    application="encoder",
    return_keras_model=True,
    **kwargs,
):
    """Builds a model from a config file and optionally loads a checkpoint.

    Same arguments, defaults and outputs as bert4keras' function of the same name:
    the config's keys become constructor arguments (explicit keyword arguments win);
    `max_position`, `dropout_rate`, `attention_dropout_rate` and `segment_vocab_size`
    default to `max_position_embeddings` (512), `hidden_dropout_prob`,
    `attention_probs_dropout_prob` and `type_vocab_size` (2). With neither pooler nor
    MLM head the output is the sequence output; with one of them, only that head;
    with both, `[pooled, mlm]`. Inputs are `[token_ids, segment_ids]`.

    Args:
        config_path: path of a `bert_config.json` (or an HF `config.json`), or None
            to pass every hyper-parameter as a keyword argument.
        checkpoint_path: optional checkpoint to load — an original TF checkpoint
            (prefix, `.index` file or directory), or a `pytorch_model.bin` /
            `.safetensors` file in the Hugging Face layout — strictly: missing,
            unused or mis-shaped variables raise an error naming them unless
            `ignore_invalid_weights=True`.
        model: an architecture name ("bert", "roberta", "roformer", "roformer_v2",
            "gau_alpha"; see `kerasformer.architectures`) or a `Transformer` subclass.
        application: "encoder", "lm" (causal LM) or "unilm" (seq2seq).
        return_keras_model: return the `keras.Model` (True) or the `Transformer`
            (whose `.model`, `.layers` and `.load_report` are then available).
        **kwargs: constructor arguments of the architecture (see `BERT`, `Transformer`).

    Returns:
        A `keras.Model`, or the `Transformer` when `return_keras_model=False`.
    """
    config = read_config(config_path) if config_path is not None else {}
    transformer = make_transformer(model, config, application, config_path=config_path, **kwargs)
    if checkpoint_path is not None:
        transformer.load_weights_from_checkpoint(checkpoint_path)
    else:
        transformer.build()
    return transformer.model if return_keras_model else transformer


def make_transformer(model, config, application="encoder", config_path=None, **kwargs):
    """`build_transformer_model` on a config dict: the `Transformer`, not yet built
    (so that weights loaded next skip random initialisation)."""
    architecture = architectures.get(model)
    if not isinstance(application, str):
        raise TypeError(f"application must be a string, got {application!r}")
    arguments = transformer_arguments(architecture, config, kwargs, config_path)
    arguments["application"] = application.lower()
    return architecture(**arguments)
