"""`kerasformer.models.load`: the one pipeline from a checkpoint to a ready task.

    resolve  a name, `hf://owner/repo[@revision]` or a directory → what to read
    fetch    Hub files through huggingface_hub, verified (`kerasformer.hub.download`)
    build    the family's architecture and heads (`kerasformer.families`)
    load     the weights, strictly (`Transformer.load_weights_from_checkpoint`)
    cache    conversions as presets under $KERASFORMER_HOME/converted: of Hub checkpoints
             by (repo, commit, family); of directories by (path, family), valid while
             the files read, the family's recipe and the manifest are unchanged
    task     the family's task with its tokenizer recipe and task options

Accepted sources:
- a registered name from checkpoints/ ("roformer-sim", "gau-alpha", ...);
- `hf://owner/repo[@revision]`, any Hugging Face repo in a supported layout;
- a local directory: a kerasformer preset, an original release (bert_config.json +
  bert_model.ckpt.* + vocab.txt) or a Hugging Face layout (config.json +
  model.safetensors or pytorch_model.bin + vocab.txt or spiece.model).

The family comes from `family=`, else from the manifest (a registered name, or an
original release directory named as the release zip), else from what a Hugging Face
config says. The command line calls these functions; it does not re-implement them.

A cached conversion is the family's conversion as it stands, without the per-call
options (`presets.LoadOptions`: `dtype`, `text_maxlen`, `rope_scaling`), which apply
when it is loaded. A cache entry that
does not load is reported once (a warning naming it), removed and converted again.
"""
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shlex
import warnings

from kerasformer import families, presets
from kerasformer.hub import download, manifests

ORIGINAL_LAYOUT = ("bert_config.json", "bert_model.ckpt.index", "vocab.txt")
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# What a tokenizer reads: a WordPiece vocabulary, or a SentencePiece model (CPM).
TOKENIZER_FILES = ("vocab.txt", "spiece.model")
HANDLE = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>.+))?$")
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# A Hub mirror many users behind a blocked huggingface.co use, named in error messages.
MIRROR_EXAMPLE = "https://hf-mirror.com"


def load(source, family=None, revision=None, dtype=None, token=None, text_maxlen=None,
         ignore_invalid_weights=False, rope_scaling=None):
    """Loads a checkpoint by name, Hub handle or directory, as a ready task.

    Args:
        source: a registered name (see `kerasformer list`), an
            `hf://owner/repo[@revision]` handle, or a local directory.
        family: "roformer-sim", "simbert" (→ `SimilarityModel`), "roformer",
            "roformer-v2", "gau-alpha", "bert" (→ `MaskedLanguageModel`); see
            `kerasformer.families`. Needed where the source does not say.
        revision: a branch, tag or commit of the Hub repo (default: the manifest's
            pinned commit, else "main").
        dtype: Keras dtype policy, e.g. "mixed_bfloat16".
        token: Hugging Face token for private or gated repos.
        text_maxlen: for similarity models, tokens kept of each input text.
        ignore_invalid_weights: load what matches and warn about weights that stay
            random instead of raising; such a model is never cached.
        rope_scaling: for rotary architectures, a RoPE position scaling to run past
            the training length, e.g. `{"type": "ntk", "factor": 4}` (see
            `kerasformer.models.RoFormer`).

    Returns:
        A `SimilarityModel` or a `MaskedLanguageModel`.

    Raises:
        kerasformer.hub.HubUnreachableError: (a `ConnectionError`) the Hub, or the
            mirror HF_ENDPOINT names, did not answer within seconds and the cache lacks
            what is needed; its message says what was tried and the ways out.
    """
    from kerasformer.layers.rotary import check_rope_scaling

    options = presets.LoadOptions(dtype, text_maxlen, check_rope_scaling(rope_scaling))
    if isinstance(source, os.PathLike) or (isinstance(source, str) and os.path.isdir(source)):
        return load_directory(pathlib.Path(source), family, options, ignore_invalid_weights)
    if not isinstance(source, str):
        raise TypeError(f"expected a name, hf:// handle or directory, got {source!r}")
    bundled = manifests.find_manifest(source)
    if bundled is not None and manifests.is_bundled(bundled):
        return load_bundled(bundled, family, revision, options)
    repo_id, handle_revision, manifest = resolve(source)
    if family is None and manifest is not None:
        family = manifest["family"]
    family = families.get(family).name if family is not None else None
    revision = revision or handle_revision or (manifest and manifest["hub"]["revision"]) or "main"
    try:
        return _load_hub(repo_id, revision, manifest, family, options, token,
                         ignore_invalid_weights)
    except download.HubUnreachableError as error:
        raise error.with_advice(ways_out(source, manifest, family)) from None


