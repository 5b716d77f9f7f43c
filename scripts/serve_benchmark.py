"""Serving benchmark: rows/s of a logged hubselect model, from the encoder to ``mlflow models serve``.

For each formulation (``description``: the bundled all-MiniLM-L6-v2 as the untuned baseline;
``head``: the same encoder with a classification head tuned briefly on FDU-MTL books), the model
is logged with :func:`hubselect.pipeline.tracking.models.log_model` (both from code, through
``hubselect/pipeline/tracking/served_model.py``) to a fresh SQLite MLflow store in a temporary folder, and
the same ``--rows`` FDU-MTL reviews are classified three ways:

- ``encoder``: hubselect's classifier on the model folder (the encoder's rate, the ceiling);
- ``pyfunc``: ``mlflow.pyfunc.load_model(uri).predict(texts)`` (loading not timed);
- ``served``: one ``{"inputs": [...]}`` request of all the rows to ``mlflow models serve`` (one
  worker, ``--env-manager local``, the request timeout raised to ``--timeout`` so it completes).

From the served rate it derives the rows one request can hold within MLflow's default 60 s limit
(``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``). This is a benchmark, not a test: it asserts nothing.
It prints a Markdown table and writes every number, the hardware and the load average before and
after each measurement to ``--output``. Numbers from a machine that is busy with other work are
not the tool's speed: check the load average columns.

Usage (from the repository root, ``../shared/data`` beside the checkout)::

    python scripts/serve_benchmark.py --rows 10000 --output /tmp/serve_benchmark.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdu-mtl"
DEFAULT_TIMEOUT_S = 60
NAMES = ["negative", "positive"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``argv`` without the program name; ``None`` reads ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10000, help="texts classified per measurement (default 10000)")
    parser.add_argument("--formulations", default="description,head",
                        help="comma-separated, among description and head (default: both)")
    parser.add_argument("--max-length", type=int, default=128, help="token limit per text (default 128)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in this process (default: torch's)")
    parser.add_argument("--timeout", type=int, default=3600,
                        help="request timeout of the benchmark's server, in s (default 3600)")
    parser.add_argument("--output", type=Path, help="write every number to this JSON file")
    return parser.parse_args(argv)


def read_texts(rows: int) -> list[str]:
    """``rows`` FDU-MTL reviews, taken in turn from every domain's unlabeled split."""
    files = sorted(DATA.glob("*/unlabeled.jsonl"))
    if not files:
        sys.exit(f"serve_benchmark: no FDU-MTL data under {DATA}: put ../shared/data beside the checkout")
    per_domain = [[json.loads(line)["text"] for line in f.open(encoding="utf-8")] for f in files]
    texts: list[str] = []
    for i in range(max(len(d) for d in per_domain)):
        texts += [d[i] for d in per_domain if i < len(d)]
        if len(texts) >= rows:
            return texts[:rows]
    return [texts[i % len(texts)] for i in range(rows)]


def hardware() -> dict[str, Any]:
    """CPU model, cores, torch threads and GPU of this machine."""
    import torch

    cpu = platform.processor()
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def timed(rows: int, run: Callable[[], Any]) -> dict[str, Any]:
    """Run ``run`` once; its seconds, rows/s and the 1-minute load average before and after."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2), "result": result}


def log_models(tmp: Path, formulations: list[str], max_length: int) -> dict[str, tuple[str, str]]:
    """Log each formulation's model; ``{formulation: (model folder, model URI)}``."""
    import mlflow

    from hubselect.data.encoder import resolve_model
    from hubselect.models.training import FinetuneConfig, finetune
    from hubselect.pipeline.tracking.models import log_model

    experiment = mlflow.create_experiment("serve-benchmark", artifact_location=(tmp / "artifacts").as_uri())
    out = {}
    for formulation in formulations:
        if formulation == "head":
            rows = [json.loads(line) for line in (DATA / "books" / "train.jsonl").open(encoding="utf-8")][:64]
            model = finetune("books", None, [r["text"] for r in rows], [r["label"] for r in rows], NAMES,
                             FinetuneConfig(epochs=1, max_length=max_length, patience=0),
                             formulation="head", progress=False)
        else:
            model = resolve_model()
        with mlflow.start_run(experiment_id=experiment):
            info = log_model(model, NAMES, max_length=max_length, input_example=["a fine book"])
        out[formulation] = (str(model.path), info.model_uri)
    return out


