"""The bad-input suite of issue 8 (input half): build each bad input in a temp folder, run the real
``hubselect`` command on it, and print a Markdown table of command, exit code and message.

Usage: ``python scripts/bad_inputs.py [--keep DIR]``. Offline; about 3 minutes on 2 CPU cores.
Every case must end with exit code 2 and one ``hubselect: error:`` line, or exit code 0 with the
candidate's rejection (reason and fix) in the fetch step's table; any traceback is counted.
"""

from __future__ import annotations

import argparse
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


def run(root: Path) -> list[dict]:
    """Run every case in ``root``; return one record each (rc, stderr lines, message, tracebacks)."""
    env = {**os.environ, "HUBSELECT_CACHE_DIR": str(root / ".cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "COLUMNS": "250"}
    out = []
    for what, command in CASES:
        proc = subprocess.run(command.replace("hubselect ", f"{sys.executable} -m hubselect ", 1), shell=True,
                              cwd=root, env=env, capture_output=True, text=True, timeout=300)
        err = [line for line in proc.stderr.splitlines() if line.strip()]
        out.append({"what": what, "command": command, "rc": proc.returncode, "stderr": err,
                    "traceback": "Traceback" in proc.stderr + proc.stdout})
        print(json.dumps(out[-1]), file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default="", help="build and run in this folder (kept) instead of a temp one")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="hubselect-bad-inputs-"))
    build(root)
    records = run(root)
    for r in records:
        print(f"| {r['what']} | `{r['command']}` | {r['rc']} | " + "<br>".join(r["stderr"]) + " |")
    print(f"\ntracebacks: {sum(r['traceback'] for r in records)} of {len(records)} commands")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
