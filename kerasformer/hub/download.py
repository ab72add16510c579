"""Files of a Hugging Face Hub repository, through huggingface_hub, verified.

huggingface_hub does the transfer, its cache, progress bars and tokens; the settings
it reads at import time (HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME, HF_HUB_CACHE) are read
again here at every call, so they can change within a process. Every file is checked
before use: against the sha256 a manifest pins, else against the digest the Hub
declares (sha256 for LFS files, the git blob id for small ones), else against the
digests recorded when it was last verified. A file that does not match is downloaded
once more, and refused if it still does not match.

What is cached is used without asking the Hub: files of a commit that were verified
before (their digests are recorded under $KERASFORMER_HOME/hub), and, when the Hub does
not answer, the commit a branch last resolved to. The Hub is asked with a short timeout
and no retries first (`reach`), so an unreachable Hub (huggingface.co blocked, a mirror
down) fails within seconds as a `HubUnreachableError` instead of huggingface_hub's
minute of retries.

Every name that becomes part of a path is checked first, wherever it comes from: commit
ids (40 hex digits), revisions (no `..`, no absolute or Windows paths) and file names.
"""
import hashlib
import json
import os
import pathlib
import re
import sys
import uuid
import warnings

from kerasformer.hub.manifests import COMMIT, SHA256

# Seconds to wait for the Hub to answer the first request of a load (connect and read);
# HF_HUB_ETAG_TIMEOUT, huggingface_hub's timeout of metadata requests, overrides it.
REACH_TIMEOUT = 5.0

# HTTP statuses that mean the Hub (or a proxy before it) is not answering right now.
UNAVAILABLE = (408, 429, 500, 502, 503, 504)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_REPO_PART = re.compile(r"^[\w.-]+$")


class IntegrityError(ValueError):
    """A downloaded file does not match its expected digest."""


class HubUnreachableError(ConnectionError):
    """The Hub (HF_ENDPOINT) did not answer, and the local cache lacks what is needed.

    `endpoint`, `repo_id`, `revision` say what was tried; `reason` what went wrong.
    """

    def __init__(self, endpoint, repo_id, revision, reason, advice=""):
        self.endpoint, self.repo_id, self.revision, self.reason = endpoint, repo_id, revision, reason
        self.advice = advice
        message = (f"cannot reach the Hugging Face Hub at {endpoint} for {repo_id}@{revision} "
                   f"({reason})")
        super().__init__(message + (f". {advice}" if advice else ""))

    def with_advice(self, advice):
        """The same error, its message followed by `advice` (what the caller knows)."""
        return HubUnreachableError(self.endpoint, self.repo_id, self.revision, self.reason, advice)


class CacheRepairWarning(UserWarning):
    """A damaged cache entry was found and removed; it is rebuilt."""


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


def _hub_cache_path():
    cache = hub_cache()
    if cache is None:
        from huggingface_hub import constants

        cache = constants.HF_HUB_CACHE
    return pathlib.Path(cache)


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


def repair_warning(path, problem):
    """Reports, once, a damaged cache entry at `path` that is being removed."""
    warnings.warn(f"{path}: {problem}; removed, it is rebuilt", CacheRepairWarning, stacklevel=3)


# ------------------------------------------------------------------ names


