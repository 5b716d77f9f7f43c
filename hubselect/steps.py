"""The steps as MLflow runs: fetch → score → select → finetune → evaluate → register.

Each ``run_*`` function is one MLflow run (nested when a parent run is active) that writes its
artifacts to a temporary folder, logs them, and returns where they are. A step given the
previous step's output folder uses it; otherwise it computes what it needs in-process (the
on-disk caches make that cheap). :func:`run_main` chains the steps and reuses any step whose
run already finished with the same params (compared as strings).

Artifacts:
    fetch:  ``catalog.json``, ``samples/*.parquet`` (see :mod:`hubselect.hub.catalog`)
    score:  ``scores.csv`` (candidate × measure), ``timings.json``,
            ``plots/measure_correlation.png`` (+ the fetch artifacts when run standalone)
    select: ``selection.json`` (policy, summary, ranked rows), ``ranking.csv``,
            ``plots/scores_per_candidate.png``
    finetune, evaluate, register: see :mod:`hubselect.transfer`.

A step's output folder links its input folder (``select/score/fetch``), so any later step finds
everything upstream from the folder it is handed.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubselect.cache import atomic_write_json
from hubselect.hub.catalog import FetchConfig, accepted, fetch, load_catalog
from hubselect.progress import progress_bar
from hubselect.scoring import ScoreConfig, ScoreResult, read_texts, score
from hubselect.selection import Selection, SelectionConfig, select

logger = logging.getLogger(__name__)


@dataclass
class StepOutput:
    """What a step hands to the next: its run id and the local folder of its artifacts."""

    run_id: str
    path: Path
    reused: bool = False


def fetch_params(cfg: FetchConfig) -> dict[str, Any]:
    """MLflow params of the fetch step (flat)."""
    out = {k: v for k, v in asdict(cfg).items() if k != "mapping"}
    out.update({f"{k}_column" if k in ("text", "label") else k: v for k, v in asdict(cfg.mapping).items()})
    out = {k: (",".join(v) if isinstance(v, (tuple, list)) else v) for k, v in out.items()}
    return out


def score_params(cfg: ScoreConfig) -> dict[str, Any]:
    """MLflow params of the score step's own settings."""
    return {"measures": cfg.measures, "bigrams": cfg.bigrams, "embedding_model": cfg.embedding.model,
            "embedding_revision": cfg.embedding.model_revision, "max_length": cfg.embedding.max_length,
            "embed_examples": cfg.embedding.max_texts}


def select_params(cfg: SelectionConfig) -> dict[str, Any]:
    """MLflow params of the select step's own settings."""
    return {"policy": cfg.policy, "k": cfg.k, "select_measures": cfg.measures, "quantile": cfg.quantile,
            "budget_examples": cfg.budget_examples}


def _workdir(step: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"hubselect-{step}-"))


def _log_inputs(catalog: dict, fetch_dir: Path) -> None:
    import pandas as pd

    from hubselect.tracking import runs

    target = catalog["target"]
    runs.log_dataset(pd.read_parquet(fetch_dir / target["score"]["sample"]), name=target["name"],
                     source=target["uri"], context="target", digest=target["revision"][-16:])
    for cand in accepted(catalog):
        runs.log_dataset(pd.read_parquet(fetch_dir / cand["sample"]), name=cand["name"], source=cand["uri"],
                         context="candidate", digest=str(cand["revision"])[-16:])


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
        out = _workdir("fetch") / "fetch"
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
        work = _workdir("score")
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


def _select_into(catalog: dict, scores: Any, cfg: SelectionConfig, out: Path) -> Selection:
    from hubselect.plots import scores_per_candidate

    sizes = {c["name"]: c["n"] for c in accepted(catalog)}
    selection = select(scores, sizes, cfg)
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
        work = _workdir("select")
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
        selection = _select_into(catalog, scores, cfg, work / "select")
        s = selection.summary
        runs.log_metrics({"candidates": s["candidates"], "selected": s["selected"], "pruned": s["pruned"],
                          "pruned_fraction": s["pruned_fraction"],
                          "estimated_tuning_saving": s["estimated_tuning_saving"]})
        runs.set_tags({"hubselect.selected": ",".join(s["selected_sources"])})
        runs.log_dir(work / "select")
        (work / "select" / "score").symlink_to(Path(score_dir).resolve(), target_is_directory=True)
        return StepOutput(run.info.run_id, work / "select")


