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
from hubselect.core.errors import HubselectError
from hubselect.data.catalog import FetchConfig, fetch
from hubselect.data.entries import Catalog

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
    assert all(" dvd " in t for t in texts(catalog.path(dvd)))
    assert all(" film " in t for t in texts(catalog.path(upper)))


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
    with pytest.raises(HubselectError) as exc:
        Catalog.load(tmp_path / "out")
    assert "outside its folder" in str(exc.value) and file in str(exc.value)


# --------------------------------------------------------------------------------------------
# 2. a full disk under the cache or TMPDIR: one line naming it and the fix, no partial entry
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def system_state(do: list[str], undo: list[str], why: str):
    """Run ``do`` for the block and ``undo`` after it; skipped, saying why, where ``do`` is refused."""
    done = subprocess.run(do, capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"`{' '.join(do)}` is not allowed here ({done.stderr.strip() or done.returncode}): {why}")
    try:
        yield
    finally:
        subprocess.run(undo, capture_output=True)


@pytest.fixture()
def small_disk(tmp_path):
    """A real 1 MiB filesystem (tmpfs) at ``tmp_path/disk``; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with system_state(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], ["umount", "-l", str(disk)],
                      "a real full disk needs root (or CAP_SYS_ADMIN) to mount a small tmpfs"):
        yield disk


def fill(disk: Path, free_kib: int) -> None:
    """Fill ``disk`` until ``free_kib`` KiB are left."""
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - free_kib * 1024))


def partial_entries(cache: Path) -> list[str]:
    """What in the cache is not a whole entry: temporaries, and entries without a matching checksum."""
    from hubselect.core.cache import read_entry

    bad = [str(p) for p in cache.rglob(".*tmp-*")]
    for kind in ("samples", "terms", "embeddings"):
        for path in (cache / kind).glob("*") if (cache / kind).is_dir() else []:
            if path.suffix not in (".sha256", ".lock") and read_entry(path, lambda data: data) is None:
                bad.append(str(path))
    return bad


def score_command(books: Path, cat: Path) -> list[str]:
    return ["score", "--target", str(books), "--candidates", str(cat), *SMALL, "--measures", "js"]


def last_scores() -> pd.DataFrame:
    from helpers import artifacts, runs_of

    newest = max(runs_of("score"), key=lambda r: r.info.start_time)
    return pd.read_csv(artifacts(newest) / "scores.csv", index_col="candidate")


def test_a_full_cache_disk_is_one_line_then_a_rerun_gives_the_same_scores(tracking, small_disk, monkeypatch, capsys,
                                                                         tmp_path):
    books, cat = write_task(tmp_path / "books", "book"), tmp_path / "cat"
    write_task(cat / "dvd", "dvd")
    write_task(cat / "film", "film")
    scores = []
    # this command's whole cache takes 88 KiB (22 pages): full from the start; full once the samples are in
    for free_kib in (0, 72):
        cache = small_disk / f"cache-{free_kib}"
        monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(cache))
        fill(small_disk, free_kib)
        capsys.readouterr()
        code = main(score_command(books, cat))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, (free_kib, err)
        assert err[0].startswith(f"hubselect: error: no space left on the disk of the hubselect cache {cache} "
                                 f"(writing {cache}/"), err
        assert "set HUBSELECT_CACHE_DIR to a folder on a disk with room" in err[0], err
        assert not partial_entries(cache)
        (small_disk / "filler").unlink()  # space again: the same command on the same cache
        assert main(score_command(books, cat)) == 0
        scores.append(last_scores())
        assert not partial_entries(cache)
    pd.testing.assert_frame_equal(scores[0], scores[1])  # the second rerun kept what was cached before the fault


def test_a_refused_write_is_put_on_its_place_and_a_refused_read_is_left_alone(tmp_path, monkeypatch):
    import errno
    import tempfile

    from hubselect.core.cache import scratch_root, storage_error

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(tmp_path / "tmp" / "cache"))  # the cache inside TMPDIR
    full = OSError(errno.ENOSPC, "No space left on device")  # as pandas and matplotlib raise it: no file named
    assert f"the disk of the temporary folder {tmp_path / 'tmp'}: " in str(storage_error(full, scratch_root()))
    in_cache = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "tmp" / "cache" / "terms" / "k.json"))
    assert f"the disk of the hubselect cache {tmp_path / 'tmp' / 'cache'} (writing" in str(storage_error(in_cache))
    denied = PermissionError(errno.EACCES, "Permission denied", "/data/books/train.jsonl")  # a read, maybe
    assert storage_error(denied) is None and storage_error(OSError(errno.ENOENT, "gone", "/x")) is None


def child(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m hubselect *args`` in a child process with its own store and cache under ``tmp_path``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTEST_CURRENT_TEST"}
    clean.update({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONPATH": str(ROOT),
                  "HUBSELECT_CACHE_DIR": str(tmp_path / "cache"), **env})
    return subprocess.run([sys.executable, "-m", "hubselect", *args], cwd=tmp_path, env=clean, capture_output=True,
                          text=True, timeout=600)


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("hubselect: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def test_a_full_tmpdir_is_one_line_naming_it(small_disk, tmp_path):
    books, cat = write_task(tmp_path / "books", "book"), tmp_path / "cat"
    write_task(cat / "dvd", "dvd")
    write_task(cat / "film", "film")
    tmp = small_disk / "tmp"
    tmp.mkdir()
    fill(small_disk, 12)  # Python still takes it as TMPDIR (it needs one page), the fetch folder does not fit
    line = one_line(child(tmp_path, *score_command(books, cat), TMPDIR=str(tmp)))
    assert line == (f"hubselect: error: no space left on the disk of the temporary folder {tmp}: free space there, "
                    "or set TMPDIR to a folder on a disk with room"), line
    assert not list(tmp.iterdir()), list(tmp.iterdir())  # the scratch folder went with the process


# --------------------------------------------------------------------------------------------
# 3. a read-only store: one line saying what is read-only and how to fix it (nothing is damaged)
# --------------------------------------------------------------------------------------------

FETCH = ["fetch", "--target", "demo:kitchen", "--candidates", "demo:books", "--quiet", "--sample-size", "20",
         "--target-sample-size", "20", "--eval-size", "10"]


def immutable(path: Path):
    """``chattr +i path`` for the block (root cannot write it either); skipped where not allowed."""
    return system_state(["chattr", "+i", str(path)], ["chattr", "-i", str(path)],
                        "chmod does not stop root, so a read-only file needs the immutable flag")


def error_line(capsys, code: int) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hubselect: error: "), captured.err
    return lines[0]


def test_a_read_only_database_file_is_one_line_saying_so(tracking, capsys):
    assert main(FETCH) == 0
    db = tracking / "mlflow.db"
    with immutable(db):
        line = error_line(capsys, main(FETCH))
    assert f"the database file {db} is read-only" in line and "nothing is damaged" in line, line
    assert "chattr -i" in line and "MLFLOW_TRACKING_URI" in line and "or damaged" not in line, line
    assert main(FETCH) == 0  # writable again: the store was not touched


def test_a_read_only_artifact_folder_is_one_line_before_any_work(tracking, capsys):
    assert main(FETCH) == 0
    from helpers import runs_of

    folder = tracking / "mlruns" / runs_of("fetch")[0].info.experiment_id
    assert folder.is_dir()
    with immutable(folder):
        line = error_line(capsys, main(FETCH))
    assert f"cannot write the MLflow artifacts of experiment 'hubselect' to {folder}" in line, line
    assert "chattr -i" in line and "--experiment" in line, line
    assert len(runs_of("fetch")) == 1  # refused before a run was started


def test_a_read_only_mount_is_named_as_such_not_as_a_damaged_store(tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.chdir(store)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert main(FETCH) == 0  # ./mlflow.db, the default store
    why = "a read-only mount needs root (or CAP_SYS_ADMIN)"
    with system_state(["mount", "--bind", str(store), str(store)], ["umount", "-l", str(store)], why), \
            system_state(["mount", "-o", "remount,bind,ro", str(store)], ["true"], why):
        line = error_line(capsys, main(FETCH))
    assert f"{store} is on a read-only filesystem (nothing is damaged): remount it read-write" in line, line
    assert "or damaged" not in line and "move " not in line, line


# --------------------------------------------------------------------------------------------
# 4. a cache path that is a file (the case left from issue 8), or a file inside the cache
# --------------------------------------------------------------------------------------------

def test_a_cache_path_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    line = one_line(child(tmp_path, "select", "--target", "demo:kitchen", "--candidates", "demo:books,demo:news",
                          *SMALL, HUBSELECT_CACHE_DIR=str(tmp_path / "afile")))
    assert f"the hubselect cache {tmp_path / 'afile'} cannot be used: {tmp_path / 'afile'} is a file" in line, line
    assert "set HUBSELECT_CACHE_DIR to a folder" in line, line


def test_a_file_where_the_cache_needs_a_folder_is_one_line(tracking, _hubselect_cache, capsys, tmp_path):
    books, cat = write_task(tmp_path / "books", "book"), tmp_path / "cat"
    write_task(cat / "dvd", "dvd")
    _hubselect_cache.mkdir()
    (_hubselect_cache / "samples").write_text("a file in the way")
    line = error_line(capsys, main(score_command(books, cat)))
    assert line == (f"hubselect: error: {_hubselect_cache / 'samples'} is a file where the hubselect cache "
                    f"{_hubselect_cache} needs a folder: move the file away, or set HUBSELECT_CACHE_DIR to a folder")


# --------------------------------------------------------------------------------------------
# 5. --quiet prints nothing: no matplotlib layout warning
# --------------------------------------------------------------------------------------------

def test_quiet_select_prints_nothing_even_with_long_names(tmp_path):
    books, cat = write_task(tmp_path / "books", "book"), tmp_path / "cat"
    write_task(cat / "dvd", "dvd")
    write_task(cat / ("a_candidate_with_a_rather_long_folder_name_" * 2), "film")
    proc = child(tmp_path, "select", "--target", str(books), "--candidates", str(cat), *SMALL,
                 "--measures", "js,renyi,jaccard", "--k", "1")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_plots_fit_long_names_and_constant_measures_without_a_warning(tmp_path):
    from hubselect.pipeline import plots

    names = [f"candidate_{i}_{'x' * 60}" for i in range(3)]
    table = pd.DataFrame({"js": [0.1, 0.2, 0.3], "a_long_measure_name_indeed": [0.3, 0.1, 0.2]}, index=names)
    frame = pd.DataFrame({"source": ["untuned", *names], "accuracy": [0.5, 0.6, 0.4, 0.7], "gain": [0, 0.1, -0.1, 0.2]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tight_layout's "Tight layout not applied" fails here
        plots.scores_per_candidate(table.assign(decision=["selected", "", ""]), list(table.columns), tmp_path / "a.png")
        plots.measure_correlation(table, tmp_path / "b.png")
        plots.accuracy_per_source(frame, tmp_path / "c.png")
        plots.measure_correlation(table.assign(js=0.5, a_long_measure_name_indeed=1.0), tmp_path / "d.png")
    assert all((tmp_path / f"{n}.png").stat().st_size > 1000 for n in "abcd")
