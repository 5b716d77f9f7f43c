"""Opening a task at a pinned revision and reading seeded, stratified samples from it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hubselect.core.cache import cache_dir
from hubselect.core.errors import HubselectError, TaskRejected
from hubselect.data import demo, local
from hubselect.data.columns import (
    ColumnMapping,
    Columns,
    Hints,
    bare_integer_names,
    join_text,
    label_name,
    resolve_columns,
)
from hubselect.data.refs import TaskRef

logger = logging.getLogger(__name__)

SCORE_SPLITS = ("unlabeled", "unlabelled", "unsupervised", "unlabel", "train", "test")
TRAIN_SPLITS = ("train", "training", "validation", "dev", "test")
EVAL_SPLITS = ("test", "validation", "valid", "dev", "eval")
STREAM_SCAN_FACTOR = 4  # a streamed split is read up to 4x the sample size (at least 2,000 rows)
STREAM_SAMPLE_VERSION = 3
"""How streamed (Hub) samples are drawn, part of their cache key. 3: a split of one shard is shuffled
without ``datasets``' shard interleaving, whose thread pool sleeps 5 s after each Parquet read; the
sample differs from version 2 only where the split has more rows than the shuffle buffer."""


@dataclass
class TaskHandle:
    """A task opened at a fixed revision: its splits can be read, nothing is read yet."""

    ref: TaskRef
    revision: str
    splits: list[str]
    path: Path | None = None  # local folder/file
    hub_info: Any = None  # hubselect.data.hub.HubDatasetInfo
    trust_remote_code: bool = False
    streaming: bool = field(default=False)

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def uri(self) -> str:
        """Where the data lives: a ``file://`` URI, or the Hub URL of the pinned commit."""
        if self.path is not None:
            return self.path.resolve().as_uri()
        from huggingface_hub import constants

        return f"{constants.ENDPOINT}/datasets/{self.ref.location}/tree/{self.revision}"

    def open_split(self, split: str):
        """Return a ``datasets`` Dataset (local) or IterableDataset (Hub, streamed) for ``split``."""
        if split not in self.splits:
            raise HubselectError(f"task '{self.ref}' has no split {split!r} (splits: {', '.join(self.splits)}): "
                                 "choose one of them")
        if self.hub_info is not None:
            from hubselect.data import hub

            return hub.open_hub_split(self.hub_info, config=self.ref.config, split=split, streaming=True,
                                     trust_remote_code=self.trust_remote_code)
        return local.open_local_split(self.path, split)

    def card_label_names(self, column: str) -> tuple[str, ...] | None:
        """Label names of ``column`` from a local dataset card (Hub cards already give a ClassLabel)."""
        return local.card_label_names(self.path, column) if self.path is not None else None


def open_task(ref: TaskRef, *, trust_remote_code: bool = False) -> TaskHandle:
    """Open ``ref``: pin its revision and list its splits.

    Hub datasets are pinned to the commit they are read at; the pin is stored in
    ``<cache>/hub-pins.json`` and reused on reruns. Local data is pinned by content hash.
    """
    if ref.kind == "hub":
        from hubselect.data import hub

        info = hub.pin_revision(ref.location, ref.revision, pins_path=cache_dir() / "hub-pins.json")
        if info.script_based and not trust_remote_code:
            raise TaskRejected(f"dataset '{ref.location}' is script-based: its loading code would run on "
                               "your machine; pass --trust-remote-code only if you trust it")
        splits = hub.hub_split_names(info, config=ref.config)
        return TaskHandle(ref, info.sha, splits, hub_info=info, trust_remote_code=trust_remote_code,
                          streaming=True)
    path = Path(demo.ensure_demo_catalog() / ref.location) if ref.kind == "demo" else Path(ref.location)
    if ref.kind == "demo" and not path.is_dir():
        raise HubselectError(f"demo task '{ref.location}' does not exist: choose one of {', '.join(demo.demo_names())}")
    files = local.split_files(path)
    splits = list(files) if files else local.saved_split_names(path)
    return TaskHandle(ref, local.content_revision(path), splits, path=path)


def first_split(available: Iterable[str], preferred: Iterable[str]) -> str | None:
    """The first of ``preferred`` present in ``available`` (case-insensitive)."""
    lower = {s.lower(): s for s in available}
    return next((lower[p] for p in preferred if p in lower), None)


@dataclass
class Sample:
    """Texts (and label names) sampled from one split.

    Attributes:
        texts: Sampled texts, de-duplicated, empty texts dropped.
        labels: Label name per text, or ``None`` when labels were not read.
        label_names: All label names of the task, or ``None``.
        columns: Resolved columns.
        rows_seen: Rows read from the split (all of it locally; a prefix when streamed).
        rows_total: Rows in the split when known.
    """

    texts: list[str]
    labels: list[str] | None
    label_names: tuple[str, ...] | None
    columns: Columns
    rows_seen: int
    rows_total: int | None


