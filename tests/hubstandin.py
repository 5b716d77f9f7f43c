"""A local stand-in for the Hugging Face Hub, for tests that exercise the real Hub code path.

It answers, over real HTTP on a loopback port, the calls that ``huggingface_hub`` and ``datasets``
make to read public dataset repos (see ``../shared/notes/hub-stand-in.md`` from the repository root):

* ``GET /api/datasets`` -- search: repeatable ``filter=`` (every value must be one of the repo's
  tags), ``search=`` (case-insensitive substring of the id, every value must match), ``author=``,
  ``sort`` (``downloads``, ``lastModified``, ``id``; default: downloads), ``direction`` (``-1``
  default, ``1`` ascending), ``limit``. Paged like the Hub when :attr:`HubStandIn.search_page_size`
  is set: at most that many results per response, and a ``Link: <...&cursor=N>; rel="next"``
  header while more remain (default ``None``: one page, no ``Link`` header).
* ``GET /api/datasets/{id}`` and ``GET /api/datasets/{id}/revision/{rev}`` -- info: ``id, sha,
  cardData, siblings, tags, lastModified, downloads, gated, private``.
* ``GET /api/datasets/{id}/tree/{rev}[/{path}]`` (``recursive=true|false``) and
  ``POST /api/datasets/{id}/paths-info/{rev}`` (form or JSON ``paths``).
* ``GET /api/datasets/{id}/refs``.
* ``HEAD``/``GET /datasets/{id}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``,
  ``Content-Length``, ``Accept-Ranges``; a ``Range`` header gives ``206`` (``416`` when
  unsatisfiable).
* ``HEAD``/``GET /spaces/{id}/resolve/{rev}/{path}`` -- a file of a Space repo (``repo.json`` with
  ``"type": "space"``), as ``evaluate`` fetches a Hub metric script (``{name}.py``).
* ``GET /api/models/{id}[/revision/{rev}]`` (and ``tree``, ``paths-info``, ``refs`` as for datasets)
  and ``HEAD``/``GET /{id}/resolve/{rev}/{path}`` -- a model repo (``"type": "model"``), as
  ``snapshot_download`` fetches an encoder.
* Errors carry the Hub's own ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``, ``GatedRepo``) so ``huggingface_hub`` raises its own exception types.
* Faults on demand (:meth:`HubStandIn.inject`): the next requests whose path matches a pattern get
  a given HTTP status (``429`` with ``Retry-After``, ``503``...) or a reset connection, once each
  or forever, before they are answered normally.
* Latency on demand (:attr:`HubStandIn.delay_s`): every answer, faults included, waits that long
  first, as a real round trip to the Hub would. Requests are served in threads
  (``ThreadingHTTPServer``), so concurrent clients wait at the same time, not in turn.

Repos live in a folder laid out as ``ROOT/{owner}/{name}/repo.json`` plus one sub-folder per
revision, ``ROOT/{owner}/{name}/revs/{label}/...`` holding that revision's files. ``repo.json``
holds ``downloads``, ``gated`` (``false`` or ``"auto"``), an optional ``type`` (``"dataset"``, the
default, or ``"space"``), ``refs`` (``{"main": label, "v1.0":
label}``) and an optional ``revision_order`` (oldest first, for ``lastModified``). Each
revision's commit sha is a fake 40-hex digest of its files' paths and contents, so it is stable
across runs and differs between revisions. A gated repo answers info and search, but every file
call answers ``401`` ``GatedRepo`` (as the Hub does for an anonymous client).

Every request is logged (:attr:`HubStandIn.log`): method, path, query, status (0 for a reset),
the ``Range`` header, the body bytes actually written to the socket and the time it arrived, so a
test can check what a client downloaded (:meth:`HubStandIn.bytes_served`) and how long it waited.

:func:`build_fixture_repos` writes the repos the tests use, with ``datasets`` so that parquet files
keep their ``ClassLabel`` schema.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import yaml

FIXED_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: lastModified of a repo's oldest revision


# --------------------------------------------------------------------------------------------
# Repo model
# --------------------------------------------------------------------------------------------


def git_blob_oid(data: bytes) -> str:
    """Return the git blob sha1 of ``data`` (what the Hub reports as a file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Revision:
    """One commit of a repo: its fake sha, files and modification time."""

    label: str
    sha: str
    files: dict[str, bytes]
    last_modified: str

    def folders(self) -> set[str]:
        """Return every folder path that holds at least one file ("" is the root)."""
        out = {""}
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


@dataclass
class Repo:
    """A dataset repo: id, download count, refs (branch/tag -> sha) and revisions by sha."""

    repo_id: str
    downloads: int
    gated: Any
    refs: dict[str, str]
    revisions: dict[str, Revision] = field(default_factory=dict)
    repo_type: str = "dataset"

    def resolve(self, rev: str) -> Revision | None:
        """Return the revision a branch, tag or full sha names, or ``None``."""
        sha = self.refs.get(rev, rev)
        return self.revisions.get(sha)

    def sha_of(self, label: str) -> str:
        """Return the sha of the revision stored in ``revs/{label}``."""
        for revision in self.revisions.values():
            if revision.label == label:
                return revision.sha
        raise KeyError(label)

    @property
    def main(self) -> Revision:
        return self.revisions[self.refs["main"]]


def _card_of(revision: Revision) -> dict:
    """Return the YAML header of the revision's README.md as a dict ({} when none)."""
    text = revision.files.get("README.md", b"").decode("utf-8", "replace")
    if not text.startswith("---"):
        return {}
    _, _, rest = text.partition("\n")
    header, sep, _ = rest.partition("\n---")
    if not sep:
        return {}
    return yaml.safe_load(header) or {}


def _tags_of(card: dict) -> list[str]:
    """Derive the Hub's tags (``task_categories:text-classification``...) from a card."""
    tags: list[str] = []
    for key in ("task_categories", "task_ids", "language", "license", "size_categories",
                "multilinguality"):
        values = card.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            tags.append(f"{key}:{value}")
    for value in card.get("tags") or []:
        tags.append(str(value))
    return tags


def load_repos(root: Path) -> dict[str, Repo]:
    """Read every ``ROOT/{owner}/{name}/repo.json`` repo under ``root``."""
    repos: dict[str, Repo] = {}
    for meta_path in sorted(Path(root).glob("*/*/repo.json")):
        repo_dir = meta_path.parent
        meta = json.loads(meta_path.read_text())
        repo_id = f"{repo_dir.parent.name}/{repo_dir.name}"
        labels = meta.get("revision_order") or sorted(p.name for p in (repo_dir / "revs").iterdir())
        revisions: dict[str, Revision] = {}
        for index, label in enumerate(labels):
            rev_dir = repo_dir / "revs" / label
            files = {
                p.relative_to(rev_dir).as_posix(): p.read_bytes()
                for p in sorted(rev_dir.rglob("*"))
                if p.is_file()
            }
            digest = hashlib.sha1(repo_id.encode())
            for path, data in files.items():
                digest.update(f"{path}\0{git_blob_oid(data)}\n".encode())
            stamp = time.gmtime(FIXED_EPOCH + 86_400 * index)
            revisions[digest.hexdigest()] = Revision(
                label, digest.hexdigest(), files, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", stamp)
            )
        by_label = {r.label: r.sha for r in revisions.values()}
        refs = {name: by_label[label] for name, label in meta["refs"].items()}
        repos[repo_id] = Repo(repo_id, int(meta.get("downloads", 0)), meta.get("gated", False),
                              refs, revisions, meta.get("type", "dataset"))
    return repos


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


@dataclass
class LoggedRequest:
    """One request the stand-in answered."""

    method: str
    path: str  # unquoted path, no query
    query: dict[str, list[str]]
    status: int
    range: str | None
    bytes_sent: int  # body bytes written to the socket (for a cut stream: what got written)
    at: float = 0.0  # time.monotonic() when the request arrived


RESET = "reset"
"""A fault of :meth:`HubStandIn.inject`: close the connection with a TCP reset, answering nothing."""


@dataclass
class _Fault:
    pattern: re.Pattern
    method: str | None
    answers: list[int | str]
    retry_after: int | None
    forever: bool


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class HubStandIn:
    """The stand-in server: bind on construction, :meth:`start` to serve, :meth:`stop` to end.

    Args:
        root: folder of repos (see the module docstring); may be empty and filled later, then
            call :meth:`reload`.
        host: address to bind; port 0 picks a free port.
        delay_s: seconds every answer waits before it is sent (0: none); may be changed any time.
    """

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0, delay_s: float = 0.0):
        self.root = Path(root)
        self.delay_s = delay_s
        self.repos: dict[str, Repo] = {}
        self.spaces: dict[str, Repo] = {}
        self.models: dict[str, Repo] = {}
        self.faults: list[_Fault] = []
        self.log: list[LoggedRequest] = []
        self.search_page_size: int | None = None  # results per /api/datasets page; None: no paging
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._httpd = _Server((host, port), _make_handler(self))
        self.reload()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def reload(self) -> None:
        """Re-read the repos folder (after building fixtures into it)."""
        repos = load_repos(self.root) if self.root.is_dir() else {}
        with self._lock:
            self.repos = {k: r for k, r in repos.items() if r.repo_type == "dataset"}
            self.spaces = {k: r for k, r in repos.items() if r.repo_type == "space"}
            self.models = {k: r for k, r in repos.items() if r.repo_type == "model"}

    def start(self) -> "HubStandIn":
        """Serve in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="hub-stand-in", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    # -- test helpers ---------------------------------------------------------------------

    def set_ref(self, repo_id: str, ref: str, label_or_sha: str) -> str:
        """Point branch/tag ``ref`` of ``repo_id`` at a revision (label or sha); return the sha.

        This simulates a new commit being pushed to ``main`` between two runs.
        """
        repo = self.repos[repo_id]
        sha = label_or_sha if label_or_sha in repo.revisions else repo.sha_of(label_or_sha)
        with self._lock:
            repo.refs[ref] = sha
        return sha

    def inject(self, pattern: str, answers: Sequence[int | str], *, method: str | None = None,
               retry_after: int | None = None, forever: bool = False) -> None:
        """Answer the next requests whose path matches ``pattern`` (a regex) with ``answers`` in turn.

        Each answer is an HTTP status (an error body, ``Retry-After: retry_after`` when given) or
        :data:`RESET`. After the last one, requests are answered normally again, unless ``forever``
        (the last answer then repeats). ``method`` limits it to ``GET``, ``HEAD`` or ``POST``.
        """
        with self._lock:
            self.faults.append(_Fault(re.compile(pattern), method, list(answers), retry_after, forever))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, method: str, path: str) -> tuple[int | str, int | None] | None:
        with self._lock:
            for fault in self.faults:
                if (fault.method in (None, method) and fault.answers
                        and fault.pattern.search(path)):
                    answer = fault.answers[0] if fault.forever and len(fault.answers) == 1 else fault.answers.pop(0)
                    return answer, fault.retry_after
        return None

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def requests_for(self, fragment: str, method: str | None = None) -> list[LoggedRequest]:
        """Return logged requests whose path contains ``fragment`` (and of ``method``)."""
        with self._lock:
            return [r for r in self.log
                    if fragment in r.path and (method is None or r.method == method)]

    def bytes_served(self, fragment: str) -> int:
        """Return the body bytes sent for requests whose path contains ``fragment``."""
        return sum(r.bytes_sent for r in self.requests_for(fragment))

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.log.append(entry)

    # -- API answers ----------------------------------------------------------------------

    def _repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        repo = {"space": self.spaces, "model": self.models}.get(repo_type, self.repos).get(repo_id)
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def _revision(self, repo: Repo, rev: str) -> Revision:
        revision = repo.resolve(rev)
        if revision is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return revision

    def _files_allowed(self, repo: Repo) -> None:
        if repo.gated:
            raise _HubError(
                401, "GatedRepo",
                f"Access to dataset {repo.repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in.",
            )

    def search(self, query: dict[str, list[str]]) -> list[dict]:
        filters = query.get("filter", [])
        searches = [s.lower() for s in query.get("search", [])]
        authors = query.get("author", [])
        matches = []
        for repo in self.repos.values():
            tags = set(_tags_of(_card_of(repo.main)))
            if not all(f in tags for f in filters):
                continue
            if not all(s in repo.repo_id.lower() for s in searches):
                continue
            if authors and repo.repo_id.split("/")[0] not in authors:
                continue
            matches.append(repo)
        sort = (query.get("sort") or ["downloads"])[0]
        key = {
            "downloads": lambda r: r.downloads,
            "lastModified": lambda r: r.main.last_modified,
            "id": lambda r: r.repo_id,
        }.get(sort, lambda r: r.downloads)
        descending = (query.get("direction") or ["-1"])[0] != "1"
        matches.sort(key=lambda r: r.repo_id)  # ties: by id
        matches.sort(key=key, reverse=descending)
        if "limit" in query:
            matches = matches[: int(query["limit"][0])]
        return [
            {
                "_id": hashlib.md5(r.repo_id.encode()).hexdigest()[:24],
                "id": r.repo_id,
                "author": r.repo_id.split("/")[0],
                "downloads": r.downloads,
                "likes": 0,
                "gated": r.gated,
                "private": False,
                "disabled": False,
                "lastModified": r.main.last_modified,
                "tags": _tags_of(_card_of(r.main)),
            }
            for r in matches
        ]

    def page(self, found: list[dict], query: dict[str, list[str]], path: str) -> tuple[list[dict], str | None]:
        """One page of search results from ``cursor`` on, and the ``Link`` header to the next one."""
        if not self.search_page_size:
            return found, None
        start = int((query.get("cursor") or ["0"])[0])
        end = start + self.search_page_size
        if end >= len(found):
            return found[start:end], None
        others = [(k, v) for k, values in query.items() if k != "cursor" for v in values]
        return found[start:end], f'<{self.url}{urlsplit(path).path}?{urlencode([*others, ("cursor", end)])}>; rel="next"'

    def info(self, repo_id: str, rev: str, repo_type: str = "dataset") -> dict:
        repo = self._repo(repo_id, repo_type)
        revision = self._revision(repo, rev)
        card = _card_of(revision)
        return {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": revision.sha,
            "lastModified": revision.last_modified,
            "createdAt": repo.revisions[next(iter(repo.revisions))].last_modified,
            "private": False,
            "gated": repo.gated,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": 0,
            "tags": _tags_of(card),
            "cardData": card,
            "siblings": [{"rfilename": p} for p in sorted(revision.files)],
        }

    def _entry(self, revision: Revision, path: str) -> dict:
        if path in revision.files:
            data = revision.files[path]
            return {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0,
                "path": path}

    def tree(self, repo_id: str, rev: str, path: str, recursive: bool, repo_type: str = "dataset") -> list[dict]:
        repo = self._repo(repo_id, repo_type)
        revision = self._revision(repo, rev)
        self._files_allowed(repo)
        path = path.strip("/")
        if path not in revision.folders():
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on {rev}")
        prefix = f"{path}/" if path else ""
        entries = sorted(
            p for p in revision.files.keys() | (revision.folders() - {""})
            if p.startswith(prefix) and p != path
            and (recursive or "/" not in p[len(prefix):])
        )
        return [self._entry(revision, p) for p in entries]

    def paths_info(self, repo_id: str, rev: str, paths: list[str], repo_type: str = "dataset") -> list[dict]:
        repo = self._repo(repo_id, repo_type)
        revision = self._revision(repo, rev)
        self._files_allowed(repo)
        folders = revision.folders()
        return [self._entry(revision, p.strip("/")) for p in paths
                if p.strip("/") in revision.files or p.strip("/") in folders - {""}]

    def refs(self, repo_id: str, repo_type: str = "dataset") -> dict:
        repo = self._repo(repo_id, repo_type)
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                    for n, s in repo.refs.items() if n == "main"]
        tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s}
                for n, s in repo.refs.items() if n != "main"]
        return {"branches": branches, "tags": tags, "converts": []}


class _Server(ThreadingHTTPServer):
    """One thread per connection; a listen backlog for many clients connecting at once (the
    default of 5 drops the SYNs of a burst, and the client then waits a second to resend)."""

    daemon_threads = True
    request_queue_size = 256


def _make_handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "HubStandIn/1.0"

        def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
            pass

        # -- plumbing -------------------------------------------------------------------

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> int:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return 0
            sent = 0
            try:
                for start in range(0, len(body), 64 * 1024):
                    chunk = body[start:start + 64 * 1024]
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return sent

        def _json(self, obj: Any, status: int = 200) -> int:
            return self._send(status, json.dumps(obj).encode())

        def _dispatch(self) -> None:
            arrived = time.monotonic()
            split = urlsplit(self.path)
            raw_parts = [p for p in split.path.split("/") if p]
            query = parse_qs(split.query, keep_blank_values=True)
            status, sent = 500, 0
            if hub.delay_s:
                time.sleep(hub.delay_s)
            try:
                fault = hub._take_fault(self.command, unquote(split.path))
                if fault is not None:
                    status, sent = self._fault(*fault)
                else:
                    status, sent = self._route(raw_parts, query)
            except _HubError as err:
                status = err.status
                headers = {"X-Error-Message": err.message}
                if err.code:
                    headers["X-Error-Code"] = err.code
                sent = self._send(err.status, json.dumps({"error": err.message}).encode(), headers)
            except Exception as err:  # a bug in the stand-in: answer 500, keep serving
                status = 500
                sent = self._send(500, json.dumps({"error": repr(err)}).encode())
            finally:
                hub._record(LoggedRequest(self.command, unquote(split.path), query, status,
                                          self.headers.get("Range"), sent, arrived))

        do_GET = do_HEAD = do_POST = _dispatch

        def _fault(self, answer: int | str, retry_after: int | None) -> tuple[int, int]:
            if answer == RESET:  # SO_LINGER 0, and closed before any FIN: the client reads ECONNRESET
                self._body()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()  # the descriptor closes (RST) once rfile/wfile are closed too
                self.close_connection = True
                return 0, 0
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            body = json.dumps({"error": f"injected fault: HTTP {answer}"}).encode()
            self._body()
            return int(answer), self._send(int(answer), body, headers)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        # -- routes ---------------------------------------------------------------------

        def _route(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, int]:
            body = self._body() if self.command == "POST" else b""
            if len(parts) >= 5 and parts[2] == "resolve" and parts[0] not in ("api", "datasets", "spaces"):
                return self._resolve(f"{unquote(parts[0])}/{unquote(parts[1])}", unquote(parts[3]),
                                     "/".join(unquote(p) for p in parts[4:]), "model")
            if parts[:2] in (["api", "datasets"], ["api", "models"]):
                rest, kind = parts[2:], "model" if parts[1] == "models" else "dataset"
                if not rest and kind == "dataset" and self.command in ("GET", "HEAD"):
                    page, link = hub.page(hub.search(query), query, self.path)
                    return 200, self._send(200, json.dumps(page).encode(), {"Link": link} if link else None)
                if len(rest) < 2:
                    raise _HubError(404, None, "Not found")
                repo_id = f"{unquote(rest[0])}/{unquote(rest[1])}"
                tail = rest[2:]
                if not tail:
                    return 200, self._json(hub.info(repo_id, "main", kind))
                verb, args = tail[0], tail[1:]
                if verb == "revision" and len(args) == 1:
                    return 200, self._json(hub.info(repo_id, unquote(args[0]), kind))
                if verb == "tree" and args:
                    path = "/".join(unquote(a) for a in args[1:])
                    recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
                    return 200, self._json(hub.tree(repo_id, unquote(args[0]), path, recursive, kind))
                if verb == "paths-info" and len(args) == 1 and self.command == "POST":
                    return 200, self._json(hub.paths_info(repo_id, unquote(args[0]),
                                                          _paths_from_body(body, self.headers), kind))
                if verb == "refs" and not args:
                    return 200, self._json(hub.refs(repo_id, kind))
                raise _HubError(404, None, "Not found")
            if parts[:1] in (["datasets"], ["spaces"]) and len(parts) >= 6 and parts[3] == "resolve":
                repo_id = f"{unquote(parts[1])}/{unquote(parts[2])}"
                return self._resolve(repo_id, unquote(parts[4]), "/".join(unquote(p) for p in parts[5:]),
                                     "space" if parts[0] == "spaces" else "dataset")
            raise _HubError(404, None, "Not found")

        def _resolve(self, repo_id: str, rev: str, path: str, repo_type: str) -> tuple[int, int]:
            repo = hub._repo(repo_id, repo_type)
            revision = hub._revision(repo, rev)
            hub._files_allowed(repo)
            if path not in revision.files:
                raise _HubError(404, "EntryNotFound", f"Entry not found: {path}")
            data = revision.files[path]
            headers = {
                "X-Repo-Commit": revision.sha,
                "ETag": f'"{git_blob_oid(data)}"',
                "Accept-Ranges": "bytes",
            }
            wanted = self.headers.get("Range")
            if wanted:
                span = _parse_range(wanted, len(data))
                if span is None:
                    headers["Content-Range"] = f"bytes */{len(data)}"
                    return 416, self._send(416, b"", headers, "application/octet-stream")
                start, end = span
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return 206, self._send(206, data[start:end + 1], headers,
                                       "application/octet-stream")
            return 200, self._send(200, data, headers, "application/octet-stream")

    return Handler


def _paths_from_body(body: bytes, headers) -> list[str]:
    if "json" in (headers.get("Content-Type") or ""):
        paths = json.loads(body or b"{}").get("paths", [])
    else:
        paths = parse_qs(body.decode()).get("paths", [])
    return [paths] if isinstance(paths, str) else list(paths)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range; None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if first == "":
        if not last or int(last) == 0:
            return None
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


# --------------------------------------------------------------------------------------------
# Fixture repos
# --------------------------------------------------------------------------------------------

POSITIVE = ["great", "wonderful", "loved", "excellent", "delightful", "superb", "enjoyable"]
NEGATIVE = ["awful", "boring", "hated", "terrible", "dull", "dreadful", "tedious"]
TOPICS = {
    "sports": ["match", "goal", "league", "coach", "season"],
    "business": ["market", "shares", "profit", "merger", "revenue"],
    "science": ["study", "cells", "telescope", "climate", "physics"],
}


MARKER_METRIC = '''\
import os
from pathlib import Path

import datasets
import evaluate

if os.environ.get("HUBSELECT_TEST_MARKER"):  # proof that this code ran
    Path(os.environ["HUBSELECT_TEST_MARKER"]).write_text("imported")

LABEL_IDS = datasets.Features({name: datasets.Value("int32") for name in ("predictions", "references")})


class MarkerMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="agreement", citation="", inputs_description="", features=LABEL_IDS)

    def _compute(self, predictions, references):
        return {"agreement": sum(int(p == r) for p, r in zip(predictions, references)) / len(predictions)}
'''


def _card(body: str, **meta: Any) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n" + body + "\n"


def _split_configs(splits: list[str], pattern: str = "data/{split}.parquet") -> list[dict]:
    return [{"config_name": "default",
             "data_files": [{"split": s, "path": pattern.format(split=s)} for s in splits]}]


def _write_repo(root: Path, repo_id: str, revisions: dict[str, dict[str, Any]],
                refs: dict[str, str], downloads: int, gated: Any = False, repo_type: str = "dataset") -> None:
    """Write a repo: ``revisions`` maps label -> {path: bytes | str | datasets.Dataset}."""
    repo_dir = root / repo_id
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    for label, files in revisions.items():
        for rel, content in files.items():
            target = repo_dir / "revs" / label / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, str):
                target.write_text(content)
            else:  # a datasets.Dataset, optionally (dataset, rows_per_row_group)
                dataset, batch = content if isinstance(content, tuple) else (content, None)
                dataset.to_parquet(str(target), batch_size=batch)
    (repo_dir / "repo.json").write_text(json.dumps({
        "downloads": downloads, "gated": gated, "refs": refs,
        "revision_order": list(revisions), "type": repo_type,
    }, indent=1))


def write_model_repo(root: str | Path, repo_id: str, folder: str | Path, downloads: int = 0) -> None:
    """Write a model repo ``repo_id`` under ``root`` whose ``main`` holds the files of ``folder`` (a
    ``save_pretrained`` folder); call :meth:`HubStandIn.reload` after."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}
    _write_repo(Path(root), repo_id, {"r1": files}, {"main": "r1"}, downloads, repo_type="model")


