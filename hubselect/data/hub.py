"""The Hugging Face Hub client: search, revision pinning and split loading.

Every call goes to the real ``huggingface_hub`` / ``datasets`` code against ``HF_ENDPOINT`` (the
public Hub unless set; note that both libraries read ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once,
when first imported). Failures become one-line :class:`~hubselect.core.errors.HubselectError` messages,
or :class:`~hubselect.core.errors.TaskRejected` where only one candidate is unusable. Messages never
include a token.

Findings that shaped this module (huggingface_hub 2.4.0, datasets 5.2.0):

* ``HfApi.list_datasets`` and ``datasets.load_dataset`` retry a refused connection with back-off
  for about 23 s before they fail; ``dataset_info`` does not retry (a refused connection fails
  in about 0.2 s) but has no timeout by default. huggingface_hub has no setting for its retry
  count, so :func:`search_datasets`, :func:`open_hub_split` and the ``datasets`` fallback of
  :func:`hub_split_names` first send one ``HEAD`` to the endpoint with a short timeout
  (:data:`PROBE_TIMEOUT_S`), and info calls pass :data:`HUB_TIMEOUT_S`.
* ``datasets`` streams a parquet split through ``HfFileSystem``, but pyarrow's default
  ``pre_buffer=True`` coalesces all the row groups of a file into one ranged read, so taking ten
  rows downloads the whole file. :func:`open_hub_split` turns ``pre_buffer`` off and uses 1 MiB
  read-ahead blocks for parquet repos, so a few rows cost about one row group plus 1 MiB.
* datasets 4+ no longer runs loading scripts at all (``trust_remote_code`` is ignored) and
  refuses every repo with ``{name}.py`` at its root, even one that also has data files.
* ``huggingface_hub`` retries some requests (search pages, the ``HEAD`` of a file, some ranged
  reads), logging a warning each time, but not ``dataset_info``, the tree or a file's ``GET``: a
  429 or 503 there failed the job at once. Every call here first installs
  :func:`~hubselect.data.retry.install_hub_retries`, so each request (info, tree, resolve,
  paths-info, search, the ranged reads of a stream) is retried with backoff for up to a minute,
  then fails in one line that counts the tries (:func:`translate_hub_error`).
* The fetch step calls these functions from many threads at once (one candidate each). They keep
  no state in memory; ``huggingface_hub``'s shared ``httpx`` client is thread-safe; the cached
  info is written atomically under unique temporary names; the one file several threads change,
  the pins file, is read, changed and written under a lock (:func:`pin_revision`).
* Offline (``HF_HUB_OFFLINE=1``): :func:`pin_revision` answers from the pins file and the cached
  info without a network call. ``datasets`` can reload a split offline only if it was loaded
  once with ``streaming=False`` (streaming caches nothing), and it then ignores ``revision``
  and takes the repo's most recently cached commit; :func:`open_hub_split` checks that the
  cache files are those of the pinned sha and refuses otherwise.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hubselect.core.cache import atomic_write_json, cache_dir, content_key, key_lock
from hubselect.core.errors import HubselectError, TaskRejected
from hubselect.data.refs import check_hub_id
from hubselect.data.retry import RetriesExhausted, install_hub_retries, no_retries, plural

PROBE_TIMEOUT_S = 5.0
"""Seconds the reachability probe (one HEAD before a search or a load) waits for an answer."""

HUB_TIMEOUT_S = 30.0
"""Seconds an info request waits (huggingface_hub's default is no timeout at all)."""

STREAM_BLOCK_SIZE = 1 << 20
"""Read-ahead block (bytes) of ``HfFileSystem`` when streaming parquet (fsspec's default: 5 MiB)."""

DATA_EXTENSIONS = (".parquet", ".arrow", ".csv", ".tsv", ".json", ".jsonl", ".ndjson")
"""File endings (before an optional compression suffix) that ``datasets`` loads as data files."""

_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")
_PINS_LOCK = threading.Lock()  # one read-change-write of a pins file at a time in this process


@dataclass(frozen=True)
class HubDatasetInfo:
    """What hubselect needs to know about one dataset repo at one pinned commit.

    Attributes:
        repo_id: ``owner/name``.
        sha: the 40-hex commit every later read uses (``revision=sha``).
        tags: the Hub's tags, e.g. ``task_categories:text-classification``, ``language:en``.
        card_data: the README's YAML header as a dict (``configs``, ``language``...).
        siblings: every file path in the repo at ``sha``.
        script_based: the repo has a ``.py`` file at its root and no data files, so it can only
            be loaded by running that script.
    """

    repo_id: str
    sha: str
    tags: tuple[str, ...] = ()
    card_data: dict = field(default_factory=dict, hash=False)
    siblings: tuple[str, ...] = ()
    script_based: bool = False


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def hub_endpoint() -> str:
    """Return the Hub URL in use (``HF_ENDPOINT`` as huggingface_hub read it at import)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_offline() -> bool:
    """Return True when ``HF_HUB_OFFLINE`` is set (at import or now): no network calls then."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in {"1", "ON", "YES", "TRUE"}


# ---------------------------------------------------------------------------------------------
# Error mapping
# ---------------------------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "no answer from the host" in the HTTP stacks in use."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    types: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        types.append(module.TransportError)
    try:
        import requests

        types += [requests.ConnectionError, requests.Timeout]
    except ImportError:  # pragma: no cover - requests is a dependency of datasets
        pass
    return tuple(types)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    text = _TOKEN_RE.sub("hf_***", text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unreachable(exc: BaseException) -> HubselectError:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled) or hub_offline():
        return HubselectError(
            f"HF_HUB_OFFLINE=1 is set, so the Hugging Face Hub at {hub_endpoint()} is not "
            "contacted: unset it to search or pin datasets, or use local paths as "
            "--candidates/--target"
        )
    return HubselectError(
        f"cannot reach the Hugging Face Hub at {hub_endpoint()} ({_reason(exc)}): use a local "
        "path as --candidates/--target, or rerun with HF_HUB_OFFLINE=1 to read pinned datasets "
        "from the cache"
    )


def translate_hub_error(
    exc: BaseException, repo_id: str | None = None, revision: str | None = None
) -> HubselectError | None:
    """Map an exception from huggingface_hub/datasets to a one-line error, or ``None``.

    The checks run in order: repository state (gated, missing revision or repository, disabled,
    refused access), then the network (unreachable, other HTTP answers), then the message of
    a ``datasets`` error.

    Args:
        exc: the exception raised by a Hub call (its ``__cause__`` chain is searched too).
        repo_id: the dataset the call was about, for the message.
        revision: the revision asked for, for the message.

    Returns:
        A :class:`HubselectError` (a :class:`TaskRejected` for a problem with this one
        dataset), or ``None`` when ``exc`` is not a Hub error and should propagate as it is.
    """
    chain = _chain(exc)
    endpoint = hub_endpoint()
    name = f"dataset '{repo_id}'" if repo_id else "the dataset"
    return (_repository_error(chain, name, revision, endpoint)
            or _network_error(chain, name, endpoint)
            or _datasets_error(chain, name, repo_id, revision))


def _first(chain: list[BaseException], types: Any) -> Any:
    """The first exception of ``chain`` that is one of ``types``, or ``None``."""
    return next((e for e in chain if isinstance(e, types)), None)


def _datasets_not_found(chain: list[BaseException], phrase: str) -> bool:
    """Whether a ``datasets`` ``DatasetNotFoundError`` in ``chain`` says ``phrase``."""
    return any(phrase in str(e) for e in chain if type(e).__name__ == "DatasetNotFoundError")


def _repository_error(chain: list[BaseException], name: str, revision: str | None,
                      endpoint: str) -> HubselectError | None:
    """Gated, missing (revision or repository), disabled, or refused (HTTP 401/403)."""
    from huggingface_hub.errors import (
        DisabledRepoError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if _first(chain, GatedRepoError) is not None or _datasets_not_found(chain, "is a gated dataset"):
        return TaskRejected(
            f"{name} is gated on the Hub at {endpoint}: accept its conditions on its dataset page "
            "and log in (hf auth login or HF_TOKEN), or choose another dataset"
        )
    if _first(chain, RevisionNotFoundError) is not None:
        return HubselectError(
            f"revision '{revision}' of {name} was not found on the Hub at {endpoint}: check the "
            "branch, tag or commit sha"
        )
    if _first(chain, RepositoryNotFoundError) is not None or _datasets_not_found(chain, "doesn't exist on the Hub"):
        return HubselectError(
            f"{name} was not found on the Hub at {endpoint}: check the name, or pass a local "
            "folder/file path"
        )
    if _first(chain, DisabledRepoError) is not None:
        return TaskRejected(f"{name} is disabled on the Hub at {endpoint}")
    http = _first(chain, HfHubHTTPError)
    if http is not None and http.response is not None and http.response.status_code in (401, 403):
        return TaskRejected(
            f"the Hub at {endpoint} refused access to {name} (HTTP {http.response.status_code}): "
            "log in (hf auth login or HF_TOKEN) with an account that can read it"
        )
    return None


def _network_error(chain: list[BaseException], name: str, endpoint: str) -> HubselectError | None:
    """The Hub unreachable (the root transport error), or any other HTTP answer."""
    from huggingface_hub.errors import HfHubHTTPError

    exhausted = _first(chain, RetriesExhausted)
    if exhausted is not None:
        return _gave_up(exhausted, name, endpoint)
    transport_types = _transport_errors()
    transports = [e for e in chain if isinstance(e, transport_types)]
    if transports:
        return _unreachable(transports[-1])  # the root cause, e.g. httpx2.ConnectError
    http = _first(chain, HfHubHTTPError)
    if http is not None:
        status = http.response.status_code if http.response is not None else "?"
        return HubselectError(
            f"the Hub at {endpoint} answered HTTP {status} for {name}: retry later, or pass a "
            "local folder/file path"
        )
    return None


def _gave_up(exhausted: RetriesExhausted, name: str, endpoint: str) -> HubselectError:
    """Every retry of a transient failure failed: the last answer, the try count and the time."""
    answer = (f"answered {exhausted.reason}" if exhausted.reason.startswith("HTTP")
              else exhausted.reason)
    return HubselectError(
        f"the Hub at {endpoint} {answer} for {name}; gave up after {plural(exhausted.tries)} in "
        f"{exhausted.seconds:.0f} s: retry later, or pass a local folder/file path"
    )


def _datasets_error(chain: list[BaseException], name: str, repo_id: str | None,
                    revision: str | None) -> HubselectError | None:
    """What a ``datasets`` error's message says: not cached offline, no data files, bad config, a script."""
    for e in chain:
        text = " ".join(str(e).split())
        if hub_offline() and (
            (isinstance(e, ValueError) and text.startswith("Couldn't find cache for"))
            or (isinstance(e, FileNotFoundError) and "is not cached in" in text)
        ):
            return _offline_not_cached(repo_id, revision)
        if type(e).__name__ == "DataFilesNotFoundError":
            return TaskRejected(f"{name} has no data files that datasets can read ({text[:160]})")
        if isinstance(e, ValueError) and ("Bad split" in text or "BuilderConfig" in text):
            return TaskRejected(f"{name}: {text[:240]}")
        if isinstance(e, RuntimeError) and "Dataset scripts are no longer supported" in text:
            return TaskRejected(_script_message(repo_id, ask_consent=False))
    return None


@contextmanager
def hub_errors(repo_id: str | None = None, revision: str | None = None) -> Iterator[None]:
    """Context manager: re-raise Hub failures inside it as one-line :class:`HubselectError`."""
    try:
        yield
    except RetriesExhausted as exc:
        raise translate_hub_error(exc, repo_id, revision) from exc
    except HubselectError:
        raise
    except Exception as exc:
        mapped = translate_hub_error(exc, repo_id, revision)
        if mapped is None:
            raise
        raise mapped from exc


def _offline_not_cached(repo_id: str | None, revision: str | None) -> HubselectError:
    name = f"dataset '{repo_id}'" if repo_id else "the dataset"
    at = f" at commit {revision[:12]}" if revision else ""
    return HubselectError(
        f"HF_HUB_OFFLINE=1 is set and the datasets cache has no copy of {name}{at} (only splits "
        "loaded once online with streaming off are cached): unset HF_HUB_OFFLINE, or use a local "
        "path"
    )


def _script_message(repo_id: str | None, *, ask_consent: bool) -> str:
    """Why a script-based repo is refused: no consent yet (``ask_consent``), or datasets cannot run it."""
    name = f"dataset '{repo_id}'" if repo_id else "the dataset"
    if ask_consent:
        return (
            f"{name} is script-based: its loading code would run on your machine; pass "
            "--trust-remote-code only if you trust it"
        )
    import datasets

    return (
        f"{name} is script-based, and datasets {datasets.__version__} no longer runs loading "
        "scripts at all, even with --trust-remote-code: use a repo that holds data files (the "
        "Hub's Parquet conversion, owner/name@refs/convert/parquet, where it made one), or a "
        "copy of its data as a local folder/file path"
    )


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


def _probe_endpoint() -> None:
    """Send one HEAD to the endpoint; raise the unreachable error if nothing answers quickly."""
    from huggingface_hub.utils import get_session

    install_hub_retries()
    try:
        with no_retries():  # any answer at all shows the host is up
            get_session().head(hub_endpoint(), timeout=PROBE_TIMEOUT_S)
    except Exception as exc:
        mapped = translate_hub_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


def search_datasets(
    query: str | None = None,
    *,
    task: str = "text-classification",
    language: str | None = None,
    limit: int = 20,
) -> list[str]:
    """Search the Hub for dataset repos, most downloaded first.

    Args:
        query: text that must occur in the repo id (the Hub's ``search=``); None for any.
        task: required ``task_categories`` tag.
        language: required ``language`` tag (e.g. ``"en"``); None for any.
        limit: at most this many ids.

    Returns:
        Repo ids (``owner/name``) sorted by downloads, descending.

    Raises:
        HubselectError: the Hub cannot be reached (checked first with a quick probe, since the
            search call itself retries for ~23 s) or answers with an error.
    """
    from huggingface_hub import HfApi

    if limit <= 0:
        return []
    filters = [f"task_categories:{task}"] if task else []
    if language:
        filters.append(f"language:{language}")
    with hub_errors():
        if hub_offline():
            from huggingface_hub.errors import OfflineModeIsEnabled

            raise OfflineModeIsEnabled("HF_HUB_OFFLINE=1")
        _probe_endpoint()
        found = HfApi().list_datasets(
            filter=filters or None, search=query or None, sort="downloads", limit=limit
        )
        return [d.id for d in found][:limit]


# ---------------------------------------------------------------------------------------------
# Pinning
# ---------------------------------------------------------------------------------------------


def _is_data_file(path: str) -> bool:
    lower = path.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    return lower.endswith(DATA_EXTENSIONS)


def is_script_based(siblings: tuple[str, ...] | list[str]) -> bool:
    """Return True for a repo with a ``.py`` file at its root and no data files."""
    has_root_script = any("/" not in s and s.endswith(".py") for s in siblings)
    return has_root_script and not any(_is_data_file(s) for s in siblings)


def _read_pins(pins_path: Path) -> dict[str, str]:
    try:
        pins = json.loads(Path(pins_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise HubselectError(
            f"cannot read the pins file {pins_path} ({type(exc).__name__}): fix or delete it"
        ) from exc
    if not isinstance(pins, dict) or not all(isinstance(v, str) for v in pins.values()):
        raise HubselectError(
            f"the pins file {pins_path} is not a JSON object of dataset id -> commit sha: fix or "
            "delete it"
        )
    return pins


def _record_pin(pins_path: Path, repo_id: str, sha: str) -> None:
    """Add ``repo_id``'s pin to the pins file: read, change and write back under a lock, so pins that
    threads (a concurrent fetch) or processes record at the same time are all kept."""
    if _read_pins(pins_path).get(repo_id) == sha:
        return
    with _PINS_LOCK, key_lock(pins_path):  # this process's threads, then other processes
        pins = _read_pins(pins_path)
        if pins.get(repo_id) != sha:
            pins[repo_id] = sha
            atomic_write_json(pins_path, pins)


def _info_cache_path(repo_id: str, sha: str) -> Path:
    return cache_dir() / "hub-info" / f"{content_key(hub_endpoint(), repo_id, sha)}.json"


def _cached_info(repo_id: str, sha: str) -> HubDatasetInfo | None:
    path = _info_cache_path(repo_id, sha)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return HubDatasetInfo(
            repo_id=data["repo_id"],
            sha=data["sha"],
            tags=tuple(data["tags"]),
            card_data=dict(data["card_data"]),
            siblings=tuple(data["siblings"]),
            script_based=bool(data["script_based"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fetch_info(repo_id: str, revision: str | None) -> HubDatasetInfo:
    """Ask the Hub for ``repo_id`` at ``revision`` (None: main); cache it by its sha."""
    from huggingface_hub import HfApi

    install_hub_retries()
    with hub_errors(repo_id, revision):
        raw = HfApi().dataset_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)
    if not raw.sha:
        raise HubselectError(
            f"the Hub at {hub_endpoint()} gave no commit sha for dataset '{repo_id}': retry later"
        )
    card = raw.card_data.to_dict() if raw.card_data is not None else {}
    siblings = tuple(s.rfilename for s in raw.siblings or ())
    info = HubDatasetInfo(
        repo_id=repo_id,
        sha=raw.sha,
        tags=tuple(raw.tags or ()),
        card_data=card,
        siblings=siblings,
        script_based=is_script_based(siblings),
    )
    atomic_write_json(_info_cache_path(repo_id, info.sha), asdict(info))
    return info


def pin_revision(repo_id: str, revision: str | None, *, pins_path: Path) -> HubDatasetInfo:
    """Resolve ``repo_id`` to one commit and record it, so every later read uses that commit.

    With ``revision=None`` an existing pin in ``pins_path`` wins (a rerun reads the same commit
    even if ``main`` moved); otherwise ``main`` is resolved and pinned. An explicit branch, tag
    or sha is always resolved and its sha recorded (replacing the old pin). Info for a sha is
    cached under :func:`~hubselect.core.cache.cache_dir` (a commit never changes), so a pinned rerun
    makes no Hub call. With ``HF_HUB_OFFLINE=1`` no network call is made: a pin (or an explicit
    40-hex sha) is returned as is, with the cached info when there is some.

    Args:
        repo_id: ``owner/name`` on the Hub.
        revision: branch, tag or commit sha; None to use the pin, or ``main`` when unpinned.
        pins_path: JSON file mapping repo id -> commit sha (created when missing).

    Returns:
        The repo's info at the pinned sha.

    Raises:
        HubselectError: an invalid repo id (checked before any call), the repo or revision
            does not exist, the Hub is unreachable, or the Hub is offline and the dataset has no pin.
    """
    check_hub_id(repo_id, f"dataset '{repo_id}'", "'owner/name'")
    pins_path = Path(pins_path)
    pins = _read_pins(pins_path)
    if revision is None and repo_id in pins:
        sha = pins[repo_id]
    elif revision is not None and _SHA_RE.match(revision) and (
        hub_offline() or _cached_info(repo_id, revision) is not None
    ):
        sha = revision
    else:
        sha = None

    if sha is not None:
        info = _cached_info(repo_id, sha)
        if info is None and hub_offline():
            # Offline: no way to ask for tags/files; the sha is all a cached load needs.
            info = HubDatasetInfo(repo_id=repo_id, sha=sha)
        elif info is None:
            info = _fetch_info(repo_id, sha)
    elif hub_offline():
        raise HubselectError(
            f"HF_HUB_OFFLINE=1 is set and dataset '{repo_id}' has no pinned commit in {pins_path}"
            f"{'' if revision is None else f' for revision {revision!r}'}: run once online to "
            "pin it, or use a local path"
        )
    else:
        info = _fetch_info(repo_id, revision)
    _record_pin(pins_path, repo_id, info.sha)
    return info


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _card_configs(info: HubDatasetInfo) -> list[dict]:
    configs = info.card_data.get("configs") if isinstance(info.card_data, dict) else None
    return [c for c in configs or [] if isinstance(c, dict)]


def _card_config(info: HubDatasetInfo, config: str | None) -> dict | None:
    """Return the card's ``configs`` entry for ``config`` (None: the default), or None."""
    configs = _card_configs(info)
    if not configs:
        return None
    if config is None:
        for candidate in configs:
            if candidate.get("default"):
                return candidate
        for candidate in configs:
            if candidate.get("config_name", "default") == "default":
                return candidate
        return configs[0]
    for candidate in configs:
        if candidate.get("config_name", "default") == config:
            return candidate
    names = ", ".join(str(c.get("config_name", "default")) for c in configs)
    raise TaskRejected(f"dataset '{info.repo_id}' has no config '{config}' (configs: {names})")


def _splits_of_config(entry: dict) -> list[str]:
    data_files = entry.get("data_files")
    if data_files is None:
        return []
    if isinstance(data_files, (str, list)) and not (
        isinstance(data_files, list) and data_files and isinstance(data_files[0], dict)
    ):
        return ["train"]
    if isinstance(data_files, dict):
        return list(data_files)
    splits: list[str] = []
    for item in data_files:
        split = str(item.get("split", "train"))
        if split not in splits:
            splits.append(split)
    return splits


def hub_split_names(info: HubDatasetInfo, *, config: str | None = None) -> list[str]:
    """Return the split names of ``info`` at its pinned sha, in the repo's order.

    Read from the card's ``configs:`` when it maps data files to splits (no network call);
    otherwise ``datasets.get_dataset_split_names`` infers them from the file names. A
    script-based repo is refused whatever the caller's consent: ``datasets`` cannot run its
    script (callers ask for ``--trust-remote-code`` first, see :func:`~hubselect.data.tasks.open_task`).

    Args:
        info: a pinned repo (from :func:`pin_revision`).
        config: a config name; None for the default one.

    Raises:
        TaskRejected: script-based repo, unknown config, or no readable data files.
        HubselectError: the Hub cannot be reached.
    """
    if info.script_based:
        raise TaskRejected(_script_message(info.repo_id, ask_consent=False))
    entry = _card_config(info, config)
    if entry is not None:
        splits = _splits_of_config(entry)
        if splits:
            return splits
    import datasets

    with hub_errors(info.repo_id, info.sha):
        if not hub_offline():
            _probe_endpoint()
        return list(
            datasets.get_dataset_split_names(
                f"hf://datasets/{info.repo_id}", config_name=config, revision=info.sha
            )
        )


def _parquet_only(info: HubDatasetInfo) -> bool:
    data = [s for s in info.siblings if _is_data_file(s)]
    return bool(data) and all(s.lower().endswith(".parquet") for s in data)


def open_hub_split(
    info: HubDatasetInfo,
    *,
    config: str | None,
    split: str,
    streaming: bool = True,
    trust_remote_code: bool = False,
):
    """Open one split of a pinned Hub dataset with ``datasets``, at ``revision=info.sha``.

    Streaming parquet repos are read with pyarrow's ``pre_buffer`` off and 1 MiB read-ahead
    blocks, so reading the first rows downloads about one row group, not the whole file.
    Streaming is lazy: a network failure while iterating surfaces from the iteration itself.

    Args:
        info: a pinned repo (from :func:`pin_revision`).
        config: config name, None for the default one.
        split: split name, e.g. ``"train"``.
        streaming: return an ``IterableDataset`` that reads on demand (default); False
            downloads the split into the ``datasets`` cache and returns a ``Dataset`` (which can
            then be reopened with ``HF_HUB_OFFLINE=1``).
        trust_remote_code: accept a script-based repo. Never on by default; note that
            datasets 4+ cannot run loading scripts at all, so such a repo is still rejected.

    Returns:
        A ``datasets.IterableDataset`` (streaming) or ``datasets.Dataset``.

    Raises:
        TaskRejected: script-based repo, gated repo, unknown config or split.
        HubselectError: the Hub cannot be reached, or the repo/revision is gone.
    """
    if info.script_based:
        raise TaskRejected(_script_message(info.repo_id, ask_consent=not trust_remote_code))
    entry = _card_config(info, config)
    if entry is not None:
        splits = _splits_of_config(entry)
        if splits and split not in splits:
            raise TaskRejected(
                f"dataset '{info.repo_id}' has no split '{split}' (splits: {', '.join(splits)})"
            )
    import datasets

    if hub_offline():
        return _open_cached_split(info, config=config, split=split, streaming=streaming)
    _probe_endpoint()
    kwargs: dict[str, Any] = {}
    if streaming and _parquet_only(info):
        import pyarrow.dataset as pds

        kwargs["fragment_scan_options"] = pds.ParquetFragmentScanOptions(pre_buffer=False)
        kwargs["storage_options"] = {"hf": {"block_size": STREAM_BLOCK_SIZE}}
    with hub_errors(info.repo_id, info.sha):
        return datasets.load_dataset(
            f"hf://datasets/{info.repo_id}",  # never a local folder named like the repo
            name=config,
            split=split,
            revision=info.sha,
            streaming=streaming,
            **kwargs,
        )


def _open_cached_split(info: HubDatasetInfo, *, config: str | None, split: str, streaming: bool):
    """Offline: load the split from the ``datasets`` cache, and only if it is of ``info.sha``.

    Offline, ``datasets`` ignores ``revision`` and takes the most recently cached commit of the
    repo, so the cache files are checked to be in the ``.../{sha}/`` folder.
    """
    import datasets

    with hub_errors(info.repo_id, info.sha):
        dataset = datasets.load_dataset(
            f"hf://datasets/{info.repo_id}", name=config, split=split, revision=info.sha
        )
    files = [Path(f["filename"]).as_posix() for f in dataset.cache_files]
    if not files or not all(f"/{info.sha}/" in f for f in files):
        raise _offline_not_cached(info.repo_id, info.sha)
    return dataset.to_iterable_dataset() if streaming else dataset
