"""`kerasformer.models.load`: the one pipeline from a checkpoint to a ready task.

    resolve  a name, `hf://owner/repo[@revision]` or a directory → what to read
    fetch    Hub files through huggingface_hub, verified (`kerasformer.hub.download`)
    build    the family's architecture and heads (`kerasformer.families`)
    load     the weights, strictly (`Transformer.load_weights_from_checkpoint`)
    cache    Hub conversions as presets under $KERASFORMER_HOME/converted
    task     the family's task with its tokenizer recipe and task options

Accepted sources:
- a registered name from checkpoints/ ("roformer-sim", "gau-alpha", ...);
- `hf://owner/repo[@revision]`, any Hugging Face repo in a supported layout;
- a local directory: a kerasformer preset, an original release (bert_config.json +
  bert_model.ckpt.* + vocab.txt) or a Hugging Face layout (config.json +
  model.safetensors or pytorch_model.bin + vocab.txt).

The family comes from `family=`, else from the manifest (a registered name, or an
original release directory named as the release zip), else from what a Hugging Face
config says. The command line calls these functions; it does not re-implement them.
"""
import os
import pathlib
import re
import shutil

from kerasformer import families, presets
from kerasformer.hub import download, manifests

ORIGINAL_LAYOUT = ("bert_config.json", "bert_model.ckpt.index", "vocab.txt")
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HANDLE = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>.+))?$")


def load(source, family=None, revision=None, dtype=None, token=None, text_maxlen=None):
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

    Returns:
        A `SimilarityModel` or a `MaskedLanguageModel`.
    """
    if isinstance(source, os.PathLike) or (isinstance(source, str) and os.path.isdir(source)):
        return load_directory(pathlib.Path(source), family, dtype, text_maxlen)
    if not isinstance(source, str):
        raise TypeError(f"expected a name, hf:// handle or directory, got {source!r}")
    repo_id, handle_revision, manifest = resolve(source)
    if family is None and manifest is not None:
        family = manifest["family"]
    family = families.get(family).name if family is not None else None
    revision = revision or handle_revision or (manifest and manifest["hub"]["revision"]) or "main"
    commit = download.resolve_revision(repo_id, revision, token)

    cached = cached_conversion(repo_id, commit, family)
    if cached is not None:
        try:
            return presets.load(cached, dtype, text_maxlen)
        except ValueError:  # damaged: convert again
            shutil.rmtree(cached, ignore_errors=True)
    files = hub_files(repo_id, commit, manifest, token)
    declared = None
    if not download.offline() and any("sha256" not in f for f in files):
        declared = download.list_files(repo_id, commit, token)
    local = download.fetch(repo_id, commit, files, token, declared)
    roles = {f.get("role"): local[f["path"]] for f in files}
    config = presets.read_json(roles["config"], "config")
    if family is None:
        family = _family_from_config(config, repo_id)
    task = build_task(family, config, roles["weights"], roles["vocab"], manifest, dtype,
                      text_maxlen, progress=f"converting {repo_id}")
    source_record = {"repo_id": repo_id, "revision": commit,
                     "files": {path: download.digest(p) for path, p in local.items()}}
    try:
        presets.save(task, converted_directory(repo_id, commit, family), source=source_record)
    except FileExistsError:
        pass  # another process converted it meanwhile
    return task


def resolve(handle):
    """(repo_id, revision or None, manifest or None) of a name or hf:// handle."""
    match = HANDLE.match(handle)
    if match:
        repo_id = match["repo"]
        known = [m for m in manifests.list_manifests().values() if m["hub"]["repo_id"] == repo_id]
        return repo_id, match["revision"], known[0] if known else None
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
    return manifest["hub"]["repo_id"], None, manifest


def download_files(handle, revision=None, token=None):
    """Fetches and verifies the files `load` would read; {repo path: local path}."""
    repo_id, handle_revision, manifest = resolve(handle)
    revision = revision or handle_revision or (manifest and manifest["hub"]["revision"]) or "main"
    commit = download.resolve_revision(repo_id, revision, token)
    files = hub_files(repo_id, commit, manifest, token)
    declared = None if download.offline() else download.list_files(repo_id, commit, token)
    return download.fetch(repo_id, commit, files, token, declared)