def load_bundled(manifest, family=None, revision=None, options=None):
    """The task of a preset shipped inside the package: no network, no cache."""
    name = manifest["name"]
    if revision is not None:
        raise ValueError(f"{name} is bundled with kerasformer: it has no Hub revisions "
                         f"(got revision={revision!r})")
    if family is not None and families.get(family).name != manifest["family"]:
        raise ValueError(f"{name} is a {manifest['family']} model, not {family}")
    directory = manifests.bundled_preset(manifest)
    if not directory.is_dir():
        raise FileNotFoundError(f"{name}: its preset {directory} is missing from this "
                                "installation of kerasformer (reinstall it)")
    return presets.load(directory, options)


def _load_hub(repo_id, revision, manifest, family, options, token, ignore_invalid_weights=False):
    commit, reached = download.resolve(repo_id, revision, token)
    if family is None and not ignore_invalid_weights:
        family = _cached_family(repo_id, commit)
    if family is not None and not ignore_invalid_weights:
        task = _load_cached(converted_directory(repo_id, commit, family), options)
        if task is not None:
            return task
    files, declared = hub_files(repo_id, commit, manifest, token, reached)
    local = download.fetch(repo_id, commit, files, token, declared,
                           reached=reached or declared is not None)
    roles = {f.get("role"): local[f["path"]] for f in files}
    config = presets.read_json(roles["config"], "config")
    if family is None:
        family = _family_from_config(config, repo_id)
        if not ignore_invalid_weights:
            task = _load_cached(converted_directory(repo_id, commit, family), options)
            if task is not None:
                return task
    source_record = {"repo_id": repo_id, "revision": commit,
                     "files": {path: download.digest(p) for path, p in local.items()}}

    def build(options):
        return build_task(family, config, roles["weights"], roles["vocab"], manifest, options,
                          progress=f"converting {repo_id}",
                          ignore_invalid_weights=ignore_invalid_weights)

    def convert(target):
        return convert_task(target, family, config, roles["weights"], roles["vocab"], manifest,
                            source_record, progress=f"converting {repo_id}")

    if ignore_invalid_weights:  # some weights may be random: nothing to cache
        return build(options)
    return _convert_and_cache(convert, build, converted_directory(repo_id, commit, family),
                              options)


def resolve(handle, bare_repo_ids=False):
    """(repo_id, revision or None, manifest or None) of a name or hf:// handle; with
    `bare_repo_ids`, "owner/repo" is taken as hf://owner/repo."""
    if bare_repo_ids and isinstance(handle, str) and REPO_ID.match(handle):
        handle = f"hf://{handle}"
    match = HANDLE.match(handle)
    if match:
        repo_id = download.check_repo_id(match["repo"])
        revision = match["revision"]
        if revision is not None:
            download.check_revision(revision)
        known = [m for m in manifests.list_manifests().values()
                 if not manifests.is_bundled(m) and m["hub"]["repo_id"] == repo_id]
        return repo_id, revision, known[0] if known else None
    if handle.startswith("hf://"):
        raise ValueError(f"{handle!r} is not a valid handle: use hf://owner/repo[@revision]")
    manifest = manifests.find_manifest(handle)
    if manifest is None:
        close = manifests.suggest(handle)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise LookupError(
            f"unknown checkpoint {handle!r}{hint}: give a registered name (see "
            "`kerasformer list`), an hf://owner/repo handle or an existing directory"
        )
    if manifests.is_bundled(manifest):
        raise ValueError(f"{manifest['name']} is bundled with kerasformer: there is nothing "
                         "to download")
    return manifest["hub"]["repo_id"], None, manifest


