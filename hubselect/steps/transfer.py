"""finetune, evaluate and register as MLflow runs (logic in :mod:`hubselect.transfer`)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hubselect.cache import atomic_write_json
from hubselect.hub.catalog import FetchConfig
from hubselect.scoring import ScoreConfig, read_texts
from hubselect.selection import SelectionConfig
from hubselect.steps.common import StepOutput, link_input, workdir, fetch_params, score_params, select_params
from hubselect.steps.domain import selection_inputs, upstream

logger = logging.getLogger(__name__)


def _params(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: Any) -> dict[str, Any]:
    """MLflow params of finetune, evaluate and register: every upstream setting plus their own."""
    from hubselect.transfer import transfer_params

    return {**fetch_params(fetch_cfg), **score_params(score_cfg), **select_params(select_cfg),
            **transfer_params(cfg)}


def run_finetune(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: Any, *,
                 select_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Fine-tune on every selected source (cached per source revision + settings)."""
    from hubselect.tracking import runs
    from hubselect.transfer import tune_selected

    params = _params(fetch_cfg, score_cfg, select_cfg, cfg)
    with runs.step_run("finetune", params) as run:
        work = workdir("finetune")
        select_dir = selection_inputs(fetch_cfg, score_cfg, select_cfg, select_dir, work, quiet)
        catalog, fetch_dir, _, selection = upstream(select_dir)
        start = time.perf_counter()
        tuned = tune_selected(catalog, fetch_dir, selection["summary"]["selected_sources"], cfg, quiet=quiet)
        out = work / "finetune"
        atomic_write_json(out / "tuned.json", {"target": catalog["target"]["name"], "tuned": tuned})
        runs.log_metrics({"sources_tuned": len(tuned), "sources_from_cache": sum(t["from_cache"] for t in tuned),
                          "time_finetune_s": time.perf_counter() - start,
                          "train_seconds_total": sum(t["train_seconds"] for t in tuned)})
        runs.log_dir(out)
        link_input(out, "select", select_dir)
        return StepOutput(run.info.run_id, out)


def run_evaluate(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: Any, *,
                 finetune_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Evaluate the untuned baseline and each tuned source on the target; one nested run per pair."""
    from hubselect.tracking import runs
    from hubselect.transfer import evaluate_pairs, pair_runs_for

    params = _params(fetch_cfg, score_cfg, select_cfg, cfg)
    with runs.step_run("evaluate", params) as run:
        if finetune_dir is None:
            finetune_dir = run_finetune(fetch_cfg, score_cfg, select_cfg, cfg, quiet=quiet).path
        catalog, fetch_dir, scores, selection = upstream(finetune_dir / "select")
        out = workdir("evaluate") / "evaluate"
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
            evaluation = evaluate_pairs(catalog, fetch_dir, tuned, cfg, quiet=quiet,
                                        pair_runs=pair_runs_for(run.info.run_id, scores, selection))
            best = max(p["accuracy"] for p in evaluation["pairs"])
            runs.log_metrics({"baseline_accuracy": evaluation["baseline"]["accuracy"],
                              "baseline_macro_f1": evaluation["baseline"]["macro_f1"], "best_accuracy": best,
                              "best_gain": best - evaluation["baseline"]["accuracy"],
                              "time_evaluate_s": time.perf_counter() - start})
            _write_evaluation(evaluation, out)
        atomic_write_json(out / "evaluation.json", evaluation or {"target": catalog["target"]["name"], "pairs": []})
        runs.log_dir(out)
        link_input(out, "finetune", finetune_dir)
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
    from hubselect.transfer import pick_champion, target_label_names

    params = _params(fetch_cfg, score_cfg, select_cfg, cfg)
    with runs.step_run("register", params) as run:
        if evaluate_dir is None:
            evaluate_dir = run_evaluate(fetch_cfg, score_cfg, select_cfg, cfg, quiet=quiet).path
        finetune_dir = evaluate_dir / "finetune"
        catalog, fetch_dir, _, selection = upstream(finetune_dir / "select")
        evaluation = json.loads((evaluate_dir / "evaluation.json").read_text())
        evaluation = evaluation if evaluation.get("pairs") else None
        tuned = json.loads((finetune_dir / "tuned.json").read_text())["tuned"]
        champion, reason, policy = pick_champion(evaluation, tuned, cfg, catalog, fetch_dir)
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
        out = workdir("register") / "register"
        record = {"registered_model": name, "version": version, "alias": "champion", "uri": f"models:/{name}@champion",
                  "source": champion["source"], "policy": policy, "reason": reason, **metrics,
                  "gain": champion.get("gain")}
        atomic_write_json(out / "champion.json", record)
        runs.log_dir(out)
        runs.log_metrics({"registered_version": version, **{f"champion_{k}": v for k, v in metrics.items()}})
        runs.set_tags({"hubselect.champion": champion["source"], "hubselect.registered_model": f"{name}/{version}"})
        link_input(out, "evaluate", evaluate_dir)
        return StepOutput(run.info.run_id, out)
