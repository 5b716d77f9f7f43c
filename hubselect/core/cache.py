"""On-disk cache location, content keys, atomic and verified writes, locks and scratch folders.

Nothing is cached in memory between calls: every cache is a file under :func:`cache_dir`, keyed
by the content that determines it (dataset revision, sample settings, model, ...).

* Entries are written atomically (a temporary sibling, then a rename). :func:`write_entry`
  also records the entry's size and sha256 beside it (``<entry>.sha256``), and
  :func:`read_entry` checks them and the parse: a corrupt entry is deleted with a warning naming
  it, and the caller recomputes it.
* :func:`key_lock` is an inter-process lock (:mod:`filelock` on ``<path>.lock``): two processes
  that want the same entry take turns, so one computes it and the other reads it.
* :func:`cache_entries` lists the entries by kind (``embeddings``, ``models``...) and
  :func:`prune_cache` removes whole ones, oldest first (``hubselect cache info|prune``).
* Temporary names carry the writing process (``tmp-<pid>-<start>``) and scratch folders live in
  ``$TMPDIR/hubselect-scratch/<pid>-<start>/``, removed when the process exits; what a killed
  process left behind is swept by the next one (:func:`sweep_stale`).
* A write the disk refuses (full, read-only, no permission, a file where a folder should be) is a
  one-line :class:`~hubselect.core.errors.HubselectError` naming the place (the cache, ``$TMPDIR`` or
  the path) and the fix (:func:`storage_error`), and leaves no partial entry: the temporary is
  removed, and an entry whose checksum could not be written is removed with it.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from hubselect.core.errors import HubselectError

logger = logging.getLogger(__name__)

ENV_CACHE_DIR = "HUBSELECT_CACHE_DIR"
CHECKSUM_SUFFIX = ".sha256"
T = TypeVar("T")
_TEMP_TAG = re.compile(r"tmp-(\d+)-(\d+)-")
_SCRATCH: dict[str, Path] = {}  # this process's scratch folder, made on first use


def cache_dir() -> Path:
    """Return the cache root: ``$HUBSELECT_CACHE_DIR``, else the platform's user cache folder
    (:func:`platformdirs.user_cache_dir`): ``$XDG_CACHE_HOME/hubselect`` or ``~/.cache/hubselect`` on
    Linux, ``~/Library/Caches/hubselect`` on macOS, ``%LOCALAPPDATA%\\hubselect\\Cache`` on Windows."""
    root = os.environ.get(ENV_CACHE_DIR)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("hubselect", appauthor=False)
    return Path(root)


def check_cache_dir() -> Path:
    """Return :func:`cache_dir` after checking that it, or what it would be made in, is a folder.

    Raises:
        HubselectError: the cache path (or a folder above it) is a file.
    """
    root = cache_dir()
    blocker = _file_in_the_way(root)
    if blocker is not None:
        raise HubselectError(f"the hubselect cache {root} cannot be used: {blocker} is a file, not a folder: set "
                             f"{ENV_CACHE_DIR} to a folder (or move that file away)")
    return root


def _file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists and is not a folder (``None`` if none)."""
    for item in (path, *path.parents):
        if item.exists() or item.is_symlink():
            return None if item.is_dir() else item
    return None


# --------------------------------------------------------------------------------------------
# Writes the disk refuses: one line naming the place and the fix
# --------------------------------------------------------------------------------------------

_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM)
_NOT_A_FOLDER = (errno.ENOTDIR, errno.EEXIST)


def _place(path: Path) -> tuple[str, str]:
    """Where ``path`` is, in words, and the variable that moves that place (both "" for neither)."""
    path = path.absolute()
    places = [(cache_dir().absolute(), f"the hubselect cache {cache_dir()}", ENV_CACHE_DIR),
              (Path(tempfile.gettempdir()).absolute(), f"the temporary folder {tempfile.gettempdir()}", "TMPDIR")]
    inside = [p for p in places if path == p[0] or p[0] in path.parents]
    if not inside:
        return "", ""
    _, where, variable = max(inside, key=lambda p: len(p[0].parts))  # the cache may lie inside TMPDIR
    return where, variable


