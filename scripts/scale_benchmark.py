"""Scale benchmark: ``fetch`` + ``score`` of one target against 100 and 1,000 real candidates.

The candidates are a local catalog built by slicing ``../shared/data``: every labelled split file
(train/dev/test of every task except the target's own) is shuffled with a fixed seed and cut into
distinct blocks of ``--slice-rows`` rows; the first N blocks, taken round-robin over the files,
become N task folders (``train.jsonl`` each) in a temporary directory (never in the project).
Each configuration runs in a fresh Python process with a cold, empty ``HUBSELECT_CACHE_DIR`` and
its own SQLite tracking store, through the real CLI (``hubselect score``, which fetches first).
Reported per configuration: wall time of the command (heavy imports done before timing), the
fetch and score steps' own times, and the peak resident memory of the process and all of its
descendants (Ray's workers included), sampled every 0.1 s from ``/proc``.

Goals (local engine, term measures): 1,000 candidates under 60 s and 4 GB, and at most 12x the
time of 100. Embedding measures and ``--engine ray`` are reported too (embeddings on fewer
candidates: the CPU encoder costs seconds per candidate).

This is a benchmark, not a test: it asserts nothing. Usage, from the repository root::

    nice -n 15 python scripts/scale_benchmark.py --output /tmp/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGET = "fdu-mtl/books"


def build_catalog(out: Path, n: int, slice_rows: int, seed: int = 0) -> int:
    """Write ``n`` distinct slices of the labelled files under DATA as task folders; returns n written."""
    files = sorted(p for p in DATA.glob("*/*/*.jsonl")
                   if p.stem in ("train", "test", "dev") and p.parent.relative_to(DATA).as_posix() != TARGET)
    blocks: list[list[tuple[Path, int, list[str]]]] = []
    for path in files:
        lines = [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()]
        random.Random(f"{seed}:{path}").shuffle(lines)
        blocks.append([(path, i, lines[i * slice_rows:(i + 1) * slice_rows]) for i in range(len(lines) // slice_rows)])
    written, depth = 0, 0
    while written < n and any(depth < len(b) for b in blocks):
        for per_file in blocks:
            if depth < len(per_file) and written < n:
                path, i, rows = per_file[depth]
                name = f"{path.parent.parent.name}-{path.parent.name}-{path.stem}-{i:03d}"
                (out / name).mkdir(parents=True)
                (out / name / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
                written += 1
        depth += 1
    return written


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_one(config: dict) -> dict:
    """One configuration, in this (fresh) process: cold cache, own tracking store."""
    work = Path(config["work"])
    os.environ["HUBSELECT_CACHE_DIR"] = str(work / "cache")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mlflow  # noqa: F401 - heavy imports before timing
    import pandas  # noqa: F401
    import torch  # noqa: F401

    from hubselect.cli import main

    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(os.getpid()))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    argv = ["score", "--quiet", "--target", str(DATA / TARGET), "--candidates", config["catalog"],
            "--sample-size", str(config["slice_rows"]), "--target-sample-size", "1000", "--measures", config["measures"],
            "--embed-examples", str(config["embed_examples"]), "--engine", config["engine"], "--limit", "2000"]
    import resource

    cpu0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    code = main(argv)
    wall, cpu1 = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    thread.join()
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    metrics = {r.data.tags.get("hubselect.step"): r.data.metrics for r in runs}
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime  # this process only (not Ray's workers)
    return {**config, "exit_code": code, "wall_s": wall, "driver_cpu_s": cpu, "peak_rss_gb": peak[0] / 2**30,
            "score": metrics.get("score", {})}


def _launch(config: dict) -> dict:
    out = Path(config["work"]) / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    subprocess.run([sys.executable, __file__, "--one", json.dumps(config), "--result", str(out)], check=True, env=env)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000", help="candidate counts for term measures")
    p.add_argument("--embedding-sizes", default="20,100", help="candidate counts for embedding measures ('' = skip)")
    p.add_argument("--ray-sizes", default="1000", help="candidate counts for terms with --engine ray ('' = skip)")
    p.add_argument("--slice-rows", type=int, default=150, help="rows per candidate slice (and --sample-size)")
    p.add_argument("--embed-examples", type=int, default=64, help="texts embedded per candidate")
    p.add_argument("--output", default="", help="write every result as JSON here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        Path(a.result).write_text(json.dumps(run_one(json.loads(a.one)), indent=2))
        return
    if not DATA.is_dir():
        sys.exit(f"scale_benchmark: {DATA} not found: run from a checkout with ../shared/data beside it")
    sizes = lambda text: [int(s) for s in text.split(",") if s.strip()]  # noqa: E731
    plan = [("terms", "local", n) for n in sizes(a.sizes)] + [("embeddings", "local", n) for n in sizes(a.embedding_sizes)]
    plan += [("terms", "ray", n) for n in sizes(a.ray_sizes)]
    results = []
    with tempfile.TemporaryDirectory(prefix="hubselect-scale-") as tmp:
        catalog = Path(tmp) / "catalog"
        built = build_catalog(catalog, max(n for _, _, n in plan), a.slice_rows)
        names = sorted(os.listdir(catalog))
        for measures, engine, n in plan:
            sub = Path(tmp) / f"catalog-{n}"
            if not sub.exists():
                sub.mkdir()
                for name in names[:n]:
                    (sub / name).symlink_to(catalog / name, target_is_directory=True)
            work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{measures}-{engine}-{n}-"))
            result = _launch({"catalog": str(sub), "n": n, "measures": measures, "engine": engine, "work": str(work),
                              "slice_rows": a.slice_rows, "embed_examples": a.embed_examples})
            results.append(result)
            steps = result["score"]
            print(f"{measures:10s} {engine:5s} N={n:5d}: {result['wall_s']:7.1f} s wall, "
                  f"{result['driver_cpu_s']:6.1f} s driver CPU (fetch {steps.get('time_fetch_s', float('nan')):.1f} s, "
                  f"score step {steps.get('time_score_step_s', float('nan')):.1f} s), "
                  f"peak {result['peak_rss_gb']:.2f} GB, exit {result['exit_code']}", flush=True)
    report = {"built_candidates": built, "results": results, "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "loadavg": os.getloadavg(), "python": sys.version.split()[0]}
    by = {(r["measures"], r["engine"], r["n"]): r["wall_s"] for r in results}
    for measures, engine in {(m, e) for m, e, _ in plan}:
        ns = sorted(n for m, e, n in by if (m, e) == (measures, engine))
        if len(ns) >= 2:
            ratio = by[(measures, engine, ns[-1])] / by[(measures, engine, ns[0])]
            print(f"{measures} {engine}: N={ns[-1]} costs {ratio:.2f}x N={ns[0]}")
    if a.output:
        Path(a.output).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