def download_files(handle, revision=None, token=None):
    """Fetches and verifies the files `load` would read; {repo path: local path}.

    `handle` is a registered name, an hf://owner/repo[@revision] handle or "owner/repo".
    Files cached and verified before are not asked of the Hub again.
    """
    repo_id, handle_revision, manifest = resolve(handle, bare_repo_ids=True)
    revision = revision or handle_revision or (manifest and manifest["hub"]["revision"]) or "main"
    try:
        commit, reached = download.resolve(repo_id, revision, token)
        files, declared = hub_files(repo_id, commit, manifest, token, reached)
        return download.fetch(repo_id, commit, files, token, declared,
                              reached=reached or declared is not None)
    except download.HubUnreachableError as error:
        family = manifest["family"] if manifest is not None else None
        raise error.with_advice(ways_out(handle, manifest, family)) from None


def ways_out(handle, manifest, family):
    """What a user behind an unreachable Hub can do, as commands that work as written."""
    command = f"kerasformer download {shlex.quote(handle)}"
    ways = [
        f"a Hub mirror: set HF_ENDPOINT, e.g. HF_ENDPOINT={MIRROR_EXAMPLE}",
        f"HF_HUB_OFFLINE=1 with a filled cache: where the Hub is reachable, `{command}` "
        "fills HF_HOME and KERASFORMER_HOME (by default ~/.cache/huggingface and "
        "~/.cache/kerasformer); copy both to this machine",
    ]
    original = manifest["original"] if manifest is not None else {}
    url, mirror = original.get("url"), original.get("mirror")
    release = url.rsplit("/", 1)[-1] if url else ""
    where = f"{url}" + (f" (mirror: {mirror})" if mirror else "")
    if release.endswith(".zip") and original.get("layout") == "bert4keras-tf":
        directory = release[:-len(".zip")]
        ways.append(f"the original release {where}: unzip it and load the directory, "
                    f'`kerasformer.models.load("{directory}", family="{family}")` '
                    f"(on the command line `--model {directory} --family {family}`)")
    elif url:
        ways.append(f"the original release {where}")
    else:
        ways.append("a copy of the repository's files (config.json, the weights, vocab.txt) "
                    "in a directory DIR: `kerasformer.models.load(DIR, family=...)` "
                    "(on the command line `--model DIR --family ...`)")
    return "Ways out:\n" + "\n".join(f"  - {way}" for way in ways)


def hub_files(repo_id, commit, manifest, token, reached=False):
    """(files to fetch with their roles, the Hub's declared digests or None): the
    manifest's files, or those found in the repo — in the local cache when it holds
    them all, else as the Hub lists them."""
    if manifest is not None:
        files = [f for f in manifest["hub"]["files"] if f["role"] in ("config", "vocab", "weights")]
        return files, None
    snapshot = download.snapshot(repo_id, commit)
    available = {p.name for p in snapshot.iterdir() if p.is_file()} if snapshot.is_dir() else set()
    declared = None
    if not download.offline() and not _complete(available):
        if not reached:
            download.reach(repo_id, commit, token)
        declared = download.list_files(repo_id, commit, token)
        available = set(declared)
    weights = next((name for name in HF_WEIGHTS if name in available), None)
    vocab = next((name for name in TOKENIZER_FILES if name in available), None)
    if not _complete(available):
        missing = [n for n, ok in [("config.json", "config.json" in available),
                                   ("vocab.txt or spiece.model", vocab),
                                   ("model.safetensors or pytorch_model.bin", weights)] if not ok]
        raise FileNotFoundError(
            f"{repo_id}@{commit[:7]} lacks {', '.join(missing)}"
            + (" in the local cache (HF_HUB_OFFLINE is set)" if download.offline() else "")
        )
    files = [{"path": "config.json", "role": "config"}, {"path": vocab, "role": "vocab"},
             {"path": weights, "role": "weights"}]
    return files, declared


