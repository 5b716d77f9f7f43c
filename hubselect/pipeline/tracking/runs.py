"""Step runs, their params/metrics/artifacts, and reuse of finished steps.

The default tracking store is SQLite in the working directory (``sqlite:///mlflow.db``);
``MLFLOW_TRACKING_URI`` overrides it. MLflow 3 refuses the old file store, hence SQLite.

Robustness:

* Creating the store and the experiment holds a file lock beside a SQLite database
  (``<db>.lock``) and retries with backoff on ``database is locked``, so several first runs at
  once on a fresh store all succeed (MLflow's schema migrations must not run concurrently).
* A run ended by SIGINT or SIGTERM is marked ``KILLED`` (SIGTERM is turned into ``SystemExit``
  while a top-level step runs, so ``finally`` blocks clean up too). Each run is tagged with the
  process that runs it (``hubselect.process``: host, pid and start time); a top-level step first
  closes, as ``KILLED``, the ``RUNNING`` runs of this experiment whose process on this host is
  gone (a ``kill -9``), and marks their unfinished logged models ``FAILED``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from hubselect.core.cache import key_lock, process_alive, process_token, scratch_dir
from hubselect.core.errors import HubselectError

logger = logging.getLogger(__name__)

STEP_TAG = "hubselect.step"
PROCESS_TAG = "hubselect.process"
DEFAULT_EXPERIMENT = "hubselect"
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
T = TypeVar("T")


@dataclass
class StepOutput:
    """What a step run hands on: its run id, the local folder of its artifacts, whether a
    finished run was reused, (for ``main``) the summary the console ends with, and the answer
    the command shows (a JSON-ready dict, see ``hubselect.pipeline.steps.answers``)."""

    run_id: str
    path: Path
    reused: bool = False
    summary: str = ""
    answer: Mapping[str, Any] | None = None


def tracking_uri() -> str:
    """The tracking URI in use: ``$MLFLOW_TRACKING_URI`` or SQLite in the working directory."""
    return os.environ.get(ENV_TRACKING_URI) or f"sqlite:///{os.path.abspath('mlflow.db')}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores and in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).absolute()


def configure(experiment: str | None = None) -> str:
    """Point MLflow at :func:`tracking_uri` and an experiment; fail in one line if unusable.

    Inside ``mlflow run`` (``MLFLOW_RUN_ID`` set) the launcher's run and experiment are used;
    otherwise ``experiment``, else ``MLFLOW_EXPERIMENT_ID`` / ``MLFLOW_EXPERIMENT_NAME``, else
    ``hubselect``. On a SQLite store, creating the database and the experiment holds
    ``<db>.lock`` and is retried with backoff while the database is locked.
    """
    import mlflow

    logging.getLogger("mlflow.tracking.fluent").setLevel(logging.WARNING)  # "Creating a new experiment"
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        _probe(uri)
    mlflow.set_tracking_uri(uri)
    db = sqlite_path(uri)
    problem = _unwritable_store(db) if db is not None else None
    if problem:
        raise HubselectError(f"cannot write the MLflow tracking store at {uri}: {problem}")
    try:
        with key_lock(db) if db is not None else contextlib.nullcontext():
            used = retry_locked(lambda: _set_experiment(experiment))
    except HubselectError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise HubselectError(f"cannot use the MLflow tracking store at {uri} ({type(exc).__name__}"
                             f"{': ' + detail if detail else ''}): {_store_fix(db, exc)}") from exc
    if used is not None:
        check_artifact_folder(used.artifact_location, used.name)
    return uri


def _set_experiment(experiment: str | None) -> Any:
    import mlflow

    if experiment or not os.environ.get("MLFLOW_RUN_ID"):
        if experiment or not os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return mlflow.set_experiment(experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT)
        return mlflow.set_experiment(experiment_id=os.environ["MLFLOW_EXPERIMENT_ID"])
    return None


def current_experiment_id() -> str:
    """The id of the experiment this process logs to, read through MLflow's public API.

    In order: the active run's experiment; else ``MLFLOW_EXPERIMENT_ID`` (``mlflow.set_experiment``
    exports the experiment it sets there, as :func:`configure` does, and ``mlflow run`` passes the
    launcher's); else the experiment named by ``MLFLOW_EXPERIMENT_NAME`` (created if missing, as
    MLflow does); else MLflow's default experiment.
    """
    import mlflow
    from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME
    from mlflow.tracking.default_experiment import DEFAULT_EXPERIMENT_ID

    active = mlflow.active_run()
    if active is not None:
        return active.info.experiment_id
    if MLFLOW_EXPERIMENT_ID.get():
        return MLFLOW_EXPERIMENT_ID.get()
    name = MLFLOW_EXPERIMENT_NAME.get()
    if name:
        experiment = mlflow.get_experiment_by_name(name)
        return experiment.experiment_id if experiment is not None else mlflow.create_experiment(name)
    return DEFAULT_EXPERIMENT_ID


_WRITABLE_STORE = "or set MLFLOW_TRACKING_URI=sqlite:///<a folder you can write>/mlflow.db"


def _unwritable_store(db: Path) -> str | None:
    """Why the SQLite database ``db`` cannot be written (its filesystem, the file, or its folder,
    where SQLite writes its journal and hubselect its lock), as problem and fix; ``None`` if it can.

    Probed without changing anything: the file is opened for writing and closed, and a nameless
    temporary file is made in the folder. ``chmod`` does not stop root; these probes also see
    ``chattr +i`` and read-only mounts.
    """
    folder = db.parent
    if not folder.is_dir():
        return None  # MLflow's own error names the missing folder
    if os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1):
        return f"{folder} is on a read-only filesystem (nothing is damaged): remount it read-write, {_WRITABLE_STORE}"
    if db.is_file():
        try:
            os.close(os.open(db, os.O_RDWR))
        except OSError as exc:
            return (f"the database file {db} is read-only ({exc.strerror}; nothing is damaged): make it writable "
                    f"(chmod u+w, chown, chattr -i), {_WRITABLE_STORE}")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        return (f"its folder {folder} cannot be written ({exc.strerror}), and SQLite writes its journal there: make "
                f"the folder writable (chmod u+w, chown, chattr -i), {_WRITABLE_STORE}")
    return None


def local_artifact_folder(location: str) -> Path | None:
    """The local folder of an artifact location (a path or ``file:`` URI); ``None`` for a remote one."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(location) if not parsed.scheme or len(parsed.scheme) == 1 else None  # C:\ is a drive