def _reuse(step: str, params: dict[str, Any]) -> StepOutput | None:
    """A finished run of ``step`` with the same params, its artifacts downloaded; else ``None``."""
    from hubselect.tracking import runs

    found = runs.find_finished(step, params)
    if found is None:
        return None
    logger.info("reusing finished %s run %s (same params)", step, found.info.run_id)
    return StepOutput(found.info.run_id, runs.download(found.info.run_id), reused=True)


def run_main(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, transfer_cfg: Any, *,
             quiet: bool = False) -> StepOutput:
    """Chain all steps as nested runs under one ``main`` run, reusing finished steps.

    Logs wall time per phase and ``runtime_saving``: one minus the end-to-end time of this job
    over the brute-force estimate (fetch, then tune and evaluate every usable candidate, at the
    mean tune + evaluate time measured for the selected ones).
    """
    from hubselect.tracking import runs
    from hubselect.transfer import runtime_accounting, transfer_params

    chain = [("fetch", fetch_params(fetch_cfg)), ("score", score_params(score_cfg)),
             ("select", select_params(select_cfg)), ("finetune", transfer_params(transfer_cfg)),
             ("evaluate", {}), ("register", {})]
    cumulative: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    for step, own in chain:
        params = {**params, **own}
        cumulative[step] = params
    runners = {
        "fetch": lambda prev: run_fetch(fetch_cfg, quiet=quiet),
        "score": lambda prev: run_score(fetch_cfg, score_cfg, fetch_dir=prev, quiet=quiet),
        "select": lambda prev: run_select(fetch_cfg, score_cfg, select_cfg, score_dir=prev, quiet=quiet),
        "finetune": lambda prev: run_finetune(fetch_cfg, score_cfg, select_cfg, transfer_cfg, select_dir=prev,
                                              quiet=quiet),
        "evaluate": lambda prev: run_evaluate(fetch_cfg, score_cfg, select_cfg, transfer_cfg, finetune_dir=prev,
                                              quiet=quiet),
    }
    upstream_link = {"score": "fetch", "select": "score", "finetune": "select", "evaluate": "finetune",
                     "register": "evaluate"}
    start = time.perf_counter()
    with runs.step_run("main", params) as run:
        phase: dict[str, float] = {}
        outputs: dict[str, StepOutput] = {}
        prev: Path | None = None
        for step, _ in chain:
            t = time.perf_counter()
            if step == "register":  # never reused: each job adds a version and moves the alias
                out = run_register(fetch_cfg, score_cfg, select_cfg, transfer_cfg, evaluate_dir=prev, quiet=quiet)
            else:
                out = _reuse(step, cumulative[step]) or runners[step](prev)
            if out.reused and step in upstream_link:
                _link(out.path, upstream_link[step], prev)
            phase[step] = time.perf_counter() - t
            outputs[step], prev = out, out.path
        total = time.perf_counter() - start
        accounting = runtime_accounting(outputs["evaluate"].path, phase, total)
        runs.log_metrics({**{f"time_{k}_s": v for k, v in phase.items()}, "time_total_s": total, **accounting})
        runs.set_tags({f"hubselect.{k}_run": v.run_id for k, v in outputs.items()})
        return StepOutput(run.info.run_id, outputs["register"].path)


def _link(folder: Path, name: str, target: Path) -> None:
    link = folder / name
    if not link.exists():
        link.symlink_to(Path(target).resolve(), target_is_directory=True)