def _complete(available):
    return ("config.json" in available and any(name in available for name in TOKENIZER_FILES)
            and any(name in available for name in HF_WEIGHTS))


# ------------------------------------------------------------------- building


def task_recipe(family, config, vocab, manifest=None, options=None,
                ignore_invalid_weights=False):
    """`(Transformer, task config)` of a family from a config dict and a tokenizer
    file: the model unbuilt, the task's `get_config()` to make around it.

    The family's recipe (architecture, heads, task, task options, tokenizer) comes
    from `kerasformer.families`, refined by `manifest` when the checkpoint has one.
    """
    from kerasformer import architectures
    from kerasformer.models.builder import make_transformer
    from kerasformer.tokenizers.recipes import resolve_pre_tokenize

    family = families.get(family)
    if manifest is not None and families.get(manifest["family"], buildable=False) is not family:
        manifest = None  # a manifest of another family says nothing about this one
    options = options or presets.LoadOptions()
    tokenizer = dict(family.tokenizer)
    task_options = dict(family.task_options)
    if manifest is not None:
        config = {**manifest["config"]["defaults"], **config, **manifest["config"]["overrides"]}
        tokenizer.update({k: v for k, v in manifest["tokenizer"].items() if k != "vocab"})
        task_options.update(manifest["task_options"])
    tokenizer["vocab"] = str(vocab)
    tokenizer["pre_tokenize"] = resolve_pre_tokenize(tokenizer)  # "auto" decided once
    transformer = make_transformer(
        family.architecture, config, ignore_invalid_weights=ignore_invalid_weights,
        **options.transformer_arguments(architectures.get(family.architecture)),
        **family.build)
    task_config = {"task": family.task, "family": family.name, "tokenizer": tokenizer,
                   "options": options.task_options(family.task, task_options)}
    return transformer, task_config


def build_task(family, config, checkpoint, vocab, manifest=None, options=None, progress=None,
               ignore_invalid_weights=False):
    """Builds a family's task from a config dict, a checkpoint and a tokenizer file
    (see `task_recipe`). `progress`, if given, labels a progress bar over the weights.
    """
    from kerasformer.models import TASK_CLASSES

    transformer, task_config = task_recipe(family, config, vocab, manifest, options,
                                           ignore_invalid_weights)
    transformer.load_weights_from_checkpoint(checkpoint, progress=progress)
    return TASK_CLASSES[task_config["task"]].from_config(task_config, transformer)


def convert_task(target, family, config, checkpoint, vocab, manifest=None, source=None,
                 progress=None):
    """Writes a family's task as a preset at `target`, streamed from the checkpoint
    without building the model (`presets.convert`)."""
    transformer, task_config = task_recipe(family, config, vocab, manifest)
    return presets.convert(target, transformer, task_config, checkpoint, source=source,
                           progress=progress)


