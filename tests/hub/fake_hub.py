"""A loopback HTTP server that speaks the Hugging Face Hub protocol, for tests.

It implements what huggingface_hub 0.36–2.x uses to download (research notes,
checkpoints.md §5.4): `HEAD`/`GET /{repo}/resolve/{revision}/{path}` with `ETag`
(sha256 for LFS files, the git blob id otherwise), `X-Repo-Commit` and
`Content-Length`; `GET /api/models/{repo}[/revision/{revision}]`;
`GET /api/models/{repo}/tree/{revision}`; and the error codes (`RepoNotFound`,
`RevisionNotFound`, `EntryNotFound`). It records every request, can serve a file
with other bytes than it declares, to test integrity checks, and can answer any
string as a commit id (`api_sha`), as a hostile mirror could.
"""
import hashlib
import http.server
import json
import threading
import urllib.parse

LFS_SUFFIXES = (".bin", ".safetensors", ".h5", ".msgpack", ".model")


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self):
        self.repos = {}  # repo id -> {"commit": sha, "refs": {name: sha}, "files": {path: bytes}}
        self.served = {}  # (repo id, path) -> bytes served instead of the declared ones
        self.api_sha = {}  # repo id -> what the revision API answers as its commit id
        self.requests = []
        self.server = None

    def add_repo(self, repo_id, files, commit, refs=()):
        self.repos[repo_id] = {
            "commit": commit,
            "refs": {"main": commit, **{name: commit for name in refs}},
            "files": dict(files),
        }

    def serve_instead(self, repo_id, path, data):
        """Serve `data` for a file while still declaring the original digest."""
        self.served[(repo_id, path)] = data

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.handle(self, body=False)

            def do_GET(self):
                hub.handle(self, body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # -------------------------------------------------------------- routing

    def handle(self, request, body):
        raw_path, _, query = request.path.partition("?")
        self.requests.append((request.command, request.path))
        parts = raw_path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self.api(request, "/".join(parts[2:4]), parts[4:], query)
        if len(parts) >= 5 and parts[2] == "resolve":
            revision = urllib.parse.unquote(parts[3])  # refs%2Fpr%2F1 is one segment
            path = urllib.parse.unquote("/".join(parts[4:]))
            return self.resolve(request, "/".join(parts[:2]), revision, path, body)
        self.reply(request, 404, {"error": "not found"}, headers={"X-Error-Code": "EntryNotFound"})

    def commit(self, request, repo_id, revision):
        repo = self.repos.get(repo_id)
        if repo is None:
            self.reply(request, 404, {"error": f"Repository {repo_id} not found"},
                       headers={"X-Error-Code": "RepoNotFound",
                                "X-Error-Message": "Repository not found"})
            return None, None
        if revision in repo["refs"]:
            return repo, repo["refs"][revision]
        if revision == repo["commit"]:
            return repo, revision
        self.reply(request, 404, {"error": f"Invalid rev id: {revision}"},
                   headers={"X-Error-Code": "RevisionNotFound",
                            "X-Error-Message": f"Invalid rev id: {revision}"})
        return None, None

    def resolve(self, request, repo_id, revision, path, body):
        repo, commit = self.commit(request, repo_id, revision)
        if repo is None:
            return
        if path not in repo["files"]:
            return self.reply(request, 404, {"error": "Entry not found"}, body=body, headers={
                "X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit,
                "X-Error-Message": "Entry not found"})
        declared = repo["files"][path]
        data = self.served.get((repo_id, path), declared)
        etag = (hashlib.sha256(declared).hexdigest() if path.endswith(LFS_SUFFIXES)
                else git_blob_id(declared))
        request.send_response(200)
        request.send_header("ETag", f'"{etag}"')
        request.send_header("X-Repo-Commit", commit)
        request.send_header("Content-Length", str(len(data)))
        request.send_header("Content-Type", "application/octet-stream")
        request.end_headers()
        if body:
            request.wfile.write(data)

    def api(self, request, repo_id, rest, query):
        if rest[:1] == ["tree"]:
            revision = urllib.parse.unquote(rest[1]) if len(rest) > 1 else "main"
            repo, commit = self.commit(request, repo_id, revision)
            if repo is None:
                return
            entries = []
            for path, data in sorted(repo["files"].items()):
                entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}
                if path.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                    "pointerSize": 134}
                entries.append(entry)
            return self.reply(request, 200, entries)
        revision = urllib.parse.unquote("/".join(rest[1:])) if rest[:1] == ["revision"] else "main"
        repo, commit = self.commit(request, repo_id, revision)
        if repo is None:
            return
        self.reply(request, 200, {
            "id": repo_id, "modelId": repo_id, "sha": self.api_sha.get(repo_id, commit),
            "private": False,
            "siblings": [{"rfilename": path} for path in sorted(repo["files"])],
        })

    def reply(self, request, status, payload, headers=None, body=True):
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        if body and request.command != "HEAD":
            request.wfile.write(data)
