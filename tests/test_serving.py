"""A served model refuses what it cannot read (issue 15): through ``mlflow.pyfunc.load_model`` and
through ``mlflow models serve`` (a real server in a subprocess), on a real SQLite MLflow store and a
tiny random BERT.

Both formulations, a description model and a head model, are logged through the same served-model
code: each reads its text column by name (``text``, or the name it was logged with, recorded in its
signature) and refuses, naming the fix, a frame without that column, a number or a null as a text,
and an empty input. The head model truncates long texts."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from helpers import invoke, model_server
from modelkit import NAMES, make_tiny_model, toy_data

TEXTS = ["great product , love it", "awful waste , it broke", "the item was perfect"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """MLflow on SQLite in a temp folder and a tiny random BERT; logs, for each formulation, a model
    read from ``text`` and the same one logged as trained on a ``review`` column (``store.logged``):
    the untuned encoder (description) and a head tuned briefly on toy data (head)."""
    import mlflow
    import torch

    from hubselect.data.encoder import resolve_model
    from hubselect.models.training import FinetuneConfig, finetune

    tmp = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{tmp}/mlflow.db"
    threads, previous = torch.get_num_threads(), mlflow.get_tracking_uri()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("HUBSELECT_CACHE_DIR", str(tmp / "cache"))
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment("serving", artifact_location=(tmp / "artifacts").as_uri())
        found = SimpleNamespace(uri=uri, tmp=tmp, tiny=make_tiny_model(tmp / "tiny-bert"), experiment=experiment)
        texts, labels = toy_data(16, 0)
        head = finetune("toy", None, texts, labels, NAMES, FinetuneConfig(
            model=str(found.tiny), epochs=1, batch_size=8, max_length=32, patience=0), formulation="head",
            progress=False)
        models = {"description": resolve_model(str(found.tiny)), "head": head}
        found.logged = {kind: {column: _logged(found, model, text_column=column) for column in ("text", "review")}
                        for kind, model in models.items()}
        yield found
    mlflow.set_tracking_uri(previous)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["description", "head"])
def formulation(request) -> str:
    """Each test of a logged model runs on both formulations."""
    return request.param


def _logged(store, model, **kw) -> str:
    """The URI of ``model`` logged by hubselect on a new run."""
    import mlflow

    from hubselect.pipeline.tracking.models import log_model

    with mlflow.start_run(experiment_id=store.experiment):
        return log_model(model, NAMES, max_length=32, input_example=TEXTS[:1], **kw).model_uri


def _load(uri: str):
    import mlflow

    return mlflow.pyfunc.load_model(uri)


def _refusal(model, data, **kw) -> str:
    """The message of the MlflowException that ``model.predict(data)`` raises."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as raised:
        model.predict(data, **kw)
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    return raised.value.message


# ------------------------------------------------------------------ in-process (pyfunc)


def test_a_frame_without_the_text_column_is_refused_naming_the_column(store, formulation):
    import pandas as pd

    model = _load(store.logged[formulation]["text"])
    for columns in (["id", "review"], ["title", "review"]):
        frame = pd.DataFrame({columns[0]: ["1", "2"], columns[1]: TEXTS[:2]})
        message = _refusal(model, frame)
        assert "no column 'text'" in message and f"{columns[0]}, review" in message, message
        assert '"text_column"' in message  # the fix: name the column, or say which one it is


def test_the_text_column_is_read_by_name_wherever_it_is(store, formulation):
    import pandas as pd

    model = _load(store.logged[formulation]["text"])
    expected = model.predict(TEXTS)
    assert list(expected.columns) == ["label", "score"] and len(expected) == 3
    # not the first column: the ids must not be classified
    framed = model.predict(pd.DataFrame({"id": ["1", "2", "3"], "text": TEXTS}))
    pd.testing.assert_frame_equal(framed, expected)
    other = model.predict(pd.DataFrame({"id": ["1", "2", "3"], "body": TEXTS}), params={"text_column": "body"})
    pd.testing.assert_frame_equal(other, expected)


def test_the_trained_column_name_is_in_the_signature_and_is_read(store, formulation):
    import pandas as pd

    model = _load(store.logged[formulation]["review"])
    params = model.metadata.get_params_schema().to_dict()
    assert params == [{"name": "text_column", "type": "string", "default": "review", "shape": None}]
    expected = model.predict(TEXTS)
    pd.testing.assert_frame_equal(model.predict(pd.DataFrame({"id": [1, 2, 3], "review": TEXTS})), expected)
    pd.testing.assert_frame_equal(model.predict(pd.DataFrame({"text": TEXTS})), expected)
    message = _refusal(model, pd.DataFrame({"title": ["a"], "body": ["b"]}))
    assert "no column 'review' or 'text'" in message and "title, body" in message, message


