"""Faults a real user meets: concurrent first runs, corrupt cache entries, killed jobs, litter.

Real processes (subprocess) and signals, real MLflow (SQLite in a temp dir), the tiny random BERT
of tests/modelkit.py and the demo catalog.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import artifacts, runs_of
from modelkit import NAMES, make_tiny_model, toy_data

import hubselect
from hubselect.cli import main

ROOT = Path(hubselect.__file__).resolve().parent.parent  # what child processes import


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


def child_env(tmp_path: Path, cache: Path, **extra: str) -> dict[str, str]:
    """Environment of a hubselect process: its own store, cache and TMPDIR under ``tmp_path``."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTEST_CURRENT_TEST"}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", HUBSELECT_CACHE_DIR=str(cache),
               TMPDIR=str(tmp_path / "tmp"), PYTHONPATH=str(ROOT), **extra)
    return env


def leftovers(tmp_dir: Path) -> list[str]:
    """What hubselect left in a TMPDIR: scratch folders of processes and ``hubselect-*`` folders."""
    scratch = tmp_dir / "hubselect-scratch"
    found = [str(p) for p in scratch.iterdir()] if scratch.exists() else []
    return found + [str(p) for p in tmp_dir.glob("hubselect-*") if p != scratch]


def cache_temporaries(cache: Path) -> list[str]:
    """Temporary files and folders (``.<name>.tmp-<pid>-...``) anywhere in the cache."""
    return [str(p) for p in cache.rglob(".*tmp-*")]


# --------------------------------------------------------------------------------------------
# 3. concurrent first runs on a fresh SQLite store
# --------------------------------------------------------------------------------------------

PROBE = """
import sys
from hubselect.pipeline.tracking import runs

runs.configure()
with runs.step_run("probe", {"worker": sys.argv[1]}):
    runs.log_metrics({"x": 1.0})
"""


def test_eight_first_runs_at_once_on_a_fresh_store_all_succeed(tmp_path):
    from mlflow.tracking import MlflowClient

    env = child_env(tmp_path, tmp_path / "cache")
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, str(i)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(8)]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0] * 8, [err.strip().splitlines()[-1:] for _, err in results]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])  # the store works afterwards
    experiment = client.get_experiment_by_name("hubselect")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["worker"] for r in runs) == [str(i) for i in range(8)]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert client.create_run(experiment.experiment_id).info.status == "RUNNING"


