"""Reading tasks from local files: JSONL, CSV, Parquet, or a ``save_to_disk`` folder.

A task folder holds one file per split (``train.jsonl``, ``test.csv``, ``unlabeled.parquet``, also
under ``data/`` and sharded as ``train-00000-of-00002.parquet``). A single file is the ``train``
split. A *catalog* is a folder whose sub-folders are tasks (``fdu-mtl/books``, ...); it is told
from a task by its sub-folders, and stray files beside them (``manifest.json``, ``README.md``)
are ignored. A ``.json`` file is data only when named like a split (``train.json``): other JSON
files are metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from hubselect.core.errors import HubselectError, TaskRejected
from hubselect.data.refs import DATA_SUFFIXES

_SPLIT_RE = re.compile(r"^(?P<split>[A-Za-z_]+?)(?:[-_.]\d+(?:-of-\d+)?)?$")
#: Split names recognised in file names (a folder with such a file is a task, never a catalog).
KNOWN_SPLITS = ("train", "training", "test", "validation", "valid", "dev", "eval", "unlabeled", "unlabelled",
                "unsupervised", "unlabel")
_SNIFF_BYTES = 64 * 1024


def split_of(file: Path) -> str:
    """The split a data file holds, from its name (``train-00000-of-00002.parquet`` -> ``train``)."""
    match = _SPLIT_RE.match(file.name[: -len(file.suffix)])
    return match["split"].lower() if match else file.stem


def _is_data_file(path: Path) -> bool:
    if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in DATA_SUFFIXES:
        return False
    return path.suffix.lower() != ".json" or split_of(path) in KNOWN_SPLITS


def _data_files(folder: Path) -> list[Path]:
    files = [p for p in sorted(folder.iterdir()) if _is_data_file(p)]
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


def _task_folders(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_task(p)]


def is_catalog(path: Path) -> bool:
    """True for a folder of tasks: it holds task sub-folders and no split file of its own, or no
    data at all beside task files (a folder of single-file tasks)."""
    if not path.is_dir() or is_saved_dataset(path):
        return False
    own = _data_files(path)
    if _task_folders(path):
        return not any(split_of(f) in KNOWN_SPLITS for f in own)
    return not own


def catalog_tasks(folder: str | os.PathLike) -> list[Path]:
    """Tasks of a catalog folder, sorted by name: its task sub-folders, or (when it has none) its
    data files, each a task."""
    folder = Path(folder)
    folders = _task_folders(folder)
    if folders:
        return folders
    return [p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and p.is_file() and is_task(p)]


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
        splits.setdefault(split_of(file), []).append(file)
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


def data_file_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Relative name -> size in bytes of every data file of a local task (a file, a folder, a saved
    dataset's ``.arrow`` files)."""
    path = Path(path)
    if path.is_file():
        return {path.name: path.stat().st_size}
    suffixes = DATA_SUFFIXES + (".arrow",)
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*"))
            if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of one file's bytes (names play no part: a renamed copy has the same digest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_label_names(path: str | os.PathLike, column: str) -> tuple[str, ...] | None:
    """Label names of ``column`` from a local dataset card (``README.md`` YAML header, Hub format:
    ``dataset_info.features[].dtype.class_label.names``), or ``None``."""
    path = Path(path)
    card = (path if path.is_dir() else path.parent) / "README.md"
    if not card.is_file():
        return None
    from huggingface_hub.repocard import metadata_load

    try:
        meta = metadata_load(card) or {}
    except Exception:  # noqa: BLE001 - a card we cannot parse simply names nothing
        return None
    infos = meta.get("dataset_info") or []
    for info in infos if isinstance(infos, list) else [infos]:
        features = info.get("features") if isinstance(info, dict) else None
        for feature in features if isinstance(features, list) else []:
            dtype = feature.get("dtype") if isinstance(feature, dict) else None
            if feature.get("name") != column or not isinstance(dtype, dict):
                continue
            names = (dtype.get("class_label") or {}).get("names") if isinstance(dtype.get("class_label"), dict) else None
            if isinstance(names, dict) and names and all(str(k).isdigit() for k in names):
                return tuple(str(names[k]) for k in sorted(names, key=int))
            if isinstance(names, list) and names:
                return tuple(str(n) for n in names)
    return None


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
    for file in files:
        if file.stat().st_size == 0:
            raise TaskRejected(f"file '{file}' is empty (0 bytes): fill it or remove it")
    if files[0].suffix.lower() == ".parquet":
        try:
            return datasets.concatenate_datasets([datasets.Dataset.from_parquet(str(f)) for f in files])
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise TaskRejected(f"file '{files[0]}' cannot be read as Parquet ({type(exc).__name__}): "
                               "rewrite it, e.g. with pandas.DataFrame.to_parquet") from None
    frames = [_read_text_file(file) for file in files]
    return datasets.Dataset.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)


