"""Benchmark of the score step: one FDU-MTL target against the 15 other domains plus misc/.

Times, per measure family (``terms`` then ``embeddings``, in separate ``score`` calls so each
family's time is clean), a cold run on an empty cache and a cached rerun, and reports peak
memory, the hardware and the load average around every phase. This is a benchmark, not a test:
it asserts nothing and only reports whether the goals of the issue were met.

Goals checked:

- all term measures for all pairs in under 2 s after tokenisation;
- embedding scoring bound by the encoder: share of time outside the encoder under 10 %;
- a cached rerun under 10 % of the cold run.

Usage (from the repository root, ``../shared/data`` beside the checkout)::

    python scripts/score_benchmark.py --output /tmp/score_benchmark.json

"Cold" means an empty ``HUBSELECT_CACHE_DIR`` (a fresh temporary folder by default), not a cold
interpreter: heavy libraries (torch, transformers, scikit-learn, pandas) are imported before
timing so that import time is not charged to any phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ENV_CACHE_DIR = "HUBSELECT_CACHE_DIR"
TERM_GOAL_S = 2.0
OUTSIDE_GOAL = 0.10
CACHED_GOAL = 0.10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The parsed options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="books", help="FDU-MTL domain used as the target (default: books)")
    parser.add_argument("--sample-size", type=int, default=1000,
                        help="texts sampled per candidate and for the target (default: 1000)")
    parser.add_argument("--embed-examples", type=int, default=500,
                        help="texts per domain passed through the encoder (default: 500)")
    parser.add_argument("--max-length", type=int, default=128, help="encoder max tokens per text (default: 128)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="cold+cached rounds, each on a fresh cache; medians are reported (default: 1)")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache root (default: a fresh temporary folder, so 'cold' is really cold)")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="skip the extra, untimed term pass under tracemalloc")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit numpy/scipy BLAS threads (threadpoolctl) for the whole run (default: leave as is)")
    parser.add_argument("--max-load", type=float, default=None,
                        help="before starting, wait until the 1-minute load average is at most this (default: don't)")
    parser.add_argument("--max-wait", type=float, default=600,
                        help="give up waiting for --max-load after this many seconds and run anyway (default: 600)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def load() -> tuple[float, float, float]:
    """Return the 1, 5 and 15 minute load averages, rounded."""
    return tuple(round(v, 2) for v in os.getloadavg())


def max_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def wait_for_load(max_load: float | None, max_wait: float) -> float:
    """Sleep until the 1-minute load average is at most ``max_load``, for ``max_wait`` seconds at most.

    Args:
        max_load: Threshold; ``None`` returns at once.
        max_wait: Longest wait in seconds.

    Returns:
        Seconds waited.
    """
    start = time.monotonic()
    while max_load is not None and os.getloadavg()[0] > max_load and time.monotonic() - start < max_wait:
        print(f"load {load()} above {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(30)
    return round(time.monotonic() - start, 1)


def thread_pools() -> list[dict]:
    """The native thread pools loaded (torch's OpenMP, numpy's BLAS) and their thread counts."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"api": p["internal_api"], "threads": p["num_threads"], "library": Path(p["filepath"]).name}
            for p in threadpool_info()]


def hardware() -> dict:
    """Describe the machine: CPU model, cores, memory, library versions and torch threads."""
    import numpy
    import torch

    from hubselect.benchmark.run import cpu_model

    cpu = cpu_model()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gib": round(mem_gib, 1), "python": platform.python_version(),
            "platform": platform.platform(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "numpy": numpy.__version__,
            "cuda": torch.cuda.is_available(), "thread_pools": thread_pools()}


def preimport() -> None:
    """Import the heavy libraries the score step loads lazily, so no phase pays for them."""
    import importlib

    for module in ("pandas", "sklearn.linear_model", "sklearn.pipeline", "transformers", "hubselect.scoring.divergence"):
        importlib.import_module(module)
    from transformers import AutoModel, AutoTokenizer  # resolve the lazy attributes too

    del AutoModel, AutoTokenizer