def storage_error(exc: OSError, path: str | os.PathLike | None = None) -> HubselectError | None:
    """A one-line error for a write the disk refused, naming the place and the fix; ``None`` for
    other errors.

    The path is the exception's (a copy's destination first), else ``path``, the file or folder
    being written. Without ``path`` (the CLI's last net, which cannot tell a read from a write)
    only a full disk or a read-only filesystem is reworded outside the cache and ``$TMPDIR``.
    """
    if exc.errno not in (*_FULL, errno.EROFS, *_DENIED, *_NOT_A_FOLDER):
        return None
    named = exc.filename2 or exc.filename or path
    if named is None:
        return None
    target = Path(os.fsdecode(named))
    where, variable = _place(target)
    if path is None and not variable and exc.errno not in (*_FULL, errno.EROFS):
        return None
    place = f" in {where}" if where else ""
    elsewhere = f"set {variable} to a folder" if variable else "write to a folder"
    if exc.errno in _FULL:
        if not variable:
            return HubselectError(f"no space left on the disk to write {target}: free space there, or write to a "
                                  f"folder on a disk with room ({ENV_CACHE_DIR} moves the cache, TMPDIR the "
                                  "temporary files)")
        hint = f" (writing {target})" if variable == ENV_CACHE_DIR else ""  # a scratch file's name says nothing
        emptied = " (the cache may be emptied: its entries are recomputed)" if variable == ENV_CACHE_DIR else ""
        return HubselectError(f"no space left on the disk of {where}{hint}: free space there{emptied}, or "
                              f"{elsewhere} on a disk with room")
    if exc.errno == errno.EROFS:
        return HubselectError(f"{target}{place} is on a read-only filesystem: remount it read-write, or "
                              f"{elsewhere} you can write")
    if exc.errno in _DENIED:
        return HubselectError(f"{target}{place} cannot be written ({exc.strerror}): make it writable "
                              f"(chmod, chown, chattr -i), or {elsewhere} you can write")
    blocker = _file_in_the_way(target.parent) or target
    if exc.errno == errno.EEXIST and blocker.is_dir():
        return None  # a real "already exists": not ours to reword
    writing = f" (to write {target})" if target != blocker else ""
    return HubselectError(f"{blocker} is a file where {where or 'hubselect'} needs a folder{writing}: move the file "
                          f"away, or {elsewhere}")


@contextlib.contextmanager
def storage_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn a write the disk refuses inside the block into :func:`storage_error` (about ``path``
    when the exception names no file); other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        error = storage_error(exc, path)
        if error is None:
            raise
        raise error from None


def content_key(*parts: Any) -> str:
    """Return a short stable hex key for JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    with storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{process_tag()}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``path`` (file or folder).

    Use for writers that take a path (``np.save``, ``save_pretrained``, matplotlib). On error the
    temporary is removed and ``path`` is left as it was; a write the disk refuses, in the block
    too, is a :func:`storage_error` about ``path``.
    """
    path = Path(path)
    with storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{process_tag()}-")) / path.name
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:  # the block's own writes: those into the temporary, or a full / read-only disk
        named = exc.filename2 or exc.filename
        ours = tmp.parent.absolute() in Path(os.fsdecode(named)).absolute().parents if named else \
            exc.errno in (*_FULL, errno.EROFS)
        error = storage_error(OSError(exc.errno, exc.strerror, os.fspath(path)), path) if ours else None
        if error is None:
            raise
        raise error from None
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Verified cache entries
# --------------------------------------------------------------------------------------------

def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def write_entry(path: str | os.PathLike, data: bytes) -> Path:
    """Write the cache entry ``data`` to ``path`` atomically, with its size and sha256 beside it."""
    path = Path(path)
    atomic_write_bytes(path, data)
    try:
        atomic_write_text(_checksum_path(path), f"{hashlib.sha256(data).hexdigest()} {len(data)}\n")
    except BaseException:  # no entry without its checksum: it would be trusted on its parse alone
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path


def _checksum_problem(path: Path, data: bytes) -> str | None:
    """Why ``data`` does not match the recorded checksum of ``path``; ``None`` when it does.

    An entry without a checksum file (written before checksums, or by a process killed between
    the two renames) is not checked here; its parse still is.
    """
    try:
        digest, size = _checksum_path(path).read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "unreadable checksum file"
    if int(size) != len(data):
        return f"{len(data)} bytes where {size} were written"
    if hashlib.sha256(data).hexdigest() != digest:
        return "checksum mismatch"
    return None