def load_directory(path, family=None, options=None, ignore_invalid_weights=False):
    """The task in a local directory: a preset, an original release or an HF layout.

    A release or HF layout is converted once: the conversion is cached as a preset
    (see `directory_cache`) and read back while the files are unchanged.
    """
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {str(path)!r}")
    if presets.is_preset(path):
        return presets.load(path, options)
    if (path / "bert_config.json").is_file():  # an original release
        missing = [f for f in ORIGINAL_LAYOUT if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{str(path)!r} is not an original checkpoint directory: missing {', '.join(missing)}"
            )
        manifest = manifests.find_release(path.name)
        if family is None:
            if manifest is None:
                raise ValueError(_family_needed(path, path / "bert_model.ckpt"))
            family = manifest["family"]
        family = families.get(family)
        checkpoint, vocab = path / "bert_model.ckpt", path / "vocab.txt"
        read = [path / "bert_config.json", path / "vocab.txt", path / "bert_model.ckpt.index",
                *sorted(path.glob("bert_model.ckpt.data-*"))]

        def config():
            return presets.read_json(path / "bert_config.json", "config")
    else:
        weights = next((path / name for name in HF_WEIGHTS if (path / name).is_file()), None)
        vocab = next((path / name for name in TOKENIZER_FILES if (path / name).is_file()), None)
        if not ((path / "config.json").is_file() and weights is not None and vocab is not None):
            raise FileNotFoundError(
                f"{str(path)!r} is neither a kerasformer preset, an original release "
                f"({', '.join(ORIGINAL_LAYOUT)}) nor a Hugging Face layout (config.json, "
                "model.safetensors or pytorch_model.bin, vocab.txt or spiece.model)"
            )
        hf_config = presets.read_json(path / "config.json", "config")
        if family is None:
            family = families.from_config(hf_config)
            if family is None:
                raise ValueError(_family_needed(path, weights))
        family = families.get(family)
        manifest, checkpoint = None, weights
        read = [path / "config.json", vocab, weights]

        def config():
            return hf_config

    def build(options):
        return build_task(family.name, config(), checkpoint, vocab, manifest, options,
                          ignore_invalid_weights=ignore_invalid_weights)

    if ignore_invalid_weights:  # some weights may be random: nothing to cache
        return build(options)
    target = directory_cache(path, family.name)
    identity = directory_identity(path, family, read, manifest)
    task = _load_cached(target, options, identity)
    if task is not None:
        return task

    def convert(target):
        return convert_task(target, family.name, config(), checkpoint, vocab, manifest, identity)

    _remove_orphans(target.parent)
    return _convert_and_cache(convert, build, target, options)


def _family_needed(path, checkpoint):
    """The error for a directory that does not say its family, with what it does say."""
    from kerasformer import architectures
    from kerasformer.convert.checkpoints import open_checkpoint

    said = ""
    try:
        architecture = architectures.recognise_checkpoint(open_checkpoint(checkpoint).keys())
    except (OSError, ValueError):
        architecture = None
    if architecture is not None:
        candidates = [f.name for f in families.families().values() if f.architecture == architecture]
        said = f"; its tensors are a {architecture} checkpoint, whose families are {', '.join(candidates)}"
    return (
        f"pass family= for {str(path)!r}: it does not say which family it is{said} "
        f"(all families: {', '.join(families.names())})"
    )


def _family_from_config(config, repo_id):
    family = families.from_config(config)
    if family is None:
        raise ValueError(f"the config of {repo_id} does not say its family: pass family=")
    return family.name


# ---------------------------------------------------------------------- cache


def converted_directory(repo_id, commit, family):
    """Where the converted preset of a Hub checkpoint is cached."""
    download.check_repo_id(repo_id)
    download.check_commit(commit)
    return download.kerasformer_home() / "converted" / repo_id.replace("/", "--") / f"{commit}-{family}"


def _cached_family(repo_id, commit):
    """The family of the one cached conversion of a commit, or None (none or several)."""
    parent = converted_directory(repo_id, commit, "x").parent
    if not parent.is_dir():
        return None
    names = [p.name[len(commit) + 1:] for p in parent.glob(f"{commit}-*")]
    names = [name for name in names if name in families.families()]
    return names[0] if len(names) == 1 else None


def directory_cache(path, family):
    """Where the conversion of a checkpoint directory is cached: one entry per
    directory (its resolved path) and family, replaced when its files change."""
    resolved = str(pathlib.Path(path).resolve())
    label = re.sub(r"[^\w.-]", "_", pathlib.Path(resolved).name)[:48].lstrip(".") or "directory"
    key = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:16]
    return download.kerasformer_home() / "converted" / "local" / f"{label}-{key}-{family}"