def run_fetch(args: argparse.Namespace, cache_root: Path, out_dir: Path) -> tuple[dict, dict]:
    """Fetch the target and the 22 candidates into ``out_dir``, timed.

    Args:
        args: Benchmark options (target, sample size).
        cache_root: Root under which the fetch's own sample cache lives.
        out_dir: Fetch output folder (must not exist yet).

    Returns:
        ``(catalog, record)`` where ``record`` holds seconds, candidate counts and load.
    """
    from hubselect.data.catalog import FetchConfig, fetch

    os.environ[ENV_CACHE_DIR] = str(cache_root / "fetch")
    cfg = FetchConfig(target=str(DATA / "fdu-mtl" / args.target),
                      candidates=f"{DATA / 'fdu-mtl'},{DATA / 'misc'}",
                      sample_size=args.sample_size, target_sample_size=args.sample_size, eval_size=0)
    before = load()
    start = time.perf_counter()
    catalog = fetch(cfg, out_dir)
    seconds = time.perf_counter() - start
    rejected = [c.name for c in catalog.rejected()]
    return catalog, {"seconds": round(seconds, 3), "candidates": len(catalog.accepted()), "rejected": rejected,
                     "load_before": before, "load_after": load()}


def timed_score(catalog: Any, measures: str, args: argparse.Namespace) -> dict:
    """Run ``score`` once for one measure family and return its timings and wall time.

    Args:
        catalog: Output of the fetch step.
        measures: ``terms`` or ``embeddings``.
        args: Benchmark options (embedding settings).

    Returns:
        Wall seconds, the step's own timings, cache hits, peak RSS after the call and load.
    """
    from hubselect.scoring.represent.store import EmbeddingSettings
    from hubselect.scoring.scores import ScoreConfig, score

    cfg = ScoreConfig(measures=measures, device="cpu",
                      embedding=EmbeddingSettings(max_length=args.max_length, max_texts=args.embed_examples))
    before = load()
    start = time.perf_counter()
    result = score(catalog, cfg)
    wall = time.perf_counter() - start
    return {"wall": round(wall, 4), "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "cached": result.cached, "pairs": len(result.scores), "measures": result.measures,
            "max_rss_mib": max_rss_mib(), "load_before": before, "load_after": load()}


def one_round(catalog: Any, cache: Path, args: argparse.Namespace) -> dict:
    """A cold run (empty ``cache``) of both families, then a cached rerun of both.

    Args:
        catalog: Output of the fetch step.
        cache: Empty folder used as ``HUBSELECT_CACHE_DIR`` for this round.
        args: Benchmark options.

    Returns:
        ``{"cold": {...}, "cached": {...}}`` with one :func:`timed_score` record per family.
    """
    os.environ[ENV_CACHE_DIR] = str(cache)
    out: dict = {}
    for state in ("cold", "cached"):
        out[state] = {}
        for family in ("terms", "embeddings"):
            print(f"  {state} {family} ...", file=sys.stderr, flush=True)
            out[state][family] = timed_score(catalog, family, args)
    return out


def traced_terms(catalog: Any, cache: Path, args: argparse.Namespace) -> dict:
    """Python-side peak memory of a cold term pass, from ``tracemalloc`` (untimed: it slows Python).

    Args:
        catalog: Output of the fetch step.
        cache: Empty folder used as the cache for this pass.
        args: Benchmark options.

    Returns:
        Peak traced MiB and the (inflated) wall seconds of the traced pass.
    """
    os.environ[ENV_CACHE_DIR] = str(cache)
    tracemalloc.start()
    try:
        record = timed_score(catalog, "terms", args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"peak_mib": round(peak / 2**20, 1), "traced_wall": record["wall"]}


