"""Step runs, their params/metrics/artifacts, and reuse of finished steps.

The default tracking store is SQLite in the working directory (``sqlite:///mlflow.db``);
``MLFLOW_TRACKING_URI`` overrides it. MLflow 3 refuses the old file store, hence SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

STEP_TAG = "hubselect.step"
DEFAULT_EXPERIMENT = "hubselect"


def tracking_uri() -> str:
    """The tracking URI in use: ``$MLFLOW_TRACKING_URI`` or SQLite in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{os.path.abspath('mlflow.db')}"


def configure(experiment: str | None = None) -> str:
    """Point MLflow at :func:`tracking_uri` and an experiment; fail in one line if unreachable.

    Inside ``mlflow run`` (``MLFLOW_RUN_ID`` set) the launcher's run and experiment are used;
    otherwise ``experiment``, else ``MLFLOW_EXPERIMENT_ID`` / ``MLFLOW_EXPERIMENT_NAME``, else
    ``hubselect``.
    """
    import mlflow

    logging.getLogger("mlflow.tracking.fluent").setLevel(logging.WARNING)  # "Creating a new experiment"
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        _probe(uri)
    mlflow.set_tracking_uri(uri)
    try:
        if experiment or not os.environ.get("MLFLOW_RUN_ID"):
            if experiment or not os.environ.get("MLFLOW_EXPERIMENT_ID"):
                mlflow.set_experiment(experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT)
            else:
                mlflow.set_experiment(experiment_id=os.environ["MLFLOW_EXPERIMENT_ID"])
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        raise HubselectError(f"cannot use the MLflow tracking store at {uri} ({type(exc).__name__}): "
                             "start the server, fix MLFLOW_TRACKING_URI, or unset it to use ./mlflow.db") from exc
    return uri


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a tracking server is down."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answered: a server (or a proxy) is there
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HubselectError(f"cannot reach the MLflow tracking server at {uri} ({reason}): start it "
                             "(mlflow server --workers 1), fix MLFLOW_TRACKING_URI, or unset it to use ./mlflow.db") from None


def as_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow stores them (strings; booleans lower-case) for logging and comparison."""
    return {k: (str(v).lower() if isinstance(v, bool) else "" if v is None else str(v)) for k, v in params.items()}


@contextlib.contextmanager
def step_run(step: str, params: Mapping[str, Any], *, run_name: str | None = None) -> Iterator[Any]:
    """Start (or resume inside ``mlflow run``) a run for ``step``; nested when a run is active."""
    import mlflow

    active = mlflow.active_run() is not None
    with mlflow.start_run(nested=active, run_name=run_name or step, tags={STEP_TAG: step}) as run:
        mlflow.set_tag(STEP_TAG, step)
        # `mlflow run` has already logged the entry point's params on the run we resume, some in
        # its own spelling (an empty string as "''"): log only the others.
        logged = mlflow.get_run(run.info.run_id).data.params
        mlflow.log_params({k: v for k, v in as_params(params).items() if k not in logged})
        yield run


def find_finished(step: str, params: Mapping[str, Any]) -> Any | None:
    """The newest FINISHED run of ``step`` in the current experiment whose params equal ``params``.

    Params are compared as strings, as in MLflow's multistep example.
    """
    import mlflow

    wanted = as_params(params)
    experiment = mlflow.tracking.fluent._get_experiment_id()
    runs = mlflow.search_runs([experiment], filter_string=f"tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], output_format="list", max_results=200)
    for run in runs:
        if all(run.data.params.get(k) == v for k, v in wanted.items()):
            return run
    return None


def download(run_id: str, dst: str | os.PathLike | None = None) -> Path:
    """Download all artifacts of ``run_id`` into ``dst`` (a new temp dir by default)."""
    import mlflow

    dst = Path(dst or tempfile.mkdtemp(prefix="hubselect-"))
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(dst)))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log numeric metrics (names sanitised for MLflow)."""
    import mlflow

    clean = {k.replace("@", "_at_"): float(v) for k, v in metrics.items() if v is not None}
    mlflow.log_metrics(clean, step=step)


def log_dir(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    """Log every file under ``path`` as artifacts."""
    import mlflow

    mlflow.log_artifacts(str(path), artifact_path)


def log_dataset(frame: Any, *, name: str, source: str, context: str, digest: str | None = None) -> None:
    """Log ``frame`` (a pandas sample) as an MLflow dataset input named ``name``."""
    import warnings

    import mlflow

    with warnings.catch_warnings():  # a file:// source matches two equivalent resolvers
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest)
    mlflow.log_input(dataset, context=context)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set run tags."""
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_child_run(parent_run_id: str, step: str, params: Mapping[str, Any], metrics: Mapping[str, float], *,
                  run_name: str, tracking_uri: str) -> str:
    """Log a finished child run of ``parent_run_id`` with explicit store and parent; returns its id.

    For work fanned out to other processes (Ray tasks): no active run or ``MLFLOW_RUN_ID`` is
    consulted, so the tree is the same whichever process logs it.
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
    from mlflow.utils.time import get_current_time_millis

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    run = client.create_run(parent.info.experiment_id, run_name=run_name,
                            tags={MLFLOW_PARENT_RUN_ID: parent_run_id, STEP_TAG: step, MLFLOW_RUN_NAME: run_name})
    now = get_current_time_millis()
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in as_params(params).items()],
                     metrics=[Metric(k.replace("@", "_at_"), float(v), now, 0) for k, v in metrics.items() if v is not None],
                     tags=[RunTag(STEP_TAG, step)])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def log_run_metrics(run_id: str, metrics: Mapping[str, float], *, tracking_uri: str) -> None:
    """Add metrics to a (finished) run by id."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    MlflowClient(tracking_uri).log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
