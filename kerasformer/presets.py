"""Presets: a task as config.json + model.weights.h5 + tokenizer assets — the one
module that writes and reads them.

`Task.save_preset` exports a task so it can be re-published or loaded without its
original files; the cache of converted Hub checkpoints stores presets too, so a second
load reads one `.weights.h5` and needs neither the download nor the conversion.
config.json holds the transformer's own config (`Transformer.get_config`) and the
task's (`Task.get_config`), both rebuilt through their `from_config`. Presets are
written into a temporary directory beside the target and renamed into place, so an
interrupted write never leaves a directory that loads; when two writers race for one
target, the first rename wins and the other gets FileExistsError. Temporary
directories that a killed writer left behind are removed by the next save into the
same parent. The weights' sha256 is recorded and checked before loading, and no file a
preset names may lie outside it — symlinks included, at load and again when a task
loaded from a preset is saved.
"""
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import socket
import time
import uuid
import weakref

from kerasformer.hub.download import digest, kerasformer_home, write_atomically

FORMAT = "kerasformer-preset"
VERSION = 2
CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
# Rows of a tensor a conversion reads and writes at a time.
BLOCK_BYTES = 1 << 26

# A temporary directory is `.NAME.UUID.PID-HOST.partial`: the writer's process id and a
# digest of its host name say whose it is. An older `.NAME.UUID.partial` has no owner.
PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<uuid>[0-9a-f]{32})(?:\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8}))?\.partial$")
# A partial whose owner cannot be checked (another host, no owner recorded, Windows) is
# removed once nothing in it changed for this long. Writing a preset takes seconds to
# minutes (weights of a few GB); an hour without a single write is no live writer.
# Removing a live writer's directory would only make its rename fail, never corrupt a
# preset, so the bound errs on the side of not leaking full copies of the weights.
STALE_PARTIAL_SECONDS = 3600

