"""Named checkpoints: one JSON manifest each, in `checkpoints/` (data shipped in the wheel).

A manifest says where a published checkpoint lives on the Hugging Face Hub (repo id,
pinned revision, files with their sha256 where known), where its original release
is, which kerasformer family and task load it, how to fill gaps in its config, how to
tokenize, its license, and outputs published by its authors (`verify`).

A bundled manifest (`"source": "bundled"`) names a preset shipped inside the package
(`kerasformer/bundled/PRESET`), which loads with no network; instead of the Hub and
the original release it records how the model was trained (`training`: command, data
and their licences) and what it scores (`scores`).
"""
import difflib
import functools
import json
import os
import pathlib
import re

from kerasformer import families
from kerasformer.tokenizers import recipes

# "vocab" is the file the tokenizer reads: a WordPiece vocab.txt or a SentencePiece model.
FILE_ROLES = ("config", "vocab", "weights")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def manifest_directory():
    """Where the manifests are: $KERASFORMER_CHECKPOINTS, else the installed package's
    data (`kerasformer/checkpoints`), else the source checkout's `checkpoints/`."""
    override = os.environ.get("KERASFORMER_CHECKPOINTS")
    if override:
        return pathlib.Path(override)
    package = pathlib.Path(__file__).resolve().parents[1]
    installed = package / "checkpoints"
    return installed if installed.is_dir() else package.parent / "checkpoints"


def bundled_directory():
    """Where the presets shipped inside the package are."""
    return pathlib.Path(__file__).resolve().parents[1] / "bundled"


def is_bundled(manifest):
    return manifest.get("source") == "bundled"


def bundled_preset(manifest):
    """The preset directory of a bundled manifest."""
    return bundled_directory() / manifest["preset"]


def validate_manifest(manifest, source="manifest"):
    """Checks a manifest against the schema; raises ValueError listing every problem."""
    problems = []

    def need(condition, message):
        if not condition:
            problems.append(message)

    if not isinstance(manifest, dict):
        raise ValueError(f"{source}: a manifest must be a JSON object")
    if is_bundled(manifest):
        return _validate_bundled(manifest, source)
    required = {"name": str, "aliases": list, "description": str, "family": str,
                "task": str, "hub": dict, "original": dict, "config": dict,
                "tokenizer": dict, "task_options": dict, "license": str}
    for key, kind in required.items():
        need(isinstance(manifest.get(key), kind), f"{key!r} must be a {kind.__name__}")
    unknown = set(manifest) - set(required) - {"verify"}
    need(not unknown, f"unknown keys {sorted(unknown)}")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))

    _check_identity(manifest, need)

    hub = manifest["hub"]
    need(isinstance(hub.get("repo_id"), str) and hub["repo_id"].count("/") == 1,
         "hub.repo_id must be 'owner/name'")
    revision = hub.get("revision")
    need(revision is None or (isinstance(revision, str) and COMMIT.match(revision)),
         "hub.revision must be a full 40-hex commit id or null (not pinned)")
    need(isinstance(hub.get("revision_note"), str), "hub.revision_note must say where the pin comes from")
    files = hub.get("files")
    need(isinstance(files, list) and files, "hub.files must be a non-empty list")
    roles = []
    for index, entry in enumerate(files if isinstance(files, list) else []):
        where = f"hub.files[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be an object")
            continue
        need(isinstance(entry.get("path"), str) and entry["path"], f"{where}.path is missing")
        need(entry.get("role") in FILE_ROLES, f"{where}.role must be one of {FILE_ROLES}")
        roles.append(entry.get("role"))
        need(set(entry) <= {"path", "role", "approx_size", "sha256"}, f"{where} has unknown keys")
        if "sha256" in entry:
            need(isinstance(entry["sha256"], str) and SHA256.match(entry["sha256"]),
                 f"{where}.sha256 must be 64 lower-case hex digits")
        if "approx_size" in entry:
            need(isinstance(entry["approx_size"], int) and entry["approx_size"] > 0,
                 f"{where}.approx_size must be a positive integer (bytes)")
    need(roles.count("weights") == 1, "hub.files must name exactly one weights file")
    need(roles.count("config") == 1, "hub.files must name exactly one config file")

    config = manifest["config"]
    need(set(config) == {"defaults", "overrides"} and all(isinstance(v, dict) for v in config.values()),
         "config must hold 'defaults' and 'overrides' objects")
    tokenizer = manifest["tokenizer"]
    need(tokenizer.get("type") in recipes.TYPES, f"tokenizer.type must be one of {recipes.TYPES}")
    need(tokenizer.get("pre_tokenize") in (None, "jieba"), "tokenizer.pre_tokenize must be 'jieba' or absent")
    if "verify" in manifest:
        fill = manifest["verify"].get("fill_mask") if isinstance(manifest["verify"], dict) else None
        need(isinstance(fill, dict) and isinstance(fill.get("text"), str)
             and isinstance(fill.get("top5"), list) and isinstance(fill.get("source"), str),
             "verify.fill_mask must hold text, top5 and source")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return manifest


