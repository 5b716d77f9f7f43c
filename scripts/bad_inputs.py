"""The bad-input suite of issues 8 and 15: build each bad input in a temp folder, run the real
``hubselect`` command on it, and print a Markdown table of command, exit code and message.

Usage: ``python scripts/bad_inputs.py [--keep DIR] [--only inputs|store|hub|serve]``. Offline; the
input cases (issue 8) take about 3 minutes on 2 CPU cores, the storage cases (issue 15) a few more;
the Hub cases run against the HTTP Hub stand-in of ``tests/hubstandin.py`` and the serving cases
post to ``mlflow models serve`` (both in ``scripts/bad_inputs_remote.py``).
Every case must end with exit code 2 and one ``hubselect: error:`` line, or exit code 0 with the
candidate's rejection (reason and fix) in the fetch step's table; any traceback is counted.

The storage cases (:data:`STORE_CASES`) each have a set-up: a candidate folder named like the
target's samples, a 1 MiB tmpfs filled up as the cache or ``$TMPDIR``, ``chattr +i`` on the store's
database or artifact folder, a read-only bind mount, a file as the cache. Mounting and ``chattr``
need root; where they are refused the case is reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = ("kettle", "blender", "toaster", "knife", "pan", "mixer", "grill", "oven", "fridge", "spoon")
FAST = "--quiet --sample-size 40 --target-sample-size 40 --eval-size 20"


def _rows(n: int, topic: str, labels=("negative", "positive"), start: int = 0) -> list[dict]:
    return [{"text": f"the {WORDS[i % 10]} {topic} number {i} was {'bad' if i % 2 else 'good'}",
             "label": labels[i % len(labels)]} for i in range(start, start + n)]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _task(folder: Path, topic: str, labels=("negative", "positive")) -> None:
    _jsonl(folder / "train.jsonl", _rows(60, topic, labels))
    _jsonl(folder / "test.jsonl", _rows(30, topic, labels, start=1000))


def build(root: Path) -> None:
    """Write every fixture under ``root`` (``books`` is the target; ``cat/`` the candidates)."""
    _task(root / "books", "book")
    _task(root / "ok" / "dvd", "film")
    _task(root / "ints", "book", labels=(0, 1))
    _jsonl(root / "one" / "unlabeled.jsonl", [{"text": "a single review of a kettle"}])
    _jsonl(root / "punct" / "unlabeled.jsonl", [{"text": "!!! ???"}, {"text": "..."}])
    cat = root / "cat"
    _task(cat / "dvd", "film")
    (cat / "link_books").symlink_to(Path("..") / "books", target_is_directory=True)
    shutil.copytree(root / "books", cat / "copy_books")
    (cat / "leak").mkdir()
    shutil.copy(root / "books" / "test.jsonl", cat / "leak" / "train.jsonl")
    leaked = [json.loads(x) for x in (root / "books" / "test.jsonl").read_text().splitlines()]
    _jsonl(cat / "reworded" / "train.jsonl", [{"text": r["text"].upper() + "!", "label": r["label"]} for r in leaked])
    _jsonl(cat / "bare_ints" / "train.jsonl", [{**r, "label": i % 2} for i, r in enumerate(_rows(40, "radio"))])
    (cat / "semicolon").mkdir()
    (cat / "semicolon" / "train.csv").write_text(
        "text;label\n" + "".join(f"the kettle, model {i}, works;{'pos' if i % 2 else 'neg'}\n" for i in range(30)))
    (cat / "empty").mkdir()
    (cat / "empty" / "train.csv").write_bytes(b"")
    lines = [json.dumps(r) for r in _rows(10, "film")]
    lines[2] = '{"text": "broken", "label": '
    (cat / "malformed").mkdir()
    (cat / "malformed" / "train.jsonl").write_text("\n".join(lines) + "\n")
    _jsonl(cat / "numbers" / "train.jsonl", [{"a": i, "b": i} for i in range(10)])
    _jsonl(cat / "reviews" / "train.jsonl", [{"body": r["text"], "stars": r["label"]} for r in _rows(40, "tv")])
    (cat / "manifest.json").write_text(json.dumps({"note": "a stray file beside the task folders"}))


CASES = [  # (what, command)
    ("a symlink to the target, a byte-identical copy, the target's test file as a train file, the "
     "target's texts re-cased, bare 0/1 labels, a semicolon CSV, a 0-byte file, a malformed JSONL line, "
     "no text column, columns needing a mapping, a stray manifest.json (one catalog)",
     f"hubselect fetch --target books --candidates cat {FAST}"),
    ("the same, mapping one candidate's columns", f"hubselect fetch --target books --candidates cat {FAST} "
     "--columns 'reviews:text=body,label=stars' --columns 'bare_ints:names=negative|positive'"),
    ("target with integer labels 0/1 and no names", f"hubselect main --target ints --candidates ok {FAST}"),
    ("Renyi order out of range", f"hubselect score --target books --candidates ok {FAST} --measures renyi:alpha=-1"),
    ("Renyi order not a number", f"hubselect score --target books --candidates ok {FAST} --measures renyi:alpha=foo"),
    ("unknown measure parameter", f"hubselect score --target books --candidates ok {FAST} --measures renyi:beta=2"),
    ("selection measure not computed", f"hubselect select --target books --candidates ok {FAST} --measures terms "
     "--select-measures mmd"),
    ("1-text target with an embedding measure", f"hubselect score --target one --candidates ok {FAST} "
     "--measures js,mmd"),
    ("target without a word or number", f"hubselect score --target punct --candidates ok {FAST} --measures terms"),
    ("malformed --columns", f"hubselect fetch --target books --candidates cat {FAST} --columns reviews"),
    ("--columns with an unknown key", f"hubselect fetch --target books --candidates cat {FAST} "
     "--columns reviews:txt=body"),
    ("--columns naming no candidate", f"hubselect fetch --target books --candidates ok {FAST} --columns x:text=body"),
    ("unknown measure", f"hubselect score --target books --candidates ok {FAST} --measures jsd2"),
    ("target path that does not exist", f"hubselect fetch --target ./nope --candidates ok {FAST}"),
    ("k larger than the usable candidates", f"hubselect select --target books --candidates ok {FAST} --k 9"),
]


# --- issue 15: storage ------------------------------------------------------------------------

STORE_FAST = "--quiet --sample-size 40 --target-sample-size 40 --eval-size 20 --measures js"


class Skipped(Exception):
    """A set-up this machine does not allow (mounting or chattr without root)."""


def _sh(*args: str) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if proc.returncode:
        raise Skipped(f"`{' '.join(args)}` is not allowed here: {proc.stderr.strip() or proc.returncode}")


@contextlib.contextmanager
def full_disk(folder: Path, free_kib: int = 0):
    """A 1 MiB tmpfs at ``folder``, filled until ``free_kib`` KiB are left; unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    _sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder))
    try:
        stat = os.statvfs(folder)
        (folder / "filler").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - free_kib * 1024))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def immutable(path: Path):
    _sh("chattr", "+i", str(path))
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only_mount(folder: Path):
    _sh("mount", "--bind", str(folder), str(folder))
    try:
        _sh("mount", "-o", "remount,bind,ro", str(folder))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def build_store(root: Path) -> None:
    """Catalogs whose folder names collide with the target's sample files."""
    _task(root / "names" / "target.score", "film")
    _jsonl(root / "names" / "target.eval" / "train.jsonl", _rows(100, "radio"))
    _task(root / "names" / "dvd", "film")
    for name in ("target.score", "target.eval"):  # copies of the target: rejected
        shutil.copytree(root / "books", root / "names_rejected" / name)
    _task(root / "names_rejected" / "dvd", "film")
    long = root / "long_names"
    _task(long / ("a_candidate_with_a_rather_long_folder_name_" * 2), "film")
    _task(long / "dvd", "dvd")
    _task(root / "same" / "film", "film")  # two candidates with the same texts: every measure ties them
    _task(root / "same" / "film_again", "film")