# Tasks loaded from a preset, and the preset's resolved directory and vocabulary path:
# saving such a task copies nothing from outside that preset.
_ORIGINS = weakref.WeakKeyDictionary()


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

    Raises:
        FileExistsError: `directory` is not empty, or another writer renamed its
            preset into place first.
    """
    task_config = task.get_config()
    vocab = task_config["tokenizer"].get("vocab")
    if vocab is None:
        raise ValueError("this task was built without a vocabulary path in its tokenizer config")
    vocab = _vocabulary_to_copy(task, vocab)
    return _write(directory, task.transformer.get_config(), task_config, vocab, source,
                  task.model.save_weights)


def convert(directory, transformer, task_config, checkpoint, source=None, progress=None,
            block_bytes=BLOCK_BYTES):
    """Writes the preset of a checkpoint without building its model.

    The weights go from the checkpoint into `model.weights.h5` tensor by tensor — a
    tensor taken as it is, block by block of rows — so converting CPM-LM's 10.4 GB
    holds about one tensor in memory, not the model. The file is the one
    `model.save_weights` writes for the model `transformer` builds: the dataset of
    each variable is found by saving a skeleton of the same architecture (every size
    2) whose variables hold their own index. The checkpoint is checked as strictly as
    `Transformer.load_weights_from_checkpoint` checks it, before anything is written.

    Args:
        directory: where to write; must not exist or be empty.
        transformer: the unbuilt `Transformer` the preset rebuilds.
        task_config: the task's config (`Task.get_config`), its tokenizer's `vocab`
            naming the file to copy.
        checkpoint: what `load_weights_from_checkpoint` takes.
        source: optional provenance recorded in config.json.
        progress: optional label of a progress bar over the tensors.
        block_bytes: rows of a tensor read and written at a time.

    Returns:
        The preset directory as a `pathlib.Path`.
    """
    variables = transformer.abstract_variables()
    tensors, planned = transformer.plan_checkpoint(checkpoint, variables)

    def write_weights(path):
        _write_converted_weights(path, transformer, variables, tensors, dict(planned),
                                 progress, block_bytes)

    task_config = dict(task_config)
    return _write(directory, transformer.get_config(), task_config,
                  task_config["tokenizer"]["vocab"], source, write_weights)


def tokenizer_asset(tokenizer_config):
    """Where a preset keeps the file its tokenizer reads (`assets/tokenizer/vocab.txt`,
    `assets/tokenizer/spiece.model`)."""
    from kerasformer.tokenizers import recipes

    return "assets/tokenizer/" + recipes.FILE_NAMES[recipes.tokenizer_type(tokenizer_config)]


def _write(directory, transformer_config, task_config, vocab, source, write_weights):
    """Writes a preset atomically: `write_weights(path)` fills the weights file."""
    from kerasformer import __version__

    directory = pathlib.Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty directory")
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(directory.parent)
    temporary = partial_path(directory)
    temporary.mkdir()
    try:
        weights = temporary / WEIGHTS
        write_weights(weights)
        asset = tokenizer_asset(task_config["tokenizer"])
        (temporary / asset).parent.mkdir(parents=True)
        shutil.copyfile(vocab, temporary / asset)
        task_config["tokenizer"] = {**task_config["tokenizer"], "vocab": asset}
        config = {
            "format": FORMAT,
            "version": VERSION,
            "kerasformer_version": __version__,
            "transformer": transformer_config,
            "task": task_config,
            "source": source or {},
            "weights_sha256": digest(weights),
        }
        (temporary / CONFIG).write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        _rename_into_place(temporary, directory)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _record_digest(directory / WEIGHTS, config["weights_sha256"])  # hashed just now
    return directory


def _write_converted_weights(path, transformer, variables, tensors, planned, progress,
                             block_bytes):
    """Writes `model.weights.h5` from the planned `{variable path: Source}`."""
    import h5py
    import numpy as np

    from kerasformer.convert.weights import read_source_blocks

    groups, entries = _weights_file_layout(transformer, set(variables))
    items = entries.items()
    if progress:
        from kerasformer.progress import progress as bar

        items = bar(list(items), progress, unit="tensor")
    with h5py.File(path, "w") as file:
        for name, attributes in groups.items():  # parents first, as visited
            group = file.create_group(name)
            group.attrs.update(attributes)
        for name, (variable_path, twin_value) in items:
            if variable_path is None:  # not a weight (a dropout's seed): as the twin has it
                file[name] = twin_value
                continue
            variable = variables[variable_path]
            dtype, bfloat16 = _stored_dtype(variable.dtype)
            dataset = file.create_dataset(name, shape=tuple(variable.shape), dtype=dtype)
            if bfloat16:
                dataset.attrs["dtype"] = "bfloat16"
            for start, block in read_source_blocks(tensors, planned[variable_path], block_bytes):
                block = np.asarray(block)
                if bfloat16:
                    import ml_dtypes

                    block = block.astype(ml_dtypes.bfloat16).view(dtype)
                if dataset.ndim == 0:
                    dataset[()] = block.astype(dtype, copy=False)
                else:
                    dataset[start:start + len(block)] = block.astype(dtype, copy=False)


def _stored_dtype(dtype):
    """(numpy dtype of the h5 dataset, whether it holds bfloat16 bits) — as Keras
    stores bfloat16: two opaque bytes marked by a `dtype` attribute."""
    import numpy as np

    if str(dtype) == "bfloat16":
        return np.dtype("V2"), True
    return np.dtype(str(dtype)), False


def _weights_file_layout(transformer, paths):
    """`({group: attributes}, {dataset: (variable path or None, skeleton's value)})` of
    the weights file `transformer`'s model saves, from a skeleton of it whose
    variables hold their index (see `convert`). `paths` are the real model's
    variable paths, which the skeleton must have exactly."""
    import tempfile

    import h5py
    import keras
    import numpy as np

    from kerasformer import architectures

    config = transformer.get_config()
    skeleton = architectures.get(config["architecture"]).from_config(
        transformer.skeleton_config(config))
    model = skeleton.build(weights_follow=True)
    own = {variable.path for variable in skeleton.checkpoint_variables()}
    if own != paths:
        raise RuntimeError(f"the {config['architecture']} skeleton has other variables than "
                           f"the model: {sorted(own ^ paths)[:5]}")
    variables = list(model.variables)
    originals = [keras.ops.convert_to_numpy(variable) for variable in variables]
    for index, variable in enumerate(variables):
        variable.assign(np.full(variable.shape, index + 1, keras.backend.standardize_dtype(
            variable.dtype)))
    groups, entries = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        twin_path = pathlib.Path(scratch) / "skeleton.weights.h5"
        model.save_weights(twin_path)
        with h5py.File(twin_path, "r") as file:
            def visit(name, item):
                if isinstance(item, h5py.Group):
                    groups[name] = dict(item.attrs)
                    return
                value = item[()]
                index = int(np.asarray(value).reshape(-1)[0]) - 1 if np.size(value) else -1
                variable = variables[index] if 0 <= index < len(variables) else None
                if variable is None:
                    raise RuntimeError(f"the skeleton's weights file holds {name!r}, which is "
                                       "none of its variables")
                path = variable.path if variable.path in paths else None
                entries[name] = (path, originals[index])
            file.visititems(visit)
    return groups, entries


def _vocabulary_to_copy(task, vocab):
    """The vocabulary file to copy into a new preset. For a task loaded from a preset
    that still names that preset's vocabulary, the file must still be inside that
    preset once symlinks are resolved (it may have been replaced since loading)."""
    origin = _ORIGINS.get(task)
    if origin is None or os.fspath(vocab) != origin[1]:
        return vocab
    root, _ = origin
    resolved = pathlib.Path(vocab).resolve()
    if root not in resolved.parents:
        raise ValueError(f"{root}: the vocabulary {vocab!r} now lies outside the preset "
                         f"({resolved}): not copied")
    return resolved


def _rename_into_place(temporary, directory):
    """Renames a finished preset onto `directory` (absent or empty). Where another
    writer got there first, its preset stays and FileExistsError is raised."""
    try:
        directory.rmdir()  # an empty directory given by the caller
    except FileNotFoundError:
        pass
    except OSError:
        if directory.is_dir() and any(directory.iterdir()):
            raise FileExistsError(f"{directory} was written by another process meanwhile") from None
        raise
    try:
        os.replace(temporary, directory)
    except OSError:
        # ENOTEMPTY / EEXIST on POSIX, access denied on Windows: a rename onto a
        # directory that another writer has just filled
        if directory.is_dir() and any(directory.iterdir()):
            raise FileExistsError(f"{directory} was written by another process meanwhile") from None
        raise


def partial_path(directory):
    """A new temporary path beside `directory`, named after its writer (see PARTIAL)."""
    directory = pathlib.Path(directory)
    return directory.parent / f".{directory.name}.{uuid.uuid4().hex}.{os.getpid()}-{_host()}.partial"


def discard(directory):
    """Removes a directory at once from its name (renamed to a partial first, so a
    writer can rename a new one into place while the old one is deleted; what a kill
    leaves behind is removed by a later save)."""
    directory = pathlib.Path(directory)
    doomed = partial_path(directory)
    try:
        os.replace(directory, doomed)
    except FileNotFoundError:
        return
    except OSError:
        doomed = directory
    if doomed.is_dir() and not doomed.is_symlink():
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        doomed.unlink(missing_ok=True)


def remove_stale_partials(parent):
    """Removes the temporary directories in `parent` that no writer will finish: those
    of a process of this host that is gone (kill -9), and any whose files have not
    changed for STALE_PARTIAL_SECONDS."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        match = PARTIAL.match(entry.name)
        if match is None:
            continue
        path = pathlib.Path(entry.path)
        owner_gone = (match["pid"] is not None and match["host"] == _host()
                      and not _alive(int(match["pid"])))
        if owner_gone or time.time() - _last_change(path) > STALE_PARTIAL_SECONDS:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _host():
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _alive(pid):
    """Whether process `pid` of this host exists (True when it cannot be told)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would not probe there; rely on the age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by another user
        return True
    return True


def _last_change(path):
    """The latest modification time of `path` and everything in it."""
    latest = 0.0
    try:
        latest = path.lstat().st_mtime
        for root, directories, files in os.walk(path):
            for name in directories + files:
                try:
                    latest = max(latest, os.lstat(os.path.join(root, name)).st_mtime)
                except OSError:
                    pass
    except OSError:
        pass
    return latest


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
    for key in ("transformer", "task"):
        if not isinstance(config[key], dict):
            raise ValueError(f"{directory}: {CONFIG}'s {key!r} is not an object")
    if not isinstance(config["transformer"].get("architecture"), str):
        raise ValueError(f"{directory}: {CONFIG} names no architecture")
    tokenizer = config["task"].get("tokenizer")
    vocab = tokenizer.get("vocab") if isinstance(tokenizer, dict) else None
    if not isinstance(vocab, str):
        raise ValueError(f"{directory}: {CONFIG} names no tokenizer vocabulary")
    root = directory.resolve()
    for name in (CONFIG, WEIGHTS, vocab):
        if root not in (directory / name).resolve().parents:
            raise ValueError(f"{directory}: {name!r} is outside the preset")
        if not (directory / name).is_file():
            raise ValueError(f"{directory}: {name} is missing")
    if verified_digest(directory / WEIGHTS) != config["weights_sha256"]:
        raise ValueError(f"{directory}: {WEIGHTS} does not match its recorded sha256")
    return config


def verified_digest(path):
    """The sha256 of `path`, hashed once per version of the file.

    Hashing a base model's weights costs about as much as reading them, on every load.
    The digest is kept under $KERASFORMER_HOME/verified, keyed on the file's identity
    (device, inode, size, modification time): any rewrite of the file — a truncated
    copy, a changed byte written by a program — hashes it again. What this does not
    catch is a change that keeps size and mtime (bit rot under the file system), as
    huggingface_hub's cache does not either. A cache that cannot be written just
    means hashing every time.
    """
    path = pathlib.Path(path)
    record, key = _digest_record(path)
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
        if known.get("file") == key and isinstance(known.get("sha256"), str):
            return known["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    value = digest(path)
    _record_digest(path, value)
    return value


def _digest_record(path):
    """Where the digest of `path` is recorded, and the identity it is recorded for."""
    stat = path.stat()
    key = f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    name = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:32]
    return kerasformer_home() / "verified" / f"{name}.json", key


def _record_digest(path, value):
    try:
        record, key = _digest_record(pathlib.Path(path))
        write_atomically(record, json.dumps({"file": key, "sha256": value}).encode("utf-8"))
    except OSError:
        pass


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """What a caller asks of a loaded task that no preset or checkpoint fixes: applied
    each time it is loaded, never part of a cached conversion.

    Attributes:
        dtype: Keras dtype policy, e.g. "mixed_bfloat16".
        text_maxlen: tokens kept of each input text (similarity and classification
            tasks).
        rope_scaling: a RoPE position scaling of rotary architectures (see
            `kerasformer.layers.rotary.check_rope_scaling`).
    """

    dtype: object = None
    text_maxlen: int = None
    rope_scaling: dict = None

    TEXT_MAXLEN_TASKS = ("similarity", "classification")

    def __bool__(self):
        return any(value is not None for value in dataclasses.astuple(self))

    def transformer_arguments(self, architecture):
        """Constructor arguments of `architecture` (a `Transformer` class) these
        options set."""
        arguments = {}
        if self.dtype is not None:
            arguments["dtype"] = self.dtype
        if self.rope_scaling is not None:
            if "rope_scaling" not in architecture.argument_names():
                raise ValueError(f"rope_scaling applies to rotary architectures (roformer, "
                                 f"roformer_v2, gau_alpha, univae), not {architecture.architecture}")
            arguments["rope_scaling"] = self.rope_scaling
        return arguments

    def task_options(self, task, options):
        """A task's options (`Task.task_options`) with these applied."""
        if self.text_maxlen is not None and task in self.TEXT_MAXLEN_TASKS:
            return {**options, "text_maxlen": self.text_maxlen}
        return dict(options)


