"""Helpers shared by the test modules (import them from here, never from another test module).

``FETCH_FAST``/``FAST`` are the CLI flags that keep the demo runs small; :func:`runs_of` and
:func:`artifacts` read what a CLI step logged to the test's MLflow store.
"""

from __future__ import annotations

from pathlib import Path

FETCH_FAST = ["--quiet", "--sample-size", "120", "--target-sample-size", "120"]
FAST = [*FETCH_FAST, "--embed-examples", "24", "--max-length", "32"]


def fast(command: str) -> list[str]:
    """The small-run flags a CLI command accepts (``fetch`` has no embedding flags)."""
    return FETCH_FAST if command == "fetch" else FAST


def runs_of(step: str) -> list:
    """Every MLflow run (all experiments) tagged ``hubselect.step = step``."""
    import mlflow

    return mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.`hubselect.step` = '{step}'",
                              output_format="list")


def artifacts(run) -> Path:
    """A local copy of ``run``'s artifacts."""
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id))


def predicted_labels(predicted) -> list[str]:
    """The label of each prediction of a served model: a ``label`` column of a frame, or a list."""
    labels = list(predicted["label"]) if hasattr(predicted, "columns") else list(predicted)
    assert labels, f"the model predicted nothing: {predicted!r}"
    return [str(label) for label in labels]