def derive(cold: dict, cached: dict) -> dict:
    """Reduce one round to the headline numbers.

    Args:
        cold: Cold-run records of both families.
        cached: Cached-rerun records of both families.

    Returns:
        Phase seconds, per-measure seconds, share outside the encoder and cached/cold ratios.
    """
    t, e = cold["terms"]["timings"], cold["embeddings"]["timings"]
    emb_total = e["embed"] + e["embedding_measures"]
    cold_wall = cold["terms"]["wall"] + cold["embeddings"]["wall"]
    cached_wall = cached["terms"]["wall"] + cached["embeddings"]["wall"]
    per_measure = {k[len("measure_"):]: v for k, v in {**t, **e}.items() if k.startswith("measure_")}
    return {
        "tokenise": t["tokenise"], "term_measures": t["term_measures"], "terms_wall": cold["terms"]["wall"],
        "embed": e["embed"], "encoder": e["encoder"], "embed_outside_encoder": e["embed"] - e["encoder"],
        "embedding_measures": e["embedding_measures"], "embeddings_wall": cold["embeddings"]["wall"],
        "share_outside_encoder": (emb_total - e["encoder"]) / emb_total,
        "cold_wall": cold_wall, "cached_terms_wall": cached["terms"]["wall"],
        "cached_term_measures": cached["terms"]["timings"]["term_measures"],
        "cached_embeddings_wall": cached["embeddings"]["wall"], "cached_wall": cached_wall,
        "cached_ratio": cached_wall / cold_wall,
        "cached_ratio_terms": cached["terms"]["wall"] / cold["terms"]["wall"],
        "cached_ratio_embeddings": cached["embeddings"]["wall"] / cold["embeddings"]["wall"],
        "per_measure": per_measure,
    }


def summarise(rounds: list[dict]) -> dict:
    """Median of every headline number over the rounds, plus the goal verdicts.

    Args:
        rounds: Outputs of :func:`derive`, one per repeat.

    Returns:
        Median values (``per_measure`` too) and ``goals`` with value, limit and ``met``.
    """
    keys = [k for k in rounds[0] if k != "per_measure"]
    summary = {k: round(statistics.median(r[k] for r in rounds), 4) for k in keys}
    summary["per_measure"] = {m: round(statistics.median(r["per_measure"][m] for r in rounds), 4)
                              for m in rounds[0]["per_measure"]}
    summary["goals"] = {
        "term_measures_under_2s": {"value": summary["term_measures"], "limit": TERM_GOAL_S,
                                   "met": summary["term_measures"] < TERM_GOAL_S},
        "share_outside_encoder_under_10pct": {"value": summary["share_outside_encoder"], "limit": OUTSIDE_GOAL,
                                              "met": summary["share_outside_encoder"] < OUTSIDE_GOAL},
        "cached_rerun_under_10pct_of_cold": {"value": summary["cached_ratio"], "limit": CACHED_GOAL,
                                             "met": summary["cached_ratio"] < CACHED_GOAL},
    }
    return summary


