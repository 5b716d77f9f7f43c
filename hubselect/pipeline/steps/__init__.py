"""The steps as MLflow runs: fetch -> score -> select -> finetune -> evaluate -> register.

One module per step, each documenting the artifacts it writes. Each ``run_*`` function is one
MLflow run (nested when a parent run is active) that writes its artifacts to a temporary
folder, logs them, and returns where they are (:class:`hubselect.pipeline.tracking.runs.StepOutput`). A
step given the previous step's output folder uses it; otherwise it computes what it needs
in-process (the on-disk caches make that cheap). :func:`run_main` chains the steps and reuses
any step whose run already finished with the same params (compared as strings).
"""

from hubselect.pipeline.steps.evaluate import run_evaluate
from hubselect.pipeline.steps.fetch import run_fetch
from hubselect.pipeline.steps.finetune import run_finetune
from hubselect.pipeline.steps.main import run_main
from hubselect.pipeline.steps.register import run_register
from hubselect.pipeline.steps.score import run_score
from hubselect.pipeline.steps.select import run_select

__all__ = ["run_fetch", "run_score", "run_select", "run_finetune", "run_evaluate", "run_register", "run_main"]