def _read_text_file(file: Path):
    """Read one CSV/JSON/JSONL file into a DataFrame (strings kept as strings).

    Raises:
        TaskRejected: not UTF-8, blank, or malformed (naming the line for JSONL).
    """
    import pandas as pd

    _check_utf8(file)
    with open(file, "rb") as handle:
        raw = handle.read(_SNIFF_BYTES)
    head = raw.decode("utf-8", errors="ignore")
    if len(raw) == _SNIFF_BYTES and "\n" in head:  # sniff whole lines only
        head = head.rsplit("\n", 1)[0]
    if not head.strip():
        raise TaskRejected(f"file '{file}' is empty (only blank lines): fill it or remove it")
    try:
        if file.suffix.lower() == ".csv":
            return _read_csv(file, head)
        return pd.read_json(file, lines=file.suffix.lower() == ".jsonl", dtype=False)
    except ValueError as exc:
        if file.suffix.lower() == ".jsonl":
            _raise_bad_jsonl_line(file)
        detail = " ".join(str(exc).split())[:160]
        raise TaskRejected(f"file '{file}' cannot be parsed ({detail}): check it is valid "
                           f"{file.suffix.lstrip('.').upper()}") from None


def _read_csv(file: Path, head: str):
    """Read a CSV: comma-separated, unless its header has no comma but ``;``, tab or ``|`` (or the
    comma parse fails), in which case the delimiter is sniffed with :class:`csv.Sniffer`."""
    import csv

    import pandas as pd

    header = head.splitlines()[0]
    if "," in header or not any(d in header for d in ";\t|"):
        try:
            return pd.read_csv(file, dtype=str, keep_default_na=False)
        except pd.errors.ParserError:
            pass
    try:
        dialect = csv.Sniffer().sniff(head, delimiters=",;\t|")
    except csv.Error:
        raise TaskRejected(f"file '{file}' cannot be parsed: no consistent delimiter among , ; tab |: "
                           "save it as a comma-separated CSV") from None
    return pd.read_csv(file, dtype=str, keep_default_na=False, sep=dialect.delimiter)


def _raise_bad_jsonl_line(file: Path) -> None:
    """Raise a TaskRejected naming the first line of ``file`` that is not a JSON object."""
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskRejected(f"file '{file}' line {number} is not valid JSON ({exc.msg}, column {exc.colno}): "
                                   "fix or delete that line") from None
            if not isinstance(row, dict):
                raise TaskRejected(f"file '{file}' line {number} is not a JSON object: write one "
                                   "{\"text\": ..., \"label\": ...} object per line") from None
    raise TaskRejected(f"file '{file}' cannot be parsed as JSON Lines: write one JSON object per line")


def saved_split_names(path: str | os.PathLike) -> list[str]:
    """Split names of a ``save_to_disk`` folder (``train`` for a single Dataset)."""
    import json

    path = Path(path)
    if (path / "dataset_dict.json").exists():
        return list(json.loads((path / "dataset_dict.json").read_text())["splits"])
    return ["train"]
