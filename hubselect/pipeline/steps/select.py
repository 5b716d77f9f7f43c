"""select as an MLflow run: choose the sources worth tuning and prune the rest.

Artifacts: ``selection.json`` (policy, summary, every candidate with every measure, decision
and reason; for the ``combined`` policy each signal and the notes ``prior_seen`` and ``label_match``
of :mod:`hubselect.selection.signals`), ``ranking.csv``, ``plots/scores_per_candidate.png`` (+ the score
artifacts beside them and the fetch artifacts under ``fetch/`` when run alone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hubselect.core.cache import atomic_write_json
from hubselect.data.catalog import FetchConfig
from hubselect.data.entries import Catalog
from hubselect.pipeline.steps.answers import select_answer
from hubselect.pipeline.steps.common import SCORES, SELECTION, link_input, params_of, upstream_dir, workdir
from hubselect.pipeline.steps.fetch import fetch_logged
from hubselect.pipeline.steps.score import score_into
from hubselect.pipeline.tracking.runs import StepOutput
from hubselect.scoring.scores import ScoreConfig
from hubselect.selection.policy import Selection, SelectionConfig


def local_refs(cfg: SelectionConfig) -> SelectionConfig:
    """``cfg`` with its prior and learned model as local paths (``runs:/`` downloaded)."""
    from dataclasses import replace

    from hubselect.pipeline.tracking import runs

    return replace(cfg, prior=runs.local_ref(cfg.prior), learned_model=runs.local_ref(cfg.learned_model))


def select_into(catalog: Catalog, scores: Any, cfg: SelectionConfig, out: Path, score_cfg: ScoreConfig) -> Selection:
    """Select into ``out`` (selection.json, ranking.csv, plot)."""
    from hubselect.pipeline.plots import scores_per_candidate
    from hubselect.selection.signals import rank

    selection = rank(catalog, scores, local_refs(cfg), score_cfg)
    out.mkdir(parents=True, exist_ok=True)
    selection.table.to_csv(out / "ranking.csv", float_format="%.6g")
    rows = json.loads(selection.table.reset_index().to_json(orient="records"))
    atomic_write_json(out / SELECTION, {"target": catalog.target.name, "summary": selection.summary,
                                        "ranking": rows})
    (out / "plots").mkdir(exist_ok=True)
    scores_per_candidate(selection.table, list(scores.columns), out / "plots" / "scores_per_candidate.png")
    return selection


def _scored_here(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, score_dir: Path, quiet: bool) -> tuple[Catalog, Any]:
    """Fetch (logged under ``fetch/``) and score in-process into ``score_dir``; the catalog and scores."""
    catalog = fetch_logged(fetch_cfg, score_dir / "fetch", quiet, "fetch")
    return catalog, score_into(catalog, score_cfg, score_dir, quiet).scores


def run_select(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, cfg: SelectionConfig, *,
               score_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """The select step as a run; scores in-process (through the caches) without ``score_dir``."""
    import pandas as pd

    from hubselect.pipeline.tracking import runs

    with runs.step_run("select", params_of(fetch_cfg, score_cfg, cfg)) as run:
        work = workdir("select")
        if score_dir is None:
            score_dir = work / "score"
            catalog, scores = _scored_here(fetch_cfg, score_cfg, score_dir, quiet)
            runs.log_dir(score_dir)  # beside the selection
        else:
            catalog = Catalog.load(upstream_dir(score_dir, "score", "fetch"))
            scores = pd.read_csv(Path(score_dir) / SCORES, index_col="candidate")
        selection = select_into(catalog, scores, cfg, work / "select", score_cfg)
        s = selection.summary
        runs.log_metrics({"candidates": s["candidates"], "selected": s["selected"], "pruned": s["pruned"],
                          "pruned_fraction": s["pruned_fraction"],
                          "estimated_tuning_saving": s["estimated_tuning_saving"]})
        runs.set_tags({"hubselect.selected": ",".join(s["selected_sources"])})
        runs.log_dir(work / "select")
        link_input(work / "select", "score", score_dir)
        return StepOutput(run.info.run_id, work / "select", answer=select_answer(run, work / "select"))


def selection_inputs(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig,
                     select_dir: Path | None, work: Path, quiet: bool) -> Path:
    """The select folder handed in, or one made in-process (logged under ``select/``)."""
    from hubselect.pipeline.tracking import runs

    if select_dir is not None:
        return Path(select_dir)
    catalog, scores = _scored_here(fetch_cfg, score_cfg, work / "select" / "score", quiet)
    select_into(catalog, scores, select_cfg, work / "select", score_cfg)
    runs.log_dir(work / "select", "select")
    return work / "select"
