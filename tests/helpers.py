"""Helpers shared by the test modules (import them from here, never from another test module).

``FETCH_FAST``/``FAST`` are the CLI flags that keep the demo runs small; :func:`runs_of` and
:func:`artifacts` read what a CLI step logged to the test's MLflow store; :func:`model_server` serves a
logged model with ``mlflow models serve`` and :func:`invoke` sends it a request.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

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


@contextlib.contextmanager
def model_server(model_uri: str, tracking_uri: str, log_dir: Path) -> Iterator[int]:
    """``mlflow models serve`` of ``model_uri`` (one worker, ``--env-manager local``) in a subprocess;
    yields its port once it answers /ping, and ends its process group after. Its output goes to
    ``log_dir/serve-<port>.log``, whose tail a failed start reports."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # mlflow starts `uvicorn` from PATH: the interpreter's own bin folder, even if not activated
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri,
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    log_path = Path(log_dir) / f"serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
                                 "local", "-p", str(port), "-h", "127.0.0.1", "--workers", "1"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while invoke(port, None) is None:
                assert proc.poll() is None, log_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "the model server did not answer /ping within 180 s"
                time.sleep(0.5)
            yield port
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def invoke(port: int, body: dict | None) -> tuple[int, dict] | None:
    """``(status, JSON)`` of a POST of ``body`` to a model server's /invocations (of GET /ping when
    ``body`` is None); None while the server does not listen yet."""
    url = f"http://127.0.0.1:{port}/" + ("ping" if body is None else "invocations")
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()) if body is not None else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError, OSError):
        if body is None:
            return None
        raise
