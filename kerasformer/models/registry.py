"""`kerasformer.models.load`: the one entry point from a checkpoint to a ready task.

Accepted forms:
- a registered name from `checkpoints/` ("roformer-sim", "gau-alpha", ...);
- `hf://owner/repo[@revision]`, any Hugging Face repo in a supported layout;
- a local directory: a kerasformer preset, an original release (bert_config.json +
  bert_model.ckpt.* + vocab.txt) or a Hugging Face layout (config.json +
  model.safetensors or pytorch_model.bin + vocab.txt).

Hub checkpoints are downloaded through huggingface_hub (verified, see
`kerasformer.hub.download`), converted once and cached as presets under
$KERASFORMER_HOME/converted: later loads read the preset, with no request at all
when the revision is pinned (a branch costs one request to resolve).
"""
import dataclasses
import os
import pathlib
import re
import shutil

from kerasformer.hub import download, manifests, presets
from kerasformer.models.builder import get_family, make_transformer, read_config
from kerasformer.models.masked_lm import MaskedLanguageModel
from kerasformer.models.similarity import SimilarityModel
from kerasformer.tokenizers import Tokenizer


@dataclasses.dataclass(frozen=True)
class Family:
    """How a checkpoint family is built and used."""

    architecture: str  # build_transformer_model's model=
    task: str
    build: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)


FAMILIES = {
    "roformer-sim": Family("roformer", "similarity", {"application": "unilm", "with_pool": "linear"},
                           {"text_maxlen": 64, "sampling": {"topp": 0.95}}),
    "simbert": Family("bert", "similarity", {"application": "unilm", "with_pool": "linear"},
                      {"text_maxlen": 32, "sampling": {"topk": 5}}),
    "roformer": Family("roformer", "masked_lm", {"with_mlm": True}),
    "roformer-v2": Family("roformer_v2", "masked_lm", {"with_mlm": True}),
    "gau-alpha": Family("gau_alpha", "masked_lm", {"with_mlm": True}),
    "bert": Family("bert", "masked_lm", {"with_mlm": True}),
    "cpm-lm": Family("gpt2", "causal_lm"),
}
ALIASES = {
    "roformer_sim": "roformer-sim", "simbertv2": "roformer-sim", "simbert-v2": "roformer-sim",
    "roformer_v2": "roformer-v2", "roformerv2": "roformer-v2", "gau_alpha": "gau-alpha",
    "gau": "gau-alpha", "roberta": "bert", "cpm": "cpm-lm",
}
TASKS = {"similarity": SimilarityModel, "masked_lm": MaskedLanguageModel}
ORIGINAL_LAYOUT = ("bert_config.json", "bert_model.ckpt.index", "vocab.txt")
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HANDLE = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>.+))?$")


def task_family(family):
    """Canonical family name, or a ValueError listing the known ones."""
    if not isinstance(family, str):
        raise TypeError(f"family must be a string, got {family!r}")
    name = family.lower().replace("_", "-")
    name = ALIASES.get(name, ALIASES.get(family.lower(), name))
    if name not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; available: {', '.join(FAMILIES)}")
    if FAMILIES[name].task not in TASKS:
        raise ValueError(
            f"{name} checkpoints can be listed and downloaded, but kerasformer does not "
            f"build the {FAMILIES[name].architecture} architecture yet"
        )
    return name


def infer_family(config):
    """The family a Hugging Face config.json says it is, or None."""
    model_type = str(config.get("model_type", "")).lower()
    if model_type in ("gau_alpha", "gau-alpha"):
        return "gau-alpha"
    if model_type == "roformer":
        if config.get("norm_type") == "rms_norm" or config.get("use_bias") is False:
            return "roformer-v2"
        if config.get("pooler_activation") == "linear":
            return "roformer-sim"
        return "roformer"
    if model_type == "bert":
        return "bert"
    return None


def load(name_or_handle, family=None, revision=None, dtype=None, token=None, text_maxlen=None):
    """Loads a checkpoint by name, Hub handle or directory, as a ready task.

    Args:
        name_or_handle: a registered name (see `kerasformer list`), an
            `hf://owner/repo[@revision]` handle, or a local directory.
        family: "roformer-sim", "simbert" (→ `SimilarityModel`), "roformer",
            "roformer-v2", "gau-alpha", "bert" (→ `MaskedLanguageModel`). Needed for
            original release directories and Hub repos whose config does not say.
        revision: a branch, tag or commit of the Hub repo (default: the manifest's
            pinned commit, else "main").
        dtype: Keras dtype policy, e.g. "mixed_bfloat16".
        token: Hugging Face token for private or gated repos.
        text_maxlen: for similarity models, tokens kept of each input text.

    Returns:
        A `SimilarityModel` or a `MaskedLanguageModel`.
    """
    if isinstance(name_or_handle, os.PathLike) or (
        isinstance(name_or_handle, str) and os.path.isdir(name_or_handle)
    ):
        return _load_directory(pathlib.Path(name_or_handle), family, dtype, text_maxlen)
    if not isinstance(name_or_handle, str):
        raise TypeError(f"expected a name, hf:// handle or directory, got {name_or_handle!r}")
    repo_id, handle_revision, manifest = resolve_handle(name_or_handle)
    if family is None and manifest is not None:
        family = manifest["family"]
    family = task_family(family) if family is not None else None
    revision = revision or handle_revision or (manifest and manifest["hub"]["revision"]) or "main"
    commit = download.resolve_revision(repo_id, revision, token)

    if family is not None:
        cached = presets.converted_directory(repo_id, commit, family)
        if presets.is_preset(cached):
            try:
                return load_preset(cached, dtype, text_maxlen)
            except ValueError:  # damaged: convert again
                shutil.rmtree(cached, ignore_errors=True)
    files = hub_files(repo_id, commit, manifest, token)
    declared = None
    if not download.offline() and any("sha256" not in f for f in files):
        declared = download.list_files(repo_id, commit, token)
    local = download.fetch(repo_id, commit, files, token, declared)
    roles = {f.get("role"): local[f["path"]] for f in files}
    config = read_config(roles["config"])
    if manifest is not None:
        config = {**manifest["config"]["defaults"], **config, **manifest["config"]["overrides"]}
    if family is None:
        family = infer_family(config)
        if family is None:
            raise ValueError(f"the config of {repo_id} does not say its family: pass family=")
        family = task_family(family)
    tokenizer_config = dict((manifest or {}).get("tokenizer", {"do_lower_case": True}))
    tokenizer_config.pop("type", None)
    tokenizer_config["vocab"] = roles["vocab"]
    task = build_task(family, config, roles["weights"], tokenizer_config, dtype, text_maxlen,
                      progress=f"converting {repo_id}")
    source = {"repo_id": repo_id, "revision": commit,
              "files": {path: download.digest(p) for path, p in local.items()}}
    cached = presets.converted_directory(repo_id, commit, family)
    try:
        presets.save_preset(task, cached, source=source)
    except FileExistsError:
        pass  # another process converted it meanwhile
    return task


