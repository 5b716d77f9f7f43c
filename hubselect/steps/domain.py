"""fetch, score and select as MLflow runs (see :mod:`hubselect.steps`)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hubselect.cache import atomic_write_json
from hubselect.hub.catalog import FetchConfig, accepted, fetch, load_catalog
from hubselect.progress import progress_bar
from hubselect.scoring import ScoreConfig, ScoreResult, score
from hubselect.selection import Selection, SelectionConfig, select
from hubselect.steps.common import StepOutput, link_input, workdir, fetch_params, score_params, select_params

logger = logging.getLogger(__name__)


def _log_inputs(catalog: dict, fetch_dir: Path) -> None:
    import pandas as pd

    from hubselect.tracking import runs

    target = catalog["target"]
    items = [(pd.read_parquet(fetch_dir / target["score"]["sample"]), target["name"], target["uri"], "target",
              target["revision"][-16:])]
    items += [(pd.read_parquet(fetch_dir / c["sample"]), c["name"], c["uri"], "candidate", str(c["revision"])[-16:])
              for c in accepted(catalog)]
    runs.log_datasets(items)  # one store call: 1,000 candidates cost seconds, not a commit each


def _fetch_into(cfg: FetchConfig, out: Path, quiet: bool) -> dict:
    with progress_bar("fetch candidates", None, quiet=quiet) as bar:
        return fetch(cfg, out, progress=lambda name, done, total: bar(1, total))


def _fetch_metrics(catalog: dict) -> dict[str, float]:
    ok = accepted(catalog)
    return {"candidates_found": len(catalog["candidates"]), "candidates_rejected": len(catalog["candidates"]) - len(ok),
            "candidates_usable": len(ok), "time_fetch_s": catalog["seconds"],
            "target_score_examples": catalog["target"]["score"]["n"],
            "target_eval_examples": (catalog["target"]["eval"] or {}).get("n", 0)}


def _fetch_logged(cfg: FetchConfig, out: Path, quiet: bool, artifact_path: str | None = None) -> dict:
    """Fetch into ``out`` and log inputs, metrics and artifacts on the active run."""
    from hubselect.tracking import runs

    catalog = _fetch_into(cfg, out, quiet)
    _log_inputs(catalog, out)
    runs.log_metrics(_fetch_metrics(catalog))
    runs.log_dir(out, artifact_path)
    return catalog


def run_fetch(cfg: FetchConfig, *, quiet: bool = False) -> StepOutput:
    """The fetch step as a run."""
    from hubselect.tracking import runs

    with runs.step_run("fetch", fetch_params(cfg)) as run:
        out = workdir("fetch") / "fetch"
        _fetch_logged(cfg, out, quiet)
        return StepOutput(run.info.run_id, out)


def _score_into(catalog: dict, fetch_dir: Path, cfg: ScoreConfig, out: Path, quiet: bool) -> ScoreResult:
    from hubselect.plots import measure_correlation

    from hubselect.divergence import resolve_measures

    phases = len({spec.kind for spec in resolve_measures(cfg.measures)})
    with progress_bar("represent domains", None, quiet=quiet) as bar:
        result = score(catalog, fetch_dir, cfg, progress=lambda phase, done, total: bar(1, phases * total))
    out.mkdir(parents=True, exist_ok=True)
    result.scores.to_csv(out / "scores.csv", float_format="%.6g")
    atomic_write_json(out / "timings.json", {"seconds": result.timings, "cache_hits": result.cached})
    (out / "plots").mkdir(exist_ok=True)
    if len(result.scores.columns) > 1 and len(result.scores) > 1:
        measure_correlation(result.scores, out / "plots" / "measure_correlation.png")
    return result


def run_score(fetch_cfg: FetchConfig, cfg: ScoreConfig, *, fetch_dir: Path | None = None,
              quiet: bool = False) -> StepOutput:
    """The score step as a run; fetches in-process (through the cache) without ``fetch_dir``."""
    from hubselect.tracking import runs

    with runs.step_run("score", {**fetch_params(fetch_cfg), **score_params(cfg)}) as run:
        work = workdir("score")
        start = time.perf_counter()
        if fetch_dir is None:
            fetch_dir = work / "fetch"
            _fetch_logged(fetch_cfg, fetch_dir, quiet, "fetch")
        catalog = load_catalog(fetch_dir)
        result = _score_into(catalog, fetch_dir, cfg, work / "score", quiet)
        runs.log_metrics({f"time_{k}_s": v for k, v in result.timings.items()})
        runs.log_metrics({"time_score_step_s": time.perf_counter() - start,
                          "representations_cached": sum(result.cached.values())})
        runs.log_dir(work / "score")
        (work / "score" / "fetch").symlink_to(fetch_dir.resolve(), target_is_directory=True)
        return StepOutput(run.info.run_id, work / "score")


def learned_predictions(model_ref: str, catalog: dict, fetch_dir: Path, scores: Any) -> Any:
    """Gains predicted by a benchmark's learned policy (``runs:/<id>`` or a local path)."""
    from hubselect.benchmark import learned

    if model_ref.startswith("runs:/"):
        from hubselect.tracking import runs

        model_ref = str(runs.download(model_ref[len("runs:/"):].strip("/")))
    model = learned.load(model_ref)
    features = learned.source_features_from_catalog(catalog, fetch_dir) if learned.uses_source_features(model) else None
    return learned.predict_gain(model, scores, features)


