"""The fetch step's catalog as small frozen records: what ``catalog.json`` holds, typed.

:class:`Catalog` is the one reader and writer of ``catalog.json`` (see :mod:`hubselect.data.catalog`
for the folder layout). :meth:`Catalog.to_json` gives back exactly what the fetch step writes, key
order included, so fetch folders, artifacts and benchmark folders written before stay valid; keys
it does not know are kept in ``extra`` and written back after the known ones. The records pickle,
so they can be handed to Ray tasks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

from hubselect.core.errors import HubselectError

CATALOG_FILE = "catalog.json"

_SAMPLE_KEYS = ("sample", "split", "text_columns", "label_column", "label_names", "rows_seen", "rows_total", "n",
                "label_counts")
_TASK_KEYS = ("name", "ref", "kind", "revision", "uri", "splits", "target_overlap", "status", "reason")
_TARGET_KEYS = ("name", "ref", "kind", "revision", "uri", "splits", "score_split", "score", "eval_split", "eval",
                "label_names")
_CATALOG_KEYS = ("settings", "target", "candidates", "seconds")


def _tuple(values: Any) -> tuple | None:
    return None if values is None else tuple(values)


def _list(values: tuple | None) -> list | None:
    return None if values is None else list(values)


def _extra(data: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


def read_frame(path: str | os.PathLike, columns: Sequence[str]) -> Any:
    """The ``columns`` of a sample Parquet file written by the fetch step, as a DataFrame (no other
    column is read).

    Raises:
        HubselectError: the file is missing, is not Parquet, or lacks one of ``columns``.
    """
    import pandas as pd

    try:
        return pd.read_parquet(path, columns=list(columns))
    except (OSError, ValueError) as exc:  # pyarrow's errors are ValueError (ArrowInvalid) or OSError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise HubselectError(f"sample '{path}' cannot be read as Parquet with columns {', '.join(columns)} "
                             f"({type(exc).__name__}: {reason}): run the fetch step again into a fresh "
                             "folder") from None


def read_texts(path: str | os.PathLike) -> list[str]:
    """The ``text`` column of a sample Parquet file, as strings (see :func:`read_frame`)."""
    return read_frame(path, ["text"])["text"].astype(str).tolist()


def _inside(file: str) -> str:
    """``file`` when it is a path inside the fetch folder (relative, no ``..``).

    Raises:
        ValueError: an absolute path or one that climbs out (a catalog.json edited or from elsewhere).
    """
    if not isinstance(file, str) or not file or PurePosixPath(file).is_absolute() or \
            ".." in PurePosixPath(file.replace("\\", "/")).parts:
        raise ValueError(f"sample path '{file}' is outside its folder")
    return file


@dataclass(frozen=True)
class SampleInfo:
    """A sample drawn from one split of a task, written as Parquet under the fetch folder.

    Attributes:
        file: The Parquet file, relative to the fetch folder (``sample`` in the JSON; a path that is
            absolute or climbs out with ``..`` is refused when read).
        split: The split it was drawn from.
        n: Examples in the sample.
        text_columns: Columns joined into the text.
        label_column: The label column (None for the target's unlabelled scoring sample).
        label_names: Label names read from the data, if it has them.
        label_counts: Examples per label (None without labels).
        rows_seen: Rows read to draw it; rows_total: rows in the split, when known.
    """

    file: str
    split: str
    n: int
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    label_names: tuple[str, ...] | None = None
    label_counts: Mapping[str, int] | None = None
    rows_seen: int | None = None
    rows_total: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampleInfo:
        """Read the sample's fields of a catalog entry (or of the sample cache's meta + ``sample``)."""
        return cls(file=_inside(data["sample"]), split=data["split"], n=data["n"],
                   text_columns=tuple(data.get("text_columns") or ()), label_column=data.get("label_column"),
                   label_names=_tuple(data.get("label_names")), label_counts=data.get("label_counts"),
                   rows_seen=data.get("rows_seen"), rows_total=data.get("rows_total"))

    def meta(self) -> dict[str, Any]:
        """The JSON fields but ``sample``, in catalog.json's order."""
        return {"split": self.split, "text_columns": list(self.text_columns), "label_column": self.label_column,
                "label_names": _list(self.label_names), "rows_seen": self.rows_seen, "rows_total": self.rows_total,
                "n": self.n, "label_counts": None if self.label_counts is None else dict(self.label_counts)}


@dataclass(frozen=True)
class TaskEntry:
    """A candidate task: where it lives, its pinned revision, and its sample or why it was rejected.

    ``uri``/``splits`` are None when the task was rejected before it was opened, ``target_overlap``
    when before its sample was compared with the target, ``sample`` whenever it was rejected.
    """

    name: str
    ref: str = ""
    kind: str = ""
    revision: str | None = None
    uri: str | None = None
    splits: tuple[str, ...] | None = None
    target_overlap: float | None = None
    status: str = "ok"
    reason: str = ""
    sample: SampleInfo | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Whether the fetch step accepted it (status ``ok``)."""
        return self.status == "ok"

    @property
    def label_names(self) -> tuple[str, ...] | None:
        """The label names of its sample (None when rejected or unnamed)."""
        return self.sample.label_names if self.sample else None

    def label_counts_by_name(self) -> dict[str, float]:
        """Its sample's label counts keyed by label *name* (integer ids mapped through its names)."""
        names = self.label_names or ()
        out = {}
        for key, count in ((self.sample.label_counts if self.sample else None) or {}).items():
            k = str(key)
            out[names[int(k)] if k.isdigit() and int(k) < len(names) else k] = float(count)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskEntry:
        return cls(name=data["name"], ref=data.get("ref", ""), kind=data.get("kind", ""),
                   revision=data.get("revision"), uri=data.get("uri"), splits=_tuple(data.get("splits")),
                   target_overlap=data.get("target_overlap"), status=data["status"], reason=data.get("reason", ""),
                   sample=SampleInfo.from_json(data) if "sample" in data else None,
                   extra=_extra(data, _TASK_KEYS + _SAMPLE_KEYS))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ref": self.ref, "kind": self.kind, "revision": self.revision}
        if self.splits is not None:
            out.update(uri=self.uri, splits=list(self.splits))
        if self.target_overlap is not None:
            out["target_overlap"] = self.target_overlap
        out.update(status=self.status, reason=self.reason)
        if self.sample is not None:
            out.update(sample=self.sample.file, **self.sample.meta())
        return {**out, **self.extra}


