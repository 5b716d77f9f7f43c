"""fetch as an MLflow run: find, pin and sample the target and candidates.

Artifacts: ``catalog.json`` and ``samples/*.parquet`` (see :mod:`hubselect.data.catalog`); the
samples are also the run's dataset inputs (the target's scoring sample and each usable candidate,
logged from the catalog's records, not read again).
"""

from __future__ import annotations

from pathlib import Path

from hubselect.core.progress import progress_bar
from hubselect.data.catalog import FetchConfig, fetch
from hubselect.data.entries import Catalog
from hubselect.pipeline.steps.answers import fetch_answer
from hubselect.pipeline.steps.common import params_of, workdir
from hubselect.pipeline.tracking.runs import StepOutput


def log_inputs(catalog: Catalog) -> None:
    """The target's scoring sample and each usable candidate's sample as the active run's inputs,
    logged from the catalog's records (no sample is read again: 10,000 candidates cost seconds)."""
    from hubselect.pipeline.tracking import runs

    target = catalog.target
    items = [(target.name, target.uri, "target", target.revision[-16:], ("text",), target.score.n)]
    items += [(c.name, c.uri, "candidate", str(c.revision)[-16:], ("text", "label"), c.sample.n)
              for c in catalog.accepted()]
    runs.log_dataset_records(items)  # one store call


def _fetch_metrics(catalog: Catalog) -> dict[str, float]:
    target = catalog.target
    return {"candidates_found": len(catalog.candidates), "candidates_rejected": len(catalog.rejected()),
            "candidates_usable": len(catalog.accepted()), "time_fetch_s": catalog.seconds,
            "target_score_examples": target.score.n, "target_eval_examples": target.eval.n if target.eval else 0}


def fetch_logged(cfg: FetchConfig, out: Path, quiet: bool, artifact_path: str | None = None) -> Catalog:
    """Fetch into ``out`` and log inputs, metrics and artifacts on the active run."""
    from hubselect.pipeline.tracking import runs

    with progress_bar("fetch candidates", None, quiet=quiet) as bar:
        catalog = fetch(cfg, out, progress=lambda name, done, total: bar(1, total))
    log_inputs(catalog)
    runs.log_metrics(_fetch_metrics(catalog))
    runs.log_dir(out, artifact_path)
    return catalog


def run_fetch(cfg: FetchConfig, *, quiet: bool = False) -> StepOutput:
    """The fetch step as a run."""
    from hubselect.pipeline.tracking import runs

    with runs.step_run("fetch", params_of(cfg)) as run:
        out = workdir("fetch") / "fetch"
        fetch_logged(cfg, out, quiet)
        return StepOutput(run.info.run_id, out, answer=fetch_answer(run, out))