def _stratified_indices(labels: list[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """Choose ``n`` indices with class shares as in ``labels`` (largest remainder), shuffled."""
    values, inverse = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.bincount(inverse)
    quota = counts * n / counts.sum()
    take = np.floor(quota).astype(int)
    for extra in np.argsort(-(quota - take), kind="stable")[: n - take.sum()]:
        take[extra] += 1
    chosen = [rng.choice(np.flatnonzero(inverse == k), size=take[k], replace=False) for k in range(len(values))]
    picked = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    return rng.permutation(picked)


def read_sample(task: TaskHandle, split: str, mapping: ColumnMapping, *, n: int, seed: int,
                with_labels: bool, hints: Hints = Hints()) -> Sample:
    """Read up to ``n`` examples of ``split``: seeded, stratified by label when labels are read.

    With ``with_labels=False`` only the text columns are selected, so label values are never read
    (used for the target while scoring). Streamed Hub splits are shuffled with a seeded buffer
    and read up to ``STREAM_SCAN_FACTOR * n`` rows, so a large dataset is never fetched whole; a
    split of one file is read in this thread alone (see :data:`STREAM_SAMPLE_VERSION`).
    Integer labels take their names from the user, a ``ClassLabel``, a names column
    (``label_text``) or a local dataset card; bare integers are never used as names.

    Raises:
        TaskRejected: no text/label column, unusable or unnamed integer labels, or no non-empty text.
    """
    where = f"task '{task.ref}' split '{split}'"
    data = _with_features(task.open_split(split), where)
    columns = resolve_columns(data.features, mapping, where=where, need_label=with_labels, hints=hints)
    if with_labels and columns.label_names is None and columns.names_column is None:
        card = task.card_label_names(columns.label)
        if card:
            columns = Columns(columns.text, columns.label, card)
    keep = list(columns.text) + ([columns.label] if with_labels else [])
    keep += [columns.names_column] if with_labels and columns.names_column else []
    data = data.select_columns(keep)
    total = None
    if task.streaming:
        scan = max(STREAM_SCAN_FACTOR * n, 2000)
        # One shard: shuffle it alone. datasets' default interleaves up to 10 shards through a thread
        # pool, and for Parquet then sleeps 5 s after every read (apache/arrow#45214): 5 s a candidate.
        alone = {"max_buffer_input_shards": 1} if data.num_shards == 1 else {}
        rows: Iterable[dict] = data.shuffle(seed=seed, buffer_size=min(scan, 10_000), **alone).take(scan)
    else:
        rows, total = data, len(data)
    texts, labels, seen, named = _read_rows(rows, columns, mapping.join, with_labels)
    if not texts:
        raise TaskRejected(f"{where} has no non-empty text: choose another split or text column")
    rng = np.random.default_rng(seed)
    if with_labels:
        names = columns.label_names or (tuple(named[k] for k in sorted(named)) if named else None)
        names = names or tuple(sorted(set(labels)))
        if bare_integer_names(names) and not mapping.label_names:  # names the user gave are kept
            shown = ", ".join(sorted(set(labels), key=float)[:5])
            raise TaskRejected(f"{where} has integer labels ({shown}) without names, so its label space means "
                               f"nothing: {hints.names}")
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise TaskRejected(f"{where} has labels {unknown[:3]} missing from the label names {list(names)}: "
                               "fix --label-names")
        if len(set(labels)) < 2:
            raise TaskRejected(f"{where} has fewer than two distinct labels: it cannot teach a classifier")
        idx = _stratified_indices(labels, min(n, len(texts)), rng)
    else:
        names = None
        idx = rng.permutation(len(texts))[:n]
    return Sample([texts[i] for i in idx], [labels[i] for i in idx] if with_labels else None,
                  names, columns, seen, total)


def _with_features(data, where: str):
    """``data`` with known column types: a streamed split whose files carry no schema (CSV) gets the
    types of its first rows, read as Arrow, which is what ``datasets`` infers when it needs them.

    Raises:
        TaskRejected: such a split has no rows.
    """
    if data.features is not None:
        return data
    from datasets import Features

    head = next(iter(data.with_format("arrow").iter(batch_size=5)), None)  # a pyarrow Table
    if head is None:
        raise TaskRejected(f"{where} has no rows: choose another split or dataset")
    return data.cast(Features.from_arrow_schema(head.schema))


def _read_rows(rows: Iterable[dict], columns: Columns, join: str,
               with_labels: bool) -> tuple[list[str], list[str], int, dict[int, str]]:
    """Texts (non-empty, de-duplicated) and label names of ``rows``; also the rows seen and the
    integer label -> name pairs read from a names column."""
    texts: list[str] = []
    labels: list[str] = []
    named: dict[int, str] = {}
    seen, dup = 0, set()
    for row in rows:
        seen += 1
        text = join_text(row, columns.text, join)
        if not text or text in dup:
            continue
        dup.add(text)
        texts.append(text)
        if with_labels:
            value = row[columns.label]
            if value is None or (isinstance(value, int) and value < 0):
                texts.pop()
                continue
            if columns.names_column and isinstance(value, int) and row.get(columns.names_column):
                named.setdefault(value, str(row[columns.names_column]).strip())
                labels.append(named[value])
            else:
                labels.append(label_name(value, columns.label_names))
    return texts, labels, seen, named


def split_texts(task: TaskHandle, split: str, mapping: ColumnMapping) -> list[str]:
    """Every text of a local task's ``split``, text columns only (labels are not read). Used to tell
    whether a candidate's texts are the target's."""
    data = task.open_split(split)
    columns = resolve_columns(data.features, mapping, where=f"task '{task.ref}' split '{split}'", need_label=False)
    values = [data[c] for c in columns.text]
    return [join_text(dict(zip(columns.text, row)), columns.text, mapping.join) for row in zip(*values)]
