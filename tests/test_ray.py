"""engine=ray against the local engine: a real 2-CPU Ray instance (one per module), the tiny random
BERT, the demo catalog, real MLflow (SQLite in a temp dir).

Tolerance: the same selection and the same term scores (exactly: same texts, same code); embedding
scores within 1e-4 and accuracies within 0.05 (two of the 40 evaluation texts), since a Ray task
runs torch on one thread and the local run on two, and float sums in another order can move a
tuned weight and flip a borderline text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from modelkit import make_tiny_model, toy_data

from hubselect.core.errors import HubselectError

ray = pytest.importorskip("ray", reason="engine=ray tests need the ray extra: pip install -e '.[test,ray]'")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_session():
    """One Ray instance for the module: 2 CPUs, no GPU (what CI has)."""
    for attempt in range(3):  # Ray gives its raylet 30 s to start: not always enough on a loaded 2-core box
        try:
            ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="WARNING")
            break
        except Exception:  # noqa: BLE001 - "The current node timed out during startup"
            ray.shutdown()
            if attempt == 2:
                raise
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests/
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


def _slow_square(item: int, offset: list) -> int:
    time.sleep(0.05 * (3 - item))  # later items finish first
    if item < 0:
        raise HubselectError(f"item {item} is negative: pass a number >= 0")
    return item * item + len(offset)


def _pid(_: int) -> int:
    import os

    return os.getpid()


def test_local_executor_never_imports_ray():
    code = ("import sys; from hubselect.core.executor import make_executor; "
            "assert make_executor('local').map(abs, [-1, 2]) == [1, 2]; assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_engine_ray_without_ray_is_one_line_naming_the_extra(tracking, monkeypatch, capsys):
    from hubselect.cli import main
    from hubselect.core.executor import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra sees
    with pytest.raises(HubselectError, match=r"pip install -e '\.\[ray\]'"):
        make_executor("ray")
    assert main(["score", "--engine", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hubselect: error: engine=ray needs Ray") and "\n" not in err


@pytest.mark.parametrize("address,uri,ok", [
    ("10.1.2.3:6379", "", False), ("ray://head.example:10001", "sqlite:///mlflow.db", False),
    ("10.1.2.3:6379", "http://tracking:5000", True), ("", "sqlite:///mlflow.db", True),
    ("127.0.0.1:6379", "", True)])
def test_a_cluster_needs_an_http_tracking_server(monkeypatch, address, uri, ok):
    from hubselect.core.executor import make_executor

    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri) if uri else monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if ok:
        assert make_executor("ray").engine == "ray"  # nothing started until the first map
    else:
        with pytest.raises(HubselectError, match="needs an MLflow tracking server.*MLFLOW_TRACKING_URI=http"):
            make_executor("ray")


@pytest.mark.slow
def test_ray_map_keeps_order_shares_one_copy_and_reraises_one_line(ray_session):
    from hubselect.core.executor import make_executor

    ex = make_executor("ray", init_kwargs={"num_cpus": 2})
    ref = ex.put(list(range(100)))
    assert ex.map(_slow_square, [0, 1, 2, 3], ref) == [100, 101, 104, 109]
    assert ex.map(_slow_square, iter([2, 1]), [0]) == [5, 2]  # a generator, a plain shared argument
    assert len(set(ex.map(_pid, range(6)))) == 2  # two workers on two CPUs
    with pytest.raises(HubselectError, match=r"^item -1 is negative: pass a number >= 0$"):
        ex.map(_slow_square, [1, -1], [])
    ex.shutdown()
    assert ray.is_initialized()  # it did not start Ray, so it leaves it running


@pytest.mark.slow
def test_two_tasks_wanting_one_model_tune_it_once(ray_session, tiny, _hubselect_cache):
    from hubselect.core.executor import make_executor
    from hubselect.models.training import FinetuneConfig
    from hubselect.models.transfer import TransferConfig, _tune_one

    texts, labels = toy_data(40, seed=1)
    job = {"source": "toy", "source_revision": "r1", "formulation": "description", "texts": texts,
           "labels": labels, "label_names": ["negative", "positive"]}
    cfg = TransferConfig(FinetuneConfig(model=tiny, max_length=32, max_train_examples=40, epochs=2))
    records = make_executor("ray").map(_tune_one, [job, job, job], cfg, False)
    assert sorted(r["from_cache"] for r in records) == [False, True, True]
    assert len({r["path"] for r in records}) == 1
    assert len(list((_hubselect_cache / "models").glob("*/hubselect.json"))) == 1


def _job(tiny: str, *extra: str) -> list[str]:
    return ["main", "--target", "demo:kitchen", "--candidates", "demo", "--quiet", "--sample-size", "60",
            "--target-sample-size", "60", "--eval-size", "40", "--embedding-model", tiny, "--embed-examples", "16",
            "--max-length", "32", "--model", tiny, "--train-max-length", "32", "--max-train-examples", "40",
            "--k", "3", "--measures", "js,jaccard,centroid_cosine,mmd", "--select-measures", "js,jaccard", *extra]


def _job_results(tracking, monkeypatch, tiny: str, engine: str) -> dict:
    """Run the whole job in its own cache and experiment; return what it decided and measured."""
    from helpers import artifacts
    from mlflow.tracking import MlflowClient

    from hubselect.cli import main

    monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(tracking / f"cache-{engine}"))
    assert main(_job(tiny, "--engine", engine, "--experiment", f"engine-{engine}")) == 0
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(f"engine-{engine}").experiment_id])
    by_step = {}
    for run in runs:
        by_step.setdefault(run.data.tags.get("hubselect.step"), []).append(run)
    evaluate = by_step["evaluate"][0]
    tree = sorted((r.data.tags.get("hubselect.step"),
                   next((p.data.tags.get("hubselect.step") for p in runs
                         if p.info.run_id == r.data.tags.get("mlflow.parentRunId")), None)) for r in runs)
    return {"selection": json.loads((artifacts(by_step["select"][0]) / "selection.json").read_text()),
            "evaluation": json.loads((artifacts(evaluate) / "evaluation.json").read_text()),
            "pairs": by_step["pair"], "evaluate_id": evaluate.info.run_id, "tree": tree}


@pytest.mark.slow
def test_engine_ray_gives_the_local_selection_metrics_and_run_tree(ray_session, tiny, tracking, monkeypatch):
    local = _job_results(tracking, monkeypatch, tiny, "local")
    distributed = _job_results(tracking, monkeypatch, tiny, "ray")

    assert distributed["selection"]["summary"]["selected_sources"] == local["selection"]["summary"]["selected_sources"]
    for a, b in zip(local["selection"]["ranking"], distributed["selection"]["ranking"]):
        assert a["candidate"] == b["candidate"] and a["decision"] == b["decision"]
        for measure in ("js", "jaccard"):
            assert b[measure] == a[measure]
        for measure in ("centroid_cosine", "mmd"):
            assert b[measure] == pytest.approx(a[measure], abs=1e-4)
    assert distributed["evaluation"]["baseline"]["accuracy"] == local["evaluation"]["baseline"]["accuracy"]
    for a, b in zip(local["evaluation"]["pairs"], distributed["evaluation"]["pairs"]):
        assert a["source"] == b["source"]
        assert b["accuracy"] == pytest.approx(a["accuracy"], abs=0.05)
    assert distributed["tree"] == local["tree"]  # the same steps, each under the same parent step
    for result in (local, distributed):
        pairs = result["pairs"]
        assert len(pairs) == 3 and {p.data.tags["mlflow.parentRunId"] for p in pairs} == {result["evaluate_id"]}
        assert all(p.info.status == "FINISHED" for p in pairs)
        assert {"accuracy", "macro_f1", "gain", "baseline_accuracy", "divergence_js", "selection_rank"} \
            <= set(pairs[0].data.metrics)
    assert sorted(p.data.params["source"] for p in distributed["pairs"]) == \
        sorted(p.data.params["source"] for p in local["pairs"])
