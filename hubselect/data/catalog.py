"""The fetch step's logic: resolve target and candidates, pin, sample, and write a catalog.

Output folder layout (what the ``fetch`` step logs as artifacts)::

    catalog.json                       settings, the target and every candidate: ref, pinned
                                       revision, columns, label names, sizes, status (ok/rejected),
                                       reason, and the path of each sample
    samples/target/score.parquet       the target's texts used for scoring (column ``text`` only)
    samples/target/eval.parquet        the target's labelled evaluation sample (``text``, ``label``)
    samples/candidates/<name>.parquet  each usable candidate's sample (``text``, ``label``)

The target's files and the candidates' files live in separate folders, so no candidate name (a
catalog folder called ``target.score``, say) can overwrite or, when rejected, delete the target's
samples. A candidate whose name equals an earlier one's but for case gets ``<name>~2.parquet``, so
names stay distinct files on case-insensitive disks too (names never hold ``/``: see
:attr:`hubselect.data.refs.TaskRef.name`). ``catalog.json`` holds each path; catalogs written with
the older flat layout (``samples/target.score.parquet``...) still read back.

:func:`fetch` returns the catalog as a :class:`hubselect.data.entries.Catalog`, the one reader and
writer of ``catalog.json`` (``Catalog.load(folder)`` reads a fetch folder back).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hubselect.core.cache import atomic_path, cache_dir, content_key, read_entry, write_entry
from hubselect.core.errors import HubselectError, TaskRejected
from hubselect.data import demo, identity, local
from hubselect.data.columns import ColumnMapping, Hints, parse_column_specs
from hubselect.data.entries import Catalog, SampleInfo, TargetEntry, TaskEntry, read_texts
from hubselect.data.refs import TaskRef, parse_ref
from hubselect.data.tasks import (
    EVAL_SPLITS,
    SCORE_SPLITS,
    STREAM_SAMPLE_VERSION,
    TRAIN_SPLITS,
    Sample,
    TaskHandle,
    first_split,
    open_task,
    read_sample,
    split_texts,
)

logger = logging.getLogger(__name__)

SEARCH_PREFIX = "search:"
#: The target's samples and the candidates' samples, relative to the fetch folder (separate folders).
TARGET_SCORE_FILE = "samples/target/score.parquet"
TARGET_EVAL_FILE = "samples/target/eval.parquet"
CANDIDATES_DIR = "samples/candidates"
#: Candidates fetched at once by default: Hub calls wait on the network, so threads overlap them.
DEFAULT_FETCH_WORKERS = 16
#: FetchConfig fields that say how to fetch, not what: kept out of catalog.json's settings.
_HOW_NOT_WHAT = ("fetch_workers",)


@dataclass(frozen=True)
class FetchConfig:
    """Settings of the fetch step (all also MLflow params).

    Attributes:
        target: Task reference of the target.
        candidates: ``demo``, ``search:<query>`` (Hub search), a catalog folder, or a
            comma-separated list of task references and catalog folders.
        sample_size: Examples sampled per candidate (seeded, stratified by label).
        target_sample_size: Target texts sampled for scoring.
        eval_size: Labelled target examples kept for evaluation (0 = none).
        seed: Sampling seed.
        target_split: Split whose texts represent the target (default: unlabeled, else train,
            else test). Its labels are never read.
        eval_split: Labelled split for evaluation (default: test, else validation).
        mapping: Column overrides for the target.
        columns: Per-candidate column mappings, ``name:text=body,label=stars;other:...`` (see
            :func:`hubselect.data.columns.parse_column_specs`).
        language: Hub search language filter.
        limit: Hub search result limit.
        trust_remote_code: Allow script-based Hub datasets (off by default).
        fetch_workers: Candidates fetched at once, in threads (1: one after the other). How the
            catalog is fetched, not what it holds: left out of ``catalog.json``'s settings, so the
            catalog is the same for every value.
    """

    target: str = "demo:kitchen"
    candidates: str = "demo"
    sample_size: int = 1000
    target_sample_size: int = 1000
    eval_size: int = 400
    seed: int = 0
    target_split: str = ""
    eval_split: str = ""
    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    language: str = ""
    limit: int = 20
    trust_remote_code: bool = False
    columns: str = ""
    fetch_workers: int = DEFAULT_FETCH_WORKERS

    def __post_init__(self) -> None:
        parse_column_specs(self.columns)  # fail before any work on a malformed mapping
        if self.target:
            parse_ref(self.target)  # a malformed task reference or Hub id, before any step or bar starts
        for name in ("sample_size", "target_sample_size", "limit"):
            if getattr(self, name) < 1:
                raise HubselectError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.eval_size < 0:
            raise HubselectError(f"eval-size must be 0 or more, got {self.eval_size}")
        workers = self.fetch_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise HubselectError(f"fetch-workers must be a whole number of at least 1, got {workers!r}: pass "
                                 f"--fetch-workers {DEFAULT_FETCH_WORKERS} (the default), or 1 to fetch one "
                                 "candidate at a time")

    def params(self) -> dict[str, Any]:
        """MLflow params of the fetch step (flat; the column mapping as ``text_column`` etc.)."""
        out = {k: v for k, v in asdict(self).items() if k != "mapping"}
        out.update({f"{k}_column" if k in ("text", "label") else k: v for k, v in asdict(self.mapping).items()})
        return {k: (",".join(v) if isinstance(v, (tuple, list)) else v) for k, v in out.items()}


def expand_candidates(spec: str, *, language: str = "", limit: int = 20) -> list[TaskRef]:
    """Turn the ``candidates`` parameter into task references (see :class:`FetchConfig`)."""
    spec = spec.strip()
    if not spec:
        raise HubselectError("candidates is empty: pass 'demo', 'search:<query>', a catalog folder or a list")
    if spec.startswith(SEARCH_PREFIX):
        from hubselect.data import hub

        ids = hub.search_datasets(spec[len(SEARCH_PREFIX):].strip() or None, language=language or None, limit=limit)
        if not ids:
            raise HubselectError(f"the Hub search '{spec}' found no text-classification dataset: "
                                 "broaden the query or drop the language filter")
        return [TaskRef("hub", repo) for repo in ids]
    refs: list[TaskRef] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item == "demo":
            refs += [TaskRef("demo", name) for name in demo.demo_names()]
            continue
        ref = parse_ref(item)
        path = Path(ref.location)
        if ref.kind == "local" and local.is_catalog(path):
            tasks = local.catalog_tasks(path)
            if not tasks:
                raise HubselectError(f"folder '{item}' holds no task (no data files, no task sub-folders): "
                                     "point to a task or a catalog folder")
            refs += [TaskRef("local", str(p)) for p in tasks]
        else:
            refs.append(ref)
    seen: dict[str, TaskRef] = {}
    for ref in refs:
        if ref.name in seen and seen[ref.name] != ref:
            raise HubselectError(f"duplicate candidate name '{ref.name}' ({seen[ref.name]} and {ref}): "
                                 "list each task once or rename one folder")
        seen[ref.name] = ref
    return list(seen.values())


def _same_task(a: TaskRef, b: TaskRef) -> bool:
    return (a.kind, a.location, a.config) == (b.kind, b.location, b.config)


def _cached_sample(task: TaskHandle, split: str, mapping: ColumnMapping, *, n: int, seed: int,
                   with_labels: bool, out: Path, hints: Hints = Hints()) -> tuple[Sample | None, dict]:
    """Read a sample through the on-disk cache; write it to ``out`` as Parquet; return meta."""
    import pandas as pd

    version = f"sample-v2-stream-v{STREAM_SAMPLE_VERSION}" if task.streaming else "sample-v2"
    key = content_key(version, task.ref.kind, task.ref.location, task.ref.config, task.revision, split,
                      asdict(mapping), n, seed, with_labels)
    cached = cache_dir() / "samples" / f"{key}.parquet"
    meta_path = cached.with_suffix(".json")
    frame, meta = read_entry(cached, _parse_parquet), read_entry(meta_path, json.loads)
    if frame is not None and isinstance(meta, dict):
        sample = None
    else:
        sample = read_sample(task, split, mapping, n=n, seed=seed, with_labels=with_labels, hints=hints)
        frame = pd.DataFrame({"text": sample.texts, **({"label": sample.labels} if with_labels else {})})
        meta = {"split": split, "text_columns": list(sample.columns.text),
                "label_column": sample.columns.label if with_labels else None,
                "label_names": list(sample.label_names) if sample.label_names else None,
                "rows_seen": sample.rows_seen, "rows_total": sample.rows_total, "n": len(frame),
                "label_counts": frame["label"].value_counts().sort_index().to_dict() if with_labels else None}
        write_entry(cached, frame.to_parquet(index=False))
        write_entry(meta_path, json.dumps(meta, indent=2, default=str).encode("utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return sample, meta


def _parse_parquet(data: bytes) -> Any:
    import io

    import pandas as pd

    return pd.read_parquet(io.BytesIO(data))


def candidate_files(names: list[str]) -> dict[str, str]:
    """Each candidate's sample file, relative to the fetch folder: ``samples/candidates/<name>.parquet``,
    with ``~2``, ``~3``... after a name that an earlier one equals but for case."""
    files, taken = {}, set()
    for name in names:
        stem, n = name, 1
        while stem.casefold() in taken:
            n += 1
            stem = f"{name}~{n}"
        taken.add(stem.casefold())
        files[name] = f"{CANDIDATES_DIR}/{stem}.parquet"
    return files


def _candidate_entry(ref: TaskRef, cfg: FetchConfig, folder: Path, file: str,
                     target: identity.TargetIdentity) -> TaskEntry:
    entry: dict[str, Any] = {"name": ref.name, "ref": str(ref), "kind": ref.kind, "revision": None}
    out = folder / file
    try:
        same = target.reason(ref)
        if same:
            raise TaskRejected(same)
        task = open_task(ref, trust_remote_code=cfg.trust_remote_code)
        entry.update(revision=task.revision, uri=task.uri, splits=task.splits)
        split = first_split(task.splits, TRAIN_SPLITS)
        if split is None:
            raise TaskRejected(f"no labelled split among {task.splits} (looked for {', '.join(TRAIN_SPLITS)}): "
                               "name one train, validation or test")
        mapping = parse_column_specs(cfg.columns).get(ref.name, ColumnMapping())
        _, meta = _cached_sample(task, split, mapping, n=cfg.sample_size, seed=cfg.seed, with_labels=True,
                                 out=out, hints=Hints.candidate(ref.name))
        texts = read_texts(out)
        share = target.overlap(texts)
        entry["target_overlap"] = round(share, 4)
        if share >= identity.OVERLAP_THRESHOLD:
            raise TaskRejected(identity.overlap_reason(share, round(share * len(texts)), len(texts)))
        if share >= identity.OVERLAP_WARN:
            logger.warning("candidate '%s': %.0f%% of its sampled texts are also the target's (kept; rejected from "
                           "%.0f%%)", ref.name, 100 * share, 100 * identity.OVERLAP_THRESHOLD)
        entry.update(status="ok", reason="", sample=file, **meta)
    except TaskRejected as exc:
        out.unlink(missing_ok=True)
        entry.update(status="rejected", reason=str(exc))
    return TaskEntry.from_json(entry)


def _target_identity(ref: TaskRef, task: TaskHandle, cfg: FetchConfig, samples: list[Path]) -> identity.TargetIdentity:
    """The target's identity: location, files, and its texts (every split of local data; only the
    sampled texts of a Hub dataset, which is never read whole)."""
    ident = identity.TargetIdentity(ref)
    for sample in samples:
        ident.add_texts(read_texts(sample))
    for split in task.splits if task.path is not None else []:
        try:
            ident.add_texts(split_texts(task, split, cfg.mapping))
        except HubselectError as exc:  # a split without the text column still leaves the others
            logger.info("target split '%s' not compared with candidates: %s", split, exc)
    return ident


def rejection_table(candidates: list[TaskEntry]) -> str:
    """The rejected candidates as an aligned text table: name, reason and the fix."""
    rows = []
    for c in candidates:
        if c.usable:
            continue
        reason, sep, fix = c.reason.rpartition(": ")
        rows.append((c.name, reason if sep else fix, fix if sep else "-"))
    if not rows:
        return ""
    rows.insert(0, ("name", "reason", "fix"))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows)


def _prepare_threads(refs: list[TaskRef]) -> None:
    """Set up, in the calling thread, the shared state the candidate threads would otherwise race to
    set up: the demo catalog (written by whichever thread comes first, and replaced under the others
    if two did), ``huggingface_hub``'s retrying client (installing it closes the client in use, under
    any request another thread is sending), and the first imports of ``datasets`` and ``pandas``."""
    import datasets  # noqa: F401 - imported once here, not first by 16 threads at once
    import pandas  # noqa: F401

    if any(r.kind == "demo" for r in refs):
        demo.ensure_demo_catalog()
    if any(r.kind == "hub" for r in refs):
        from hubselect.data.retry import install_hub_retries

        install_hub_retries()


def fetch_candidates(refs: list[TaskRef], cfg: FetchConfig, folder: Path, target: identity.TargetIdentity,
                     progress: Callable[[str, int, int], None] | None = None) -> list[TaskEntry]:
    """Each candidate's catalog entry, in the order of ``refs``, fetched ``cfg.fetch_workers`` at a time.

    Hub calls wait on the network (info, tree, README, data files: several round trips each), so
    threads overlap them. The result is the sequential one: entries are collected by index, and
    each candidate's work depends on nothing but its own ref (its own sample file, cache keys and
    log lines). What the threads share is safe to share: the cache writes temporaries under unique
    names and renames them into place (two writers of one entry leave one whole entry); the pins
    file is updated under a lock (:func:`hubselect.data.hub.pin_revision`); ``huggingface_hub``'s
    one ``httpx`` client is thread-safe, and each request retries on its own
    (:func:`hubselect.data.retry.retry_call` keeps no state between calls); ``fsspec`` keeps one
    ``HfFileSystem`` per thread; the target's identity is only read (its memo of file digests at
    worst computes one twice). What threads would race to create is created first
    (:func:`_prepare_threads`).

    A rejection stays in its entry. Any other error stops the fetch: candidates not started are
    cancelled, the running ones finish, and the error of the earliest failed candidate (in
    ``refs``' order) is raised, as a sequential fetch would raise it.

    Args:
        refs: The candidates.
        cfg: The fetch settings (``fetch_workers`` threads at most).
        folder: The fetch folder the samples are written into.
        target: The target's identity, to reject copies of it.
        progress: Called as ``progress(name, done, total)`` in this thread after each candidate.
    """
    files = candidate_files([r.name for r in refs])
    total = len(refs)

    def one(i: int) -> TaskEntry:
        return _candidate_entry(refs[i], cfg, folder, files[refs[i].name], target)

    if cfg.fetch_workers == 1 or total == 1:
        entries = []
        for i, ref in enumerate(refs):
            entries.append(one(i))
            if progress:
                progress(ref.name, i + 1, total)
        return entries
    _prepare_threads(refs)
    from concurrent.futures import ThreadPoolExecutor, as_completed

    results: list[TaskEntry | None] = [None] * total
    failed: dict[int, BaseException] = {}
    with ThreadPoolExecutor(max_workers=min(cfg.fetch_workers, total), thread_name_prefix="hubselect-fetch") as pool:
        futures = {pool.submit(one, i): i for i in range(total)}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                i = futures[future]
                if future.exception() is not None:
                    failed[i] = future.exception()
                    break
                results[i] = future.result()
                if progress:
                    progress(refs[i].name, done, total)
        finally:  # an error or Ctrl-C: start nothing more; the running candidates finish
            pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        failed.update({i: f.exception() for f, i in futures.items() if f.done() and not f.cancelled()
                       and f.exception() is not None})
        raise failed[min(failed)]
    return results  # type: ignore[return-value]  # every slot filled: no failure, none cancelled


def fetch(cfg: FetchConfig, out_dir: str | os.PathLike, *,
          progress: Callable[[str, int, int], None] | None = None) -> Catalog:
    """Run the fetch step into ``out_dir`` (written atomically) and return its catalog.

    ``progress(name, done, total)`` is called after each candidate (in the calling thread, in the
    order they finish; ``done`` counts the candidates finished so far). Candidates are fetched
    ``cfg.fetch_workers`` at a time (see :func:`fetch_candidates`).

    Raises:
        HubselectError: the target is unusable, or the candidate list is invalid / empty.
    """
    start = time.perf_counter()
    target_ref = parse_ref(cfg.target)
    refs = [r for r in expand_candidates(cfg.candidates, language=cfg.language, limit=cfg.limit)
            if not _same_task(r, target_ref)]
    if not refs:
        raise HubselectError(f"no candidate left for '{cfg.candidates}' once the target is excluded: "
                             "add other tasks to --candidates")
    unknown = sorted(set(parse_column_specs(cfg.columns)) - {r.name for r in refs})
    if unknown:
        raise HubselectError(f"--columns names '{unknown[0]}', which is not a candidate (candidates: "
                             f"{', '.join(r.name for r in refs)}): use a candidate's name; the target's "
                             "columns take --text-column and --label-column")
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        try:
            target = open_task(target_ref, trust_remote_code=cfg.trust_remote_code)
            score_split = cfg.target_split or first_split(target.splits, SCORE_SPLITS)
            if score_split is None:
                raise TaskRejected(f"no split to read texts from (splits: {target.splits}): pass --target-split")
            _, score_meta = _cached_sample(target, score_split, cfg.mapping, n=cfg.target_sample_size,
                                           seed=cfg.seed, with_labels=False, out=tmp / TARGET_SCORE_FILE)
            eval_split = cfg.eval_split or first_split(target.splits, EVAL_SPLITS)
            eval_meta = None
            if cfg.eval_size and eval_split:
                _, eval_meta = _cached_sample(target, eval_split, cfg.mapping, n=cfg.eval_size, seed=cfg.seed,
                                              with_labels=True, out=tmp / TARGET_EVAL_FILE)
        except TaskRejected as exc:
            raise HubselectError(f"target '{cfg.target}' cannot be used: {exc}") from None
        target_entry = TargetEntry(
            name=target_ref.name, ref=str(target_ref), kind=target_ref.kind, revision=target.revision, uri=target.uri,
            splits=tuple(target.splits), score=SampleInfo.from_json({**score_meta, "sample": TARGET_SCORE_FILE}),
            eval=SampleInfo.from_json({**eval_meta, "sample": TARGET_EVAL_FILE}) if eval_meta else None,
            label_names=tuple(cfg.mapping.label_names or (eval_meta or {}).get("label_names") or []) or None)
        written = [tmp / s.file for s in (target_entry.score, target_entry.eval) if s]
        ident = _target_identity(target_ref, target, cfg, written)
        candidates = fetch_candidates(refs, cfg, tmp, ident, progress)
        table = rejection_table(candidates)
        if table:
            logger.warning("%d of %d candidates rejected (details in catalog.json):\n%s",
                           sum(not c.usable for c in candidates), len(candidates), table)
        settings = {k: v for k, v in asdict(cfg).items() if k != "mapping" and k not in _HOW_NOT_WHAT}
        settings["mapping"] = asdict(cfg.mapping)
        catalog = Catalog(settings, target_entry, tuple(candidates), round(time.perf_counter() - start, 3), out_dir)
        catalog.write(tmp)
    return catalog