@dataclass(frozen=True)
class TargetEntry:
    """The target task: its pinned revision, its scoring sample (texts only) and its evaluation
    sample (labelled; None when it has no labelled split or ``eval_size`` is 0)."""

    name: str
    score: SampleInfo
    ref: str = ""
    kind: str = ""
    revision: str | None = None
    uri: str | None = None
    splits: tuple[str, ...] = ()
    eval: SampleInfo | None = None
    label_names: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetEntry:
        return cls(name=data["name"], score=SampleInfo.from_json(data["score"]), ref=data.get("ref", ""),
                   kind=data.get("kind", ""), revision=data.get("revision"), uri=data.get("uri"),
                   splits=tuple(data.get("splits") or ()),
                   eval=SampleInfo.from_json(data["eval"]) if data.get("eval") else None,
                   label_names=_tuple(data.get("label_names")), extra=_extra(data, _TARGET_KEYS))

    def to_json(self) -> dict[str, Any]:
        ev = self.eval
        return {"name": self.name, "ref": self.ref, "kind": self.kind, "revision": self.revision, "uri": self.uri,
                "splits": list(self.splits), "score_split": self.score.split,
                "score": {**self.score.meta(), "sample": self.score.file}, "eval_split": ev.split if ev else None,
                "eval": {**ev.meta(), "sample": ev.file} if ev else None, "label_names": _list(self.label_names),
                **self.extra}


@dataclass(frozen=True)
class Catalog:
    """What the fetch step found: its settings, the target, and every candidate (usable or not).

    Attributes:
        settings: The fetch settings (:class:`hubselect.data.catalog.FetchConfig` as a dict).
        target: The target task.
        candidates: Every candidate, usable or rejected, in the order they were listed.
        seconds: How long the fetch took.
        folder: The fetch folder the samples' paths are relative to (not written to the JSON).
        extra: Keys of an older or newer catalog.json this version does not know (kept).
    """

    settings: Mapping[str, Any]
    target: TargetEntry
    candidates: tuple[TaskEntry, ...]
    seconds: float = 0.0
    folder: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Catalog:
        """Read ``catalog.json`` from a fetch folder.

        Raises:
            HubselectError: the folder holds no catalog.json, or one that is not a catalog.
        """
        path = Path(folder) / CATALOG_FILE
        if not path.exists():
            raise HubselectError(f"'{folder}' holds no {CATALOG_FILE}: run the fetch step first or pass its output folder")
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")), Path(folder))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise HubselectError(f"'{path}' is not a catalog written by the fetch step ({type(exc).__name__}: {exc}): "
                                 "run the fetch step again into a fresh folder") from None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], folder: Path | None = None) -> Catalog:
        return cls(settings=data["settings"], target=TargetEntry.from_json(data["target"]),
                   candidates=tuple(TaskEntry.from_json(c) for c in data["candidates"]),
                   seconds=data.get("seconds", 0.0), folder=folder, extra=_extra(data, _CATALOG_KEYS))

    def to_json(self) -> dict[str, Any]:
        """The content of ``catalog.json``, exactly as the fetch step writes it."""
        return {"settings": dict(self.settings), "target": self.target.to_json(),
                "candidates": [c.to_json() for c in self.candidates], "seconds": self.seconds, **self.extra}

    def write(self, folder: str | os.PathLike) -> Path:
        """Write ``catalog.json`` into ``folder`` (atomically); return its path."""
        from hubselect.core.cache import atomic_write_json

        return atomic_write_json(Path(folder) / CATALOG_FILE, self.to_json())

    def accepted(self) -> list[TaskEntry]:
        """The usable candidates (status ``ok``), in catalog order."""
        return [c for c in self.candidates if c.usable]

    def rejected(self) -> list[TaskEntry]:
        """The candidates the fetch step rejected, in catalog order."""
        return [c for c in self.candidates if not c.usable]

    def candidate(self, name: str) -> TaskEntry:
        """The candidate called ``name``.

        Raises:
            HubselectError: no candidate has that name.
        """
        for entry in self.candidates:
            if entry.name == name:
                return entry
        known = ", ".join(c.name for c in self.candidates) or "none"
        raise HubselectError(f"'{name}' is not a candidate of the catalog (candidates: {known}): "
                             "pick one of them or fetch it first")

    def path(self, item: TaskEntry | SampleInfo) -> Path:
        """The absolute path of a candidate's sample, or of a target sample.

        Raises:
            HubselectError: the candidate was rejected (it has no sample) or the catalog has no folder.
        """
        sample = item.sample if isinstance(item, TaskEntry) else item
        if sample is None:
            raise HubselectError(f"candidate '{item.name}' has no sample ({item.status}: {item.reason}): "
                                 "use the catalog's accepted candidates")
        if self.folder is None:
            raise HubselectError("the catalog has no folder to find its samples in: read it with Catalog.load(folder)")
        return self.folder / sample.file