def artifact_error(folder: Any, why: str, experiment: str = "") -> HubselectError:
    """The one-line error for an artifact folder that cannot be written, with the fix."""
    of = f" of experiment '{experiment}'" if experiment else ""
    return HubselectError(f"cannot write the MLflow artifacts{of} to {folder} ({why}): free space or make it writable "
                          "(chmod u+w, chown, chattr -i, or remount read-write), or run from a folder you can write "
                          "with another experiment (--experiment NAME; a new one keeps its artifacts in ./mlruns)")


def check_artifact_folder(location: str, experiment: str = "") -> None:
    """Fail in one line before any work when the local artifact folder of the experiment (or the
    first folder above it that exists) cannot be written.

    Raises:
        HubselectError: naming the folder, what is wrong and the fix.
    """
    folder = local_artifact_folder(location)
    if folder is None:
        return
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise artifact_error(existing, "a file, not a folder", experiment)
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise artifact_error(existing, exc.strerror or type(exc).__name__, experiment) from None


@contextlib.contextmanager
def artifact_errors() -> Iterator[None]:
    """Turn a refused write into the artifact folder (full, read-only, no permission) into one line."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise artifact_error(exc.filename2 or exc.filename or "the run's artifact folder",
                             exc.strerror or type(exc).__name__) from None


def _store_fix(db: Path | None, exc: BaseException | None = None) -> str:
    """What to do about an unusable store, without sending the user to the store in use."""
    if "readonly database" in str(exc) or getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"the store cannot be written (a permission problem; nothing is damaged): make {db or 'it'} and its "
                f"folder writable, {_WRITABLE_STORE}")
    default = Path("mlflow.db").absolute()
    if db is not None and db == default:
        return (f"move {db} aside (it may be from another MLflow version or damaged) to start a new "
                "store, or set MLFLOW_TRACKING_URI to another one")
    if db is not None:
        return (f"move {db} aside (it may be from another MLflow version or damaged), fix "
                "MLFLOW_TRACKING_URI, or unset it to use ./mlflow.db")
    return "start the server, fix MLFLOW_TRACKING_URI, or unset it to use ./mlflow.db"


def retry_locked(fn: Callable[[], T], attempts: int = 8, first_wait: float = 0.2) -> T:
    """Call ``fn``; retry with jittered exponential backoff while SQLite says it is locked."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - only "database is locked" is retried
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            wait = first_wait * 2 ** attempt * (1 + random.random())
            logger.info("tracking database is locked: retrying in %.1f s", wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a tracking server is down."""
    import urllib.error

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
    """Start (or resume inside ``mlflow run``) a run for ``step``; nested when a run is active.

    A top-level run first closes the runs of killed jobs (:func:`close_stale_runs`) and, for
    its duration, turns SIGTERM into ``SystemExit``. A run ended by SIGINT (``KeyboardInterrupt``)
    or SIGTERM is marked ``KILLED``; by an error, ``FAILED``.
    """
    import mlflow

    active = mlflow.active_run() is not None
    tags = {STEP_TAG: step, PROCESS_TAG: process_label()}
    if not active:
        close_stale_runs()
    with _sigterm_as_exit(enabled=not active), \
            mlflow.start_run(nested=active, run_name=run_name or step, tags=tags) as run:
        try:
            mlflow.set_tags(tags)
            # `mlflow run` has already logged the entry point's params on the run we resume, some
            # in its own spelling (an empty string as "''"): log only the others.
            logged = mlflow.get_run(run.info.run_id).data.params
            mlflow.log_params({k: v for k, v in as_params(params).items() if k not in logged})
            yield run
        except (KeyboardInterrupt, SystemExit):
            _end_killed(run.info.run_id)
            raise


def process_label() -> str:
    """``<host>:<pid>-<start>``: which process on which machine runs a run (tag ``hubselect.process``)."""
    return f"{socket.gethostname()}:{process_token()}"


def _end_killed(run_id: str) -> None:
    """End ``run_id`` (and any run still open inside it) as ``KILLED``.

    The runs open in this thread form a stack (``mlflow.active_run()`` is its top). Its top is ended
    while ``run_id`` is the top or one of its ancestors; a run outside ``run_id`` is never ended.
    """
    import mlflow

    with contextlib.suppress(Exception):  # the process is going down: never mask the signal
        while (active := mlflow.active_run()) is not None and run_id in _lineage(active.info.run_id):
            mlflow.end_run("KILLED")
            if active.info.run_id == run_id:
                logger.warning("run %s marked KILLED", run_id)
                return


def enclosing_run_ids() -> list[str]:
    """The ids of the runs the active run is nested in (its parent, then the parent's...), nearest
    first; none without an active run or for a top-level one."""
    import mlflow

    active = mlflow.active_run()
    return [] if active is None else _lineage(active.info.run_id)[1:]


def _lineage(run_id: str) -> list[str]:
    """``run_id`` and the ids of its parent runs, nearest first."""
    import mlflow

    chain = [run_id]
    while (parent := mlflow.get_parent_run(chain[-1])) is not None and parent.info.run_id not in chain:
        chain.append(parent.info.run_id)
    return chain


@contextlib.contextmanager
def _sigterm_as_exit(enabled: bool) -> Iterator[None]:
    """While the block runs (main thread only), SIGTERM raises ``SystemExit(143)``.

    The exception unwinds through the step runs (marked ``KILLED``) and every ``finally`` and
    ``atexit`` clean-up. The handler is then restored, so a second SIGTERM kills at once.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def close_stale_runs() -> int:
    """Close as ``KILLED`` this experiment's ``RUNNING`` runs whose process here is gone.

    Only runs tagged ``hubselect.process`` with this host are judged (another host's processes
    cannot be seen). Logged models still ``PENDING`` from those runs are marked ``FAILED``.
    Returns how many runs were closed.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = current_experiment_id()
    host = socket.gethostname()
    quoted = host.replace("'", "''")
    running = retry_locked(lambda: client.search_runs(
        [experiment], filter_string=f"attributes.status = 'RUNNING' and tags.`{PROCESS_TAG}` LIKE '{quoted}:%'",
        max_results=1000))
    stale = [r for r in running if r.data.tags.get(PROCESS_TAG, "").startswith(f"{host}:")
             and not process_alive(r.data.tags[PROCESS_TAG].split(":", 1)[1])]
    for run in stale:
        client.set_terminated(run.info.run_id, "KILLED")
    if stale:
        _fail_pending_models(client, experiment, {r.info.run_id for r in stale})
        logger.info("closed %d runs of killed jobs as KILLED: %s", len(stale),
                    ", ".join(f"{r.data.tags.get(STEP_TAG, '?')} {r.info.run_id}" for r in stale))
    return len(stale)


def _fail_pending_models(client: Any, experiment: str, run_ids: set[str]) -> None:
    """Mark the ``PENDING`` logged models of ``run_ids`` as ``FAILED``."""
    from mlflow.entities import LoggedModelStatus

    with contextlib.suppress(Exception):  # a store without logged models has nothing to fix
        for model in client.search_logged_models([experiment], max_results=1000):
            if model.source_run_id in run_ids and str(model.status) == LoggedModelStatus.PENDING.value:
                client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)


def find_finished(step: str, params: Mapping[str, Any]) -> Any | None:
    """The newest FINISHED run of ``step`` in the current experiment whose params equal ``params``.

    Params are compared as strings, as in MLflow's multistep example.
    """
    import mlflow

    wanted = as_params(params)
    experiment = current_experiment_id()
    runs = mlflow.search_runs([experiment], filter_string=f"tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], output_format="list", max_results=200)
    for run in runs:
        if all(run.data.params.get(k) == v for k, v in wanted.items()):
            return run
    return None


def download(run_id: str, dst: str | os.PathLike | None = None) -> Path:
    """Download all artifacts of ``run_id`` into ``dst`` (default: a new folder in this process's
    scratch, removed when the process exits)."""
    import mlflow

    dst = Path(dst or scratch_dir("download-"))
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(dst)))


def local_ref(ref: str) -> str:
    """``ref`` as a local path: ``runs:/<run id>[/<path>]`` is downloaded (that artifact, or all of
    the run's), anything else is returned as it is."""
    if not ref.startswith("runs:/"):
        return ref
    run_id, _, artifact = ref[len("runs:/"):].strip("/").partition("/")
    if not artifact:
        return str(download(run_id))
    import mlflow

    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact,
                                               dst_path=str(scratch_dir("download-")))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log numeric metrics (names sanitised for MLflow)."""
    import mlflow

    clean = {k.replace("@", "_at_"): float(v) for k, v in metrics.items() if v is not None}
    mlflow.log_metrics(clean, step=step)


def log_dir(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    """Log every file under ``path`` as artifacts."""
    import mlflow

    with artifact_errors():
        mlflow.log_artifacts(str(path), artifact_path)


def log_dataset_records(items: Any) -> None:
    """Log dataset inputs from what the catalog records about each sample, reading no sample (one store call).

    The inputs are the ones ``mlflow.data.from_pandas`` makes of the same samples read as pandas
    frames of string columns: same name, source, digest and schema, and the profile ``num_rows`` /
    ``num_elements`` from ``rows`` (10,000 candidates cost no 10,000 Parquet reads).

    Args:
        items: Iterable of ``(name, source, context, digest, columns, rows)``: ``columns`` the
            sample's (string) columns in order, ``rows`` its number of rows.
    """
    import warnings

    import mlflow
    import pandas as pd

    record, frames = _sample_record_class(), {}
    datasets, contexts = [], []
    with warnings.catch_warnings():  # a file:// source matches two equivalent resolvers
        warnings.simplefilter("ignore", UserWarning)
        for name, source, context, digest, columns, rows in items:
            columns = tuple(columns)
            empty = frames.setdefault(columns, pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}))
            shape = mlflow.data.from_pandas(empty, source=source, name=name, digest=digest)  # source and schema
            datasets.append(record(shape.source, name=name, digest=digest, schema=shape.schema,
                                   profile={"num_rows": int(rows), "num_elements": int(rows) * len(columns)}))
            contexts.append(context)
    if datasets:
        mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=[None] * len(datasets))


def _sample_record_class() -> type:
    """``mlflow.data.meta_dataset.MetaDataset`` with a profile (rows and cells) given, not computed."""
    import json

    from mlflow.data.meta_dataset import MetaDataset

    class SampleRecord(MetaDataset):
        def __init__(self, source: Any, *, name: str, digest: str, schema: Any, profile: dict[str, int]):
            self._profile = profile
            super().__init__(source, name=name, digest=digest, schema=schema)

        @property
        def profile(self) -> dict[str, int]:
            return self._profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self._profile)}

    return SampleRecord


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set run tags."""
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_child_run(parent_run_id: str, step: str, params: Mapping[str, Any], metrics: Mapping[str, float], *,
                  run_name: str, tracking_uri: str, started: float | None = None) -> str:
    """Log a finished child run of ``parent_run_id`` with explicit store and parent; returns its id.

    For work fanned out to other processes (Ray tasks): no active run or ``MLFLOW_RUN_ID`` is
    consulted, so the tree is the same whichever process logs it. ``started`` (epoch seconds)
    is when the work the run stands for began, so its duration in the UI is the work's, not
    the logging's.
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    run = client.create_run(parent.info.experiment_id, run_name=run_name,
                            start_time=None if started is None else int(started * 1000),
                            tags={MLFLOW_PARENT_RUN_ID: parent_run_id, STEP_TAG: step, MLFLOW_RUN_NAME: run_name,
                                  PROCESS_TAG: process_label()})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in as_params(params).items()],
                     metrics=[Metric(k.replace("@", "_at_"), float(v), now, 0) for k, v in metrics.items() if v is not None],
                     tags=[RunTag(STEP_TAG, step)])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def log_run_metrics(run_id: str, metrics: Mapping[str, float], *, tracking_uri: str) -> None:
    """Add metrics to a (finished) run by id."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    MlflowClient(tracking_uri).log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])


def log_table(frame: Any, artifact_file: str) -> None:
    """Log a pandas frame as an MLflow table artifact (``.json``; shown in the run's UI)."""
    import mlflow

    with artifact_errors():
        mlflow.log_table(data=frame, artifact_file=artifact_file)


def set_description(markdown: str) -> None:
    """The active run's description (the text at the top of its page in the MLflow UI)."""
    import mlflow
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

    mlflow.set_tag(MLFLOW_RUN_NOTE, markdown)


def ui_command() -> str:
    """The ``mlflow ui`` command that opens this store."""
    uri = tracking_uri()
    if uri == f"sqlite:///{os.path.abspath('mlflow.db')}":
        uri = "sqlite:///mlflow.db"
    return f"mlflow ui --backend-store-uri {uri}"