def read_entry(path: str | os.PathLike, parse: Callable[[bytes], T]) -> T | None:
    """Return ``parse(bytes)`` of the cache entry at ``path``, or ``None`` when there is none.

    The entry's size and sha256 are checked against what :func:`write_entry` recorded, and
    ``parse`` must succeed. A corrupt entry is deleted with a warning naming it and ``None`` is
    returned, so the caller recomputes it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # none yet, or a file where the cache needs a folder
        return None
    except OSError as exc:
        discard(path, f"unreadable: {exc.strerror or exc}")
        return None
    problem = _checksum_problem(path, data)
    if problem is None:
        try:
            return parse(data)
        except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt entry
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'cannot be read'}"
    discard(path, problem)
    return None


def discard(path: str | os.PathLike, reason: str) -> None:
    """Delete the corrupt cache entry ``path`` (file or folder) and its checksum, with a warning."""
    path = Path(path)
    logger.warning("discarding corrupt cache entry %s (%s): recomputing it", path, reason)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    for item in (path, _checksum_path(path)):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            item.unlink()


# --------------------------------------------------------------------------------------------
# Inter-process locks
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def key_lock(path: str | os.PathLike, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive inter-process lock for ``path`` (:class:`filelock.FileLock` on ``<path>.lock``).

    Processes (and threads) that want the same cache entry take turns: the first computes it,
    the others wait and then find it. The lock is an ``flock`` (Windows: ``LockFileEx``) that the
    system releases when the block ends or the process dies, so a killed holder leaves no stale
    lock; the empty lock file is left in place (deleting it would race with a waiting process).

    Args:
        path: The cache entry the lock is for.
        wait: Wait for another holder; with ``False`` the block runs at once and gets ``False``
            when another process or thread holds the lock (it must then leave the entry alone).

    Yields:
        Whether the lock is held.
    """
    import filelock

    lock = Path(f"{os.fspath(path)}.lock")
    with storage_errors(lock):
        lock.parent.mkdir(parents=True, exist_ok=True)
        held = filelock.FileLock(lock)
        with contextlib.suppress(filelock.Timeout):
            held.acquire(blocking=False)
        if wait and not held.is_locked:
            logger.info("waiting for another process working on %s", path)
            held.acquire()
    if not held.is_locked:
        yield False
        return
    try:
        yield True
    finally:
        held.release()


# --------------------------------------------------------------------------------------------
# What the cache holds, and pruning it
# --------------------------------------------------------------------------------------------

_LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class CacheEntry:
    """One whole cache entry: the files of one key in one kind's folder (``<cache>/<kind>/<key>...``).

    A key's files are its data (a file, or a folder for a tuned model), their checksums and its
    lock file; a sample's Parquet and its JSON meta share a key and are one entry.
    """

    kind: str
    key: str
    paths: tuple[Path, ...]
    size: int
    written: float  # the newest modification time of its files (seconds since the epoch)

    @property
    def lock(self) -> Path | None:
        """The lock file of the entry's :func:`key_lock`, if one was ever taken."""
        return next((p for p in self.paths if p.name.endswith(_LOCK_SUFFIX)), None)


def _tree_stats(path: Path) -> tuple[int, float]:
    """Bytes and newest modification time of a file, or of a folder and everything in it."""
    try:
        stat = path.stat(follow_symlinks=False)
    except OSError:
        return 0, 0.0
    size, newest = (0 if path.is_dir() else stat.st_size), stat.st_mtime
    if path.is_dir() and not path.is_symlink():
        for inner in path.rglob("*"):
            with contextlib.suppress(OSError):
                inner_stat = inner.stat(follow_symlinks=False)
                size += 0 if inner.is_dir() else inner_stat.st_size
                newest = max(newest, inner_stat.st_mtime)
    return size, newest


def cache_entries(root: str | os.PathLike | None = None) -> list[CacheEntry]:
    """The whole entries under ``root`` (:func:`cache_dir`), oldest first.

    Each sub-folder of the cache is a kind (``embeddings``, ``models``, ``samples``...). Files at
    the top (the Hub pins) are no entries, nor are temporaries (hidden names: writes in progress,
    or left by a killed process) and keys that have only a lock file.
    """
    root = Path(root) if root is not None else cache_dir()
    entries = []
    kinds = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in kinds:
        keys: dict[str, list[Path]] = {}
        for item in sorted(folder.iterdir()):
            if not item.name.startswith("."):
                keys.setdefault(item.name.split(".", 1)[0], []).append(item)
        for key, paths in keys.items():
            if all(p.name.endswith(_LOCK_SUFFIX) for p in paths):
                continue
            stats = [_tree_stats(p) for p in paths if not p.name.endswith(_LOCK_SUFFIX)]
            entries.append(CacheEntry(folder.name, key, tuple(paths), sum(s for s, _ in stats),
                                      max(t for _, t in stats)))
    return sorted(entries, key=lambda e: (e.written, e.kind, e.key))