def markdown(result: dict) -> str:
    """Render the results as Markdown tables (phases, per-measure times, goals).

    Args:
        result: The benchmark's JSON document.

    Returns:
        Markdown text.
    """
    s, hw, fetch = result["summary"], result["hardware"], result["fetch"]
    pools = ", ".join(f"{p['api']} ({p['library']}) {p['threads']}" for p in hw["thread_pools"]) or "unknown"
    rows = [("fetch (22 candidates + target, not part of scoring)", fetch["seconds"]),
            ("cold terms: tokenise + count matrix", s["tokenise"]),
            ("cold terms: all term measures, all pairs", s["term_measures"]),
            ("cold terms: `score()` wall", s["terms_wall"]),
            ("cold embeddings: embed phase (model load, encode, cache write)", s["embed"]),
            ("cold embeddings: inside the encoder", s["encoder"]),
            ("cold embeddings: embed phase outside the encoder", s["embed_outside_encoder"]),
            ("cold embeddings: all embedding measures, all pairs", s["embedding_measures"]),
            ("cold embeddings: `score()` wall", s["embeddings_wall"]),
            ("cold total (both families)", s["cold_wall"]),
            ("cached terms: `score()` wall", s["cached_terms_wall"]),
            ("cached terms: all term measures", s["cached_term_measures"]),
            ("cached embeddings: `score()` wall", s["cached_embeddings_wall"]),
            ("cached total (both families)", s["cached_wall"])]
    lines = [f"Target `{result['args']['target']}`, {fetch['candidates']} candidates, "
             f"{result['args']['repeats']} round(s), medians. CPU: {hw['cpu']} ({hw['usable_cores']} usable cores), "
             f"torch {hw['torch']} ({hw['torch_threads']} threads); thread pools "
             f"{pools}. Load average (1/5/15 min) "
             f"before {result['load_before']}, after {result['load_after']}.", "",
             "| phase | seconds |", "|---|---:|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in rows]
    lines += ["", "| measure | cold seconds (all pairs) |", "|---|---:|"]
    lines += [f"| {m} | {v:.3f} |" for m, v in s["per_measure"].items()]
    lines += ["", "| goal | value | limit | met |", "|---|---:|---:|---|"]
    for name, g in s["goals"].items():
        lines.append(f"| {name} | {g['value']:.3f} | {g['limit']} | {'yes' if g['met'] else 'no'} |")
    mem = result["memory"]
    lines += ["", f"Peak RSS (`ru_maxrss`): {mem['max_rss_mib']} MiB overall; after the fetch "
              f"{mem['after_fetch_mib']} MiB, after the first cold term run {mem['after_cold_terms_mib']} MiB, "
              f"after the first cold embedding run {mem['after_cold_embeddings_mib']} MiB. "
              f"tracemalloc peak of a cold term pass: {mem.get('terms_tracemalloc_peak_mib', 'n/a')} MiB. "
              f"Share of cached/cold: terms {s['cached_ratio_terms']:.3f}, "
              f"embeddings {s['cached_ratio_embeddings']:.3f}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print Markdown and optionally write JSON.

    Args:
        argv: Arguments without the program name.

    Returns:
        The exit status (2 when ``../shared/data`` is absent).
    """
    args = parse_args(argv)
    if not (DATA / "fdu-mtl" / args.target).is_dir() or not (DATA / "misc").is_dir():
        print(f"error: benchmark data not found: expected {DATA / 'fdu-mtl' / args.target} and {DATA / 'misc'} "
              "(the shared data folder must sit beside the repository checkout)", file=sys.stderr)
        return 2
    preimport()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    waited = wait_for_load(args.max_load, args.max_wait)
    result: dict = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "command": " ".join(["python", *sys.argv]), "waited_for_load_s": waited,
                    "load_before": load(), "hardware": hardware()}
    with tempfile.TemporaryDirectory(prefix="hubselect-bench-") as tmp:
        root = args.cache_dir or Path(tmp) / "cache"
        catalog, result["fetch"] = run_fetch(args, root, Path(tmp) / "fetch")
        memory = {"after_fetch_mib": max_rss_mib()}
        rounds = []
        for i in range(args.repeats):
            print(f"round {i + 1}/{args.repeats}", file=sys.stderr, flush=True)
            cache = root / f"round-{i}-{time.time_ns()}"
            rounds.append(one_round(catalog, cache, args))
        memory["after_cold_terms_mib"] = rounds[0]["cold"]["terms"]["max_rss_mib"]
        memory["after_cold_embeddings_mib"] = rounds[0]["cold"]["embeddings"]["max_rss_mib"]
        if not args.no_tracemalloc:
            traced = traced_terms(catalog, root / f"traced-{time.time_ns()}", args)
            memory["terms_tracemalloc_peak_mib"] = traced["peak_mib"]
            memory["terms_tracemalloc_wall"] = traced["traced_wall"]
    memory["max_rss_mib"] = max_rss_mib()
    result.update(rounds=rounds, memory=memory, load_after=load(),
                  summary=summarise([derive(r["cold"], r["cached"]) for r in rounds]))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
