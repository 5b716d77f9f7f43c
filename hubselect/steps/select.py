"""select as an MLflow run: choose the sources worth tuning and prune the rest.

Artifacts: ``selection.json`` (policy, summary, every candidate with every measure, decision
and reason; for the ``combined`` policy each signal and the notes ``prior_seen`` and ``label_match``
of :mod:`hubselect.steps.signals`), ``ranking.csv``, ``plots/scores_per_candidate.png`` (+ the score
artifacts beside them and the fetch artifacts under ``fetch/`` when run alone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hubselect.cache import atomic_write_json
from hubselect.hub.catalog import FetchConfig
from hubselect.hub.entries import Catalog
from hubselect.scoring import ScoreConfig
from hubselect.selection import Selection, SelectionConfig, select
from hubselect.steps.answers import select_answer
from hubselect.steps.common import SCORES, SELECTION, link_input, params_of, upstream_dir, workdir
from hubselect.steps.fetch import fetch_logged
from hubselect.steps.score import score_into
from hubselect.tracking.runs import StepOutput


def learned_predictions(cfg: SelectionConfig, catalog: Catalog, scores: Any, score_cfg: ScoreConfig) -> Any:
    """Gains predicted by a benchmark's learned policy (``runs:/<id>`` or a local path); a model
    with pair features gets the prior (``cfg.prior``) and the label signals it reads."""
    from hubselect import learned_policy
    from hubselect.steps.signals import label_signals, prior_signal

    model_ref = cfg.learned_model
    if model_ref.startswith("runs:/"):
        from hubselect.tracking import runs

        model_ref = str(runs.download(model_ref[len("runs:/"):].strip("/")))
    model = learned_policy.load(model_ref)
    signals = None
    if learned_policy.uses_pair_features(model):
        signals = {**prior_signal(catalog, cfg.prior), **label_signals(catalog, score_cfg)}
    return learned_policy.predict_from_catalog(model, scores, catalog, signals)


def select_into(catalog: Catalog, scores: Any, cfg: SelectionConfig, out: Path, score_cfg: ScoreConfig) -> Selection:
    """Select into ``out`` (selection.json, ranking.csv, plot)."""
    from hubselect.plots import scores_per_candidate
    from hubselect.steps.signals import NOTES, selection_signals, without_label_signals

    sizes = {c.name: c.sample.n for c in catalog.accepted()}
    cfg = without_label_signals(cfg, catalog)
    predicted = learned_predictions(cfg, catalog, scores, score_cfg) if cfg.policy == "learned" else None
    signals = selection_signals(catalog, score_cfg, cfg)
    notes = {k: signals.pop(k) for k in NOTES if k in (signals or {})}
    selection = select(scores, sizes, cfg, predicted, signals)
    for column, values in notes.items():
        selection.table[column] = [values.get(c) for c in selection.table.index]
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

    from hubselect.tracking import runs

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
    from hubselect.tracking import runs

    if select_dir is not None:
        return Path(select_dir)
    catalog, scores = _scored_here(fetch_cfg, score_cfg, work / "select" / "score", quiet)
    select_into(catalog, scores, select_cfg, work / "select", score_cfg)
    runs.log_dir(work / "select", "select")
    return work / "select"
