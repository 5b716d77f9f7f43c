"""Scale benchmark: ``fetch`` + ``score`` of one target against 1,000 and 10,000 real candidates.

The candidates are a local catalog built by slicing ``../shared/data``: every labelled split file
(train/dev/test of every task except the target's own) is shuffled with a fixed seed and cut into
distinct blocks of ``--slice-rows`` rows (100: issue 17); the first N blocks, taken round-robin over
the files, become N task folders (``train.jsonl`` each) in a temporary directory (never in the
project). The data holds about 1,750 such blocks; beyond them, further passes shuffle every file
again with another seed, so every candidate is still a distinct sample of real texts, but texts
recur across candidates (the vocabulary grows less than with fresh texts).
Each configuration runs in a fresh Python process with a cold, empty ``HUBSELECT_CACHE_DIR`` and
its own SQLite tracking store, through the real CLI (``hubselect score``, which fetches first).
Reported per configuration: wall time of the command (heavy imports and the creation of the fresh
tracking store, whose migrations take 15-20 s, done before timing and reported apart), CPU time
of the driver and of the whole process tree, the fetch and score steps' own times (tokenise and
term measures apart), and the peak resident memory of the process and all of its descendants
(Ray's workers included), sampled every 0.1 s from ``/proc``.

Goals (issue 17, local engine, term measures): 1,000 candidates under 60 s; 10,000 under
10 minutes and 4 GB; time at most linear from 1,000 to 10,000 (at most 10x). For the embedding
measures (``--embedding-sizes``) the bare encoder is timed too, on the same texts in a fresh
process, and candidates/s and texts/s are printed for both.

This is a benchmark, not a test: it asserts nothing. Usage, from the repository root::

    nice -n 15 python scripts/scale_benchmark.py --output /tmp/scale.json     # terms at 1,000 and 10,000
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
    """Write ``n`` slices of the labelled files under DATA as task folders; returns n written.

    Pass 0 cuts every file, shuffled, into distinct blocks; each further pass shuffles again with
    another seed (distinct samples, recurring texts), until ``n`` are written.
    """
    files = sorted(p for p in DATA.glob("*/*/*.jsonl")
                   if p.stem in ("train", "test", "dev") and p.parent.relative_to(DATA).as_posix() != TARGET)
    texts = {path: [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()] for path in files}
    written, passes = 0, 0
    while written < n and passes < 1000:
        written += _write_pass(out, texts, n - written, slice_rows, f"{seed}" if passes == 0 else f"{seed}:{passes}",
                               f"-p{passes}" if passes else "")
        passes += 1
    return written


def _write_pass(out: Path, texts: dict[Path, list[str]], n: int, slice_rows: int, seed: str, suffix: str) -> int:
    """Up to ``n`` distinct blocks of ``slice_rows`` rows of one shuffle of every file, round-robin over the files."""
    blocks: list[list[tuple[Path, int, list[str]]]] = []
    for path, lines in texts.items():
        lines = list(lines)
        random.Random(f"{seed}:{path}").shuffle(lines)
        blocks.append([(path, i, lines[i * slice_rows:(i + 1) * slice_rows]) for i in range(len(lines) // slice_rows)])
    written, depth = 0, 0
    while written < n and any(depth < len(b) for b in blocks):
        for per_file in blocks:
            if depth < len(per_file) and written < n:
                path, i, rows = per_file[depth]
                name = f"{path.parent.parent.name}-{path.parent.name}-{path.stem}-{i:03d}{suffix}"
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


def run_encoder(config: dict) -> dict:
    """The bare encoder on the texts the embedding measures embed: the first ``embed_examples`` of every candidate."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: F401 - heavy imports before timing

    from hubselect.scoring.represent.store import EmbeddingSettings, Encoder

    texts = []
    for folder in sorted(Path(config["catalog"]).iterdir()):
        rows = (folder / "train.jsonl").read_text(encoding="utf-8").split("\n")
        texts += [json.loads(row)["text"] for row in rows if row.strip()][:config["embed_examples"]]
    encoder = Encoder(EmbeddingSettings(max_texts=config["embed_examples"]))
    encoder(texts[:8])  # load the model before timing
    start = time.perf_counter()
    encoder(texts)
    return {**config, "exit_code": 0, "wall_s": time.perf_counter() - start, "texts": len(texts), "peak_rss_gb": 0.0,
            "driver_cpu_s": float("nan"), "score": {}}


