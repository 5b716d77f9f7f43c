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

from hubselect.steps.common import StepOutput, fetch_params, score_params, select_params
from hubselect.steps.domain import run_fetch, run_score, run_select
from hubselect.steps.main import run_main
from hubselect.steps.transfer import run_evaluate, run_finetune, run_register

__all__ = ["StepOutput", "fetch_params", "score_params", "select_params", "run_fetch", "run_score", "run_select",
           "run_finetune", "run_evaluate", "run_register", "run_main"]
