"""Evaluation throughput of the benchmark matrix against the bare encoder (issue 7's goal: >= 80%).

The benchmark evaluates each tuned model on every target: it loads the weights once, encodes each
target's texts once (length-sorted batches, inference mode) and scores them against the target's
label descriptions, then writes the result and the raw scores. This script times that path
(:func:`hubselect.benchmark.matrix.evaluate_model`, loading and writing included) on real test
texts of several tasks, and the bare encoder forward pass (:func:`hubselect.modeling.encode`) on
the same texts, in one process, and prints both rates.

    python scripts/eval_rate.py [--tasks ../shared/data/more] [--n-tasks 16] [--per-task 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def read_tasks(root: Path, n_tasks: int, per_task: int) -> dict[str, tuple[list[str], list[str]]]:
    out = {}
    for folder in sorted(p for p in root.iterdir() if (p / "test.jsonl").exists())[:n_tasks]:
        rows = [json.loads(line) for line in (folder / "test.jsonl").read_text(encoding="utf-8").splitlines()]
        rows = random.Random(0).sample(rows, min(per_task, len(rows)))
        out[folder.name] = ([r["text"] for r in rows], [r["label"] for r in rows])
    return out


def prepare(tasks: dict, out_dir: Path) -> list[dict]:
    import pandas as pd

    records = []
    for name, (texts, labels) in tasks.items():
        folder = out_dir / "fetch" / name / "samples"
        folder.mkdir(parents=True)
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(folder / "target.eval.parquet", index=False)
        records.append({"target": name, "label_names": sorted(set(labels))})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=str(DATA / "more"))
    parser.add_argument("--n-tasks", type=int, default=16)
    parser.add_argument("--per-task", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from hubselect.benchmark.matrix import BenchmarkConfig, evaluate_model
    from hubselect.modeling import encode, load_encoder, resolve_model
    from hubselect.scoring import ScoreConfig
    from hubselect.training import FinetuneConfig
    from hubselect.transfer import TransferConfig

    tasks = read_tasks(Path(args.tasks), args.n_tasks, args.per_task)
    texts = [t for ts, _ in tasks.values() for t in ts]
    cfg = BenchmarkConfig(tasks=args.tasks, score=ScoreConfig(),
                          transfer=TransferConfig(FinetuneConfig(max_length=args.max_length)))
    base = resolve_model()
    tokenizer, encoder = load_encoder(base, "cpu")
    encode(texts[:16], tokenizer, encoder, max_length=args.max_length)  # warm up
    bare, path = [], []
    for _ in range(args.repeats):  # alternate the two, so load from other jobs hits both alike
        start = time.perf_counter()
        for ts, _ in tasks.values():
            encode(ts, tokenizer, encoder, max_length=args.max_length)
        bare.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory(prefix="hubselect-eval-rate-") as tmp:
            records = prepare(tasks, Path(tmp))
            model = {"source": "untuned", "seed": 0, "formulation": "description", "path": base.path}
            start = time.perf_counter()
            evaluate_model(cfg, model, records, Path(tmp))
            path.append(time.perf_counter() - start)
    bare_s, path_s = statistics.median(bare), statistics.median(path)
    print(json.dumps({"tasks": len(tasks), "texts": len(texts), "max_length": args.max_length,
                      "repeats": args.repeats, "bare_encoder_texts_per_s": round(len(texts) / bare_s, 1),
                      "evaluation_path_texts_per_s": round(len(texts) / path_s, 1),
                      "ratio_of_medians": round(bare_s / path_s, 3),
                      "ratios": [round(b / p, 3) for b, p in zip(bare, path)]}, indent=1))


if __name__ == "__main__":
    main()
