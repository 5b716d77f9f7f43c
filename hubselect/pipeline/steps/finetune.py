"""finetune as an MLflow run: tune the encoder on each selected source (cached per source).

Artifacts: ``tuned.json`` (per selected source: formulation, cached model folder and key, train
seconds, examples/s, held-out loss/accuracy, whether it came from the cache) (+ the select,
score and fetch artifacts under ``select/`` when run alone).
"""

from __future__ import annotations

import time
from pathlib import Path

from hubselect.core.cache import atomic_write_json
from hubselect.data.catalog import FetchConfig
from hubselect.models.transfer import TransferConfig, tune_selected
from hubselect.pipeline.steps.answers import finetune_answer
from hubselect.pipeline.steps.common import TUNED, link_input, params_of, upstream, workdir
from hubselect.pipeline.steps.select import selection_inputs
from hubselect.pipeline.tracking.runs import StepOutput
from hubselect.scoring.scores import ScoreConfig
from hubselect.selection.policy import SelectionConfig


def run_finetune(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: TransferConfig, *,
                 select_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Fine-tune on every selected source (cached per source revision + settings)."""
    from hubselect.pipeline.tracking import runs

    with runs.step_run("finetune", params_of(fetch_cfg, score_cfg, select_cfg, cfg)) as run:
        work = workdir("finetune")
        select_dir = selection_inputs(fetch_cfg, score_cfg, select_cfg, select_dir, work, quiet)
        catalog, _, selection = upstream(select_dir)
        start = time.perf_counter()
        tuned = tune_selected(catalog, selection["summary"]["selected_sources"], cfg, quiet=quiet)
        out = work / "finetune"
        atomic_write_json(out / TUNED, {"target": catalog.target.name, "tuned": tuned})
        runs.log_metrics({"sources_tuned": len(tuned), "sources_from_cache": sum(t["from_cache"] for t in tuned),
                          "time_finetune_s": time.perf_counter() - start,
                          "train_seconds_total": sum(t["train_seconds"] for t in tuned)})
        runs.log_dir(out)
        link_input(out, "select", select_dir)
        return StepOutput(run.info.run_id, out, answer=finetune_answer(run, out))
