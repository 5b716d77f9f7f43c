"""GPU benchmark: hubselect's fine-tuning loop against a plain ``transformers.Trainer``, evaluation
throughput, and 8 tunes packed on one GPU with engine=ray against one at a time. One card, one run.

Measured, on the same data (FDU-MTL labelled reviews from ``../shared/data``) and the same card:

1. **Training examples/s**: :func:`hubselect.models.training.finetune` (bf16 autocast, dynamic padding,
   length-grouped batches; head formulation, batch 16, max length 128, one epoch, no held-out
   slice so both loops see the same examples) against ``transformers.Trainer`` with its default
   ``TrainingArguments`` (fp32, same batch size, epochs and learning rate; padding to the batch by
   the default collator; no length grouping). Goal: >= 2x.
2. **Evaluation texts/s**: :func:`hubselect.models.evaluation.evaluate` of the tuned model on
   ``--eval-texts`` target texts.
3. **Fan-out**: 8 tunes on 8 different FDU-MTL domains, one at a time in this process
   (``engine=local``) against ``engine=ray`` with ``--gpus-per-job 0.25`` (four tunes share the
   card at once), each with an empty cache.

Sized to finish in about 8 minutes on an H100 (``--examples`` per tune). Prints Markdown and
writes JSON (``--output``). Not a test: it asserts nothing. Usage, from the repository root::

    pip install -e '.[ray]' && python scripts/gpu_benchmark.py --output /tmp/gpu_benchmark.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdu-mtl"
DOMAINS = ("apparel", "baby", "books", "camera_photo", "dvd", "electronics", "health_personal_care", "kitchen_housewares",
           "magazines")


def read_domain(name: str, split: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` shuffled (text, label) rows of one FDU-MTL split, labels as strings."""
    rows = [json.loads(line) for line in (DATA / name / f"{split}.jsonl").read_text(encoding="utf-8").split("\n")
            if line.strip()]
    random.Random(seed).shuffle(rows)
    rows = rows[:n]
    return [r["text"] for r in rows], [str(r["label"]) for r in rows]


def hubselect_tune(texts: list[str], labels: list[str], names: list[str], device: str, source: str = "electronics"):
    from hubselect.models.training import FinetuneConfig, finetune

    cfg = FinetuneConfig(max_length=128, batch_size=16, epochs=1, max_train_examples=len(texts),
                         holdout_fraction=0.0, device=device)
    return finetune(source, "bench", texts, labels, names, cfg, formulation="head", progress=False)


def trainer_examples_per_second(texts: list[str], labels: list[str], names: list[str], device: str) -> dict:
    """A plain ``transformers.Trainer`` with default arguments on the same examples."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from hubselect.data.encoder import resolve_model

    path = resolve_model().path
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names))
    ids = {name: i for i, name in enumerate(names)}
    data = Dataset.from_dict({"text": texts, "label": [ids[y] for y in labels]}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=16, num_train_epochs=1,
                                 learning_rate=5e-5, report_to=[], save_strategy="no",
                                 use_cpu=device == "cpu")
        trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
        start = time.perf_counter()
        metrics = trainer.train().metrics
        seconds = time.perf_counter() - start
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"examples_per_second": len(texts) / seconds, "train_seconds": seconds,
            "trainer_reported_samples_per_second": metrics.get("train_samples_per_second")}


def _tune_domain(domain: str, examples: int, device: str) -> float:
    """One tune of the fan-out (a top-level function, so Ray can ship it); returns its seconds."""
    texts, labels = read_domain(domain, "train", examples)
    start = time.perf_counter()
    hubselect_tune(texts, labels, sorted(set(labels)), device, source=domain)
    return time.perf_counter() - start


def fan_out(examples: int, device: str, gpus_per_job: float, cpus_per_job: float) -> dict:
    from hubselect.core.executor import make_executor

    domains = [d for d in DOMAINS if d != "books"][:8]
    out = {}
    for engine in ("local", "ray"):
        with tempfile.TemporaryDirectory(prefix=f"hubselect-gpu-{engine}-") as cache:
            os.environ["HUBSELECT_CACHE_DIR"] = cache  # empty: every tune really trains
            executor = make_executor(engine, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job)
            if engine == "ray":
                if __name__ != "__main__":  # imported: Ray's workers cannot import this script by name
                    import ray

                    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
                executor.map(abs, [0])  # start Ray and a worker before timing
            start = time.perf_counter()
            per_tune = executor.map(_tune_domain, domains, examples, device)
            out[engine] = {"wall_s": time.perf_counter() - start, "per_tune_s": per_tune}
            executor.shutdown()
    out["speedup"] = out["local"]["wall_s"] / out["ray"]["wall_s"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=1600, help="training examples per tune")
    p.add_argument("--eval-texts", type=int, default=400, help="texts evaluated for texts/s")
    p.add_argument("--device", default="cuda", help="cuda (the point) or cpu (to check the script runs)")
    p.add_argument("--gpus-per-job", type=float, default=0.25, help="GPU share per tune in the fan-out")
    p.add_argument("--cpus-per-job", type=float, default=2.0, help="CPUs per tune in the fan-out")
    p.add_argument("--skip-fan-out", action="store_true", help="only the single-tune and evaluation numbers")
    p.add_argument("--output", default="", help="write the results as JSON here")
    a = p.parse_args()
    if not DATA.is_dir():
        sys.exit(f"gpu_benchmark: {DATA} not found: run from a checkout with ../shared/data beside it")
    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_benchmark: no CUDA device: run it on a GPU machine (or --device cpu to check the script)")
    card = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu"
    os.environ["HUBSELECT_CACHE_DIR"] = tempfile.mkdtemp(prefix="hubselect-gpu-")
    texts, labels = read_domain("electronics", "train", a.examples)
    names = sorted(set(labels))
    hubselect_tune(texts[:64], labels[:64], names, a.device, source="warm-up")  # CUDA context, kernels
    tuned = hubselect_tune(texts, labels, names, a.device)
    trainer = trainer_examples_per_second(texts, labels, names, a.device)
    from hubselect.models.evaluation import evaluate

    eval_texts, eval_labels = read_domain("kitchen_housewares", "test", a.eval_texts)
    evaluation = evaluate(tuned, eval_texts, eval_labels, names, max_length=128, device=a.device)
    result = {"card": card, "torch": torch.__version__, "examples": a.examples,
              "hubselect_examples_per_second": tuned.examples_per_second,
              "hubselect_train_seconds": tuned.train_seconds, "trainer": trainer,
              "training_speedup": tuned.examples_per_second / trainer["examples_per_second"],
              "eval_texts_per_second": evaluation.examples_per_second, "eval_accuracy": evaluation.accuracy}
    print(f"| card | hubselect ex/s | Trainer ex/s | ratio (goal >= 2) | eval texts/s |\n|---|---|---|---|---|\n"
          f"| {card} | {tuned.examples_per_second:.0f} | {trainer['examples_per_second']:.0f} | "
          f"{result['training_speedup']:.2f}x | {evaluation.examples_per_second:.0f} |", flush=True)
    if not a.skip_fan_out:
        gpus = a.gpus_per_job if a.device.startswith("cuda") else 0.0
        result["fan_out"] = fan_out(a.examples // 2, a.device, gpus, a.cpus_per_job)
        f = result["fan_out"]
        print(f"8 tunes: one at a time {f['local']['wall_s']:.1f} s, engine=ray at gpus_per_job={a.gpus_per_job} "
              f"{f['ray']['wall_s']:.1f} s: {f['speedup']:.2f}x")
    if a.output:
        Path(a.output).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
