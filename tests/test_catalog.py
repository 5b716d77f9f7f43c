"""The typed catalog (:mod:`hubselect.data.entries`): catalog.json read and written byte for byte,
usable candidates in one place, lookups and their one-line errors."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from hubselect.core.errors import HubselectError
from hubselect.data.catalog import FetchConfig, fetch
from hubselect.data.entries import CATALOG_FILE, Catalog, SampleInfo, TargetEntry, TaskEntry


def _as_written(data: dict) -> str:
    """What the fetch step writes for ``data`` (:func:`hubselect.core.cache.atomic_write_json`)."""
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


#: A catalog.json as the fetch step wrote it before the catalog was typed (trimmed): a usable
#: candidate, and candidates rejected after opening, before opening, and after the overlap check.
WRITTEN_BEFORE = {
    "settings": {"target": "/data/cat/books", "candidates": "/data/cat", "sample_size": 40, "seed": 0,
                 "mapping": {"text": None, "label": None, "label_names": None, "join": " "}},
    "target": {
        "name": "books", "ref": "/data/cat/books", "kind": "local", "revision": "sha256:d6a22663285380c5",
        "uri": "file:///data/cat/books", "splits": ["test", "train"], "score_split": "train",
        "score": {"split": "train", "text_columns": ["text"], "label_column": None, "label_names": None,
                  "rows_seen": 60, "rows_total": 60, "n": 40, "label_counts": None,
                  "sample": "samples/target.score.parquet"},
        "eval_split": "test",
        "eval": {"split": "test", "text_columns": ["text"], "label_column": "label",
                 "label_names": ["negative", "positive"], "rows_seen": 30, "rows_total": 30, "n": 20,
                 "label_counts": {"negative": 10, "positive": 10}, "sample": "samples/target.eval.parquet"},
        "label_names": ["negative", "positive"]},
    "candidates": [
        {"name": "dvd", "ref": "/data/cat/dvd", "kind": "local", "revision": "sha256:d01333f57be19e7d",
         "uri": "file:///data/cat/dvd", "splits": ["test", "train"], "target_overlap": 0.0, "status": "ok",
         "reason": "", "sample": "samples/dvd.parquet", "split": "train", "text_columns": ["text"],
         "label_column": "label", "label_names": ["negative", "positive"], "rows_seen": 60, "rows_total": 60,
         "n": 40, "label_counts": {"negative": 20, "positive": 20}},
        {"name": "ints", "ref": "/data/cat/ints", "kind": "local", "revision": "sha256:0c2b9a1f84d3a74b",
         "uri": "file:///data/cat/ints", "splits": ["train"], "status": "rejected",
         "reason": "task '/data/cat/ints' split 'train' has integer labels (0, 1, 2) without names: pass names"},
        {"name": "link_books", "ref": "/data/cat/link_books", "kind": "local", "revision": None,
         "status": "rejected", "reason": "is the target itself: remove it from --candidates"},
        {"name": "reformatted", "ref": "/data/cat/reformatted", "kind": "local", "revision": "sha256:4ab8e5bc84f1b37a",
         "uri": "file:///data/cat/reformatted", "splits": ["train"], "target_overlap": 1.0, "status": "rejected",
         "reason": "100% of its sampled texts (30 of 30) are also the target's texts: de-duplicate it"}],
    "seconds": 1.798}


def one_line_error(exc: pytest.ExceptionInfo, start: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and start in message, message


def _task(folder: Path, topic: str, n: int = 40, *, labelled: bool = True, split: str = "train") -> Path:
    folder.mkdir(parents=True)
    lines = [{"text": f"the {topic} number {i} was {'bad' if i % 2 else 'good'}",
              **({"label": ("negative", "positive")[i % 2]} if labelled else {})} for i in range(n)]
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return folder


def _write(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CATALOG_FILE).write_text(_as_written(data), encoding="utf-8")
    return folder


def test_a_catalog_written_before_reads_back_byte_for_byte(tmp_path):
    folder = _write(tmp_path / "fetch", WRITTEN_BEFORE)
    catalog = Catalog.load(folder)
    assert _as_written(catalog.to_json()) == (folder / CATALOG_FILE).read_text(encoding="utf-8")
    assert catalog.target.name == "books" and catalog.target.eval.n == 20 and catalog.target.score.label_column is None
    assert catalog.target.label_names == ("negative", "positive")
    assert [c.name for c in catalog.accepted()] == ["dvd"]
    assert [c.name for c in catalog.rejected()] == ["ints", "link_books", "reformatted"]
    dvd = catalog.candidate("dvd")
    assert dvd.usable and dvd.sample.n == 40 and dvd.label_names == ("negative", "positive")
    assert catalog.path(dvd) == folder / "samples" / "dvd.parquet"
    assert catalog.path(catalog.target.score) == folder / "samples" / "target.score.parquet"
    assert catalog.candidate("link_books").uri is None and catalog.candidate("reformatted").target_overlap == 1.0
    assert pickle.loads(pickle.dumps(catalog)) == catalog  # Ray tasks are handed catalogs and entries


def _local_catalog(root: Path) -> Path:
    """A folder of tasks whose fetch accepts some candidates and rejects others at every stage."""
    target = _task(root / "books", "book", 60)
    _task(root / "dvd", "film")
    _task(root / "partly", "magazine")
    (root / "link_books").symlink_to(target, target_is_directory=True)  # rejected before it is opened
    _task(root / "unlabelled", "film", labelled=False)  # opened, rejected while sampled
    _task(root / "nosplit", "car", split="weird")  # opened, no labelled split
    (root / "copied").mkdir()  # the target's texts under another name: rejected after the overlap check
    (root / "copied" / "train.jsonl").write_text((target / "train.jsonl").read_text().replace("book", "Book"))
    return target


def test_the_fetch_step_writes_what_its_catalog_reads_back(tmp_path):
    target = _local_catalog(tmp_path / "cat")
    cfg = FetchConfig(target=str(target), candidates=str(tmp_path / "cat"), sample_size=40, target_sample_size=40,
                      eval_size=20)
    written = fetch(cfg, tmp_path / "out")
    again = fetch(cfg, tmp_path / "again")  # the samples now come from the cache
    text = (tmp_path / "out" / CATALOG_FILE).read_text(encoding="utf-8")
    loaded = Catalog.load(tmp_path / "out")
    assert _as_written(loaded.to_json()) == text == _as_written(written.to_json())
    assert loaded == written and loaded.folder == tmp_path / "out"
    assert again.to_json() == {**written.to_json(), "seconds": again.seconds}
    status = {c.name: c.status for c in loaded.candidates}
    assert status == {"copied": "rejected", "dvd": "ok", "link_books": "rejected", "nosplit": "rejected",
                      "partly": "ok", "unlabelled": "rejected"}
    assert loaded.candidate("copied").target_overlap == 1.0 and loaded.candidate("link_books").splits is None
    assert [c.name for c in loaded.accepted()] == ["dvd", "partly"]
    assert all(loaded.path(c).exists() for c in loaded.accepted())


def test_unknown_keys_of_another_version_are_kept(tmp_path):
    data = json.loads(json.dumps(WRITTEN_BEFORE))
    data["fetched_by"] = "hubselect 0.0.9"
    data["target"]["license"] = "cc-by-4.0"
    data["candidates"][0]["downloads"] = 12
    catalog = Catalog.load(_write(tmp_path / "fetch", data))
    assert catalog.extra == {"fetched_by": "hubselect 0.0.9"} and catalog.target.extra == {"license": "cc-by-4.0"}
    assert catalog.candidate("dvd").extra == {"downloads": 12}
    assert catalog.to_json() == data
    catalog.write(tmp_path / "copy")
    assert Catalog.load(tmp_path / "copy") == dataclasses.replace(catalog, folder=tmp_path / "copy")


def test_lookups_name_the_candidates_and_the_fix(tmp_path):
    catalog = Catalog.load(_write(tmp_path / "fetch", WRITTEN_BEFORE))
    with pytest.raises(HubselectError) as exc:
        catalog.candidate("books")
    one_line_error(exc, "'books' is not a candidate of the catalog (candidates: dvd, ints, link_books, reformatted)")
    with pytest.raises(HubselectError) as exc:
        catalog.path(catalog.candidate("ints"))
    one_line_error(exc, "candidate 'ints' has no sample (rejected: ")
    bare = Catalog({}, TargetEntry("t", SampleInfo("samples/t.parquet", "train", 3)), (TaskEntry("a"),))
    with pytest.raises(HubselectError) as exc:
        bare.path(bare.target.score)
    one_line_error(exc, "the catalog has no folder to find its samples in")


def test_a_folder_without_a_catalog_or_with_a_broken_one_is_one_line(tmp_path):
    with pytest.raises(HubselectError) as exc:
        Catalog.load(tmp_path)
    one_line_error(exc, f"'{tmp_path}' holds no catalog.json: run the fetch step first")
    (tmp_path / CATALOG_FILE).write_text('{"settings": {}, "candidates": []}', encoding="utf-8")
    with pytest.raises(HubselectError) as exc:
        Catalog.load(tmp_path)
    one_line_error(exc, "is not a catalog written by the fetch step (KeyError: 'target')")
    (tmp_path / CATALOG_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(HubselectError) as exc:
        Catalog.load(tmp_path)
    one_line_error(exc, "is not a catalog written by the fetch step (JSONDecodeError")