def build_fixture_repos(root: str | Path) -> dict[str, str]:
    """Write the fixture repos under ``root``; return ``{repo_id: what it is for}``.

    Needs ``datasets`` (imported here, so call it after ``HF_ENDPOINT`` is set). Repos:

    * ``acme/sentiment`` (5000 downloads): ClassLabel ``negative``/``positive``; ``main`` has
      train (60 rows), test (20) and an ``unsupervised`` split (30 rows, label -1); tag ``v1.0``
      is an older commit with train (40) and test (20) only.
    * ``acme/moving`` (10): two commits ``a`` (main) and ``b`` (reachable by sha only until a
      test moves ``main`` to it with :meth:`HubStandIn.set_ref`).
    * ``acme/news-topics`` (3000): string labels, ``title``/``body`` columns, train+test; its
      card has no ``configs:``, so splits come from the file names ``data/{split}.parquet``.
    * ``acme/numbers-only`` (100): text-classification tag but no text column.
    * ``acme/legacy-script`` (800): ``legacy-script.py`` at the root and no data files.
    * ``acme/qa-pairs`` (9000): ``question-answering``, the most downloaded repo.
    * ``acme/french-sentiment`` (2000): ``language: fr``.
    * ``acme/big-reviews`` (1500): 5000 rows of ~2 KB of text (a ~10 MB parquet file) written in
      row groups of 100 rows, to show that streaming a few rows reads a part of the file.
    * ``acme/gated-sentiment`` (50): gated; file calls answer 401 ``GatedRepo``.
    * Space ``acme/marker-metric``: an ``evaluate`` metric script (``marker-metric.py``) whose import
      writes the file named by ``$HUBSELECT_TEST_MARKER``, so a test sees whether it ever ran.
    """
    import datasets

    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    try:
        return _build_fixture_repos(Path(root))
    finally:
        if bars_were_on:
            datasets.utils.enable_progress_bars()


