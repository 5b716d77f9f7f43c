"""fetch as an MLflow run: find, pin and sample the target and candidates.

Artifacts: ``catalog.json`` and ``samples/*.parquet`` (see :mod:`hubselect.hub.catalog`); the
samples are also the run's dataset inputs (the target's scoring sample and each usable candidate).
"""

from __future__ import annotations

from pathlib import Path

from hubselect.hub.catalog import FetchConfig, accepted, fetch
from hubselect.progress import progress_bar
from hubselect.steps.common import params_of, workdir
from hubselect.tracking.runs import StepOutput


def log_inputs(catalog: dict, fetch_dir: Path) -> None:
    """The target's scoring sample and each usable candidate's sample as the active run's inputs."""
    import pandas as pd

    from hubselect.tracking import runs

    target = catalog["target"]
    items = [(pd.read_parquet(fetch_dir / target["score"]["sample"]), target["name"], target["uri"], "target",
              target["revision"][-16:])]
    items += [(pd.read_parquet(fetch_dir / c["sample"]), c["name"], c["uri"], "candidate", str(c["revision"])[-16:])
              for c in accepted(catalog)]
    runs.log_datasets(items)  # one store call: 1,000 candidates cost seconds, not a commit each


def _fetch_metrics(catalog: dict) -> dict[str, float]:
    ok = accepted(catalog)
    return {"candidates_found": len(catalog["candidates"]), "candidates_rejected": len(catalog["candidates"]) - len(ok),
            "candidates_usable": len(ok), "time_fetch_s": catalog["seconds"],
            "target_score_examples": catalog["target"]["score"]["n"],
            "target_eval_examples": (catalog["target"]["eval"] or {}).get("n", 0)}


def fetch_logged(cfg: FetchConfig, out: Path, quiet: bool, artifact_path: str | None = None) -> dict:
    """Fetch into ``out`` and log inputs, metrics and artifacts on the active run."""
    from hubselect.tracking import runs

    with progress_bar("fetch candidates", None, quiet=quiet) as bar:
        catalog = fetch(cfg, out, progress=lambda name, done, total: bar(1, total))
    log_inputs(catalog, out)
    runs.log_metrics(_fetch_metrics(catalog))
    runs.log_dir(out, artifact_path)
    return catalog


def run_fetch(cfg: FetchConfig, *, quiet: bool = False) -> StepOutput:
    """The fetch step as a run."""
    from hubselect.tracking import runs

    with runs.step_run("fetch", params_of(cfg)) as run:
        out = workdir("fetch") / "fetch"
        fetch_logged(cfg, out, quiet)
        return StepOutput(run.info.run_id, out)
