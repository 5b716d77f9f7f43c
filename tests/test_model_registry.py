"""Logging tuned models to MLflow (real SQLite store in a temp folder), registering the
champion, loading it back by alias, and serving it with ``mlflow models serve``."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from helpers import invoke, model_server
from modelkit import NAMES, make_tiny_model, toy_data

from hubselect.data.encoder import resolve_model
from hubselect.models.training import FinetuneConfig, finetune
from hubselect.models.zeroshot import DescriptionClassifier, HeadClassifier, predict_labels

PROBES = ["great product , love it", "awful waste , it broke", "the item was perfect"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """MLflow on SQLite with artifacts in a temp folder, plus one tuned model per formulation."""
    import mlflow
    import torch

    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp}/mlflow.db"
    threads, previous = torch.get_num_threads(), mlflow.get_tracking_uri()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        mp.setenv("HUBSELECT_CACHE_DIR", str(tmp / "cache"))
        experiment = mlflow.create_experiment("hubselect-tests",
                                              artifact_location=(tmp / "artifacts").as_uri())
        tiny = make_tiny_model(tmp / "tiny-bert")
        texts, labels = toy_data(80, 0)
        config = FinetuneConfig(model=str(tiny), learning_rate=5e-3, epochs=6, batch_size=8,
                                max_length=32, patience=0)
        description = finetune("toy", None, texts, labels, NAMES, config,
                               formulation="description", progress=False)
        head = finetune("toy", None, texts, labels, NAMES, config, formulation="head",
                        progress=False)
        yield SimpleNamespace(uri=uri, tmp=tmp, experiment=experiment, tiny=str(tiny),
                              description=description, head=head)
    mlflow.set_tracking_uri(previous)
    torch.set_num_threads(threads)


def _log(store, model, target, **kw):
    import mlflow

    from hubselect.pipeline.tracking.models import log_model

    with mlflow.start_run(experiment_id=store.experiment) as run:
        info = log_model(model, target, max_length=32, input_example=PROBES[:1], **kw)
    assert info.run_id == run.info.run_id
    return info


def test_default_model_name():
    from hubselect.pipeline.tracking.models import default_model_name

    assert default_model_name("stanfordnlp/imdb:plain_text@main") == \
        "hubselect-stanfordnlp-imdb-plain_text-main"
    assert default_model_name("fdu-mtl/books") == "hubselect-fdu-mtl-books"
    assert default_model_name("my target ✓") == "hubselect-my-target"
    assert len(default_model_name("x" * 500)) == 100


def test_pip_requirements_are_pinned():
    from hubselect.pipeline.tracking.models import pip_requirements

    pins = dict(r.split("==") for r in pip_requirements())
    assert pins["torch"] == "2.13.0"
    assert {"mlflow", "transformers", "torch"} <= set(pins)


def test_description_champion_predicts_target_label_names(store):
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from hubselect.pipeline.tracking.models import register_champion

    target = ["Negative", "Positive"]
    info = _log(store, store.description, target)
    version = register_champion(info, "hubselect-toy-description", target="toy-target",
                                source="toy", metrics={"accuracy": 0.9,
                                                       "baseline_accuracy": 0.5},
                                gain=0.4)
    assert version == 1
    model = mlflow.pyfunc.load_model("models:/hubselect-toy-description@champion")
    out = model.predict(PROBES)
    # a frame of target label names and calibrated probabilities, as the head champion answers
    assert list(out.columns) == ["label", "score"] and len(out) == len(PROBES)
    labels, probs = predict_labels(DescriptionClassifier(store.description.path, target,
                                                         max_length=32), PROBES)
    assert out["label"].tolist() == labels
    assert out["score"].tolist() == pytest.approx(probs.tolist(), abs=1e-5)
    assert ((out["score"] > 0.5) & (out["score"] <= 1.0)).all()
    assert out["label"].tolist()[:2] == ["Positive", "Negative"]
    pd.testing.assert_frame_equal(model.predict(pd.DataFrame({"text": PROBES})), out)
    tags = MlflowClient().get_model_version("hubselect-toy-description", "1").tags
    assert tags["hubselect.target"] == "toy-target" and tags["hubselect.source"] == "toy"
    assert float(tags["hubselect.gain"]) == pytest.approx(0.4)
    assert float(tags["hubselect.accuracy"]) == pytest.approx(0.9)
    assert "hubselect.champion_policy" in tags


def test_untuned_baseline_can_be_logged(store):
    import mlflow

    target = ["sports", "world"]
    info = _log(store, resolve_model(store.tiny), target,
                descriptions={"sports": "A sports story.", "world": "World news."})
    predicted = mlflow.pyfunc.load_model(info.model_uri).predict(PROBES)
    assert len(predicted) == len(PROBES) and set(predicted["label"]) <= set(target)


def test_head_champion_predicts_target_label_names(store):
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from hubselect.pipeline.tracking.models import register_champion

    target = ["POSITIVE", "NEGATIVE"]  # other order and case than the source head
    info = _log(store, store.head, target)
    version = register_champion(info.run_id, "hubselect-toy-head", target="toy-target",
                                source="toy")
    assert version == 1
    model = mlflow.pyfunc.load_model("models:/hubselect-toy-head@champion")
    out = model.predict(PROBES)
    # a frame of the target's label names and their probabilities, calibrated by the temperature
    # fitted on the source's held-out slice, as evaluation predicts them from the tuned folder
    assert list(out.columns) == ["label", "score"] and len(out) == len(PROBES)
    assert store.head.temperature != 1.0  # so the scores below are the calibrated ones, not the raw softmax
    labels, probs = predict_labels(HeadClassifier(store.head.path, target, max_length=32), PROBES)
    assert out["label"].tolist() == labels
    assert out["score"].tolist() == pytest.approx(probs.tolist(), abs=1e-5)
    assert out["label"].tolist()[:2] == ["POSITIVE", "NEGATIVE"]
    pd.testing.assert_frame_equal(model.predict(pd.DataFrame({"id": [1, 2, 3], "text": PROBES})), out)
    # the same input check as the description model: a frame without the text column is refused
    with pytest.raises(MlflowException, match="no column 'text'"):
        model.predict(pd.DataFrame({"id": ["1"], "review": PROBES[:1]}))


def test_second_registration_adds_a_version_and_moves_the_alias(store, caplog):
    import mlflow
    from mlflow.tracking import MlflowClient

    from hubselect.pipeline.tracking.models import register_champion

    name = "hubselect-toy-versions"
    first = _log(store, store.description, NAMES)
    second = _log(store, store.head, NAMES)
    assert register_champion(first, name, target="toy-target") == 1
    assert register_champion(second, name, target="toy-target", source=["a", "b"]) == 2
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert client.get_model_version(name, "1").tags["hubselect.source"] == "baseline"
    assert client.get_model_version(name, "2").tags["hubselect.source"] == "a,b"
    assert client.get_registered_model(name).tags["hubselect.target"] == "toy-target"
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(PROBES)
    assert set(champion["label"]) <= set(NAMES)
    # another target under the same name: the version is added, with a one-line warning
    with caplog.at_level(logging.WARNING, logger="hubselect.pipeline.tracking.models"):
        assert register_champion(first, name, target="other-target") == 3
    warnings = [r for r in caplog.records if r.name == "hubselect.pipeline.tracking.models"]
    assert len(warnings) == 1 and "other-target" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "3"
    assert client.get_registered_model(name).tags["hubselect.target"] == "toy-target"


@pytest.mark.parametrize("formulation", ["description", "head"])
def test_serve_the_champion(store, formulation):
    from hubselect.pipeline.tracking.models import register_champion

    name = f"hubselect-toy-served-{formulation}"
    target = ["Negative", "Positive"]
    register_champion(_log(store, getattr(store, formulation), target), name,
                      target="toy-target")
    with model_server(f"models:/{name}@champion", store.uri, store.tmp) as port:
        status, answer = invoke(port, {"inputs": ["great product , love it"]})
        assert status == 200, answer
        status, split = invoke(port, {"dataframe_split": {"columns": ["text"], "data": [[t] for t in PROBES[:2]]}})
        assert status == 200, split
    answer, split = answer["predictions"], split["predictions"]
    # both formulations answer label/score records, the score a calibrated probability
    assert set(answer[0]) == {"label", "score"} and 0.5 < answer[0]["score"] <= 1.0
    assert [r["label"] for r in answer] == ["Positive"]
    assert [r["label"] for r in split] == ["Positive", "Negative"]
