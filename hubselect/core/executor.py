"""Fan independent work out: in this process (the default) or as Ray tasks.

One small interface, two engines::

    ex = make_executor("ray", gpus_per_job=0.25)
    ref = ex.put(big_read_only_input)          # once into Ray's object store
    results = ex.map(work, items, ref)         # work(item, big_read_only_input), in item order

* ``local`` runs ``fn`` over the items one after the other in this process and never imports
  Ray; :meth:`LocalExecutor.put` returns the object itself.
* ``ray`` runs each item as a plain Ray task (``@ray.remote`` with ``num_gpus=gpus_per_job`` and
  ``num_cpus=cpus_per_job``). On first use it starts a local Ray instance with ``ray.init()``
  unless Ray is already initialised, and joins a cluster when ``RAY_ADDRESS`` is set. Each task
  limits torch to ``torch_threads`` threads (default: ``cpus_per_job`` rounded, at least 1), so
  two tasks on a 2-core machine don't oversubscribe it, gets the driver's cache and tracking
  environment (:data:`FORWARDED_ENV`), and drops an inherited ``MLFLOW_RUN_ID``. ``fn`` must be
  a top-level (picklable) function; arguments passed to :meth:`map` after the items are handed
  to every call, each put into the object store once (not once per task).

Both engines return results in the order of the items, and both raise the first failing item's
exception (a :class:`~hubselect.core.errors.HubselectError` from a worker keeps its one-line message).
The steps use the executor set with :func:`use` (the CLI's ``--engine``), :func:`current`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Any, Callable, Iterable, Iterator

from hubselect.core.errors import HubselectError

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install -e '.[ray]'"

#: Environment handed from the driver to every task (workers outlive a driver's env changes).
FORWARDED_ENV = ("HUBSELECT_CACHE_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "HF_ENDPOINT",
                 "HF_HUB_OFFLINE", "HF_HOME", "HF_DATASETS_CACHE", "HF_HUB_CACHE", "XDG_CACHE_HOME")


class LocalExecutor:
    """Run the work sequentially in this process (the default engine)."""

    engine = "local"
    workers = 1

    def put(self, obj: Any) -> Any:
        """Return ``obj`` unchanged (there is no object store to put it in)."""
        return obj

    def get(self, ref: Any) -> Any:
        """Return ``ref`` unchanged (the counterpart of :meth:`put`)."""
        return ref

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *shared: Any) -> list[Any]:
        """Return ``[fn(item, *shared) for item in items]``, drawing the items lazily."""
        return [fn(item, *shared) for item in items]

    def shutdown(self) -> None:
        """Nothing to release."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HubselectError(f"engine=ray needs Ray, which is not installed: run {RAY_INSTALL} "
                             "(or use --engine local)") from None
    return ray


def driver_env() -> dict[str, str]:
    """The driver's values of :data:`FORWARDED_ENV` (absent names are left out)."""
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def _run_task(fn: Callable[..., Any], item: Any, threads: int, env: dict[str, str], *shared: Any) -> Any:
    """Body of every Ray task: the driver's env, one torch thread budget, no inherited MLflow run."""
    for name in FORWARDED_ENV:
        if name in env:
            os.environ[name] = env[name]
        else:
            os.environ.pop(name, None)
    # With MLFLOW_RUN_ID set, start_run(parent_run_id=...) would resume the parent, not nest.
    os.environ.pop("MLFLOW_RUN_ID", None)
    import torch

    torch.set_num_threads(threads)
    return fn(item, *shared)


