"""End to end: ``mlflow run . --env-manager local`` on a small slice of FDU-MTL ends with a
registered ``champion`` model that predicts the target's label names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fdu-mtl"


def slice_of(domain: str, dst: Path, n: int) -> Path:
    """The first ``n`` lines of each split of an FDU-MTL domain."""
    dst.mkdir(parents=True)
    for split in ("train", "test", "unlabeled"):
        lines = (DATA / domain / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (dst / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is absent beside the checkout")
@pytest.mark.slow
def test_mlflow_run_registers_a_champion_that_predicts(tmp_path):
    catalog = tmp_path / "catalog"
    for domain in ("kitchen_housewares", "electronics", "books"):
        slice_of(domain, catalog / domain, 80)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "HUBSELECT_CACHE_DIR": str(tmp_path / "cache")}
    for leaked in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(leaked, None)
    params = {"target": str(catalog / "kitchen_housewares"), "candidates": str(catalog), "k": 1,
              "sample_size": 60, "eval_size": 60, "max_train_examples": 60, "train_max_length": 64}
    command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local",
               "--experiment-name", "e2e"]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    predict = ("import mlflow, json;"
               "m = mlflow.pyfunc.load_model('models:/hubselect-kitchen_housewares@champion');"
               "p = m.predict(['this kettle is great , i love it', 'broke after two days , a waste of money']);"
               "print(json.dumps(list(p['label']) if hasattr(p, 'columns') else list(p)))")
    out = subprocess.run([sys.executable, "-c", predict], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    labels = out.stdout.strip().splitlines()[-1]
    assert set(eval(labels)) <= {"positive", "negative"}  # noqa: S307 - our own JSON list