def _store(root: Path, name: str) -> dict:
    """A store of its own in ``root/name`` with one finished fetch run (its experiment and artifacts)."""
    folder = root / name
    folder.mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "_cwd": str(folder)}
    _hubselect(root, f"hubselect fetch --target books --candidates ok {FAST}", env)
    return env


@contextlib.contextmanager
def setup(root: Path, kind: str):
    """The environment of one storage case (``_cwd``: where to run), its set-up held for the run."""
    if kind == "full-cache":
        with full_disk(root / "disk-cache") as disk:
            yield {"HUBSELECT_CACHE_DIR": str(disk / "cache")}
    elif kind == "full-tmpdir":
        with full_disk(root / "disk-tmp", free_kib=12) as disk:
            (disk / "tmp").mkdir()
            yield {"TMPDIR": str(disk / "tmp")}
    elif kind == "ro-db":
        env = _store(root, "store-db")
        with immutable(Path(env["_cwd"]) / "mlflow.db"):
            yield env
    elif kind == "ro-artifacts":
        env = _store(root, "store-art")
        with immutable(next((Path(env["_cwd"]) / "mlruns").glob("[0-9]*"))):
            yield env
    elif kind == "ro-mount":
        env = _store(root, "store-mount")
        with read_only_mount(Path(env["_cwd"])):
            yield env
    elif kind == "full-cache-rerun":  # the same command fails on the full disk, then the disk has room again
        with full_disk(root / "disk-rerun") as disk:
            env = {"HUBSELECT_CACHE_DIR": str(disk / "cache")}
            _hubselect(root, f"hubselect score --target books --candidates names {STORE_FAST}", env)
            (disk / "filler").unlink()
            yield env
    elif kind == "cache-file":
        (root / "a_file").write_text("not a folder")
        yield {"HUBSELECT_CACHE_DIR": str(root / "a_file")}
    elif kind == "file-in-cache":
        (root / "cache2").mkdir()
        (root / "cache2" / "samples").write_text("a file where the cache needs a folder")
        yield {"HUBSELECT_CACHE_DIR": str(root / "cache2")}
    else:
        yield {}