def remove_entry(entry: CacheEntry) -> bool:
    """Remove a whole entry (its lock file stays); ``False``, removing nothing, while its lock is held.

    Data goes before its checksum, and a folder is first renamed to a temporary name, so an
    interrupted removal leaves nothing that reads as an entry.
    """
    lock = entry.lock
    with key_lock(str(lock)[: -len(_LOCK_SUFFIX)], wait=False) if lock else contextlib.nullcontext(True) as held:
        if not held:
            return False
        for path in sorted(entry.paths, key=lambda p: p.name.endswith(CHECKSUM_SUFFIX)):
            if path == lock:
                continue
            if path.is_dir() and not path.is_symlink():
                doomed = path.with_name(f".{path.name}.{process_tag()}-prune")
                with storage_errors(path):
                    os.replace(path, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
            else:
                with storage_errors(path), contextlib.suppress(FileNotFoundError):
                    path.unlink()
    return True


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune_cache` removed, and what it kept because a process held its lock."""

    removed: tuple[CacheEntry, ...]
    in_use: tuple[CacheEntry, ...]
    left: tuple[CacheEntry, ...]
    temporaries: int  # left by killed processes, swept first


def prune_cache(*, older_than: float | None = None, max_bytes: int | None = None,
                now: float | None = None) -> Pruned:
    """Remove whole entries written more than ``older_than`` seconds ago, then the oldest ones until
    the cache holds at most ``max_bytes``; an entry whose lock another process holds is kept.

    What killed processes left (their temporaries) is swept first; writes in progress are never
    touched. The next job recomputes (or downloads) what it needs again.
    """
    swept = sweep_cache()
    now = time.time() if now is None else now
    entries = cache_entries()
    total = sum(e.size for e in entries)
    removed, in_use = [], []
    for entry in entries:  # oldest first
        too_old = older_than is not None and now - entry.written > older_than
        if not too_old and (max_bytes is None or total <= max_bytes):
            continue
        if remove_entry(entry):
            removed.append(entry)
            total -= entry.size
        else:
            in_use.append(entry)
    gone = {id(e) for e in removed}
    return Pruned(tuple(removed), tuple(in_use), tuple(e for e in entries if id(e) not in gone), swept)


# --------------------------------------------------------------------------------------------
# Process-owned temporaries: scratch folders and the sweep of what killed processes left
# --------------------------------------------------------------------------------------------

def _start_time(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``); 0 where unknown."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def process_token(pid: int | None = None) -> str:
    """``<pid>-<start time>``: names a process on this machine (a bare pid gets reused)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_time(pid)}"


def process_tag() -> str:
    """``tmp-<pid>-<start>``: the part of a temporary name that says which process made it."""
    return f"tmp-{process_token()}"


def process_alive(token: str) -> bool:
    """Whether the process named by a :func:`process_token` still runs on this machine."""
    try:
        pid, start = (int(x) for x in token.split("-")[:2])
    except ValueError:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = _start_time(pid)
    return not (start and now and now != start)


def sweep_stale(folder: str | os.PathLike) -> int:
    """Delete the temporaries in ``folder`` left by dead processes; return how many.

    Matches the temporary names of :func:`atomic_write_bytes` and :func:`atomic_path`
    (``.<name>.tmp-<pid>-<start>-...``) and the scratch folders named ``<pid>-<start>``.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP_TAG.search(entry.name) if entry.name.startswith(".") else \
            re.fullmatch(r"(\d+)-(\d+)", entry.name)
        if match is None or process_alive(f"{match.group(1)}-{match.group(2)}"):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        removed += 1
    return removed


def sweep_cache() -> int:
    """Sweep :func:`cache_dir` and its sub-folders (``models/``, ``terms/``...) for dead temporaries."""
    root = cache_dir()
    if not root.is_dir():
        return 0
    return sweep_stale(root) + sum(sweep_stale(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def scratch_root() -> Path:
    """``$TMPDIR/hubselect-scratch``: the folder of every process's scratch folder."""
    return Path(tempfile.gettempdir()) / "hubselect-scratch"


def process_scratch() -> Path:
    """This process's scratch folder, ``$TMPDIR/hubselect-scratch/<pid>-<start>/``.

    Made on first use and removed when the process exits. First use also sweeps what killed
    processes left: their scratch folders and their temporaries in the cache.
    """
    token = process_token()
    path = _SCRATCH.get(token)
    if path is None:
        root = scratch_root()
        with storage_errors(root):
            root.mkdir(parents=True, exist_ok=True)
        swept = sweep_stale(root) + sweep_cache()
        if swept:
            logger.info("removed %d temporary folders and files left by killed hubselect processes", swept)
        path = root / token
        with storage_errors(path):
            path.mkdir(parents=True, exist_ok=True)
        _SCRATCH[token] = path
        atexit.register(_remove_scratch, path)
    return path


def _remove_scratch(path: Path) -> None:
    """Remove a scratch folder, and the shared root too when no other process uses it."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: another process's folder is in it
        path.parent.rmdir()


def scratch_dir(prefix: str) -> Path:
    """A new folder in :func:`process_scratch` (gone when the process exits)."""
    scratch = process_scratch()
    with storage_errors(scratch):
        return Path(tempfile.mkdtemp(prefix=prefix, dir=scratch))


@contextlib.contextmanager
def tempfiles_in_scratch() -> Iterator[Path]:
    """Point :mod:`tempfile` at a new scratch folder for the block, and remove it after.

    Third-party code that copies large files to ``$TMPDIR`` (MLflow's model logging) then writes
    inside this process's scratch, so a killed process's copies are swept by the next run.
    """
    folder = scratch_dir("tmp-")
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)