def _selection_inputs(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig,
                      select_dir: Path | None, work: Path, quiet: bool) -> Path:
    """The select folder handed in, or one made in-process (logged under ``select/``)."""
    from hubselect.tracking import runs

    if select_dir is not None:
        return Path(select_dir)
    score_dir = work / "select" / "score"
    catalog = _fetch_logged(fetch_cfg, score_dir / "fetch", quiet, "fetch")
    result = _score_into(catalog, score_dir / "fetch", score_cfg, score_dir, quiet)
    _select_into(catalog, result.scores, select_cfg, work / "select")
    runs.log_dir(work / "select", "select")
    return work / "select"


def _upstream(select_dir: Path) -> tuple[dict, Path, Any, dict]:
    import pandas as pd

    fetch_dir = select_dir / "score" / "fetch"
    scores = pd.read_csv(select_dir / "score" / "scores.csv", index_col="candidate")
    return load_catalog(fetch_dir), fetch_dir, scores, json.loads((select_dir / "selection.json").read_text())


def run_finetune(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: Any, *,
                 select_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Fine-tune on every selected source (cached per source revision + settings)."""
    from hubselect.tracking import runs
    from hubselect.transfer import transfer_params, tune_selected

    params = {**fetch_params(fetch_cfg), **score_params(score_cfg), **select_params(select_cfg),
              **transfer_params(cfg)}
    with runs.step_run("finetune", params) as run:
        work = _workdir("finetune")
        select_dir = _selection_inputs(fetch_cfg, score_cfg, select_cfg, select_dir, work, quiet)
        catalog, fetch_dir, _, selection = _upstream(select_dir)
        start = time.perf_counter()
        tuned = tune_selected(catalog, fetch_dir, selection["summary"]["selected_sources"], cfg, quiet=quiet)
        out = work / "finetune"
        atomic_write_json(out / "tuned.json", {"target": catalog["target"]["name"], "tuned": tuned})
        runs.log_metrics({"sources_tuned": len(tuned), "sources_from_cache": sum(t["from_cache"] for t in tuned),
                          "time_finetune_s": time.perf_counter() - start,
                          "train_seconds_total": sum(t["train_seconds"] for t in tuned)})
        runs.log_dir(out)
        _link(out, "select", select_dir)
        return StepOutput(run.info.run_id, out)


def run_evaluate(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: Any, *,
                 finetune_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Evaluate the untuned baseline and each tuned source on the target; one nested run per pair."""
    from hubselect.tracking import runs
    from hubselect.transfer import evaluate_pairs, log_pair_runs, transfer_params

    params = {**fetch_params(fetch_cfg), **score_params(score_cfg), **select_params(select_cfg),
              **transfer_params(cfg)}
    with runs.step_run("evaluate", params) as run:
        if finetune_dir is None:
            finetune_dir = run_finetune(fetch_cfg, score_cfg, select_cfg, cfg, quiet=quiet).path
        catalog, fetch_dir, scores, selection = _upstream(finetune_dir / "select")
        out = _workdir("evaluate") / "evaluate"
        out.mkdir(parents=True)
        if not catalog["target"].get("eval"):
            if cfg.require_eval:
                from hubselect.errors import HubselectError

                raise HubselectError(f"target '{catalog['target']['ref']}' has no labelled evaluation split: "
                                     "pass --eval-split, or drop --require-eval")
            logger.warning("target %s has no labelled evaluation split: nothing to evaluate", catalog["target"]["name"])
            evaluation = None
        else:
            start = time.perf_counter()
            tuned = json.loads((finetune_dir / "tuned.json").read_text())["tuned"]
            evaluation = evaluate_pairs(catalog, fetch_dir, tuned, cfg, quiet=quiet)
            ranking = {row["candidate"]: row["rank"] for row in selection["ranking"]}
            log_pair_runs(evaluation, scores, ranking, cfg, catalog["target"])
            best = max(p["accuracy"] for p in evaluation["pairs"])
            runs.log_metrics({"baseline_accuracy": evaluation["baseline"]["accuracy"],
                              "baseline_macro_f1": evaluation["baseline"]["macro_f1"], "best_accuracy": best,
                              "best_gain": best - evaluation["baseline"]["accuracy"],
                              "time_evaluate_s": time.perf_counter() - start})
            _write_evaluation(evaluation, out)
        atomic_write_json(out / "evaluation.json", evaluation or {"target": catalog["target"]["name"], "pairs": []})
        runs.log_dir(out)
        _link(out, "finetune", finetune_dir)
        return StepOutput(run.info.run_id, out)


def _write_evaluation(evaluation: dict, out: Path) -> None:
    import pandas as pd

    from hubselect.plots import accuracy_per_source

    rows = [{"source": "(untuned baseline)", "accuracy": evaluation["baseline"]["accuracy"],
             "macro_f1": evaluation["baseline"]["macro_f1"], "gain": 0.0}]
    rows += [{k: p[k] for k in ("source", "formulation", "accuracy", "macro_f1", "gain", "train_seconds")}
             for p in evaluation["pairs"]]
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "evaluation.csv", index=False, float_format="%.6g")
    (out / "plots").mkdir(exist_ok=True)
    accuracy_per_source(frame, out / "plots" / "accuracy_per_source.png")