def _build_fixture_repos(root: Path) -> dict[str, str]:
    from datasets import ClassLabel, Dataset, Features, Value

    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    sentiment_features = Features({"text": Value("string"),
                                   "label": ClassLabel(names=["negative", "positive"])})

    def sentiment_rows(n: int, labelled: bool = True, tag: str = "") -> Dataset:
        texts, labels = [], []
        for i in range(n):
            positive = i % 2 == 0
            words = rng.sample(POSITIVE if positive else NEGATIVE, 3)
            texts.append(f"{tag}review {i}: the film was {' and '.join(words)}.")
            labels.append((1 if positive else 0) if labelled else -1)
        return Dataset.from_dict({"text": texts, "label": labels}, features=sentiment_features)

    def sentiment_card(title: str, splits: list[str], language: str = "en") -> str:
        return _card(f"# {title}\n\nMovie reviews labelled negative or positive.",
                     task_categories=["text-classification"], task_ids=["sentiment-classification"],
                     language=[language], license="mit", configs=_split_configs(splits))

    repos: dict[str, str] = {}

    _write_repo(root, "acme/sentiment", {
        "v1": {"README.md": sentiment_card("Sentiment", ["train", "test"]),
               "data/train.parquet": sentiment_rows(40, tag="v1 "),
               "data/test.parquet": sentiment_rows(20, tag="v1 ")},
        "v2": {"README.md": sentiment_card("Sentiment", ["train", "test", "unsupervised"]),
               "data/train.parquet": sentiment_rows(60),
               "data/test.parquet": sentiment_rows(20),
               "data/unsupervised.parquet": sentiment_rows(30, labelled=False)},
    }, refs={"main": "v2", "v1.0": "v1"}, downloads=5000)
    repos["acme/sentiment"] = "ClassLabel negative/positive; train/test/unsupervised; tag v1.0"

    _write_repo(root, "acme/moving", {
        "a": {"README.md": sentiment_card("Moving A", ["train"]),
              "data/train.parquet": sentiment_rows(10, tag="a ")},
        "b": {"README.md": sentiment_card("Moving B", ["train"]),
              "data/train.parquet": sentiment_rows(12, tag="b ")},
    }, refs={"main": "a"}, downloads=10)
    repos["acme/moving"] = "main=a; commit b published by a test with set_ref"

    topic_rows = {"title": [], "body": [], "label": []}
    for i in range(80):
        topic = list(TOPICS)[i % 3]
        words = rng.sample(TOPICS[topic], 3)
        topic_rows["title"].append(f"{words[0].title()} news {i}")
        topic_rows["body"].append(f"Today the {words[0]} and the {words[1]} met the {words[2]}.")
        topic_rows["label"].append(topic)
    topics = Dataset.from_dict(topic_rows)
    _write_repo(root, "acme/news-topics", {"r1": {
        # No `configs:` here: datasets infers the splits from the file names.
        "README.md": _card("# News topics", task_categories=["text-classification"],
                           language=["en"]),
        "data/train.parquet": topics.select(range(60)),
        "data/test.parquet": topics.select(range(60, 80)),
    }}, refs={"main": "r1"}, downloads=3000)
    repos["acme/news-topics"] = "string labels; title/body columns; splits from file names"

    numbers = Dataset.from_dict({"x": list(range(30)), "y": [i / 3 for i in range(30)],
                                 "label": [i % 2 for i in range(30)]})
    _write_repo(root, "acme/numbers-only", {"r1": {
        "README.md": _card("# Numbers", task_categories=["text-classification"], language=["en"],
                           configs=_split_configs(["train"])),
        "data/train.parquet": numbers,
    }}, refs={"main": "r1"}, downloads=100)
    repos["acme/numbers-only"] = "no text column"

    _write_repo(root, "acme/legacy-script", {"r1": {
        "README.md": _card("# Legacy script dataset", task_categories=["text-classification"],
                           language=["en"]),
        "legacy-script.py": "import datasets\n\n"
                            "raise RuntimeError('this loading script must never run in tests')\n",
    }}, refs={"main": "r1"}, downloads=800)
    repos["acme/legacy-script"] = "script-based: legacy-script.py, no data files"

    qa = Dataset.from_dict({"question": ["why?"] * 5, "answer": ["because"] * 5})
    _write_repo(root, "acme/qa-pairs", {"r1": {
        "README.md": _card("# QA", task_categories=["question-answering"], language=["en"],
                           configs=_split_configs(["train"])),
        "data/train.parquet": qa,
    }}, refs={"main": "r1"}, downloads=9000)
    repos["acme/qa-pairs"] = "question-answering (not text-classification)"

    _write_repo(root, "acme/french-sentiment", {"r1": {
        "README.md": sentiment_card("Critiques", ["train"], language="fr"),
        "data/train.parquet": sentiment_rows(20, tag="fr "),
    }}, refs={"main": "r1"}, downloads=2000)
    repos["acme/french-sentiment"] = "language fr"

    big_texts = [f"big review {i}: {rng.randbytes(1000).hex()}" for i in range(5000)]
    big = Dataset.from_dict({"text": big_texts, "label": [i % 2 for i in range(5000)]},
                            features=sentiment_features)
    _write_repo(root, "acme/big-reviews", {"r1": {
        "README.md": sentiment_card("Big reviews", ["train"]),
        "data/train.parquet": (big, 100),
    }}, refs={"main": "r1"}, downloads=1500)
    repos["acme/big-reviews"] = "5000 rows, ~10 MB, row groups of 100 rows"

    _write_repo(root, "acme/gated-sentiment", {"r1": {
        "README.md": sentiment_card("Gated sentiment", ["train"]),
        "data/train.parquet": sentiment_rows(10),
    }}, refs={"main": "r1"}, downloads=50, gated="auto")
    repos["acme/gated-sentiment"] = "gated"

    _write_repo(root, "acme/marker-metric", {"r1": {"marker-metric.py": MARKER_METRIC}},
                refs={"main": "r1"}, downloads=0, repo_type="space")
    repos["acme/marker-metric"] = "Space: an evaluate metric whose import writes $HUBSELECT_TEST_MARKER"

    return repos


