"""The ``main`` run tells the story on its first page, and the console ends with the answer."""

from __future__ import annotations

import json
import re

import pytest
from helpers import FAST, artifacts, runs_of
from modelkit import make_tiny_model

from hubselect.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture()
def job(tracking, tiny, capsys):
    args = ["main", "--target", "demo:kitchen", "--candidates", "demo", "--k", "2", *FAST, "--model", tiny,
            "--embedding-model", tiny, "--train-max-length", "32", "--max-train-examples", "60", "--eval-size", "60",
            "--metrics", "f1"]
    assert main(args) == 0
    (run,) = runs_of("main")
    return run, capsys.readouterr()


def test_main_run_shows_headline_tables_datasets_and_the_registered_version(job):
    run, _ = job
    m = run.data.metrics
    assert {"champion_accuracy", "baseline_accuracy", "champion_gain", "runtime_saving"} <= set(m)
    assert m["champion_gain"] == pytest.approx(m["champion_accuracy"] - m["baseline_accuracy"])
    files = artifacts(run)
    selection = json.loads((files / "tables" / "selection.json").read_text())
    evaluation = json.loads((files / "tables" / "evaluation.json").read_text())
    assert len(selection["data"]) == 5 and "reason" in selection["columns"]
    assert len(evaluation["data"]) == 3 and "f1" in evaluation["columns"]  # baseline + 2 tuned, named metric
    names = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert {"kitchen", "books", "electronics"} <= names
    note = run.data.tags["mlflow.note.content"]
    assert "models:/hubselect-kitchen/1" in note and "Chosen" in note
    assert run.data.tags["hubselect.registered_model_uri"] == "models:/hubselect-kitchen/1"


def test_console_ends_with_the_answer_in_source_names(job):
    run, out = job
    lines = out.out.strip().splitlines()
    chosen = [r for r in runs_of("select")][0].data.tags["hubselect.selected"].split(",")
    assert lines[0].startswith("hubselect: kitchen: 2 of 5 candidates chosen")
    assert all(any(line.strip().startswith(f"{i}. {name}:") for line in lines) for i, name in enumerate(chosen, 1))
    assert any(line.startswith("champion: ") for line in lines)
    assert any(line.startswith("registered: models:/hubselect-kitchen/1") for line in lines)
    assert lines[-1].startswith("look further: mlflow ui --backend-store-uri sqlite:///mlflow.db")
    assert run.info.run_id in lines[-1]
    shown = out.out + out.err
    assert not re.search(r"evaluating [0-9a-f]{12,}|hubselect\.evaluation: [0-9a-f]{12,}", shown)
    assert "/tmp" not in out.out and "already exists" not in shown


def test_pair_runs_last_as_long_as_their_work_and_carry_the_named_metrics(job):
    pairs = runs_of("pair")
    assert len(pairs) == 2
    for pair in pairs:
        took = (pair.info.end_time - pair.info.start_time) / 1000
        assert took >= pair.data.metrics["train_seconds"], (took, pair.data.metrics["train_seconds"])
        assert "f1" in pair.data.metrics and "gain" in pair.data.metrics
