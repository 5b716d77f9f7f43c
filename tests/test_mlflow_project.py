"""End to end: ``mlflow run . --env-manager local`` on the built-in demo catalog (no data
needed) ends with a registered ``champion`` model that serves the README's example: target label
names with calibrated probabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The README's serving example and the labels the champion must give them.
EXAMPLE = ["the kettle broke after a week", "great knife set"]
EXPECTED = ["negative", "positive"]


@pytest.mark.slow
def test_mlflow_run_registers_a_champion_that_predicts(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "HUBSELECT_CACHE_DIR": str(tmp_path / "cache"),
           # MLflow runs the entry point with `python` from PATH: this interpreter's, venv active or not
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for leaked in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(leaked, None)
    # the demo with one source, tuned on all of its 300 reviews by description matching
    params = {"k": 1, "sample_size": 100, "eval_size": 60, "max_train_examples": 300,
              "train_max_length": 64, "formulation": "description"}
    command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local",
               "--experiment-name", "hubselect"]  # as the README's command
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    _every_run_is_in_the_named_experiment(env["MLFLOW_TRACKING_URI"], "hubselect")
    predict = ("import mlflow, json, sys;"
               "m = mlflow.pyfunc.load_model('models:/hubselect-kitchen@champion');"
               "print(m.predict(json.loads(sys.argv[1])).to_json(orient='records'))")
    out = subprocess.run([sys.executable, "-c", predict, json.dumps(EXAMPLE)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    records = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["label"] for r in records] == EXPECTED
    # calibrated probabilities, not the 0.50-0.55 of uncalibrated cosines
    assert all(0.7 < r["score"] <= 1.0 for r in records), records


def _every_run_is_in_the_named_experiment(uri: str, name: str) -> None:
    """The main run, every step and every pair land in the experiment the command names; none in Default."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    steps = {r.data.tags.get("hubselect.step") for r in found}
    assert {"main", "fetch", "score", "select", "finetune", "evaluate", "register", "pair"} <= steps, steps
    default = client.get_experiment_by_name("Default")
    assert default is None or not client.search_runs([default.experiment_id])