def check_repo_id(repo_id):
    """`repo_id` if it is "owner/name" of letters, digits, "_", "-" and "."; else ValueError."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_REPO_PART.match(p) and p not in (".", "..") for p in parts):
        raise ValueError(f"repository id {repo_id!r} is not 'owner/name'")
    return repo_id


def check_commit(commit, where="commit id"):
    """`commit` if it is a full commit id (40 lower-case hex digits); else ValueError."""
    if not isinstance(commit, str) or not COMMIT.match(commit):
        raise ValueError(f"{where} {commit!r} is not a commit id (40 hex digits)")
    return commit


def check_revision(revision):
    """`revision` if it is a branch, tag or commit that is safe as a relative path
    (`refs/<revision>` in the caches): no "..", "." or empty segment, no absolute,
    Windows or backslashed path, no control character; else ValueError."""
    if not isinstance(revision, str) or not _safe_relative(revision):
        raise ValueError(
            f"revision {revision!r} is not a branch, tag or commit id "
            "(no '..' or '.' segments, no absolute path, backslash or drive letter)"
        )
    return revision


def check_file_name(name, where="file name"):
    """`name` if it is a relative path inside a repository; else ValueError."""
    if not isinstance(name, str) or not _safe_relative(name):
        raise ValueError(
            f"{where} {name!r} is not a relative path inside the repository "
            "(no '..' or '.' segments, no absolute path, backslash or drive letter)"
        )
    return name


def _safe_relative(name):
    if not name or "\\" in name or _CONTROL.search(name) or _DRIVE.match(name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


# ------------------------------------------------------------------ revisions


def reach(repo_id, revision, token=None):
    """The commit `revision` names, asked of the Hub once, with a short timeout and
    no retries. Raises HubUnreachableError when the Hub does not answer, LookupError
    when it says the repository or revision does not exist."""
    from huggingface_hub import HfApi

    errors = _errors()
    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or REACH_TIMEOUT)
    try:
        info = HfApi(endpoint=endpoint(), token=token).model_info(
            repo_id, revision=revision, timeout=timeout)
    except errors.RepositoryNotFoundError:
        raise LookupError(f"no repository {repo_id!r} on {endpoint()} (or it is private: pass token=)") from None
    except errors.RevisionNotFoundError:
        raise LookupError(f"repository {repo_id!r} has no revision {revision!r}") from None
    except errors.HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in UNAVAILABLE:
            raise HubUnreachableError(endpoint(), repo_id, revision, f"HTTP {status}") from None
        raise ConnectionError(f"could not resolve {repo_id}@{revision} on {endpoint()}: {error}") from None
    except Exception as error:
        if _is_network_error(error):
            raise HubUnreachableError(endpoint(), repo_id, revision, _describe(error, timeout)) from None
        raise
    return check_commit(info.sha, f"{endpoint()} answered for {repo_id}@{revision} the commit id")


def _is_network_error(error):
    """Whether `error` says the Hub did not answer (connection refused or reset, DNS,
    timeout, proxy), whichever HTTP library huggingface_hub uses."""
    if isinstance(error, OSError):  # socket errors, requests' errors, OfflineModeIsEnabled
        return True
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None and isinstance(error, getattr(module, "TransportError", ())):
            return True
    return False


def _describe(error, timeout):
    text = str(error) or type(error).__name__
    if "timed out" in text.lower() or "timeout" in type(error).__name__.lower():
        return f"no answer within {timeout:g} s"
    return text


def resolve(repo_id, revision=None, token=None):
    """(commit id, whether the Hub answered) of `revision` (a branch, tag or commit;
    default "main").

    A full commit id is returned as is, without any request. Offline, a branch is
    resolved from huggingface_hub's cache (`refs/<branch>`) or from kerasformer's
    record of its last resolution; online the Hub is asked (see `reach`), and when it
    does not answer, the same local resolutions are used, with a warning.
    """
    check_repo_id(repo_id)
    revision = check_revision(revision or "main")
    if COMMIT.match(revision):
        return revision, False
    if offline():
        commit = _resolved_before(repo_id, revision)
        if commit is None:
            raise FileNotFoundError(
                f"HF_HUB_OFFLINE is set and {repo_id}@{revision} was never resolved on this "
                f"machine: load it once with network access (or pin a commit id)"
            )
        return commit, False
    try:
        commit = reach(repo_id, revision, token)
    except HubUnreachableError as error:
        commit = _resolved_before(repo_id, revision)
        if commit is None:
            raise HubUnreachableError(
                error.endpoint, repo_id, revision,
                f"{error.reason}; and {revision!r} was never resolved on this machine") from None
        warnings.warn(f"{error}: using {commit}, what {revision!r} resolved to before", stacklevel=3)
        return commit, False
    write_atomically(_ref_record(repo_id, revision), commit.encode())
    return commit, True


def resolve_revision(repo_id, revision=None, token=None):
    """The commit id `revision` (a branch, tag or commit; default "main") points to;
    see `resolve`."""
    return resolve(repo_id, revision, token)[0]


def _ref_record(repo_id, revision):
    return kerasformer_home() / "hub" / _repo_folder(repo_id) / "refs" / revision


def _resolved_before(repo_id, revision):
    """What `revision` resolved to last, by huggingface_hub's refs file or kerasformer's
    record, whichever is newer (a damaged record of ours is reported and removed)."""
    hf_refs = _hub_cache_path() / f"models--{_repo_folder(repo_id)}" / "refs" / revision
    found = []
    for path, ours in ((hf_refs, False), (_ref_record(repo_id, revision), True)):
        if not path.is_file():
            continue
        try:
            commit = path.read_text(encoding="ascii").strip()
            modified = path.stat().st_mtime
        except (OSError, UnicodeDecodeError):
            commit = None
        if commit is not None and COMMIT.match(commit):
            found.append((modified, commit))
        elif ours:
            repair_warning(path, "not a commit id")
            _remove(path)
        else:
            warnings.warn(f"{path}: not a commit id; ignored", stacklevel=3)
    return max(found)[1] if found else None


# ------------------------------------------------------------------- files


def list_files(repo_id, commit, token=None):
    """{path: (algorithm, hex digest)} of every file of a repository revision, as the
    Hub declares them (sha256 for LFS files, git blob sha1 for the others)."""
    from huggingface_hub import HfApi

    errors = _errors()
    check_repo_id(repo_id)
    check_commit(commit)
    api = HfApi(endpoint=endpoint(), token=token)
    try:
        entries = api.list_repo_tree(repo_id, revision=commit, recursive=True)
        digests = {}
        for entry in entries:
            path = check_file_name(entry.path, f"{endpoint()} listed for {repo_id} the file name")
            lfs = getattr(entry, "lfs", None)
            if lfs is not None:
                digests[path] = ("sha256", lfs.sha256)
            elif getattr(entry, "blob_id", None):
                digests[path] = ("git-sha1", entry.blob_id)
        return digests
    except errors.RepositoryNotFoundError:
        raise LookupError(f"no repository {repo_id!r} on {endpoint()}") from None
    except errors.HfHubHTTPError as error:
        raise ConnectionError(f"could not list {repo_id}@{commit}: {error}") from None


def snapshot(repo_id, commit):
    """huggingface_hub's cache directory of a commit (it may not exist)."""
    check_repo_id(repo_id)
    check_commit(commit)
    return _hub_cache_path() / f"models--{_repo_folder(repo_id)}" / "snapshots" / commit


