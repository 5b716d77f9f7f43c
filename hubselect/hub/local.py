"""Reading tasks from local files: JSONL, CSV, Parquet, or a ``save_to_disk`` folder.

A task folder holds one file per split (``train.jsonl``, ``test.csv``, ``unlabeled.parquet``, also
under ``data/`` and sharded as ``train-00000-of-00002.parquet``). A single file is the ``train``
split. A *catalog* is a folder whose sub-folders are tasks (``fdu-mtl/books``, ...).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from hubselect.errors import HubselectError, TaskRejected
from hubselect.hub.refs import DATA_SUFFIXES

_SPLIT_RE = re.compile(r"^(?P<split>[A-Za-z_]+?)(?:[-_.]\d+(?:-of-\d+)?)?$")


def _data_files(folder: Path) -> list[Path]:
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in DATA_SUFFIXES]
    if not files and (folder / "data").is_dir():
        files = _data_files(folder / "data")
    return files


def is_saved_dataset(path: Path) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists())


def is_task(path: Path) -> bool:
    """True when ``path`` holds a task's data (a data file, a split folder or a saved dataset)."""
    if path.is_file():
        return path.suffix.lower() in DATA_SUFFIXES
    return path.is_dir() and (is_saved_dataset(path) or bool(_data_files(path)))


def catalog_tasks(folder: str | os.PathLike) -> list[Path]:
    """Sub-folders (or data files) of a catalog folder that are tasks, sorted by name."""
    folder = Path(folder)
    return [p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and is_task(p)]


def split_files(path: str | os.PathLike) -> dict[str, list[Path]]:
    """Map split name → data files of a local task (empty for a saved dataset folder).

    Raises:
        TaskRejected: the path holds no data file.
    """
    path = Path(path)
    if not path.exists():
        raise HubselectError(f"path '{path}' does not exist: check the spelling, or name a Hub dataset id")
    if path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise TaskRejected(f"file '{path}' is not JSONL, CSV or Parquet: convert it or pass its folder")
        return {"train": [path]}
    if is_saved_dataset(path):
        return {}
    splits: dict[str, list[Path]] = {}
    for file in _data_files(path):
        match = _SPLIT_RE.match(file.name[: -len(file.suffix)])
        splits.setdefault(match["split"].lower() if match else file.stem, []).append(file)
    if not splits:
        raise TaskRejected(f"folder '{path}' has no JSONL, CSV or Parquet file and is not a save_to_disk folder")
    return splits


def content_revision(path: str | os.PathLike) -> str:
    """A revision for local data: sha256 over the relative names and bytes of its files."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path if path.is_dir() else path.parent)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def _check_utf8(file: Path) -> None:
    with open(file, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TaskRejected(
                    f"file '{file}' is not UTF-8 (line {number}, byte {exc.start}): re-encode it, "
                    f"e.g. iconv -f cp1252 -t utf-8 '{file.name}'"
                ) from None


def open_local_split(path: str | os.PathLike, split: str):
    """Load one split of a local task as an in-memory ``datasets.Dataset``.

    ClassLabel features survive from Parquet written by ``datasets`` and from saved datasets.
    """
    import datasets
    import pandas as pd

    path = Path(path)
    if is_saved_dataset(path):
        saved = datasets.load_from_disk(str(path))
        if isinstance(saved, datasets.DatasetDict):
            return saved[split]
        return saved
    files = split_files(path)[split]
    if files[0].suffix.lower() == ".parquet":
        return datasets.concatenate_datasets([datasets.Dataset.from_parquet(str(f)) for f in files])
    frames = []
    for file in files:
        _check_utf8(file)
        try:
            if file.suffix.lower() == ".csv":
                frames.append(pd.read_csv(file, dtype=str, keep_default_na=False))
            else:
                frames.append(pd.read_json(file, lines=file.suffix.lower() == ".jsonl", dtype=False))
        except ValueError as exc:
            raise TaskRejected(f"file '{file}' cannot be parsed ({exc}): check it is valid "
                               f"{file.suffix.lstrip('.').upper()}") from None
    return datasets.Dataset.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)


def saved_split_names(path: str | os.PathLike) -> list[str]:
    """Split names of a ``save_to_disk`` folder (``train`` for a single Dataset)."""
    import json

    path = Path(path)
    if (path / "dataset_dict.json").exists():
        return list(json.loads((path / "dataset_dict.json").read_text())["splits"])
    return ["train"]
