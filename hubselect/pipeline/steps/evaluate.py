"""evaluate as an MLflow run: zero-shot accuracy on the target, each tuned source vs untuned.

Artifacts: ``evaluation.json`` and ``evaluation.csv`` (the untuned baseline and every source ->
target pair: accuracy, macro-F1, gain, per-class report), ``plots/accuracy_per_source.png``; one
nested ``pair`` run per source with the same param and metric names.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hubselect.core.cache import atomic_write_json
from hubselect.core.errors import HubselectError
from hubselect.data.catalog import FetchConfig
from hubselect.data.entries import Catalog
from hubselect.models.champion import BASELINE
from hubselect.models.transfer import TransferConfig, evaluate_pairs
from hubselect.pipeline.steps.answers import evaluate_answer
from hubselect.pipeline.steps.common import (
    EVALUATION,
    TUNED,
    link_input,
    params_of,
    read_json,
    upstream,
    upstream_dir,
    workdir,
)
from hubselect.pipeline.steps.finetune import run_finetune
from hubselect.pipeline.tracking.runs import StepOutput
from hubselect.scoring.scores import ScoreConfig
from hubselect.selection.policy import SelectionConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairRuns:
    """Where the pair tasks log their nested runs (picklable: Ray workers log their own).

    Attributes:
        parent_run_id: The evaluate step's run (each pair's run is its child).
        params: The settings every pair shares (:meth:`TransferConfig.pair_params`).
        scores: ``{source: {measure: divergence}}`` logged as ``divergence_<measure>``.
        ranking: ``{source: rank}`` from the selection.
        tracking_uri: The store.
    """

    parent_run_id: str
    params: Mapping[str, Any]
    scores: Mapping[str, Mapping[str, float]]
    ranking: Mapping[str, int]
    tracking_uri: str = ""

    def __call__(self, record: dict, result: dict, target: dict, started: float) -> str:
        """Log one pair's nested run (inside its evaluation task); returns the run id.

        The run starts when the source's tuning started in this job (or, for a model from the
        cache, when its evaluation started), so its duration is the pair's work.
        """
        from hubselect.pipeline.tracking import runs

        source = record["source"]
        params = {"source": source, "source_revision": record["source_revision"], "target": target["name"],
                  "target_revision": target["revision"], "formulation": record["formulation"], **self.params}
        metrics = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
                   "train_seconds": record["train_seconds"], "examples_per_second": record["examples_per_second"],
                   "eval_examples_per_second": result["examples_per_second"],
                   "selection_rank": self.ranking.get(source, 0),
                   **{f"divergence_{m}": float(v) for m, v in self.scores.get(source, {}).items()}}
        metrics.update({k: v for k, v in result.get("metrics", {}).items() if k not in metrics})
        began = started if record.get("from_cache") else record.get("tuned_from", started)
        return runs.log_child_run(self.parent_run_id, "pair", params, metrics, run_name=f"{source} -> {target['name']}",
                                  tracking_uri=self.tracking_uri, started=began)


def pair_runs_for(parent_run_id: str, cfg: TransferConfig, scores: Any, selection: dict) -> PairRuns:
    """:class:`PairRuns` from the score step's frame (candidates x measures) and ``selection.json``."""
    from hubselect.pipeline.tracking.runs import tracking_uri

    table = {} if scores is None else {str(src): {str(m): float(v) for m, v in row.items()}
                                       for src, row in scores.iterrows()}
    ranking = {row["candidate"]: row["rank"] for row in selection["ranking"]}
    return PairRuns(parent_run_id, cfg.pair_params(), table, ranking, tracking_uri())


def evaluation_frame(evaluation: dict) -> Any:
    """One row for the untuned baseline and one per pair: accuracy, macro-F1, gain, train seconds."""
    import pandas as pd

    base = evaluation["baseline"]
    rows = [{"source": BASELINE, "formulation": "", "accuracy": base["accuracy"], "macro_f1": base["macro_f1"],
             "gain": 0.0, "train_seconds": 0.0, **base.get("metrics", {})}]
    rows += [{**{k: p[k] for k in ("source", "formulation", "accuracy", "macro_f1", "gain", "train_seconds")},
              **p.get("metrics", {})} for p in evaluation["pairs"]]
    return pd.DataFrame(rows)


def _write_evaluation(evaluation: dict, out: Path) -> None:
    from hubselect.pipeline.plots import accuracy_per_source

    frame = evaluation_frame(evaluation)
    frame.to_csv(out / "evaluation.csv", index=False, float_format="%.6g")
    (out / "plots").mkdir(exist_ok=True)
    accuracy_per_source(frame, out / "plots" / "accuracy_per_source.png")


def _evaluate_logged(catalog: Catalog, finetune_dir: Path, cfg: TransferConfig, pair_runs: PairRuns,
                     quiet: bool) -> dict:
    """Evaluate every pair (each logging its nested run), then log the step's metrics."""
    from hubselect.pipeline.tracking import runs

    start = time.perf_counter()
    tuned = read_json(finetune_dir, TUNED)["tuned"]
    evaluation = evaluate_pairs(catalog, tuned, cfg, quiet=quiet, on_pair=pair_runs)
    base = evaluation["baseline"]
    for pair in evaluation["pairs"]:
        if pair["run_id"]:
            runs.log_run_metrics(pair["run_id"], {"gain": pair["gain"], "baseline_accuracy": base["accuracy"]},
                                 tracking_uri=pair_runs.tracking_uri)
    best = max(p["accuracy"] for p in evaluation["pairs"])
    runs.log_metrics({"baseline_accuracy": base["accuracy"], "baseline_macro_f1": base["macro_f1"],
                      "best_accuracy": best, "best_gain": best - base["accuracy"],
                      "time_evaluate_s": time.perf_counter() - start})
    return evaluation


def run_evaluate(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: TransferConfig, *,
                 finetune_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Evaluate the untuned baseline and each tuned source on the target; one nested run per pair."""
    from hubselect.pipeline.tracking import runs

    with runs.step_run("evaluate", params_of(fetch_cfg, score_cfg, select_cfg, cfg)) as run:
        if finetune_dir is None:
            finetune_dir = run_finetune(fetch_cfg, score_cfg, select_cfg, cfg, quiet=quiet).path
        catalog, scores, selection = upstream(upstream_dir(finetune_dir, "finetune", "select"))
        out = workdir("evaluate") / "evaluate"
        out.mkdir(parents=True)
        evaluation = None
        if catalog.target.eval:
            pair_runs = pair_runs_for(run.info.run_id, cfg, scores, selection)
            evaluation = _evaluate_logged(catalog, finetune_dir, cfg, pair_runs, quiet)
            _write_evaluation(evaluation, out)
        elif cfg.require_eval:
            raise HubselectError(f"target '{catalog.target.ref}' has no labelled evaluation split: "
                                 "pass --eval-split, or drop --require-eval")
        else:
            logger.warning("target %s has no labelled evaluation split: nothing to evaluate", catalog.target.name)
        atomic_write_json(out / EVALUATION, evaluation or {"target": catalog.target.name, "pairs": []})
        runs.log_dir(out)
        link_input(out, "finetune", finetune_dir)
        return StepOutput(run.info.run_id, out, answer=evaluate_answer(run, out))
