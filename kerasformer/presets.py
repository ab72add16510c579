"""Presets: a task as config.json + model.weights.h5 + tokenizer assets — the one
module that writes and reads them.

`Task.save_preset` exports a task so it can be re-published or loaded without its
original files; the cache of converted Hub checkpoints stores presets too, so a second
load reads one `.weights.h5` and needs neither the download nor the conversion.
config.json holds the transformer's own config (`Transformer.get_config`) and the
task's (`Task.get_config`), both rebuilt through their `from_config`. Presets are
written into a temporary directory beside the target and renamed into place, so an
interrupted write never leaves a directory that loads; the weights' sha256 is
recorded and checked before loading.
"""
import json
import os
import pathlib
import shutil
import uuid

from kerasformer.hub.download import digest

FORMAT = "kerasformer-preset"
VERSION = 2
CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
VOCAB = "assets/tokenizer/vocab.txt"


def read_json(path, what="file"):
    """A JSON object from `path`, with errors that name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path!r}")
    with open(path, encoding="utf-8") as file:
        try:
            value = json.load(file)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{what} {path!r} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} {path!r} must hold a JSON object")
    return value


def is_preset(directory):
    path = pathlib.Path(directory) / CONFIG
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def save(task, directory, source=None):
    """Writes `task` (a `SimilarityModel`, `MaskedLanguageModel`, ...) as a preset.

    Args:
        task: the task to save; its tokenizer config must name its vocabulary.
        directory: where to write; must not exist or be empty.
        source: optional provenance recorded in config.json (repo, revision, files).

    Returns:
        The preset directory as a `pathlib.Path`.
    """
    from kerasformer import __version__

    directory = pathlib.Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty directory")
    task_config = task.get_config()
    vocab = task_config["tokenizer"].get("vocab")
    if vocab is None:
        raise ValueError("this task was built without a vocabulary path in its tokenizer config")
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.parent / f".{directory.name}.{uuid.uuid4().hex}.partial"
    temporary.mkdir()
    try:
        weights = temporary / WEIGHTS
        task.model.save_weights(weights)
        (temporary / VOCAB).parent.mkdir(parents=True)
        shutil.copyfile(vocab, temporary / VOCAB)
        task_config["tokenizer"] = {**task_config["tokenizer"], "vocab": VOCAB}
        config = {
            "format": FORMAT,
            "version": VERSION,
            "kerasformer_version": __version__,
            "transformer": task.transformer.get_config(),
            "task": task_config,
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


def read_config(directory):
    """The config of a preset, after checking its files; raises ValueError if broken."""
    directory = pathlib.Path(directory)
    if not is_preset(directory):
        raise ValueError(f"{directory} is not a kerasformer preset (no {CONFIG} of format {FORMAT!r})")
    config = read_json(directory / CONFIG, "preset config")
    if config.get("version") != VERSION:
        raise ValueError(
            f"{directory}: preset version {config.get('version')} is not supported "
            f"(this kerasformer reads version {VERSION})"
        )
    for key in ("transformer", "task", "weights_sha256"):
        if key not in config:
            raise ValueError(f"{directory}: {CONFIG} lacks {key!r}")
    vocab = config["task"].get("tokenizer", {}).get("vocab")
    if vocab is None:
        raise ValueError(f"{directory}: {CONFIG} names no tokenizer vocabulary")
    root = directory.resolve()
    for name in (WEIGHTS, vocab):
        if root not in (directory / name).resolve().parents:
            raise ValueError(f"{directory}: {name!r} is outside the preset")
        if not (directory / name).is_file():
            raise ValueError(f"{directory}: {name} is missing")
    if digest(directory / WEIGHTS) != config["weights_sha256"]:
        raise ValueError(f"{directory}: {WEIGHTS} does not match its recorded sha256")
    return config


def load(directory, dtype=None, text_maxlen=None):
    """The task saved in a preset directory."""
    from kerasformer import architectures
    from kerasformer.models import TASK_CLASSES

    directory = pathlib.Path(directory)
    config = read_config(directory)
    transformer_config = dict(config["transformer"])
    if dtype is not None:
        transformer_config["dtype"] = dtype
    architecture = architectures.get(transformer_config["architecture"])
    transformer = architecture.from_config(transformer_config)
    transformer.build(weights_follow=True).load_weights(directory / WEIGHTS)
    task_config = dict(config["task"])
    task_config["tokenizer"] = {**task_config["tokenizer"],
                                "vocab": str(directory / task_config["tokenizer"]["vocab"])}
    task_class = TASK_CLASSES.get(task_config.get("task"))
    if task_class is None:
        raise ValueError(f"{directory}: unknown task {task_config.get('task')!r}")
    if text_maxlen is not None and task_class.task == "similarity":
        task_config["options"] = {**task_config.get("options", {}), "text_maxlen": text_maxlen}
    return task_class.from_config(task_config, transformer)
