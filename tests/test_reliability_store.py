"""Issue 15, storage half: no name overwrites another's file, and a full disk, a read-only store or a
cache path that is a file each end in one line naming the place and the fix.

Real files in temp folders, the real CLI (in process and as a child process), real MLflow (SQLite in
a temp dir), and real small filesystems: a 1 MiB tmpfs (``mount -t tmpfs``) for a full disk, a
read-only bind mount for a read-only store and ``chattr +i`` for a read-only file. The tests run as
root, whom ``chmod`` does not stop; where mounting or ``chattr`` is not allowed they skip, saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

import hubselect
from hubselect.cli import main
from hubselect.hub.catalog import FetchConfig, fetch
from hubselect.hub.entries import Catalog

ROOT = Path(hubselect.__file__).resolve().parent.parent  # what child processes import
SMALL = ["--quiet", "--sample-size", "40", "--target-sample-size", "40", "--eval-size", "20"]


def write_task(folder: Path, topic: str, n_train: int = 60, n_test: int = 30) -> Path:
    """A labelled local task whose every text names ``topic`` (train rows 0.., test rows 1000..)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, start, n in (("train", 0, n_train), ("test", 1000, n_test)):
        lines = [json.dumps({"text": f"a {topic} review number {i} says it was {'bad' if i % 2 else 'good'}",
                             "label": "negative" if i % 2 else "positive"}) for i in range(start, start + n)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def copy_task(source: Path, folder: Path) -> Path:
    """A byte-identical copy of a task under another name (rejected as the target itself)."""
    folder.mkdir(parents=True)
    for f in source.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def texts(path: Path) -> list[str]:
    return pd.read_parquet(path, columns=["text"])["text"].tolist()


# --------------------------------------------------------------------------------------------
# 1. a candidate's name never reaches the target's files (nor another candidate's)
# --------------------------------------------------------------------------------------------

@pytest.fixture()
def colliding(tmp_path) -> tuple[Path, Path]:
    """The target ``books`` and a catalog whose folders are named like the target's sample files:
    ``target.score`` (another task), ``target.eval`` (100 rows of another task) and ``dvd``."""
    books = write_task(tmp_path / "books", "book")
    cat = tmp_path / "cat"
    write_task(cat / "target.score", "film")
    write_task(cat / "target.eval", "radio", n_train=100)
    write_task(cat / "dvd", "dvd")
    return books, cat


def test_candidates_named_like_the_target_samples_leave_them_alone(colliding, tmp_path):
    books, cat = colliding
    catalog = fetch(FetchConfig(target=str(books), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20), tmp_path / "out")
    target = catalog.target
    score_texts, eval_texts = texts(catalog.path(target.score)), texts(catalog.path(target.eval))
    assert len(score_texts) == target.score.n == 40 and all(" book " in t for t in score_texts)
    assert len(eval_texts) == target.eval.n == 20 and all(" book " in t and int(t.split()[4]) >= 1000
                                                          for t in eval_texts)
    assert {c.name: c.status for c in catalog.candidates} == {"dvd": "ok", "target.eval": "ok", "target.score": "ok"}
    for name, topic in (("target.score", "film"), ("target.eval", "radio"), ("dvd", "dvd")):
        sample = texts(catalog.path(catalog.candidate(name)))
        assert sample and all(f" {topic} " in t for t in sample), name
    files = [catalog.path(s) for s in (target.score, target.eval, *(c.sample for c in catalog.accepted()))]
    assert len({str(f).casefold() for f in files}) == len(files) and all(f.exists() for f in files)


def test_a_rejected_candidate_named_like_a_target_sample_deletes_nothing(tmp_path):
    books = write_task(tmp_path / "books", "book")
    cat = tmp_path / "cat"
    for name in ("target.score", "target.eval"):
        copy_task(books, cat / name)  # byte-identical copies of the target: rejected
    write_task(cat / "dvd", "dvd")
    catalog = fetch(FetchConfig(target=str(books), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20), tmp_path / "out")
    assert [c.name for c in catalog.rejected()] == ["target.eval", "target.score"]
    assert len(texts(catalog.path(catalog.target.score))) == 40
    assert len(texts(catalog.path(catalog.target.eval))) == 20


def test_scores_of_a_candidate_named_target_score_are_its_own(colliding, tracking, capsys):
    books, cat = colliding
    assert main(["score", "--target", str(books), "--candidates", str(cat), *SMALL, "--measures", "js"]) == 0
    from helpers import artifacts, runs_of

    scores = pd.read_csv(artifacts(runs_of("score")[0]) / "scores.csv", index_col="candidate")["js"]
    assert scores["target.score"] > 0.1 and scores["target.eval"] > 0.1, scores  # before: 0, the target's own


def test_candidate_names_equal_but_for_case_get_two_files(tmp_path):
    books = write_task(tmp_path / "books", "book")
    write_task(tmp_path / "a" / "dvd", "dvd")
    write_task(tmp_path / "b" / "DVD", "film")  # the same file on a case-insensitive disk (macOS, Windows)
    catalog = fetch(FetchConfig(target=str(books), candidates=f"{tmp_path / 'a'},{tmp_path / 'b'}", sample_size=40,
                                target_sample_size=40, eval_size=20), tmp_path / "out")
    dvd, upper = catalog.candidate("dvd"), catalog.candidate("DVD")
    assert dvd.sample.file.casefold() != upper.sample.file.casefold()
    assert all(" dvd " in t for t in texts(catalog.path(dvd))) and all(" film " in t for t in texts(catalog.path(upper)))


@pytest.mark.parametrize("file", ["../../outside.parquet", "/etc/hostname", "samples/../../x.parquet"])
def test_a_catalog_whose_sample_path_leaves_its_folder_is_refused(tmp_path, file):
    books = write_task(tmp_path / "books", "book")
    write_task(tmp_path / "cat" / "dvd", "dvd")
    fetch(FetchConfig(target=str(books), candidates=str(tmp_path / "cat"), sample_size=40, target_sample_size=40,
                      eval_size=20), tmp_path / "out")
    path = tmp_path / "out" / "catalog.json"
    data = json.loads(path.read_text())
    data["candidates"][0]["sample"] = file
    path.write_text(json.dumps(data))
    with pytest.raises(hubselect.errors.HubselectError) as exc:
        Catalog.load(tmp_path / "out")
    assert "outside its folder" in str(exc.value) and file in str(exc.value)