class RayExecutor:
    """Run each item as a Ray task, with fractional GPUs and a CPU count per task.

    Args:
        gpus_per_job: GPUs reserved per task (fractions pack several tasks on one GPU).
        cpus_per_job: CPUs reserved per task.
        torch_threads: torch threads in each task (0 = ``cpus_per_job`` rounded, at least 1).
        max_retries: Ray retries of a task whose worker died (not of a raised exception).
        max_in_flight: Tasks submitted at once; further items are drawn as tasks finish.
        init_kwargs: Extra keyword arguments to ``ray.init`` when this executor starts Ray.
    """

    engine = "ray"

    def __init__(self, *, gpus_per_job: float = 0.0, cpus_per_job: float = 1.0, torch_threads: int = 0,
                 max_retries: int = 1, max_in_flight: int = 64, init_kwargs: dict[str, Any] | None = None):
        self.ray = _import_ray()
        self.gpus_per_job, self.cpus_per_job = gpus_per_job, cpus_per_job
        self.torch_threads = torch_threads or max(1, int(round(cpus_per_job)))
        self.max_retries, self.max_in_flight = max_retries, max(1, max_in_flight)
        self.init_kwargs = init_kwargs
        self._started = False
        self._remote: Any = None
        check_cluster_tracking(os.environ.get("RAY_ADDRESS", ""), os.environ.get("MLFLOW_TRACKING_URI", ""))

    @property
    def workers(self) -> int:
        """How many tasks the cluster can run at once with these resources (starts Ray)."""
        self._connect()
        total = self.ray.cluster_resources()
        fits = [total.get("CPU", 0) / self.cpus_per_job if self.cpus_per_job else math.inf,
                total.get("GPU", 0) / self.gpus_per_job if self.gpus_per_job else math.inf]
        return max(1, int(min(fits))) if min(fits) != math.inf else 1

    def _connect(self) -> Any:
        """Start or join Ray on first use (so a run that fans nothing out never starts it)."""
        if self._remote is None:
            if not self.ray.is_initialized():
                self.ray.init(**_init_kwargs(self.init_kwargs))
                self._started = True
            nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
            check_cluster_tracking("" if nodes <= 1 else f"{nodes} nodes", os.environ.get("MLFLOW_TRACKING_URI", ""))
            self._remote = self.ray.remote(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job,
                                           max_retries=self.max_retries)(_run_task)
        return self._remote

    def put(self, obj: Any) -> Any:
        """Put ``obj`` into Ray's object store once; pass the returned ref to :meth:`map`."""
        self._connect()
        return self.ray.put(obj)

    def get(self, ref: Any) -> Any:
        """Fetch an object put with :meth:`put` (or any ``ObjectRef``)."""
        return self.ray.get(ref)

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *shared: Any) -> list[Any]:
        """Run ``fn(item, *shared)`` for every item as Ray tasks; results in item order.

        Items are drawn from ``items`` lazily, at most ``max_in_flight`` tasks at a time, so a
        generator of large items is never materialised whole.
        """
        remote = self._connect()
        shared = tuple(s if isinstance(s, self.ray.ObjectRef) else self.ray.put(s) for s in shared)
        env = driver_env()
        results: dict[int, Any] = {}
        pending: dict[Any, int] = {}
        try:
            for index, item in enumerate(items):
                if len(pending) >= self.max_in_flight:
                    self._collect(pending, results)
                pending[remote.remote(fn, item, self.torch_threads, env, *shared)] = index
            while pending:
                self._collect(pending, results)
        except self.ray.exceptions.RayTaskError as exc:
            for ref in pending:
                self.ray.cancel(ref)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HubselectError):
                raise type(cause)(str(cause)) from None  # the worker's one-line message, no Ray traceback
            raise
        return [results[i] for i in range(len(results))]

    def _collect(self, pending: dict[Any, int], results: dict[int, Any]) -> None:
        done, _ = self.ray.wait(list(pending), num_returns=1)
        for ref in done:
            results[pending.pop(ref)] = self.ray.get(ref)

    def shutdown(self) -> None:
        """Stop Ray if this executor started it."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started, self._remote = False, None


def check_cluster_tracking(cluster: str, uri: str) -> None:
    """Refuse a file-based MLflow store when tasks may run on other machines.

    Args:
        cluster: ``RAY_ADDRESS`` (or a description of a multi-node cluster); empty, ``local``,
            ``auto`` or a loopback address means this machine only (a cluster found behind
            ``auto`` is caught by its node count once connected).
        uri: ``MLFLOW_TRACKING_URI`` (empty means the default ``sqlite:///mlflow.db``).

    Raises:
        HubselectError: a remote cluster with a tracking URI that is not ``http(s)://``.
    """
    host = cluster.split("://")[-1].rsplit(":", 1)[0].strip()
    if host in ("", "local", "localhost", "127.0.0.1", "auto"):
        return
    if not (uri or "sqlite:").startswith(("http://", "https://")):
        raise HubselectError(f"engine=ray on a cluster ({cluster}) needs an MLflow tracking server, not "
                             f"'{uri or 'sqlite:///mlflow.db'}': start `mlflow server` and set "
                             "MLFLOW_TRACKING_URI=http://<host>:<port> for the driver and every worker")


def _init_kwargs(extra: dict[str, Any] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False  # a local instance: no dashboard server to start
    kwargs.update(extra or {})
    return kwargs


def make_executor(engine: str = "local", *, gpus_per_job: float = 0.0, cpus_per_job: float = 1.0,
                  torch_threads: int = 0, init_kwargs: dict[str, Any] | None = None) -> LocalExecutor | RayExecutor:
    """Return the executor for ``engine`` (``local`` or ``ray``).

    Args:
        engine: ``local`` (sequential, in process; never imports Ray) or ``ray``.
        gpus_per_job: GPUs per Ray task, e.g. 0.25 to pack four MiniLM tunes on one GPU.
        cpus_per_job: CPUs per Ray task.
        torch_threads: torch threads per Ray task (0 = ``cpus_per_job`` rounded, at least 1).
        init_kwargs: Extra ``ray.init`` keyword arguments (tests pass ``num_cpus``/``num_gpus``).

    Raises:
        HubselectError: an unknown engine, bad resources, Ray missing for ``engine=ray``, or a
            remote ``RAY_ADDRESS`` with a file-based tracking store.
    """
    check_engine_args(engine, gpus_per_job, cpus_per_job)
    if engine == "local":
        return LocalExecutor()
    return RayExecutor(gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, torch_threads=torch_threads,
                       init_kwargs=init_kwargs)


def check_engine_args(engine: str, gpus_per_job: float, cpus_per_job: float) -> None:
    """Validate the engine options with one-line errors naming the option and the fix."""
    if engine not in ENGINES:
        raise HubselectError(f"unknown engine '{engine}': choose from {', '.join(ENGINES)}")
    for name, value in (("--gpus-per-job", gpus_per_job), ("--cpus-per-job", cpus_per_job)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise HubselectError(f"{name} must be a number >= 0, got {value!r}")
    if cpus_per_job == 0 and gpus_per_job == 0 and engine == "ray":
        raise HubselectError("--cpus-per-job and --gpus-per-job are both 0: give each Ray task some CPU or GPU")


_current: list[Any] = []


def current() -> LocalExecutor | RayExecutor:
    """The executor set by :func:`use` (the CLI's ``--engine``), else a :class:`LocalExecutor`."""
    return _current[-1] if _current else LocalExecutor()


@contextlib.contextmanager
def use(executor: LocalExecutor | RayExecutor) -> Iterator[LocalExecutor | RayExecutor]:
    """Make ``executor`` the one :func:`current` returns inside the block; shut it down after."""
    _current.append(executor)
    try:
        yield executor
    finally:
        _current.pop()
        executor.shutdown()


def executor_from_args(args: Any) -> LocalExecutor | RayExecutor:
    """The executor the parsed ``--engine``, ``--gpus-per-job`` and ``--cpus-per-job`` options ask for."""
    return make_executor(args.engine, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job)
