"""Evaluation throughput of the benchmark matrix against the bare encoder (issue 7's goal: >= 80%).

The benchmark evaluates each tuned model on every target: it loads the weights once, encodes each
target's texts once (length-sorted batches, inference mode) and scores them against the target's
label descriptions, then writes the result and the raw scores. This script times that path
(:func:`hubselect.benchmark.matrix.evaluate_model`, loading and writing included) on real test
texts of several tasks, and the bare encoder forward pass (:func:`hubselect.data.encoder.encode`) on
the same texts, in one process, and prints both rates.

    python scripts/eval_rate.py [--tasks ../shared/data/more] [--n-tasks 16] [--per-task 300] [--max-length 64]
        [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def task_folders(root: Path, n_tasks: int) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "test.jsonl").exists())[:n_tasks]


def prepare(folders: list[Path], per_task: int, out_dir: Path) -> tuple[list[dict], list[str]]:
    """Fetch each task as a target (its evaluation sample: ``per_task`` stratified test texts),
    as the benchmark does; returns the target records and every evaluated text."""
    import pandas as pd

    from hubselect.benchmark.matrix import target_catalog_dir
    from hubselect.data.catalog import FetchConfig, fetch

    records, texts = [], []
    for i, folder in enumerate(folders):
        other = folders[(i + 1) % len(folders)]
        catalog = fetch(FetchConfig(target=str(folder), candidates=str(other), sample_size=20, target_sample_size=20,
                                    eval_size=per_task), target_catalog_dir(out_dir, folder.name))
        records.append({"target": folder.name, "label_names": list(catalog.target.label_names)})
        texts += pd.read_parquet(catalog.path(catalog.target.eval), columns=["text"])["text"].astype(str).tolist()
    return records, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=str(DATA / "more"))
    parser.add_argument("--n-tasks", type=int, default=16)
    parser.add_argument("--per-task", type=int, default=300)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    from hubselect.benchmark.matrix import BenchmarkConfig, evaluate_model
    from hubselect.data.encoder import encode, load_encoder, resolve_model
    from hubselect.models.training import FinetuneConfig
    from hubselect.models.transfer import TransferConfig
    from hubselect.scoring.scores import ScoreConfig

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="hubselect-eval-rate-"))
    records, texts = prepare(task_folders(Path(args.tasks), args.n_tasks), args.per_task, work)
    cfg = BenchmarkConfig(tasks=args.tasks, score=ScoreConfig(),
                          transfer=TransferConfig(FinetuneConfig(max_length=args.max_length)))
    base = resolve_model()
    tokenizer, encoder = load_encoder(base, "cpu")
    encode(texts[:16], tokenizer, encoder, max_length=args.max_length)  # warm up
    bare, path = [], []
    for i in range(args.repeats):  # alternate the two, so load from other jobs hits both alike
        start = time.perf_counter()
        encode(texts, tokenizer, encoder, max_length=args.max_length)
        bare.append(time.perf_counter() - start)
        model = {"source": f"untuned{i}", "seed": 0, "formulation": "description", "path": base.path}
        start = time.perf_counter()
        evaluate_model(cfg, model, records, work)
        path.append(time.perf_counter() - start)
    bare_s, path_s = statistics.median(bare), statistics.median(path)
    print(json.dumps({"tasks": len(records), "texts": len(texts), "max_length": args.max_length,
                      "torch_threads": __import__("torch").get_num_threads(),
                      "repeats": args.repeats, "bare_encoder_texts_per_s": round(len(texts) / bare_s, 1),
                      "evaluation_path_texts_per_s": round(len(texts) / path_s, 1),
                      "ratio_of_medians": round(bare_s / path_s, 3),
                      "ratios": [round(b / p, 3) for b, p in zip(bare, path)]}, indent=1))


if __name__ == "__main__":
    main()
