"""finetune → evaluate → register and the whole ``main`` job, through the real CLI, with a tiny
random BERT (fast) on the demo catalog; real MLflow (SQLite in a temp dir) and its registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import artifacts, predicted_labels, runs_of
from modelkit import make_tiny_model

from hubselect.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


def job_args(tiny: str, *extra: str, step: str = "main") -> list[str]:
    return [step, "--target", "demo:kitchen", "--candidates", "demo", "--quiet", "--sample-size", "60",
            "--target-sample-size", "60", "--eval-size", "40", "--embedding-model", tiny, "--embed-examples", "16",
            "--max-length", "32", "--model", tiny, "--train-max-length", "32", "--max-train-examples", "40",
            "--k", "2", *extra]


def test_main_tunes_evaluates_registers_and_rerun_adds_a_version(tracking, tiny):
    import mlflow
    from mlflow.tracking import MlflowClient

    assert main(job_args(tiny)) == 0
    evaluate = runs_of("evaluate")[0]
    pairs = runs_of("pair")
    assert len(pairs) == 2 and all(p.data.tags["mlflow.parentRunId"] == evaluate.info.run_id for p in pairs)
    names = [set(p.data.params) for p in pairs]
    assert names[0] == names[1] and {"source", "source_revision", "formulation", "epochs"} <= names[0]
    assert {"accuracy", "macro_f1", "gain", "train_seconds", "examples_per_second", "divergence_js"} \
        <= set(pairs[0].data.metrics)
    evaluation = json.loads((artifacts(evaluate) / "evaluation.json").read_text())
    assert 0 <= evaluation["baseline"]["accuracy"] <= 1 and len(evaluation["pairs"]) == 2
    assert set(evaluation["pairs"][0]["per_class"]) == {"negative", "positive"}
    job = runs_of("main")[0]
    assert 0 < job.data.metrics["brute_force_estimate_s"] and "runtime_saving" in job.data.metrics

    client = MlflowClient()
    version = client.get_model_version_by_alias("hubselect-kitchen", "champion")
    assert int(version.version) == 1 and version.tags["hubselect.target"] == "kitchen"
    model = mlflow.pyfunc.load_model("models:/hubselect-kitchen@champion")
    texts = ["the kettle works great", "the blender broke quickly", "arrived dented and the lid leaks"]
    labels = predicted_labels(model.predict(texts))
    assert len(labels) == len(texts) and all(label in {"negative", "positive"} for label in labels), labels

    assert main(job_args(tiny)) == 0  # same command: every step reused, a new version registered
    assert len(runs_of("finetune")) == 1 and len(runs_of("pair")) == 2
    assert int(client.get_model_version_by_alias("hubselect-kitchen", "champion").version) == 2
    assert int(client.get_model_version("hubselect-kitchen", "1").version) == 1  # version 1 kept


@pytest.mark.slow
def test_killed_job_resumes_without_retraining_finished_sources(tracking, tiny, _hubselect_cache):
    args = [a if a != "40" else "200" for a in job_args(tiny, "--epochs", "3")]
    args[args.index("--sample-size") + 1] = "200"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tracking / 'mlflow.db'}"}
    proc = subprocess.Popen([sys.executable, "-m", "hubselect", *args], cwd=tracking, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    models = _hubselect_cache / "models"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if models.exists() and any((d / "hubselect.json").exists() for d in models.iterdir()):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = [d for d in models.iterdir() if (d / "hubselect.json").exists()]
    assert len(finished) == 1, "the kill came after both sources were tuned: slow the job down"
    assert main(args) == 0
    finetune = [r for r in runs_of("finetune") if r.info.status == "FINISHED"]
    assert len(finetune) == 1 and finetune[0].data.metrics["sources_from_cache"] == 1
    assert finetune[0].data.metrics["sources_tuned"] == 2


@pytest.mark.parametrize("extra, message", [
    (["--model", "/no/such/model"], "model '/no/such/model' cannot be loaded"),
    (["--candidates", "demo:news", "--k", "1", "--formulation", "head"], "head"),
    (["--eval-size", "0"], "the target has no label names, so it cannot be classified zero-shot"),
    (["--eval-size", "0", "--label-names", "negative,positive", "--champion", "metric"],
     "champion=metric needs a labelled evaluation split"),
    (["--eval-size", "0", "--label-names", "negative,positive", "--require-eval"], "has no labelled evaluation split"),
    (["--champion", "best"], "unknown champion policy 'best'"),
    (["--label-template", "no placeholder"], "has no '{label}'"),
])
def test_bad_transfer_input_is_one_line_and_registers_nothing(tracking, tiny, capsys, extra, message):
    from mlflow.tracking import MlflowClient

    args = job_args(tiny)
    if "--candidates" in extra:
        args[args.index("--candidates") + 1] = extra[extra.index("--candidates") + 1]
        extra = [e for i, e in enumerate(extra) if e != "--candidates" and (i == 0 or extra[i - 1] != "--candidates")]
        args = [a for i, a in enumerate(args) if not (a == "--k" or (i and args[i - 1] == "--k"))]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hubselect: error: ") and message in err[0], err
    assert MlflowClient().search_registered_models() == []


def test_unlabelled_target_gets_a_label_free_champion(tracking, tiny):
    from mlflow.tracking import MlflowClient

    from hubselect.models.champion import LABEL_FREE_DEFAULT

    assert main(job_args(tiny, "--eval-size", "0", "--label-names", "negative,positive")) == 0
    champion = json.loads((artifacts(runs_of("register")[0]) / "champion.json").read_text())
    assert champion["policy"] == LABEL_FREE_DEFAULT and "target labels not used" in champion["reason"]
    assert champion["source"] in runs_of("register")[0].data.tags["hubselect.models.champion"]
    version = MlflowClient().get_model_version_by_alias("hubselect-kitchen", "champion")
    assert version.tags["hubselect.target"] == "kitchen"


def test_atc_champion_on_a_labelled_target_reports_its_accuracy(tracking, tiny):
    assert main(job_args(tiny, "--champion", "atc")) == 0
    champion = json.loads((artifacts(runs_of("register")[0]) / "champion.json").read_text())
    assert champion["policy"] == "atc" and 0 <= champion["accuracy"] <= 1
    assert "highest atc" in champion["reason"]