def post(port: int, body: Any, timeout: float) -> tuple[int, Any]:
    """``(status, JSON answer)`` of a POST to the server's /invocations."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")[:300]


def serve(uri: str, tmp: Path, timeout: int) -> tuple[subprocess.Popen, int]:
    """Start ``mlflow models serve`` of ``uri`` (one worker); its process and port once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT=str(timeout),
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    log = (tmp / f"serve-{port}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                             "-p", str(port), "-h", "127.0.0.1", "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.5)
    stop(proc)
    sys.exit(f"serve_benchmark: the server did not start; see {log.name}")


def stop(proc: subprocess.Popen) -> None:
    """End the server's process group."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def measure(folder: str, uri: str, texts: list[str], args: argparse.Namespace,
            tmp: Path) -> dict[str, Any]:
    """The three rates of one formulation (see the module docstring)."""
    import mlflow

    from hubselect.models.zeroshot import load_classifier

    rows = len(texts)
    classifier = load_classifier(folder, NAMES, max_length=args.max_length)
    classifier.scores(texts[:64])  # warm-up
    out = {"encoder": timed(rows, lambda: len(classifier.scores(texts)))}
    model = mlflow.pyfunc.load_model(uri)
    model.predict(texts[:64])
    out["pyfunc"] = timed(rows, lambda: len(model.predict(texts)))
    proc, port = serve(uri, tmp, args.timeout)
    try:
        post(port, {"inputs": texts[:64]}, args.timeout)
        out["served"] = timed(rows, lambda: post(port, {"inputs": texts}, args.timeout + 60)[0])
    finally:
        stop(proc)
    return out


def fits(rows_per_s: float) -> int:
    """Rows one request can hold within MLflow's default timeout at this rate."""
    return int(rows_per_s * DEFAULT_TIMEOUT_S)


def report(results: dict[str, dict[str, Any]], machine: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown table of every rate."""
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, torch threads {machine['torch_threads']}, "
             f"GPU {machine['gpu'] or 'none'}; {args.rows} rows, max_length {args.max_length}.", "",
             "| model | way | rows | seconds | rows/s | load before → after | answer (rows, or HTTP status) |",
             "|---|---|---|---|---|---|---|"]
    for formulation, rates in results.items():
        for way, r in rates.items():
            lines.append(f"| {formulation} | {way} | {r['rows']} | {r['seconds']} | {r['rows_per_s']} | "
                         f"{r['load_before']} → {r['load_after']} | {r['result']} |")
    lines.append("")
    for formulation, rates in results.items():
        served = rates["served"]["rows_per_s"]
        lines.append(f"{formulation}: served at {served} rows/s, one request fits about {fits(served)} rows in "
                     f"MLflow's default {DEFAULT_TIMEOUT_S} s; served/encoder = "
                     f"{served / rates['encoder']['rows_per_s']:.2f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Log, load, serve and time; print the table and write the JSON."""
    args = parse_args(argv)
    import mlflow
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    formulations = [f.strip() for f in args.formulations.split(",") if f.strip()]
    texts = read_texts(args.rows)
    machine = hardware()
    with tempfile.TemporaryDirectory(prefix="serve-benchmark-") as folder:
        tmp = Path(folder)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.environ["HUBSELECT_CACHE_DIR"] = str(tmp / "cache")  # the head's tune: never a user's cache
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        models = log_models(tmp, formulations, args.max_length)
        results = {f: measure(*models[f], texts, args, tmp) for f in formulations}
    table = report(results, machine, args)
    print(table)
    if args.output:
        args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine,
                                           "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