def test_numbers_and_nulls_are_refused_naming_the_rows(store, formulation):
    import pandas as pd

    model = _load(store.logged[formulation]["text"])
    assert "row 0 is 42 (int)" in _refusal(model, [42])
    assert "row 0 is null" in _refusal(model, [None])
    message = _refusal(model, ["fine", None, 3.5, "also fine"])
    assert message.startswith("2 of 4 rows are not texts") and "row 1 is null" in message
    assert "row 2 is 3.5 (float)" in message and "send one string per row" in message
    assert "row 1 is null" in _refusal(model, pd.DataFrame({"text": ["fine", None]}))
    many = _refusal(model, list(range(8)))
    assert "row 4 is 4 (int) and 3 more" in many, many


def test_an_empty_input_is_refused(store, formulation):
    import pandas as pd

    model = _load(store.logged[formulation]["text"])
    for empty in ([], pd.DataFrame({"text": []})):
        assert _refusal(model, empty).startswith("the input has no rows: send at least one text")


def test_the_model_is_logged_from_code_and_unpickles_nothing(store, formulation):
    from mlflow.artifacts import download_artifacts

    folder = download_artifacts(store.logged[formulation]["text"])
    model = _load(store.logged[formulation]["text"])
    assert set(model.metadata.flavors) == {"python_function"}
    flavor = model.metadata.flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    # the MLmodel names the code to run and no pickled python_model (MLflow records its cloudpickle
    # version in every pyfunc flavor, code or not)
    assert os.path.basename(flavor["model_code_path"]) == "served_model.py" and "python_model" not in flavor
    assert os.path.exists(os.path.join(folder, "served_model.py"))
    files = [name for _, _, names in os.walk(folder) for name in names]
    assert [name for name in files if name.endswith((".pkl", ".pickle", ".bin", ".pt"))] == []
    assert "model.safetensors" in files


def test_the_head_model_truncates_a_long_text(store):
    out = _load(store.logged["head"]["text"]).predict(["word " * 300, TEXTS[0]])  # over the tiny BERT's 64 positions
    assert list(out.columns) == ["label", "score"] and set(out["label"]) <= set(NAMES)


# ------------------------------------------------------------------ served (mlflow models serve)


@pytest.fixture(scope="module")
def served(store, formulation):
    """The model of ``formulation`` (read from ``text``) served by ``mlflow models serve``."""
    with model_server(store.logged[formulation]["text"], store.uri, store.tmp) as port:
        yield port


def _split(columns: list[str], rows: list[list]) -> dict:
    return {"dataframe_split": {"columns": columns, "data": rows}}


@pytest.mark.slow
@pytest.mark.parametrize("body, says", [
    (_split(["id", "review"], [["1", "great"], ["2", "awful"]]), "no column 'text' of texts (its columns: id, review)"),
    (_split(["title", "review"], [["t", "great"]]), "no column 'text' of texts (its columns: title, review)"),
    ({"inputs": [42]}, "row 0 is 42 (int)"),
    ({"inputs": [None]}, "row 0 is null"),
    ({"inputs": ["great", None]}, "row 1 is null"),
    (_split(["text"], [[42]]), "row 0 is 42 (int)"),
    ({"dataframe_records": [{"text": "fine"}, {"text": None}]}, "row 1 is null"),
    ({"inputs": []}, "the input has no rows"),
], ids=["id,review", "title,review", "[42]", "[null]", "[text,null]", "text=42", "records null", "[]"])
def test_the_server_answers_400_naming_what_it_cannot_read(served, body, says):
    status, answer = invoke(served, body)
    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE" and says in answer["message"], answer


@pytest.mark.slow
def test_the_server_reads_the_text_column_by_name(served):
    listed = invoke(served, {"inputs": TEXTS})
    assert listed[0] == 200 and [set(p) for p in listed[1]["predictions"]] == [{"label", "score"}] * 3
    assert invoke(served, _split(["id", "text"], [[i, t] for i, t in enumerate(TEXTS)])) == listed
    named = {**_split(["id", "review"], [[i, t] for i, t in enumerate(TEXTS)]), "params": {"text_column": "review"}}
    assert invoke(served, named) == listed
    status, big = invoke(served, {"inputs": [TEXTS[i % 3] for i in range(300)]})  # several batches, in order
    assert status == 200 and len(big["predictions"]) == 300
    for got, want in zip(big["predictions"][:3], listed[1]["predictions"]):
        assert got["label"] == want["label"] and got["score"] == pytest.approx(want["score"], abs=1e-5)
