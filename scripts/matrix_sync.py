"""Carry a long transfer matrix across sittings: export its finished records into the repository,
and restore them into a fresh benchmark folder so the benchmark resumes where it stopped.

``export`` copies what a finished model and pair left behind into ``DEST``:

* ``DEST/raw/benchmark.json``, ``raw/prepared/*.json`` (each target's label names and every
  candidate's divergences), ``raw/models/*.json`` (tuned-model records), ``raw/holdout/*.json``
  and ``raw/baseline/*.json``;
* ``DEST/raw/pairs/<target>.jsonl.gz``: one line per evaluated pair and seed, with the pair's
  record and, from its raw scores, the predicted label index and the top probability per test
  text (what the label-free champion estimators read), so the ``.npy`` files need not be kept;
* ``DEST/pairs.csv``: one row per target, source and seed (:func:`pair_records`);
* and prints the progress: models and pairs done out of those needed.

``restore`` writes those records back into a benchmark folder (pair JSONs, which keep ``pred``
and ``conf`` for the label-free estimators of :mod:`hubselect.benchmark.trust`; model and holdout
records), so ``hubselect benchmark`` with the same settings neither tunes a recorded model again
nor evaluates a recorded pair again; samples are fetched again (seeded, so identical).

    python scripts/matrix_sync.py export BENCH_DIR docs/results/matrix67
    python scripts/matrix_sync.py restore docs/results/matrix67 BENCH_DIR
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

RECORD_FOLDERS = ("prepared", "models", "holdout", "baseline")


def _pair_line(path: Path) -> dict:
    import numpy as np
    from scipy.special import softmax

    record = json.loads(path.read_text(encoding="utf-8"))
    npy = path.with_suffix(".npy")
    if npy.exists():
        probs = softmax(np.load(npy).astype(float), axis=1)
        record["pred"] = probs.argmax(axis=1).tolist()
        record["conf"] = np.round(probs.max(axis=1), 4).tolist()
    return {"stem": path.stem, **record}


def export(bench: Path, dest: Path) -> None:
    from hubselect.benchmark.matrix import pair_records

    raw = dest / "raw"
    for folder in RECORD_FOLDERS:
        (raw / folder).mkdir(parents=True, exist_ok=True)
        for f in sorted((bench / folder).glob("*.json")):
            shutil.copyfile(f, raw / folder / f.name)
    shutil.copyfile(bench / "benchmark.json", raw / "benchmark.json")
    (raw / "pairs").mkdir(parents=True, exist_ok=True)
    for target in sorted(p for p in (bench / "pairs").iterdir() if p.is_dir()):
        lines = [json.dumps(_pair_line(f), sort_keys=True) for f in sorted(target.glob("*.json"))]
        tmp = raw / "pairs" / f".{target.name}.jsonl.gz.tmp"
        with gzip.GzipFile(tmp, "wb", mtime=0) as handle:
            handle.write(("\n".join(lines) + "\n").encode("utf-8"))
        tmp.replace(raw / "pairs" / f"{target.name}.jsonl.gz")
    frame = pair_records(bench)
    frame.to_csv(dest / "pairs.csv", index=False, float_format="%.5g")
    print(progress(bench, frame))


def progress(bench: Path, frame) -> str:
    settings = json.loads((bench / "benchmark.json").read_text())["settings"]
    tasks = settings["task_names"].split(",")
    prepared = [json.loads(p.read_text()) for p in (bench / "prepared").glob("*.json")]
    needed_pairs = sum(len(r.get("scores", {})) for r in prepared if r.get("scored")) * int(settings["seeds"])
    models = len(list((bench / "models").glob("*.json")))
    return (f"{len(prepared)}/{len(tasks)} targets prepared; {models}/{len(tasks) * int(settings['seeds'])} models "
            f"recorded; {len(frame)}/{needed_pairs} pairs evaluated")


def restore(dest: Path, bench: Path) -> None:
    raw = dest / "raw"
    bench.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(raw / "benchmark.json", bench / "benchmark.json")
    for folder in RECORD_FOLDERS:
        (bench / folder).mkdir(parents=True, exist_ok=True)
        for f in sorted((raw / folder).glob("*.json")):
            shutil.copyfile(f, bench / folder / f.name)
    for gz in sorted((raw / "pairs").glob("*.jsonl.gz")):
        target = gz.name[: -len(".jsonl.gz")]
        (bench / "pairs" / target).mkdir(parents=True, exist_ok=True)
        for line in gzip.decompress(gz.read_bytes()).decode("utf-8").splitlines():
            record = json.loads(line)
            stem = record.pop("stem")
            (bench / "pairs" / target / f"{stem}.json").write_text(json.dumps(record), encoding="utf-8")
    print(f"restored {dest} into {bench}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("export", "restore"))
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    (export if args.action == "export" else restore)(args.source, args.dest)


if __name__ == "__main__":
    main()
