"""Files of a Hugging Face Hub repository, through huggingface_hub, verified.

huggingface_hub does the transfer, its cache, progress bars and tokens; the settings
it reads at import time (HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME, HF_HUB_CACHE) are read
again here at every call, so they can change within a process. Every file is checked
before use: against the sha256 a manifest pins, else against the digest the Hub
declares (sha256 for LFS files, the git blob id for small ones), else against the
digests recorded when it was last verified. A file that does not match is downloaded
once more, and refused if it still does not match.
"""
import hashlib
import json
import os
import pathlib

from kerasformer.hub.manifests import COMMIT


class IntegrityError(ValueError):
    """A downloaded file does not match its expected digest."""


def offline():
    """Whether the Hub must not be contacted (HF_HUB_OFFLINE, as huggingface_hub)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def endpoint():
    value = os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else "https://huggingface.co"


def hub_cache():
    """huggingface_hub's cache directory as the environment says now."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None  # huggingface_hub's default


def kerasformer_home():
    """$KERASFORMER_HOME, by default ~/.cache/kerasformer."""
    return pathlib.Path(
        os.environ.get("KERASFORMER_HOME") or pathlib.Path.home() / ".cache" / "kerasformer"
    )


def _repo_folder(repo_id):
    return repo_id.replace("/", "--")


def _errors():
    from huggingface_hub import errors

    return errors


def resolve_revision(repo_id, revision=None, token=None):
    """The commit id `revision` (a branch, tag or commit; default "main") points to.

    A full commit id is returned as is, without any request. Offline, a branch is
    resolved from huggingface_hub's cache (`refs/<branch>`) or from kerasformer's
    record of its last resolution.
    """
    revision = revision or "main"
    if COMMIT.match(revision):
        return revision
    if offline():
        for refs in _refs_files(repo_id, revision):
            if refs.is_file():
                return refs.read_text().strip()
        raise FileNotFoundError(
            f"HF_HUB_OFFLINE is set and {repo_id}@{revision} was never resolved on this "
            f"machine: load it once with network access (or pin a commit id)"
        )
    from huggingface_hub import HfApi

    errors = _errors()
    try:
        commit = HfApi(endpoint=endpoint(), token=token).model_info(repo_id, revision=revision).sha
    except errors.RepositoryNotFoundError:
        raise LookupError(f"no repository {repo_id!r} on {endpoint()} (or it is private: pass token=)") from None
    except errors.RevisionNotFoundError:
        raise LookupError(f"repository {repo_id!r} has no revision {revision!r}") from None
    except errors.HfHubHTTPError as error:
        raise ConnectionError(f"could not resolve {repo_id}@{revision} on {endpoint()}: {error}") from None
    record = kerasformer_home() / "hub" / _repo_folder(repo_id) / "refs" / revision
    _write_atomically(record, commit.encode())
    return commit


def _refs_files(repo_id, revision):
    cache = hub_cache()
    if cache is None:
        from huggingface_hub import constants

        cache = constants.HF_HUB_CACHE
    yield pathlib.Path(cache) / f"models--{_repo_folder(repo_id)}" / "refs" / revision
    yield kerasformer_home() / "hub" / _repo_folder(repo_id) / "refs" / revision


def list_files(repo_id, commit, token=None):
    """{path: (algorithm, hex digest)} of every file of a repository revision, as the
    Hub declares them (sha256 for LFS files, git blob sha1 for the others)."""
    from huggingface_hub import HfApi

    errors = _errors()
    api = HfApi(endpoint=endpoint(), token=token)
    try:
        entries = api.list_repo_tree(repo_id, revision=commit, recursive=True)
        digests = {}
        for entry in entries:
            lfs = getattr(entry, "lfs", None)
            if lfs is not None:
                digests[entry.path] = ("sha256", lfs.sha256)
            elif getattr(entry, "blob_id", None):
                digests[entry.path] = ("git-sha1", entry.blob_id)
        return digests
    except errors.RepositoryNotFoundError:
        raise LookupError(f"no repository {repo_id!r} on {endpoint()}") from None
    except errors.HfHubHTTPError as error:
        raise ConnectionError(f"could not list {repo_id}@{commit}: {error}") from None


def fetch(repo_id, commit, files, token=None, declared=None):
    """Downloads (or finds in the cache) and verifies files of a repository revision.

    Args:
        repo_id: "owner/name".
        commit: a full commit id (see `resolve_revision`).
        files: list of `{"path": ..., "sha256": optional pinned digest}`.
        token: optional Hub token.
        declared: optional {path: (algorithm, digest)} from `list_files`.

    Returns:
        {path: local file path}.
    """
    from huggingface_hub import hf_hub_download

    errors = _errors()
    record_path = kerasformer_home() / "hub" / _repo_folder(repo_id) / f"{commit}.json"
    recorded = json.loads(record_path.read_text()) if record_path.is_file() else {}
    local, verified = {}, dict(recorded)
    for entry in files:
        path = entry["path"]
        expected = None
        if entry.get("sha256"):
            expected = ("sha256", entry["sha256"])
        elif declared and path in declared:
            expected = declared[path]
        elif path in recorded:
            expected = ("sha256", recorded[path])

        def download(force=False):
            try:
                return hf_hub_download(
                    repo_id, path, revision=commit, endpoint=endpoint(), cache_dir=hub_cache(),
                    token=token, local_files_only=offline(), force_download=force,
                )
            except errors.LocalEntryNotFoundError:
                raise FileNotFoundError(
                    f"{path} of {repo_id}@{commit[:7]} is not in the local cache and "
                    "HF_HUB_OFFLINE is set (or the Hub is unreachable): download it once "
                    f"with network access, e.g. `kerasformer download {repo_id}`"
                ) from None
            except errors.RepositoryNotFoundError:
                raise LookupError(f"no repository {repo_id!r} on {endpoint()}") from None
            except (errors.EntryNotFoundError, errors.RemoteEntryNotFoundError):
                raise FileNotFoundError(f"{repo_id}@{commit[:7]} has no file {path!r}") from None
            except errors.HfHubHTTPError as error:
                raise ConnectionError(f"could not download {path} of {repo_id}: {error}") from None

        file = download()
        if expected is not None and digest(file, expected[0]) != expected[1]:
            if offline():
                raise IntegrityError(
                    f"{path} of {repo_id}@{commit[:7]} in the cache does not match its "
                    f"{expected[0]} {expected[1]}: not used; delete it and download again"
                )
            file = download(force=True)
            actual = digest(file, expected[0])
            if actual != expected[1]:
                raise IntegrityError(
                    f"{path} of {repo_id}@{commit[:7]} does not match its {expected[0]} "
                    f"{expected[1]} (got {actual}): not used"
                )
        local[path] = file
        if expected is not None and expected[0] == "sha256":
            verified[path] = expected[1]
        else:
            verified[path] = digest(file, "sha256")
    if verified != recorded:
        _write_atomically(record_path, json.dumps(verified, indent=1).encode())
    return local


def digest(path, algorithm="sha256"):
    """Hex digest of a file: "sha256", or "git-sha1" (the git blob id)."""
    path = os.fspath(path)
    if algorithm == "sha256":
        hasher = hashlib.sha256()
    elif algorithm == "git-sha1":
        hasher = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    else:
        raise ValueError(f"unknown digest algorithm {algorithm!r}")
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _write_atomically(path, data):
    """Writes a small file through a temporary name, so readers see all or nothing."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
