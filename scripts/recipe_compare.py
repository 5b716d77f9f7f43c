"""Reliability per unit of compute of two tuning recipes on the same targets, sources and test texts.

Reads two finished benchmark folders (each run with ``--seeds 2``), keeps the targets and sources
they share, and prints per recipe: the split-half (seed vs seed) Spearman per target, the mean
tuning-seed SD of a pair's accuracy, the mean accuracy, and the measured tuning seconds per model.

    python scripts/recipe_compare.py MATRIX_A MATRIX_B
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(folder: Path):
    from hubselect.benchmark.matrix import pairs_frame

    targets = [json.loads(p.read_text()) for p in sorted((folder / "targets").glob("*.json"))]
    settings = json.loads((folder / "benchmark.json").read_text())["settings"]
    return pairs_frame({"targets": targets}), settings


def describe(pairs, names: set[str]) -> dict:
    import numpy as np

    from hubselect.benchmark.metrics import spearman

    p = pairs[pairs["target"].isin(names) & pairs["source"].isin(names)]
    split = []
    for _, g in p.groupby("target"):
        wide = g.pivot(index="source", columns="seed", values="accuracy").dropna()
        split.append(spearman(wide.iloc[:, 0], wide.iloc[:, 1]))
    models = p.drop_duplicates(["source", "seed"])
    return {"targets": p["target"].nunique(), "pairs_per_seed": len(p) // p["seed"].nunique(),
            "split_half_spearman": float(np.nanmean(split)),
            "seed_sd_points": float(100 * p.groupby(["target", "source"])["accuracy"].std(ddof=1).mean()),
            "mean_accuracy": float(p["accuracy"].mean()),
            "train_seconds_per_model": float(models["train_seconds"].mean())}


def main() -> None:
    (pa, sa), (pb, sb) = load(Path(sys.argv[1])), load(Path(sys.argv[2]))
    names = set(pa["target"]) & set(pb["target"])
    out = {}
    for label, pairs, s in (("A", pa, sa), ("B", pb, sb)):
        out[label] = {"folder": sys.argv[1 if label == "A" else 2], "max_train_examples": s["max_train_examples"],
                      "train_max_length": s["train_max_length"], **describe(pairs, names)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
