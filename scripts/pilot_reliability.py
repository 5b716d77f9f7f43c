"""The recipe pilot of issue 14: how far tuning seeds agree under each tuning recipe.

Reads finished benchmark folders (each run with ``--seeds 3`` on the same tasks and test texts,
one recipe per folder) and prints, per recipe, the median over targets of the mean seed-vs-seed
Spearman of the source rankings (the criterion: at least 0.6), the split-half Spearman, the
3-seed Spearman-Brown reliability, the seed SD and best-minus-median in points, the measured
tuning seconds per model and evaluation texts per second, and the compute of the whole pilot.
``--csv`` also writes the per-target table.

    python scripts/pilot_reliability.py FOLDER [FOLDER ...] [--csv per_target.csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def recipe(folder: Path) -> dict:
    settings = json.loads((folder / "benchmark.json").read_text())["settings"]
    return {"examples": str(settings["max_train_examples"]), "max_length": str(settings["train_max_length"]),
            "epochs": str(settings["epochs"])}


def load(folder: Path):
    from hubselect.benchmark.matrix import pairs_frame

    targets = [json.loads(p.read_text()) for p in sorted((folder / "targets").glob("*.json"))]
    return pairs_frame({"targets": targets})


def summary(folder: Path):
    from hubselect.benchmark.trust import reliability

    pairs = load(folder)
    rel = reliability(pairs)
    models = pairs.drop_duplicates(["source", "seed"])
    row = {"recipe": folder.name, **recipe(folder), "targets": str(len(rel)),
           "sources": str(int(rel["sources"].median())),
           "median_seed_spearman": float(rel["seed_spearman"].median()),
           "mean_seed_spearman": float(rel["seed_spearman"].mean()),
           "targets_at_0.6": str(int((rel["seed_spearman"] >= 0.6).sum())),
           "median_split_half": float(rel["split_half_spearman"].median()),
           "median_reliability_sb": float(rel["reliability_sb"].median()),
           "seed_sd_points": float(rel["seed_sd_points"].mean()),
           "best_minus_median_points": float(rel["best_minus_median_points"].mean()),
           "mean_accuracy": float(pairs["accuracy"].mean()),
           "train_seconds_per_model": float(models["train_seconds"].mean()),
           "eval_texts_per_second": float(pairs["eval_n"].sum() / pairs["eval_seconds"].sum()),
           "pilot_minutes": float((models["train_seconds"].sum() + pairs["eval_seconds"].sum()) / 60)}
    return row, rel.assign(recipe=folder.name)


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path, help="write the per-target reliability of every recipe here")
    args = parser.parse_args()
    rows, per_target = [], []
    for folder in args.folders:
        row, rel = summary(folder)
        rows.append(row)
        per_target.append(rel)
    from hubselect.benchmark.report import markdown_table

    print(markdown_table(pd.DataFrame(rows), digits=3, index=False))
    if args.csv:
        pd.concat(per_target).to_csv(args.csv, index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