def _select_into(catalog: dict, fetch_dir: Path, scores: Any, cfg: SelectionConfig, out: Path,
                 score_cfg: ScoreConfig) -> Selection:
    from hubselect.plots import scores_per_candidate

    sizes = {c["name"]: c["n"] for c in accepted(catalog)}
    from hubselect.steps.signals import selection_signals, without_label_signals

    cfg = without_label_signals(cfg, catalog)
    predicted = learned_predictions(cfg.learned_model, catalog, fetch_dir, scores) if cfg.policy == "learned" else None
    selection = select(scores, sizes, cfg, predicted, selection_signals(catalog, fetch_dir, score_cfg, cfg))
    out.mkdir(parents=True, exist_ok=True)
    selection.table.to_csv(out / "ranking.csv", float_format="%.6g")
    rows = json.loads(selection.table.reset_index().to_json(orient="records"))
    atomic_write_json(out / "selection.json", {"target": catalog["target"]["name"], "summary": selection.summary,
                                               "ranking": rows})
    (out / "plots").mkdir(exist_ok=True)
    scores_per_candidate(selection.table, list(scores.columns), out / "plots" / "scores_per_candidate.png")
    return selection


def run_select(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, cfg: SelectionConfig, *,
               score_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """The select step as a run; scores in-process (through the caches) without ``score_dir``."""
    import pandas as pd

    from hubselect.tracking import runs

    params = {**fetch_params(fetch_cfg), **score_params(score_cfg), **select_params(cfg)}
    with runs.step_run("select", params) as run:
        work = workdir("select")
        if score_dir is None:
            score_dir = work / "score"
            fetch_dir = score_dir / "fetch"
            catalog = _fetch_logged(fetch_cfg, fetch_dir, quiet, "fetch")
            result = _score_into(catalog, fetch_dir, score_cfg, score_dir, quiet)
            runs.log_dir(score_dir)
            scores = result.scores
        else:
            fetch_dir = score_dir / "fetch"
            catalog = load_catalog(fetch_dir)
            scores = pd.read_csv(score_dir / "scores.csv", index_col="candidate")
        selection = _select_into(catalog, fetch_dir, scores, cfg, work / "select", score_cfg)
        s = selection.summary
        runs.log_metrics({"candidates": s["candidates"], "selected": s["selected"], "pruned": s["pruned"],
                          "pruned_fraction": s["pruned_fraction"],
                          "estimated_tuning_saving": s["estimated_tuning_saving"]})
        runs.set_tags({"hubselect.selected": ",".join(s["selected_sources"])})
        runs.log_dir(work / "select")
        (work / "select" / "score").symlink_to(Path(score_dir).resolve(), target_is_directory=True)
        return StepOutput(run.info.run_id, work / "select")


def selection_inputs(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig,
                      select_dir: Path | None, work: Path, quiet: bool) -> Path:
    """The select folder handed in, or one made in-process (logged under ``select/``)."""
    from hubselect.tracking import runs

    if select_dir is not None:
        return Path(select_dir)
    score_dir = work / "select" / "score"
    catalog = _fetch_logged(fetch_cfg, score_dir / "fetch", quiet, "fetch")
    result = _score_into(catalog, score_dir / "fetch", score_cfg, score_dir, quiet)
    _select_into(catalog, score_dir / "fetch", result.scores, select_cfg, work / "select", score_cfg)
    runs.log_dir(work / "select", "select")
    return work / "select"


def upstream(select_dir: Path) -> tuple[dict, Path, Any, dict]:
    import pandas as pd

    fetch_dir = select_dir / "score" / "fetch"
    scores = pd.read_csv(select_dir / "score" / "scores.csv", index_col="candidate")
    return load_catalog(fetch_dir), fetch_dir, scores, json.loads((select_dir / "selection.json").read_text())
