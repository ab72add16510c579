"""Keras preset directories: a loaded task as config.json + model.weights.h5 + assets.

`save_preset` exports a task so it can be re-published or loaded without its original
files; kerasformer's cache of converted Hub checkpoints stores presets too, so a second
load reads one `.weights.h5` and needs neither the download nor the conversion.
Presets are written into a temporary directory beside the target and renamed into
place, so an interrupted write never leaves a directory that loads; the weights'
sha256 is recorded and checked before loading.
"""
import json
import os
import pathlib
import shutil
import uuid

from kerasformer.hub.download import digest, kerasformer_home

FORMAT = "kerasformer-preset"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
VOCAB = "assets/tokenizer/vocab.txt"


def is_preset(directory):
    path = pathlib.Path(directory) / CONFIG
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def save_preset(task, directory, source=None):
    """Writes `task` (a `SimilarityModel` or `MaskedLanguageModel`) as a preset.

    Args:
        task: the task to save; its transformer must come from
            `build_transformer_model` or `kerasformer.models.load`.
        directory: where to write; must not exist or be empty.
        source: optional provenance recorded in config.json (repo, revision, files).

    Returns:
        The preset directory as a `pathlib.Path`.
    """
    from kerasformer import __version__

    directory = pathlib.Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty directory")
    arguments = task.preset_arguments()
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.parent / f".{directory.name}.{uuid.uuid4().hex}.partial"
    temporary.mkdir()
    try:
        weights = temporary / WEIGHTS
        task.model.save_weights(weights)
        (temporary / VOCAB).parent.mkdir(parents=True)
        shutil.copyfile(task.tokenizer_config["vocab"], temporary / VOCAB)
        config = {
            "format": FORMAT,
            "version": VERSION,
            "kerasformer_version": __version__,
            "family": task.family,
            "task": task.task,
            "architecture": task.transformer.family,
            "arguments": arguments,
            "tokenizer": {**task.tokenizer_config, "vocab": VOCAB},
            "task_options": task.task_options(),
            "source": source or {},
            "weights_sha256": digest(weights),
        }
        (temporary / CONFIG).write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if directory.exists():
            directory.rmdir()
        os.replace(temporary, directory)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return directory


def read_preset(directory):
    """The config of a preset, after checking its files; raises ValueError if broken."""
    directory = pathlib.Path(directory)
    if not is_preset(directory):
        raise ValueError(f"{directory} is not a kerasformer preset (no {CONFIG} of format {FORMAT!r})")
    config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    if config.get("version") != VERSION:
        raise ValueError(f"{directory}: preset version {config.get('version')} is not supported")
    for name in (WEIGHTS, config["tokenizer"]["vocab"]):
        if not (directory / name).is_file():
            raise ValueError(f"{directory}: {name} is missing")
    if digest(directory / WEIGHTS) != config["weights_sha256"]:
        raise ValueError(f"{directory}: {WEIGHTS} does not match its recorded sha256")
    return config


def converted_directory(repo_id, commit, family):
    """Where the converted preset of a Hub checkpoint is cached."""
    return kerasformer_home() / "converted" / repo_id.replace("/", "--") / f"{commit}-{family}"
