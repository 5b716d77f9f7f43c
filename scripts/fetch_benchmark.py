"""Fetch benchmark: ``fetch --candidates search:synthetic --limit N`` against a Hub with real latency.

The HTTP Hub stand-in (``tests/hubstandin.py``) runs in its own process, serving ``--repos`` small
dataset repos (``synthetic/set-0000``...: one Parquet ``train`` split of ``--rows`` rows each, a
``ClassLabel``, a card with the text-classification tag) and waiting ``--delay`` seconds before every
answer, as a round trip to the real Hub would. The texts are generated (``"set 7 review 3: the plot
was superb and loved."``): this measures I/O and the client's round trips, not anything that reads
what the texts say.

Each configuration (candidates N, fetch workers W) runs the fetch step in a fresh Python process with
cold, empty caches (``HUBSELECT_CACHE_DIR``, ``HF_HOME``, ``HF_DATASETS_CACHE``) and its own SQLite
tracking store, as ``hubselect fetch --target <local folder> --candidates search:synthetic --limit N
--fetch-workers W --quiet`` does (when the installed CLI has no ``--fetch-workers`` yet, the child
builds the same config with the CLI's parser and sets the field). The target is a small local folder,
the same path in every run, so catalogs can be compared byte for byte. Reported per configuration:
the wall time of the child process (Python start and imports included), the fetch's own time
(``time_fetch_s``, the catalog's ``seconds``), and the requests the stand-in answered. Catalogs of
the same N are compared: ``catalog.json`` without its ``seconds`` and every sample file must match.

This is a benchmark, not a test: it asserts nothing. Usage, from the repository root::

    nice -n 19 python scripts/fetch_benchmark.py --output /tmp/fetch_benchmark.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import dataclasses, sys
from hubselect import cli
from hubselect.pipeline import steps
from hubselect.options import build_parser, configs_for, fetch_options
from hubselect.pipeline.tracking import runs

workers, argv = int(sys.argv[1]), sys.argv[2:]
if any(o.flag == "--fetch-workers" for o in fetch_options()):
    sys.exit(cli.main([*argv, "--fetch-workers", str(workers)]))
args = build_parser().parse_args(argv)
cfg = dataclasses.replace(configs_for("fetch", args)[0], fetch_workers=workers)
runs.configure(args.experiment)
steps.run_fetch(cfg, quiet=True)
"""


def start_stand_in(root: Path, repos: int, rows: int, delay: float) -> tuple[subprocess.Popen, str]:
    """Build the repos (when ``root`` has none) and serve them from a child process; return it and its URL."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "hubstandin.py"), str(root), "--synthetic",
                             str(repos), "--rows", str(rows), "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_DISABLE_XET": "1"})
    line = proc.stdout.readline()  # "serving N repos from ROOT at URL"
    if " at http" not in line:
        proc.kill()
        raise SystemExit(f"the stand-in did not start: {line!r}")
    return proc, line.rsplit(" at ", 1)[1].strip()


def write_target(folder: Path) -> Path:
    """A small local target (100 unlabelled texts), outside every run's cache so its URI never changes."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = [f"a kitchen note {i}: the kettle and the pan were {('clean', 'dirty')[i % 2]}." for i in range(100)]
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return folder


def run_fetch(work: Path, url: str, target: Path, n: int, workers: int) -> dict:
    """One cold fetch of ``n`` candidates with ``workers`` threads in a fresh process; its timings and catalog."""
    work.mkdir(parents=True)
    env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(work / "hf"), "HF_HUB_CACHE": str(work / "hf" / "hub"),
           "HF_DATASETS_CACHE": str(work / "hf-datasets"), "HUBSELECT_CACHE_DIR": str(work / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0", "PYTHONPATH": str(ROOT)}
    argv = ["fetch", "--target", str(target), "--candidates", "search:synthetic", "--limit", str(n), "--quiet"]
    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), os.times()
    done = subprocess.run([sys.executable, "-c", CHILD, str(workers), *argv], cwd=work, env=env,
                          capture_output=True, text=True)
    wall, after = time.perf_counter() - started, os.times()
    child_cpu = after.children_user + after.children_system - cpu.children_user - cpu.children_system
    if done.returncode != 0:
        raise SystemExit(f"fetch n={n} workers={workers} failed:\n{done.stderr[-3000:]}")
    found = [p for p in work.rglob("catalog.json") if "hf" not in p.relative_to(work).parts[0]]
    folder = found[0].parent
    catalog = json.loads(found[0].read_text())
    samples = hashlib.sha256()
    for path in sorted(folder.rglob("*.parquet")):
        samples.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    seconds = catalog.pop("seconds")
    return {"n": n, "workers": workers, "wall_s": round(wall, 1), "time_fetch_s": round(seconds, 1),
            "child_cpu_s": round(child_cpu, 1),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
            "usable": sum(c["status"] == "ok" for c in catalog["candidates"]), "candidates": len(catalog["candidates"]),
            "catalog_sha256": hashlib.sha256(json.dumps(catalog, sort_keys=True).encode()).hexdigest(),
            "samples_sha256": samples.hexdigest()}


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=1000, help="synthetic repos the stand-in serves")
    parser.add_argument("--rows", type=int, default=100, help="rows of each repo")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds the stand-in waits before every answer")
    parser.add_argument("--workers", type=int, default=16, help="fetch workers of the concurrent runs")
    parser.add_argument("--sequential", default="200", help="candidate counts fetched with 1 worker (comma-separated)")
    parser.add_argument("--concurrent", default="200,1000", help="candidate counts fetched with --workers")
    parser.add_argument("--root", default="", help="folder of the repos (kept, reused when it holds them)")
    parser.add_argument("--output", default="", help="write every number to this JSON file")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fetch-benchmark-"))
    repo_root = Path(args.root) if args.root else base / "repos"
    built = time.perf_counter()
    server, url = start_stand_in(repo_root, args.repos, args.rows, args.delay)
    print(f"stand-in at {url}, {args.repos} repos of {args.rows} rows, {args.delay * 1000:.0f} ms a response "
          f"(ready in {time.perf_counter() - built:.0f} s)", flush=True)
    target = write_target(base / "target")
    plan = [(int(n), 1) for n in args.sequential.split(",") if n] + \
           [(int(n), args.workers) for n in args.concurrent.split(",") if n]
    results = []
    try:
        for n, workers in plan:
            result = run_fetch(base / f"run-{n}-{workers}", url, target, n, workers)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("\n| candidates | workers | wall (s) | fetch (s) | candidates/s | usable | catalog = sequential |")
    print("|---:|---:|---:|---:|---:|---:|:--|")
    for r in results:
        same = [(s["catalog_sha256"], s["samples_sha256"]) for s in results if s["n"] == r["n"] and s["workers"] == 1]
        match = "-" if not same or r["workers"] == 1 else \
            ("yes" if same[0] == (r["catalog_sha256"], r["samples_sha256"]) else "NO")
        print(f"| {r['n']} | {r['workers']} | {r['wall_s']} | {r['time_fetch_s']} | {r['n'] / r['time_fetch_s']:.1f} | "
              f"{r['usable']} | {match} |")
    if args.output:
        Path(args.output).write_text(json.dumps({"settings": vars(args), "machine": machine(), "runs": results},
                                                indent=2))


if __name__ == "__main__":
    main()
