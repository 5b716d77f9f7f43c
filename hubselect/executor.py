"""Fan independent work out: in this process (the default) or as Ray tasks.

One small interface, two engines::

    ex = make_executor("ray", gpus_per_job=0.25)
    ref = ex.put(big_read_only_input)          # once into Ray's object store
    results = ex.map(work, items, ref)         # work(item, big_read_only_input), in item order

* ``local`` runs ``fn`` over the items one after the other in this process and never imports
  Ray; :meth:`LocalExecutor.put` returns the object itself.
* ``ray`` runs each item as a plain Ray task (``@ray.remote`` with ``num_gpus=gpus_per_job`` and
  ``num_cpus=cpus_per_job``). It starts a local Ray instance with ``ray.init()`` unless Ray is
  already initialised, and joins a cluster when ``RAY_ADDRESS`` is set. Each worker limits torch
  to ``torch_threads`` threads (default: ``cpus_per_job`` rounded, at least 1), so two workers on
  a 2-core machine don't oversubscribe it. ``fn`` must be a top-level (picklable) function;
  arguments passed to :meth:`map` after the items (``ObjectRef``s from :meth:`put` included) are
  handed to every call, a ref resolved by Ray, once per worker node rather than once per task.

Both engines return results in the order of the items, and both raise the first failing item's
exception (a :class:`~hubselect.errors.HubselectError` from a worker keeps its one-line message).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Callable, Iterable, Sequence

from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install -e '.[ray]'"


class LocalExecutor:
    """Run the work sequentially in this process (the default engine)."""

    engine = "local"

    def put(self, obj: Any) -> Any:
        """Return ``obj`` unchanged (there is no object store to put it in)."""
        return obj

    def get(self, ref: Any) -> Any:
        """Return ``ref`` unchanged (the counterpart of :meth:`put`)."""
        return ref

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *shared: Any) -> list[Any]:
        """Return ``[fn(item, *shared) for item in items]``."""
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


#: Environment handed from the driver to every task (workers outlive a driver's env changes).
FORWARDED_ENV = ("HUBSELECT_CACHE_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "HF_ENDPOINT",
                 "HF_HUB_OFFLINE", "HF_HOME", "HF_DATASETS_CACHE", "HF_HUB_CACHE", "XDG_CACHE_HOME")


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
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return fn(item, *shared)


class RayExecutor:
    """Run each item as a Ray task, with fractional GPUs and a CPU count per task.

    Args:
        gpus_per_job: GPUs reserved per task (fractions pack several tasks on one GPU).
        cpus_per_job: CPUs reserved per task.
        torch_threads: torch threads in each task (0 = ``cpus_per_job`` rounded, at least 1).
        max_retries: Ray retries of a task whose worker died (not of a raised exception).
        init_kwargs: Extra keyword arguments to ``ray.init`` when this executor starts Ray.
    """

    engine = "ray"

    def __init__(self, *, gpus_per_job: float = 0.0, cpus_per_job: float = 1.0, torch_threads: int = 0,
                 max_retries: int = 1, init_kwargs: dict[str, Any] | None = None):
        self.ray = _import_ray()
        self.gpus_per_job, self.cpus_per_job = gpus_per_job, cpus_per_job
        self.torch_threads = torch_threads or max(1, int(round(cpus_per_job)))
        self._started = False
        if not self.ray.is_initialized():
            self.ray.init(**_init_kwargs(init_kwargs))
            self._started = True
        self._remote = self.ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job,
                                       max_retries=max_retries)(_run_task)

    def put(self, obj: Any) -> Any:
        """Put ``obj`` into Ray's object store once; pass the returned ref to :meth:`map`."""
        return self.ray.put(obj)

    def get(self, ref: Any) -> Any:
        """Fetch an object put with :meth:`put` (or any ``ObjectRef``)."""
        return self.ray.get(ref)

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *shared: Any) -> list[Any]:
        """Run ``fn(item, *shared)`` for every item as Ray tasks; results in item order."""
        items = list(items)
        if not items:
            return []
        # Each shared argument goes to the object store once, not once per task.
        shared = tuple(s if isinstance(s, self.ray.ObjectRef) else self.ray.put(s) for s in shared)
        env = driver_env()
        refs = [self._remote.remote(fn, item, self.torch_threads, env, *shared) for item in items]
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HubselectError):
                raise type(cause)(str(cause)) from None  # the worker's one-line message, no Ray traceback
            raise

    def shutdown(self) -> None:
        """Stop Ray if this executor started it."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


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
        HubselectError: an unknown engine, bad resources, or Ray missing for ``engine=ray``.
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


def chunks(items: Sequence[Any], n: int) -> list[list[Any]]:
    """Split ``items`` into at most ``n`` contiguous, nearly equal chunks (order kept)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(list(items[start:end]))
        start = end
    return [c for c in out if c]