def load(directory, options=None):
    """The task saved in a preset directory (with `LoadOptions`, if given)."""
    directory = pathlib.Path(directory)
    return from_config(directory, read_config(directory), options)


def from_config(directory, config, options=None):
    """The task of a preset whose config `read_config` returned."""
    from kerasformer import architectures
    from kerasformer.models import TASK_CLASSES

    options = options or LoadOptions()
    directory = pathlib.Path(directory)
    transformer_config = dict(config["transformer"])
    architecture = architectures.get(transformer_config["architecture"])
    transformer_config.update(options.transformer_arguments(architecture))
    transformer = architecture.from_config(transformer_config)
    transformer.build(weights_follow=True)
    task_config = dict(config["task"])
    task_config["tokenizer"] = {**task_config["tokenizer"],
                                "vocab": str(directory / task_config["tokenizer"]["vocab"])}
    task_class = TASK_CLASSES.get(task_config.get("task"))
    if task_class is None:
        raise ValueError(f"{directory}: unknown task {task_config.get('task')!r}")
    task_config["options"] = options.task_options(task_class.task, task_config.get("options", {}))
    task = task_class.from_config(task_config, transformer)
    # The task's model is what `save` wrote: the transformer's own, or a model around
    # it with the task's layers (a classifier's head).
    task.model.load_weights(directory / WEIGHTS)
    _ORIGINS[task] = (directory.resolve(), task_config["tokenizer"]["vocab"])
    return task