SYNTHETIC_NOUNS = ["film", "plot", "cast", "score", "ending", "script", "pace", "dialogue", "camera", "story"]


def build_synthetic_repos(root: str | Path, n: int, *, rows: int = 100, owner: str = "synthetic",
                          downloads: int = 100_000) -> list[str]:
    """Write ``n`` small sentiment repos ``{owner}/set-0000``...; return their ids, most downloaded first.

    Each has one ``train`` split of ``rows`` generated texts (``"set 7 review 3: the plot was superb
    and loved."``, a ``ClassLabel`` ``negative``/``positive``, half each), a card with the
    ``text-classification`` task and ``language: en``, and ``downloads - i`` downloads, so a search
    lists them in index order. The texts are synthetic: enough for I/O benchmarks and for tests of
    how candidates are fetched, not for anything that reads what they say.
    """
    import datasets
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    card = _card("# Synthetic sentiment\n\nGenerated reviews labelled negative or positive.",
                 task_categories=["text-classification"], language=["en"], configs=_split_configs(["train"]))
    rng = random.Random(n)
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    ids = []
    try:
        for i in range(n):
            texts = [f"set {i} review {j}: the {rng.choice(SYNTHETIC_NOUNS)} was "
                     f"{' and '.join(rng.sample(POSITIVE if j % 2 == 0 else NEGATIVE, 2))}." for j in range(rows)]
            data = Dataset.from_dict({"text": texts, "label": [1 - j % 2 for j in range(rows)]}, features=features)
            repo_id = f"{owner}/set-{i:04d}"
            _write_repo(Path(root), repo_id, {"r1": {"README.md": card, "data/train.parquet": data}},
                        refs={"main": "r1"}, downloads=downloads - i)
            ids.append(repo_id)
    finally:
        if bars_were_on:
            datasets.utils.enable_progress_bars()
    return ids


def _serve_main(argv: list[str] | None = None) -> None:
    """``python tests/hubstandin.py [ROOT] [--synthetic N --rows R] [--delay S] [--port P]``: build the
    fixture repos (or N synthetic ones) when ROOT holds none, then serve until interrupted."""
    import argparse
    import os
    import tempfile

    parser = argparse.ArgumentParser(description=_serve_main.__doc__)
    parser.add_argument("root", nargs="?", default="")
    parser.add_argument("--synthetic", type=int, default=0, help="build N synthetic repos instead of the fixtures")
    parser.add_argument("--rows", type=int, default=100, help="rows of each synthetic repo")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every answer waits")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    folder = Path(args.root or tempfile.mkdtemp())
    server = HubStandIn(folder, port=args.port, delay_s=args.delay)
    os.environ["HF_ENDPOINT"] = server.url
    if not server.repos:
        if args.synthetic:
            build_synthetic_repos(folder, args.synthetic, rows=args.rows)
        else:
            build_fixture_repos(folder)
        server.reload()
    print(f"serving {len(server.repos)} repos from {folder} at {server.url}", flush=True)
    server.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    _serve_main()