def test_unusable_default_store_names_the_file_without_sending_the_user_back_to_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "mlflow.db").write_bytes(b"this is not a SQLite database\n" * 200)
    assert main(["fetch", "--target", "demo:kitchen", "--candidates", "demo:books", "--quiet",
                 "--sample-size", "20", "--target-sample-size", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hubselect: error: cannot use the MLflow tracking store"), err
    assert str(tmp_path / "mlflow.db") in err[0] and "move" in err[0]
    assert "unset it to use ./mlflow.db" not in err[0]


# --------------------------------------------------------------------------------------------
# 4. corrupt cache entries are discarded with a warning naming them, and recomputed
# --------------------------------------------------------------------------------------------

def score_args(tiny: str) -> list[str]:
    return ["score", "--target", "demo:kitchen", "--candidates", "demo:books,demo:news", "--quiet",
            "--sample-size", "40", "--target-sample-size", "40", "--embedding-model", tiny,
            "--embed-examples", "16", "--max-length", "32", "--measures", "js,centroid_cosine"]


def test_corrupt_cache_entries_are_discarded_named_and_recomputed(tracking, tiny, _hubselect_cache, caplog):
    assert main(score_args(tiny)) == 0
    first = pd.read_csv(artifacts(runs_of("score")[0]) / "scores.csv", index_col=0)
    cache = _hubselect_cache
    victims = {"embeddings": sorted((cache / "embeddings").glob("*.npy"))[0],
               "terms": sorted((cache / "terms").glob("*.json"))[0],
               "sample parquet": sorted((cache / "samples").glob("*.parquet"))[0],
               "sample json": sorted((cache / "samples").glob("*.json"))[0]}
    for path in victims.values():
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    Path(f"{victims['terms']}.sha256").unlink()  # an entry without a checksum: caught by its parse
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hubselect"):
        assert main(score_args(tiny)) == 0
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for kind, path in victims.items():
        assert f"discarding corrupt cache entry {path}" in warned, kind
    second = pd.read_csv(artifacts(runs_of("score")[0]) / "scores.csv", index_col=0)
    pd.testing.assert_frame_equal(first, second)  # recomputed, same numbers
    assert np.load(victims["embeddings"]).ndim == 2 and json.loads(victims["terms"].read_text())
    assert len(pd.read_parquet(victims["sample parquet"])) and json.loads(victims["sample json"].read_text())


def test_a_flipped_byte_fails_the_checksum(tmp_path, caplog):
    from hubselect.core.cache import read_entry, write_entry

    path = write_entry(tmp_path / "entry.json", json.dumps({"the": 3, "kettle": 2}).encode())
    assert read_entry(path, json.loads) == {"the": 3, "kettle": 2}
    path.write_bytes(path.read_bytes().replace(b"3", b"7"))  # same size, still valid JSON
    with caplog.at_level(logging.WARNING, logger="hubselect"):
        assert read_entry(path, json.loads) is None
    assert "checksum mismatch" in caplog.text and str(path) in caplog.text
    assert not path.exists() and not Path(f"{path}.sha256").exists()


def test_a_truncated_tuned_model_is_retrained(tiny, _hubselect_cache, caplog):
    from hubselect.models.training import FinetuneConfig, finetune

    texts, labels = toy_data(40, seed=1)
    config = FinetuneConfig(model=tiny, max_length=32, max_train_examples=30)
    first = finetune("toy", "r1", texts, labels, NAMES, config, formulation="head", progress=False)
    assert first.examples_used == 30  # at most max_train_examples, not the 40 given
    weights = Path(first.path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="hubselect"):
        again = finetune("toy", "r1", texts, labels, NAMES, config, formulation="head", progress=False)
    assert not again.from_cache and again.path == first.path
    assert f"discarding corrupt cache entry {first.path}" in caplog.text
    assert finetune("toy", "r1", texts, labels, NAMES, config, formulation="head", progress=False).from_cache


TUNE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from modelkit import NAMES, toy_data
from hubselect.models.training import FinetuneConfig, finetune

texts, labels = toy_data(120, seed=2)
config = FinetuneConfig(model=sys.argv[1], max_length=32, epochs=2, batch_size=8)
ready = Path(sys.argv[2])
(ready / sys.argv[4]).touch()
while len(list(ready.iterdir())) < 2:  # both processes start tuning at the same moment
    time.sleep(0.01)
tuned = finetune("toy", "r1", texts, labels, NAMES, config, formulation="description", progress=False)
print(json.dumps({"from_cache": tuned.from_cache, "path": tuned.path}))
"""


@pytest.mark.slow
def test_two_processes_wanting_one_tuned_model_tune_it_once(tmp_path, tiny):
    ready = tmp_path / "ready"
    ready.mkdir()
    env = child_env(tmp_path, tmp_path / "cache")
    procs = [subprocess.Popen([sys.executable, "-c", TUNE, tiny, str(ready), str(Path(__file__).parent), name], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-500:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(r["from_cache"] for r in results) == [False, True]  # one tuned, the other waited
    assert results[0]["path"] == results[1]["path"]
    assert cache_temporaries(tmp_path / "cache") == []


# --------------------------------------------------------------------------------------------
# 7. killed jobs: runs marked KILLED, stale runs closed, no temporary left, no retraining
# --------------------------------------------------------------------------------------------

def job_args(tiny: str, *, quiet: bool = True) -> list[str]:
    return ["main", "--target", "demo:kitchen", "--candidates", "demo", *(["--quiet"] if quiet else []),
            "--sample-size", "60", "--target-sample-size", "40", "--eval-size", "30", "--measures", "terms",
            "--max-length", "32", "--model", tiny, "--train-max-length", "32", "--max-train-examples", "40",
            "--epochs", "2", "--k", "2", "--formulation", "description"]


def step_status(db: Path, step: str) -> list[str]:
    """Statuses of the runs of ``step`` in the SQLite store (read directly, to poll fast)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute("SELECT r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                               "WHERE t.key = 'hubselect.step' AND t.value = ?", (step,)).fetchall()
    except sqlite3.Error:
        return []
    return [status for (status,) in rows]


def _sigint_as_in_a_terminal() -> None:
    """A suite started in the background (``cmd &`` in a script) ignores SIGINT, and a child
    inherits that, so Python would install no ``KeyboardInterrupt`` handler: give the job the
    default, as a user's terminal does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_job(tmp_path: Path, cache: Path, tiny: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hubselect", *job_args(tiny)], cwd=tmp_path,
                            env=child_env(tmp_path, cache), start_new_session=True,
                            preexec_fn=_sigint_as_in_a_terminal,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_step(proc: subprocess.Popen, db: Path, step: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while "RUNNING" not in step_status(db, step):
        assert proc.poll() is None, f"the job ended before {step} started: {proc.stderr.read()[-800:]}"
        assert time.time() < deadline, f"{step} did not start in {timeout} s"
        time.sleep(0.02)


def tuned_models(cache: Path) -> dict[str, int]:
    """Finished tuned models in the cache and when their weights were written."""
    models = cache / "models"
    return {d.name: (d / "model.safetensors").stat().st_mtime_ns
            for d in (models.iterdir() if models.exists() else []) if (d / "hubselect.json").exists()}


def all_runs(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["fetch", "score", "select", "finetune", "evaluate", "register"])
def test_kill_9_in_each_phase_then_rerun_finishes_cleanly_without_retraining(tmp_path, tiny, phase):
    from mlflow.tracking import MlflowClient

    cache, db, tmp_dir = tmp_path / "cache", tmp_path / "mlflow.db", tmp_path / "tmp"
    proc = start_job(tmp_path, cache, tiny)
    wait_for_step(proc, db, phase)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if phase != "fetch":  # (at the very start of fetch it may not have made one yet)
        assert leftovers(tmp_dir), "the killed job should have left its scratch folder to sweep"
    tuned_before = tuned_models(cache)

    rerun = subprocess.run([sys.executable, "-m", "hubselect", *job_args(tiny, quiet=False)], cwd=tmp_path,
                           env=child_env(tmp_path, cache), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-1500:]
    runs = all_runs(db)
    assert not [r.data.tags.get("hubselect.step") for r in runs if r.info.status == "RUNNING"]
    killed = {r.data.tags.get("hubselect.step") for r in runs if r.info.status == "KILLED"}
    assert {"main", phase} <= killed
    assert all(tuned_models(cache).get(k) == v for k, v in tuned_before.items()), "a finished source was retrained"
    finetune = [r for r in runs if r.data.tags.get("hubselect.step") == "finetune" and r.info.status == "FINISHED"]
    assert len(finetune) == 1 and finetune[0].data.metrics["sources_tuned"] == 2
    if phase == "finetune":
        assert finetune[0].data.metrics["sources_from_cache"] == len(tuned_before)
    import mlflow

    tuned = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=finetune[0].info.run_id, artifact_path="tuned.json", tracking_uri=f"sqlite:///{db}")).read_text())["tuned"]
    assert [t["train_examples"] for t in tuned] == [40, 40]  # --max-train-examples, not the 60 sampled
    client = MlflowClient(f"sqlite:///{db}")
    models = client.search_logged_models([e.experiment_id for e in client.search_experiments()])
    assert "PENDING" not in {str(m.status) for m in models}
    assert leftovers(tmp_dir) == [] and cache_temporaries(cache) == []
    assert str(tmp_dir) not in rerun.stdout + rerun.stderr  # never points the user at a temp path


@pytest.mark.slow
@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_mark_runs_killed_and_clean_up(tmp_path, tiny, sig, rc):
    cache, db = tmp_path / "cache", tmp_path / "mlflow.db"
    proc = start_job(tmp_path, cache, tiny)
    wait_for_step(proc, db, "finetune")
    time.sleep(0.2)  # in the tuning, or (on an idle machine, where the tiny model tunes in under a second) just after
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == rc, proc.stderr.read()[-1500:]
    err = proc.stderr.read()
    assert "Traceback" not in err, err[-1500:]
    runs = all_runs(db)
    status = {r.data.tags.get("hubselect.step"): r.info.status for r in runs}
    assert status["main"] == "KILLED" and status["select"] == "FINISHED"
    assert [s for s in ("finetune", "evaluate", "register") if status.get(s) == "KILLED"] in (["finetune"], ["evaluate"])
    assert "RUNNING" not in {r.info.status for r in runs}
    assert leftovers(tmp_path / "tmp") == [] and cache_temporaries(cache) == []


@pytest.mark.slow
def test_quiet_job_prints_nothing_and_leaves_no_temporary(tmp_path, tiny):
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-m", "hubselect", *job_args(tiny)], cwd=tmp_path,
                          env=child_env(tmp_path, cache), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-1500:]
    assert leftovers(tmp_path / "tmp") == [] and cache_temporaries(cache) == []