def directory_identity(path, family, files, manifest):
    """What a directory's conversion depends on: the directory, the size and mtime of
    each file read, the family's recipe, the manifest and kerasformer's own code
    (recorded as the cached preset's `source`; any difference converts again)."""
    from kerasformer import __version__

    stats = {}
    for file in files:
        stat = os.stat(file)
        stats[pathlib.Path(file).name] = [stat.st_size, stat.st_mtime_ns]
    return {
        "directory": str(pathlib.Path(path).resolve()),
        "family": family.name,
        "family_recipe": _json_digest(dataclasses.asdict(family)),
        "manifest": _json_digest(manifest) if manifest is not None else None,
        "files": stats,
        "kerasformer_version": __version__,
        "kerasformer_code": _code_fingerprint(),
    }


def _json_digest(value):
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _code_fingerprint():
    """A digest of the size and mtime of kerasformer's own modules and tables: a
    conversion cached by other code (a development checkout between two versions)
    is converted again."""
    package = pathlib.Path(__file__).resolve().parent
    stats = []
    for root, directories, names in os.walk(package):
        directories[:] = sorted(d for d in directories if d != "__pycache__")
        for name in sorted(names):
            if name.endswith((".py", ".json")):
                stat = os.stat(os.path.join(root, name))
                stats.append([os.path.relpath(os.path.join(root, name), package),
                              stat.st_size, stat.st_mtime_ns])
    return _json_digest(stats)


def _remove_orphans(parent):
    """Removes the cached conversions of directories that no longer exist (a
    temporary directory, a checkpoint deleted or moved), so they do not pile up."""
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue  # partials: presets.save removes the stale ones
        try:
            source = presets.read_json(entry / presets.CONFIG).get("source", {})
            directory = source.get("directory") if isinstance(source, dict) else None
        except (OSError, ValueError):
            continue  # damaged: reported and replaced when its directory is loaded
        if isinstance(directory, str) and not os.path.isdir(directory):
            presets.discard(entry)


def _load_cached(directory, options=None, identity=None):
    """The task of a cached conversion, or None when there is none, it is stale (its
    `source` differs from `identity`, when given) or it is damaged (then reported
    once and removed)."""
    if not os.path.lexists(directory):
        return None
    try:
        if identity is not None:
            recorded = presets.read_json(pathlib.Path(directory) / presets.CONFIG, "preset config")
            if recorded.get("source") != identity:
                presets.discard(directory)  # the files changed: converted again
                return None
        config = presets.read_config(directory)
    except MemoryError:
        raise
    except Exception as error:
        return _damaged(directory, error)
    try:
        return presets.from_config(directory, config, options)
    except MemoryError:
        raise
    except Exception as error:
        if options:
            try:
                presets.from_config(directory, config)
            except Exception:
                pass
            else:
                raise error  # the options are wrong, not the cache
        return _damaged(directory, error)


def _damaged(directory, error):
    download.repair_warning(directory, f"damaged cached conversion ({type(error).__name__}: {error})")
    presets.discard(directory)
    return None


def _convert_and_cache(convert, build, target, options):
    """Converts into the cache (`convert(target)`, streamed: the model is not built
    for it) and loads the task from there with the per-call `LoadOptions`. Where two
    processes convert at once, the first preset renamed into place stays and the
    other reads it; where the cache cannot be written, it is reported and the task is
    built in memory (`build(options)`)."""
    try:
        convert(target)
    except OSError as error:
        if not (isinstance(error, FileExistsError) and presets.is_preset(target)):
            warnings.warn(f"conversion not cached at {target}: {error}", stacklevel=3)
            return build(options)
    task = _load_cached(target, options)
    return task if task is not None else build(options)
