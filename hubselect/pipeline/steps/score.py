"""score as an MLflow run: the divergence of every candidate from the target.

Artifacts: ``scores.csv`` (candidate x measure, lower = closer), ``timings.json``,
``plots/measure_correlation.png`` (+ the fetch artifacts under ``fetch/`` when run alone).
"""

from __future__ import annotations

import time
from pathlib import Path

from hubselect.core.cache import atomic_write_json
from hubselect.core.progress import progress_bar
from hubselect.data.catalog import FetchConfig
from hubselect.data.entries import Catalog
from hubselect.pipeline.steps.answers import score_answer
from hubselect.pipeline.steps.common import SCORES, link_input, params_of, workdir
from hubselect.pipeline.steps.fetch import fetch_logged
from hubselect.pipeline.tracking.runs import StepOutput
from hubselect.scoring.scores import ScoreConfig, ScoreResult, score


def score_into(catalog: Catalog, cfg: ScoreConfig, out: Path, quiet: bool) -> ScoreResult:
    """Score into ``out`` (scores, timings, correlation plot)."""
    from hubselect.pipeline.plots import measure_correlation
    from hubselect.scoring.divergence import resolve_measures

    phases = len({spec.kind for spec in resolve_measures(cfg.measures)})
    with progress_bar("represent domains", None, quiet=quiet) as bar:
        result = score(catalog, cfg, progress=lambda phase, done, total: bar(1, phases * total))
    out.mkdir(parents=True, exist_ok=True)
    result.scores.to_csv(out / SCORES, float_format="%.6g")
    atomic_write_json(out / "timings.json", {"seconds": result.timings, "cache_hits": result.cached})
    (out / "plots").mkdir(exist_ok=True)
    if len(result.scores.columns) > 1 and len(result.scores) > 1:
        measure_correlation(result.scores, out / "plots" / "measure_correlation.png")
    return result


def run_score(fetch_cfg: FetchConfig, cfg: ScoreConfig, *, fetch_dir: Path | None = None,
              quiet: bool = False) -> StepOutput:
    """The score step as a run; fetches in-process (through the cache) without ``fetch_dir``."""
    from hubselect.pipeline.tracking import runs

    with runs.step_run("score", params_of(fetch_cfg, cfg)) as run:
        work = workdir("score")
        start = time.perf_counter()
        if fetch_dir is None:
            fetch_dir = work / "fetch"
            fetch_logged(fetch_cfg, fetch_dir, quiet, "fetch")
        result = score_into(Catalog.load(fetch_dir), cfg, work / "score", quiet)
        runs.log_metrics({f"time_{k}_s": v for k, v in result.timings.items()})
        runs.log_metrics({"time_score_step_s": time.perf_counter() - start,
                          "representations_cached": sum(result.cached.values())})
        runs.log_dir(work / "score")
        link_input(work / "score", "fetch", fetch_dir)
        return StepOutput(run.info.run_id, work / "score", answer=score_answer(run, work / "score"))