def hub_files(repo_id, commit, manifest, token):
    """The files to fetch (with their roles): the manifest's, or discovered in the repo."""
    if manifest is not None:
        return [f for f in manifest["hub"]["files"] if f["role"] in ("config", "vocab", "weights")]
    if download.offline():
        snapshot = pathlib.Path(download.hub_cache() or _default_hub_cache())
        snapshot = snapshot / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
        available = {p.name for p in snapshot.iterdir()} if snapshot.is_dir() else set()
    else:
        available = set(download.list_files(repo_id, commit, token))
    weights = next((name for name in HF_WEIGHTS if name in available), None)
    missing = [n for n, ok in [("config.json", "config.json" in available),
                               ("vocab.txt", "vocab.txt" in available),
                               ("model.safetensors or pytorch_model.bin", weights)] if not ok]
    if missing:
        raise FileNotFoundError(
            f"{repo_id}@{commit[:7]} lacks {', '.join(missing)}"
            + (" in the local cache (HF_HUB_OFFLINE is set)" if download.offline() else "")
        )
    return [{"path": "config.json", "role": "config"}, {"path": "vocab.txt", "role": "vocab"},
            {"path": weights, "role": "weights"}]


def _default_hub_cache():
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


# ------------------------------------------------------------------- building


def build_task(family, config, checkpoint, vocab, manifest=None, dtype=None, text_maxlen=None,
               progress=None):
    """Builds a family's task from a config dict, a checkpoint and a vocabulary.

    The family's recipe (architecture, heads, task, task options, tokenizer) comes
    from `kerasformer.families`, refined by `manifest` when the checkpoint has one.
    `progress`, if given, labels a progress bar over the weights.
    """
    from kerasformer.models import TASK_CLASSES
    from kerasformer.models.builder import make_transformer
    from kerasformer.tokenizers.recipes import resolve_pre_tokenize

    family = families.get(family)
    if manifest is not None and families.get(manifest["family"], buildable=False) is not family:
        manifest = None  # a manifest of another family says nothing about this one
    tokenizer = dict(family.tokenizer)
    options = dict(family.task_options)
    if manifest is not None:
        config = {**manifest["config"]["defaults"], **config, **manifest["config"]["overrides"]}
        tokenizer.update({k: v for k, v in manifest["tokenizer"].items() if k != "vocab"})
        options.update(manifest["task_options"])
    if text_maxlen is not None and family.task == "similarity":
        options["text_maxlen"] = text_maxlen
    tokenizer["vocab"] = str(vocab)
    tokenizer["pre_tokenize"] = resolve_pre_tokenize(tokenizer)  # "auto" decided once
    transformer = make_transformer(family.architecture, config, dtype=dtype, **family.build)
    transformer.load_weights_from_checkpoint(checkpoint, progress=progress)
    task_config = {"family": family.name, "tokenizer": tokenizer, "options": options}
    return TASK_CLASSES[family.task].from_config(task_config, transformer)


def load_directory(path, family=None, dtype=None, text_maxlen=None):
    """The task in a local directory: a preset, an original release or an HF layout."""
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {str(path)!r}")
    if presets.is_preset(path):
        return presets.load(path, dtype, text_maxlen)
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
        return build_task(family, presets.read_json(path / "bert_config.json", "config"),
                          path / "bert_model.ckpt", path / "vocab.txt", manifest, dtype, text_maxlen)
    weights = next((path / name for name in HF_WEIGHTS if (path / name).is_file()), None)
    if (path / "config.json").is_file() and weights is not None and (path / "vocab.txt").is_file():
        config = presets.read_json(path / "config.json", "config")
        if family is None:
            family = families.from_config(config)
            if family is None:
                raise ValueError(_family_needed(path, weights))
        return build_task(family, config, weights, path / "vocab.txt", None, dtype, text_maxlen)
    raise FileNotFoundError(
        f"{str(path)!r} is neither a kerasformer preset, an original release "
        f"({', '.join(ORIGINAL_LAYOUT)}) nor a Hugging Face layout (config.json, "
        "model.safetensors or pytorch_model.bin, vocab.txt)"
    )


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
    return download.kerasformer_home() / "converted" / repo_id.replace("/", "--") / f"{commit}-{family}"


def cached_conversion(repo_id, commit, family):
    """The cached preset of a Hub checkpoint, or None. Without `family`, the one
    conversion of that commit, if there is exactly one."""
    if family is not None:
        candidates = [converted_directory(repo_id, commit, family)]
    else:
        parent = converted_directory(repo_id, commit, "x").parent
        candidates = sorted(parent.glob(f"{commit}-*")) if parent.is_dir() else []
        candidates = [c for c in candidates if not c.name.endswith(".partial")]
        if len(candidates) != 1:
            return None
    return candidates[0] if presets.is_preset(candidates[0]) else None