def run_one(config: dict) -> dict:
    """One configuration, in this (fresh) process: cold cache, own tracking store."""
    if config["measures"] == "encoder":
        return run_encoder(config)
    work = Path(config["work"])
    os.environ["HUBSELECT_CACHE_DIR"] = str(work / "cache")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mlflow  # noqa: F401 - heavy imports before timing
    import pandas  # noqa: F401
    import torch  # noqa: F401
    from mlflow.tracking import MlflowClient

    from hubselect.cli import main

    began = time.perf_counter()
    MlflowClient().search_experiments()  # creates the fresh SQLite store (its migrations) before timing
    store_init = time.perf_counter() - began
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(os.getpid()))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    argv = ["score", "--quiet", "--target", str(DATA / TARGET), "--candidates", config["catalog"],
            "--sample-size", str(config["slice_rows"]), "--target-sample-size", "1000", "--measures", config["measures"],
            "--embed-examples", str(config["embed_examples"]), "--engine", config["engine"],
            "--limit", str(max(2000, config["n"]))]
    import resource

    cpu0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    code = main(argv)
    wall, cpu1 = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    thread.join()
    client = MlflowClient()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    metrics = {r.data.tags.get("hubselect.step"): r.data.metrics for r in runs}
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime  # this process only (not Ray's workers)
    return {**config, "exit_code": code, "wall_s": wall, "driver_cpu_s": cpu, "peak_rss_gb": peak[0] / 2**30,
            "store_init_s": store_init, "score": metrics.get("score", {})}


def _launch(config: dict) -> dict:
    """Run one configuration in a fresh process; adds the CPU time of that process and its descendants."""
    import resource

    out = Path(config["work"]) / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, __file__, "--one", json.dumps(config), "--result", str(out)], check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tree_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime  # with imports and startup
    return {**json.loads(out.read_text()), "tree_cpu_s": tree_cpu}


def _line(result: dict) -> str:
    """One line per configuration."""
    steps, nan = result["score"], float("nan")
    if result["measures"] == "encoder":
        return (f"bare encoder      N={result['n']:5d}: {result['wall_s']:7.1f} s for {result['texts']} texts: "
                f"{result['n'] / result['wall_s']:.2f} candidates/s, {result['texts'] / result['wall_s']:.1f} texts/s")
    line = (f"{result['measures']:10s} {result['engine']:5s} N={result['n']:5d}: {result['wall_s']:7.1f} s wall, "
            f"{result['driver_cpu_s']:6.1f} s driver CPU, {result['tree_cpu_s']:6.1f} s tree CPU "
            f"(fetch {steps.get('time_fetch_s', nan):.1f} s, score step {steps.get('time_score_step_s', nan):.1f} s: "
            f"tokenise {steps.get('time_tokenise_s', nan):.1f} s, "
            f"term measures {steps.get('time_term_measures_s', nan):.1f} s), "
            f"peak {result['peak_rss_gb']:.2f} GB, exit {result['exit_code']}; store created before in "
            f"{result['store_init_s']:.1f} s")
    if result["measures"] == "embeddings":
        seconds = steps.get("time_score_step_s", nan) - steps.get("time_fetch_s", 0.0)
        line += (f"; scoring {result['n'] / seconds:.2f} candidates/s, "
                 f"{result['n'] * result['embed_examples'] / seconds:.1f} texts/s")
    return line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000", help="candidate counts for term measures")
    p.add_argument("--embedding-sizes", default="", help="candidate counts for embedding measures, each with the "
                   "bare encoder on the same texts ('' = skip; issue 17 asks for 1000)")
    p.add_argument("--ray-sizes", default="", help="candidate counts for terms with --engine ray ('' = skip)")
    p.add_argument("--slice-rows", type=int, default=100, help="rows per candidate slice (and --sample-size)")
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
    plan += [("encoder", "local", n) for n in sizes(a.embedding_sizes)]
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
            result["loadavg_after"] = os.getloadavg()
            results.append(result)
            print(_line(result), f"(load average {result['loadavg_after'][0]:.1f})", flush=True)
    report = {"built_candidates": built, "results": results, "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "loadavg": os.getloadavg(), "python": sys.version.split()[0]}
    by = {(r["measures"], r["engine"], r["n"]): r["wall_s"] for r in results}
    for measures, engine in {(m, e) for m, e, _ in plan}:
        ns = sorted(n for m, e, n in by if (m, e) == (measures, engine))
        if len(ns) >= 2:
            ratio = by[(measures, engine, ns[-1])] / by[(measures, engine, ns[0])]
            print(f"{measures} {engine}: N={ns[-1]} costs {ratio:.2f}x N={ns[0]} (linear: {ns[-1] / ns[0]:.0f}x)")
    if a.output:
        Path(a.output).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
