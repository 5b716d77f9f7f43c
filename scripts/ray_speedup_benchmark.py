"""Speed-up of engine=ray on one machine: the tune-and-evaluate phase, local against Ray, in one run.

A small collection: target FDU-MTL ``books`` against four other FDU-MTL domains, all four kept
(``--k 4``), the bundled MiniLM, ``--max-train-examples`` examples per source, one epoch, max length
64, ``--eval-size`` target test texts. Each engine runs ``hubselect evaluate`` (fetch, score,
select, finetune, evaluate) in a fresh process with its own empty cache and tracking store; the
phase timed is the finetune step plus the evaluate step (``time_finetune_s + time_evaluate_s``,
what fans out), read back from their MLflow runs. ``local`` runs torch with its default threads
in one process; ``ray`` runs two tasks at a time (``--cpus-per-job 1``: one torch thread each).
Runs alternate local, ray, local, ray... so that a shared machine's load falls on both alike.

This is a benchmark, not a test: it asserts nothing. Usage, from the repository root::

    nice -n 15 python scripts/ray_speedup_benchmark.py --output /tmp/ray_speedup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdu-mtl"
SOURCES = ("dvd", "electronics", "kitchen_housewares", "music")


def run_engine(engine: str, work: Path, a: argparse.Namespace) -> dict:
    """One ``hubselect evaluate`` in a fresh process; returns the phase times and the results."""
    env = {**os.environ, "HUBSELECT_CACHE_DIR": str(work / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    cmd = [sys.executable, "-m", "hubselect", "evaluate", "--quiet", "--target", str(DATA / "books"),
           "--candidates", ",".join(str(DATA / s) for s in SOURCES), "--k", str(len(SOURCES)),
           "--measures", "js", "--select-measures", "js", "--sample-size", str(a.train_examples),
           "--max-train-examples", str(a.train_examples), "--train-max-length", "64", "--epochs", "1",
           "--eval-size", str(a.eval_size), "--engine", engine, "--cpus-per-job", "1"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=work)
    wall = time.perf_counter() - start
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_step = {r.data.tags.get("hubselect.step"): r for r in runs}
    tune = by_step["finetune"].data.metrics["time_finetune_s"]
    evaluate = by_step["evaluate"].data.metrics["time_evaluate_s"]
    pairs = {r.data.params["source"]: r.data.metrics["accuracy"] for r in runs
             if r.data.tags.get("hubselect.step") == "pair"}
    return {"engine": engine, "tune_s": tune, "evaluate_s": evaluate, "phase_s": tune + evaluate,
            "command_wall_s": wall, "accuracy": pairs,
            "baseline_accuracy": by_step["evaluate"].data.metrics["baseline_accuracy"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1, help="local/ray pairs to run")
    p.add_argument("--train-examples", type=int, default=200, help="training examples per source")
    p.add_argument("--eval-size", type=int, default=200, help="target test texts evaluated")
    p.add_argument("--output", default="", help="write the results as JSON here")
    a = p.parse_args()
    if not DATA.is_dir():
        sys.exit(f"ray_speedup_benchmark: {DATA} not found: run from a checkout with ../shared/data beside it")
    results = []
    with tempfile.TemporaryDirectory(prefix="hubselect-ray-speedup-") as tmp:
        for i in range(a.repeats):
            for engine in ("local", "ray"):
                work = Path(tmp) / f"{engine}-{i}"
                work.mkdir()
                result = run_engine(engine, work, a)
                results.append(result)
                print(f"{engine:5s}: tune {result['tune_s']:6.1f} s + evaluate {result['evaluate_s']:6.1f} s = "
                      f"{result['phase_s']:6.1f} s (command {result['command_wall_s']:.1f} s); "
                      f"accuracy {json.dumps({k: round(v, 4) for k, v in result['accuracy'].items()})}", flush=True)
    phase = {e: statistics.median(r["phase_s"] for r in results if r["engine"] == e) for e in ("local", "ray")}
    speedup = phase["local"] / phase["ray"]
    print(f"speed-up of the tune-and-evaluate phase, local / ray (medians): {speedup:.2f}x (goal >= 1.7x)")
    if a.output:
        Path(a.output).write_text(json.dumps({
            "results": results, "speedup": speedup, "cores": os.cpu_count(), "loadavg": os.getloadavg(),
            "cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0]}, indent=2))


if __name__ == "__main__":
    main()