def cached_file(repo_id, commit, path):
    """The file `path` of a commit in huggingface_hub's cache, or None."""
    file = snapshot(repo_id, commit) / check_file_name(path)
    return str(file) if file.is_file() else None


def fetch(repo_id, commit, files, token=None, declared=None, reached=False):
    """Finds in the cache, or downloads, and verifies files of a repository revision.

    A cached file whose digest is pinned (`sha256`) or was recorded when it was last
    verified is checked here, without asking the Hub. For the others the Hub is
    reached first (see `reach`; skipped when `reached` says the caller just did): its
    declared digests are listed (unless given as `declared`) and the files downloaded.

    Args:
        repo_id: "owner/name".
        commit: a full commit id (see `resolve`).
        files: list of `{"path": ..., "sha256": optional pinned digest}`.
        token: optional Hub token.
        declared: optional {path: (algorithm, digest)} from `list_files`.
        reached: whether the Hub answered for this repository a moment ago.

    Returns:
        {path: local file path}.
    """
    check_repo_id(repo_id)
    check_commit(commit)
    paths = [check_file_name(entry["path"]) for entry in files]
    record_path = kerasformer_home() / "hub" / _repo_folder(repo_id) / f"{commit}.json"
    recorded = _read_record(record_path)
    local, verified, pending = {}, dict(recorded), []
    for entry, path in zip(files, paths):
        expected = ("sha256", entry["sha256"]) if entry.get("sha256") else (
            ("sha256", recorded[path]) if path in recorded else None)
        file = cached_file(repo_id, commit, path)
        if file is not None and expected is not None and digest(file) == expected[1]:
            local[path] = file
        else:
            pending.append((entry, path, file, expected))
    if pending and not offline():
        if not reached:
            try:
                reach(repo_id, commit, token)
            except HubUnreachableError:
                # what is cached unverified is used as offline, the rest cannot be had
                if any(file is None or expected is not None for _, _, file, expected in pending):
                    raise
                warnings.warn(f"the Hub at {endpoint()} does not answer: using the cached "
                              f"files of {repo_id}@{commit[:7]} as they are", stacklevel=2)
                for _, path, file, _ in pending:
                    local[path] = file
                    verified[path] = digest(file)
                pending = []
        if declared is None and any(not entry.get("sha256") for entry, *_ in pending):
            declared = list_files(repo_id, commit, token)
    for entry, path, file, expected in pending:
        if expected is None and declared and path in declared:
            expected = declared[path]
        local[path] = _download(repo_id, commit, path, token, file, expected)
        verified[path] = expected[1] if expected is not None and expected[0] == "sha256" \
            else digest(local[path])
    if verified != recorded:
        write_atomically(record_path, json.dumps(verified, indent=1).encode())
    return local


def _download(repo_id, commit, path, token, cached, expected):
    """One file, from the cache or the Hub, that matches `expected` (if given)."""
    from huggingface_hub import hf_hub_download

    errors = _errors()

    def download(force=False):
        try:
            file = hf_hub_download(
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
        inside = snapshot(repo_id, commit)
        if pathlib.Path(os.path.abspath(file)) != pathlib.Path(os.path.abspath(inside / path)):
            raise ValueError(f"{endpoint()} served {path} of {repo_id}@{commit[:7]} as {file}, "
                             f"not from its commit's snapshot {inside}: not used")
        return file

    file = cached or download()
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
    return file


def _read_record(path):
    """{file name: sha256} recorded for a commit; a damaged record is reported,
    removed and taken as empty (its files are verified again)."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        for name, value in record.items():
            check_file_name(name)
            if not isinstance(value, str) or not SHA256.match(value):
                raise ValueError(f"{name!r}: {value!r} is not a sha256")
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError too
        repair_warning(path, f"damaged digest record ({error})")
        _remove(path)
        return {}
    return record


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


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_atomically(path, data):
    """Writes a small file through a temporary name, so readers see all or nothing."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