def newest_scores(root: Path) -> str:
    """The scores of the newest score run in the default store's artifacts, as ``candidate=js``."""
    found = sorted((root / "mlruns").glob("*/*/artifacts/scores.csv"), key=lambda p: p.stat().st_mtime)
    rows = found[-1].read_text(encoding="utf-8").splitlines()[1:] if found else []
    return "scores: " + ", ".join("=".join(row.split(",")[:2]) for row in rows)


STORE_CASES = [  # (what, command, set-up); a case whose set-up starts with "scores" also shows the scores
    ("catalog folders named target.score and target.eval (other tasks)",
     f"hubselect score --target books --candidates names {STORE_FAST}", "scores"),
    ("catalog folders named target.score and target.eval, copies of the target (rejected)",
     f"hubselect select --target books --candidates names_rejected {STORE_FAST} --k 1", ""),
    ("the cache on a full disk (1 MiB tmpfs)", f"hubselect score --target books --candidates ok {STORE_FAST}",
     "full-cache"),
    ("the same command once the disk has room again, on the cache the failed run left",
     f"hubselect score --target books --candidates names {STORE_FAST}", "scores full-cache-rerun"),
    ("TMPDIR on a full disk (1 MiB tmpfs, 12 KiB left)",
     f"hubselect score --target books --candidates ok {STORE_FAST}", "full-tmpdir"),
    ("mlflow.db read-only (chattr +i)", f"hubselect fetch --target books --candidates ok {FAST}", "ro-db"),
    ("the experiment's artifact folder read-only (chattr +i)", f"hubselect fetch --target books --candidates ok {FAST}",
     "ro-artifacts"),
    ("the store's folder on a read-only mount", f"hubselect fetch --target books --candidates ok {FAST}", "ro-mount"),
    ("HUBSELECT_CACHE_DIR is a file",
     f"hubselect select --target demo:kitchen --candidates demo:books,demo:news {FAST}", "cache-file"),
    ("a file where the cache needs a folder (<cache>/samples)",
     f"hubselect score --target books --candidates ok {STORE_FAST}", "file-in-cache"),
    ("--quiet with long candidate names (matplotlib layout warning)",
     f"hubselect select --target books --candidates long_names {FAST} --measures js,renyi,jaccard --k 1", ""),
    ("--quiet with two candidates every measure ties (an empty correlation plot)",
     f"hubselect select --target books --candidates same {FAST} --measures js,renyi,jaccard --k 1", ""),
]


def _hubselect(root: Path, command: str, extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBSELECT_CACHE_DIR": str(root / ".cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "COLUMNS": "250",
           **{k: v for k, v in extra.items() if not k.startswith("_")}}
    cwd = Path(extra.get("_cwd", root))
    for name in ("books", "ok", "names", "names_rejected", "long_names", "same") if cwd != root else ():
        command = command.replace(f" {name} ", f" {root / name} ")  # the fixtures, seen from another folder
    return subprocess.run(command.replace("hubselect ", f"{sys.executable} -m hubselect ", 1), shell=True,
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _record(what: str, command: str, proc: subprocess.CompletedProcess) -> dict:
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    return {"what": what, "command": command, "rc": proc.returncode, "stderr": err,
            "traceback": "Traceback" in proc.stderr + proc.stdout}


GROUPS = ("inputs", "store", "hub", "serve")


def run(root: Path, only: str = "") -> list[dict]:
    """Run every case in ``root``; return one record each (rc, stderr lines, message, tracebacks)."""
    import bad_inputs_remote

    cases = [(what, command, None) for what, command in CASES] if only in ("", "inputs") else []
    cases += STORE_CASES if only in ("", "store") else []
    out = run_local(root, cases)
    if only in ("", "hub"):
        out += bad_inputs_remote.run_hub(root, _hubselect, _record)
    if only in ("", "serve"):
        out += bad_inputs_remote.run_serve(root, _hubselect, _record)
    for record in out:
        print(json.dumps(record), file=sys.stderr)
    return out


def run_local(root: Path, cases: list) -> list[dict]:
    """The input and storage cases: each with its set-up held while the command runs."""
    out = []
    for what, command, kind in cases:
        try:
            with setup(root, (kind or "").replace("scores", "").strip()) as extra:
                out.append(_record(what, command, _hubselect(root, command, extra)))
            if (kind or "").startswith("scores"):
                out[-1]["stderr"].append(newest_scores(root))
        except Skipped as exc:
            out.append({"what": what, "command": command, "rc": "skipped", "stderr": [str(exc)], "traceback": False})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default="", help="build and run in this folder (kept) instead of a temp one")
    parser.add_argument("--only", choices=GROUPS, default="", help="run only one group of cases")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="hubselect-bad-inputs-"))
    build(root)
    build_store(root)
    records = run(root, args.only)
    for r in records:
        print(f"| {r['what']} | `{r['command']}` | {r['rc']} | " + "<br>".join(r["stderr"]) + " |")
    print(f"\ntracebacks: {sum(r['traceback'] for r in records)} of {len(records)} commands")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