def resolve_handle(handle):
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


def build_task(family, config, checkpoint, tokenizer_config, dtype=None, text_maxlen=None,
               progress=None):
    """Builds a family's task from a config dict, a checkpoint and a tokenizer spec.

    `progress`, if given, is the label of a progress bar over the weights.
    """
    spec = FAMILIES[family]
    transformer = make_transformer(spec.architecture, config, dtype=dtype, **spec.build)
    transformer.load_weights_from_checkpoint(checkpoint, progress=progress)
    return _task(family, transformer, tokenizer_config, text_maxlen)


def _task(family, transformer, tokenizer_config, text_maxlen, options=None):
    """The family's task around a built transformer (`options` default to the family's)."""
    spec = FAMILIES[family]
    tokenizer = make_tokenizer(tokenizer_config)
    if spec.task == "similarity":
        options = dict(spec.options if options is None else options)
        if text_maxlen is not None:
            options["text_maxlen"] = text_maxlen
        return SimilarityModel(transformer, tokenizer, family, tokenizer_config, **options)
    return MaskedLanguageModel(transformer, tokenizer, family, tokenizer_config)


def make_tokenizer(config):
    """A `Tokenizer` from `{"vocab": path, "do_lower_case": bool, "pre_tokenize": None | "jieba"}`."""
    pre_tokenize = None
    if config.get("pre_tokenize") == "jieba":
        try:
            import jieba
        except ImportError:
            raise ImportError(
                "this checkpoint's tokenizer pre-segments words with jieba: pip install jieba"
            ) from None
        jieba.setLogLevel(60)  # silence its start-up messages

        def pre_tokenize(text):
            return jieba.cut(text, HMM=False)

    return Tokenizer(config["vocab"], do_lower_case=config.get("do_lower_case", True),
                     pre_tokenize=pre_tokenize)


def load_preset(directory, dtype=None, text_maxlen=None):
    """The task saved in a preset directory (see `Task.save_preset`)."""
    directory = pathlib.Path(directory)
    config = presets.read_preset(directory)
    family = task_family(config["family"])
    transformer_class = get_family(config["architecture"])
    arguments = dict(config["arguments"])
    transformer = transformer_class(**arguments, dtype=dtype)
    transformer.arguments = arguments
    transformer.build().load_weights(directory / presets.WEIGHTS)
    tokenizer_config = {**config["tokenizer"], "vocab": str(directory / config["tokenizer"]["vocab"])}
    return _task(family, transformer, tokenizer_config, text_maxlen, config["task_options"])


def _load_directory(path, family, dtype, text_maxlen):
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {str(path)!r}")
    if presets.is_preset(path):
        return load_preset(path, dtype, text_maxlen)
    if (path / "bert_config.json").is_file():  # an original release
        missing = [f for f in ORIGINAL_LAYOUT if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{str(path)!r} is not an original checkpoint directory: missing {', '.join(missing)}"
            )
        if family is None:
            raise ValueError(
                f"pass family= for {str(path)!r}: one of {', '.join(f for f in FAMILIES if FAMILIES[f].task in TASKS)}"
            )
        family = task_family(family)
        return build_task(family, read_config(path / "bert_config.json"), path / "bert_model.ckpt",
                          {"vocab": str(path / "vocab.txt"), "do_lower_case": True}, dtype, text_maxlen)
    weights = next((path / name for name in HF_WEIGHTS if (path / name).is_file()), None)
    if (path / "config.json").is_file() and weights is not None and (path / "vocab.txt").is_file():
        config = read_config(path / "config.json")
        family = task_family(family or infer_family(config) or _need_family(path))
        return build_task(family, config, weights,
                          {"vocab": str(path / "vocab.txt"), "do_lower_case": True}, dtype, text_maxlen)
    raise FileNotFoundError(
        f"{str(path)!r} is neither a kerasformer preset, an original release "
        f"({', '.join(ORIGINAL_LAYOUT)}) nor a Hugging Face layout (config.json, "
        "model.safetensors or pytorch_model.bin, vocab.txt)"
    )


def _need_family(path):
    raise ValueError(f"the config in {str(path)!r} does not say its family: pass family=")