def run_register(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: Any, *,
                 evaluate_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Log the champion with its MLflow flavour and register it with the alias ``champion``."""
    from hubselect.tracking import models, runs
    from hubselect.transfer import choose_champion, target_label_names, transfer_params

    params = {**fetch_params(fetch_cfg), **score_params(score_cfg), **select_params(select_cfg),
              **transfer_params(cfg)}
    with runs.step_run("register", params) as run:
        if evaluate_dir is None:
            evaluate_dir = run_evaluate(fetch_cfg, score_cfg, select_cfg, cfg, quiet=quiet).path
        finetune_dir = evaluate_dir / "finetune"
        catalog, fetch_dir, _, selection = _upstream(finetune_dir / "select")
        evaluation = json.loads((evaluate_dir / "evaluation.json").read_text())
        evaluation = evaluation if evaluation.get("pairs") else None
        tuned = json.loads((finetune_dir / "tuned.json").read_text())["tuned"]
        policy = cfg.champion if cfg.champion != "auto" else ("metric" if evaluation else "rank")
        champion, reason = choose_champion(evaluation, tuned, policy)
        target = catalog["target"]
        examples = read_texts(fetch_dir / target["score"]["sample"])[:3]
        if champion["path"] is None:  # the untuned baseline won
            from hubselect.modeling import resolve_model

            model = resolve_model(cfg.finetune.model, cfg.finetune.model_revision)
        else:
            model = champion["path"]
        info = models.log_model(model, target_label_names(catalog), descriptions=cfg.descriptions,
                                mapping=cfg.mapping, max_length=cfg.finetune.max_length, input_example=examples,
                                metadata={"hubselect.target": target["name"],
                                          "hubselect.source_revision": champion["source_revision"]})
        metrics = {k: champion[k] for k in ("accuracy", "macro_f1") if k in champion}
        if evaluation:
            metrics["baseline_accuracy"] = evaluation["baseline"]["accuracy"]
        version = models.register_champion(
            info, cfg.registered_model_name or None, target=target["name"],
            source=None if champion["path"] is None else champion["source"],
            metrics=metrics, gain=champion.get("gain"), policy=f"{policy}: {reason}",
            tags={"hubselect.measures": ",".join(selection["summary"]["measures"]),
                  "hubselect.target_revision": target["revision"]})
        name = (models.sanitize_model_name(cfg.registered_model_name) if cfg.registered_model_name
                else models.default_model_name(target["name"]))
        out = _workdir("register") / "register"
        record = {"registered_model": name, "version": version, "alias": "champion", "uri": f"models:/{name}@champion",
                  "source": champion["source"], "policy": policy, "reason": reason, **metrics,
                  "gain": champion.get("gain")}
        atomic_write_json(out / "champion.json", record)
        runs.log_dir(out)
        runs.log_metrics({"registered_version": version, **{f"champion_{k}": v for k, v in metrics.items()}})
        runs.set_tags({"hubselect.champion": champion["source"], "hubselect.registered_model": f"{name}/{version}"})
        _link(out, "evaluate", evaluate_dir)
        return StepOutput(run.info.run_id, out)