def _check_identity(manifest, need):
    """Name, aliases, family and task: what every kind of manifest has."""
    need(re.fullmatch(r"[a-z0-9][a-z0-9.-]*", manifest["name"]) is not None,
         "name must be lower-case letters, digits, '-' and '.'")
    need(all(isinstance(a, str) and a for a in manifest["aliases"]), "aliases must be strings")
    known = families.families()
    need(manifest["family"] in known, f"family must be one of {tuple(known)}")
    if manifest["family"] in known:
        expected = known[manifest["family"]].task
        need(manifest["task"] == expected,
             f"task must be {expected!r}, the task of family {manifest['family']!r}")


def _validate_bundled(manifest, source):
    problems = []

    def need(condition, message):
        if not condition:
            problems.append(message)

    required = {"name": str, "aliases": list, "description": str, "family": str, "task": str,
                "source": str, "preset": str, "license": str, "training": dict, "scores": dict}
    for key, kind in required.items():
        need(isinstance(manifest.get(key), kind), f"{key!r} must be a {kind.__name__}")
    unknown = set(manifest) - set(required)
    need(not unknown, f"unknown keys {sorted(unknown)} (a bundled manifest names a preset, "
                      "not Hub files)")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    _check_identity(manifest, need)
    need(re.fullmatch(r"[a-z0-9][a-z0-9.-]*", manifest["preset"]) is not None,
         "preset must be the name of a directory in kerasformer/bundled")
    training = manifest["training"]
    need(isinstance(training.get("command"), str) and training["command"].strip(),
         "training.command must be the command that trains the model")
    data = training.get("data")
    need(isinstance(data, list) and data and all(
        isinstance(d, dict) and isinstance(d.get("source"), str)
        and isinstance(d.get("licence"), str) for d in data),
        "training.data must list every source with its licence")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return manifest


def _load(directory=None):
    """Manifests and names of a directory, re-read when any of its files changes."""
    directory = pathlib.Path(directory or manifest_directory())
    signature = tuple(
        (path.name, path.stat().st_mtime_ns, path.stat().st_size)
        for path in sorted(directory.glob("*.json"))
    )
    return _load_directory(str(directory), signature)


@functools.lru_cache(maxsize=8)
def _load_directory(directory, signature):
    manifests, names = {}, {}
    for path in sorted(pathlib.Path(directory).glob("*.json")):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
        validate_manifest(manifest, str(path))
        if path.stem != manifest["name"]:
            raise ValueError(f"{path}: the file must be named after the manifest ({manifest['name']}.json)")
        for key in [manifest["name"], *manifest["aliases"]]:
            key = _normalise(key)
            if key in names:
                raise ValueError(f"{path}: {key!r} also names {names[key]!r}")
            names[key] = manifest["name"]
        manifests[manifest["name"]] = manifest
    return manifests, names


def list_manifests():
    """Every manifest, by name."""
    return dict(_load()[0])


def find_manifest(name):
    """The manifest called `name` (or one of its aliases), or None."""
    manifests, names = _load()
    key = names.get(_normalise(name))
    return None if key is None else manifests[key]


def find_release(directory_name):
    """The manifest whose original release unpacks to a directory of this name
    (the zip's name without `.zip`), or None."""
    for manifest in list_manifests().values():
        url = manifest.get("original", {}).get("url") or ""
        stem = url.rsplit("/", 1)[-1]
        if stem.endswith(".zip") and stem[:-4] == directory_name:
            return manifest
    return None


def suggest(name):
    """Registered names close to `name`, for error messages."""
    _, names = _load()
    return difflib.get_close_matches(_normalise(name), names, n=3)


def _normalise(name):
    return name.strip().lower().replace("_", "-")
