"""fetch → score → select through the real CLI, real MLflow (SQLite in a temp dir), real files."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAST, FETCH_FAST, artifacts, fast, runs_of

from hubselect.cli import main
from hubselect.data.demo import ensure_demo_catalog


def labelled_copy(dst: Path, *, labels: str) -> Path:
    """The demo kitchen task without its unlabeled split; labels kept, shuffled, skewed or dropped."""
    src = ensure_demo_catalog() / "kitchen"
    dst.mkdir(parents=True)
    rng = random.Random(7)
    for split in ("train", "test"):
        rows = [json.loads(line) for line in (src / f"{split}.jsonl").read_text().splitlines()]
        values = [r["label"] for r in rows]
        rng.shuffle(values)
        for i, (row, value) in enumerate(zip(rows, values)):
            if labels == "shuffled":
                row["label"] = value
            elif labels == "skewed":  # same names, 90% one class
                row["label"] = "negative" if i % 10 == 0 else "positive"
            elif labels == "dropped":
                del row["label"]
        (dst / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def test_fetch_score_select_log_runs_and_artifacts(tracking):
    assert main(["select", "--target", "demo:kitchen", "--candidates", "demo", "--k", "2", *FAST]) == 0
    (run,) = runs_of("select")
    out = artifacts(run)
    catalog = json.loads((out / "fetch" / "catalog.json").read_text())
    assert [c["name"] for c in catalog["candidates"]] == ["appliances", "electronics", "books", "movies", "news"]
    assert all(c["revision"].startswith("sha256:") for c in catalog["candidates"])
    scores = pd.read_csv(out / "scores.csv", index_col="candidate")
    assert scores.shape == (5, 15) and (scores.values >= 0).all()
    selection = json.loads((out / "selection.json").read_text())
    assert selection["summary"]["selected"] == 2 and len(selection["ranking"]) == 5
    # the demo's shared vocabulary puts the home-appliance domain first and the news topics last
    assert selection["ranking"][0]["candidate"] == "appliances"
    assert selection["ranking"][-1]["candidate"] == "news"
    assert (out / "plots" / "scores_per_candidate.png").stat().st_size > 1000
    assert run.data.metrics["selected"] == 2 and run.data.params["policy"] == "combined"
    assert {i.dataset.name for i in run.inputs.dataset_inputs} >= {"kitchen", "appliances", "news"}


def test_target_labels_are_never_read_while_scoring(tracking):
    scores = {}
    for labels in ("kept", "shuffled", "dropped"):
        target = labelled_copy(tracking / labels / "kitchen", labels=labels)
        code = main(["score", "--target", str(target), "--candidates", "demo", "--eval-size", "0", *FAST])
        assert code == 0
        run = max(runs_of("score"), key=lambda r: r.info.start_time)
        scores[labels] = (artifacts(run) / "scores.csv").read_text()
    assert scores["kept"] == scores["shuffled"] == scores["dropped"]


def test_select_with_the_default_policy_reads_label_names_but_no_labelled_example(tracking):
    """The combined policy weighs label-name signals; the target's labelled examples (which rows
    carry which label, and how many) change nothing, and names passed by hand are the same names."""
    rankings = {}
    for labels in ("kept", "shuffled", "skewed", "dropped"):
        target = labelled_copy(tracking / labels / "kitchen", labels=labels)
        names = ["--label-names", "negative,positive", "--eval-size", "0"] if labels == "dropped" else []
        assert main(["select", "--target", str(target), "--candidates", "demo", "--k", "2", *names, *FAST]) == 0
        run = max(runs_of("select"), key=lambda r: r.info.start_time)
        assert run.data.params["policy"] == "combined"
        rankings[labels] = json.loads((artifacts(run) / "selection.json").read_text())
    kept = rankings["kept"]
    assert {"label_distance", "balance_distance", "label_match"} <= set(kept["ranking"][0])
    assert kept["ranking"][0]["label_match"].startswith("negative/positive")
    assert rankings["shuffled"] == kept and rankings["skewed"] == kept and rankings["dropped"] == kept


def test_main_reuses_finished_steps_and_rerun_hits_the_caches(tracking):
    args = ["main", "--target", "demo:books", "--candidates", "demo", "--k", "1", *FAST]
    assert main(args) == 0
    assert main(args) == 0
    assert len(runs_of("main")) == 2 and len(runs_of("score")) == 1 and len(runs_of("select")) == 1
    # standalone score with the same inputs recomputes no representation
    assert main(["score", "--target", "demo:books", "--candidates", "demo", *FAST]) == 0
    run = max(runs_of("score"), key=lambda r: r.info.start_time)
    timings = json.loads((artifacts(run) / "timings.json").read_text())
    assert timings["cache_hits"] == {"terms": 6, "embeddings": 6}


@pytest.mark.parametrize("args, message", [
    (["score", "--measures", "js,nope"], "unknown measure 'nope'"),
    (["select", "--policy", "best"], "unknown policy 'best'"),
    (["select", "--k", "9"], "k=9 is larger than the 5 usable candidates: lower --k"),
    (["fetch", "--target", "./no/such/folder"], "path '.*no/such/folder' does not exist"),
    (["fetch", "--candidates", "demo:kitchen"], "no candidate left"),
    (["fetch", "--target", "demo:garden"], "demo task 'garden' does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tracking, capsys, args, message):
    assert main([*args, *fast(args[0])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hubselect: error: ")
    import re

    assert re.search(message, err[0]), err[0]
    assert not any(r.info.status == "FINISHED" for r in runs_of(args[0]))


def test_unusable_target_and_candidates(tracking, capsys):
    bad = tracking / "tasks"
    (bad / "empty").mkdir(parents=True)
    (bad / "empty" / "train.jsonl").write_text(json.dumps({"text": "  ", "label": "a"}) + "\n")
    (bad / "numbers").mkdir()
    (bad / "numbers" / "train.jsonl").write_text(json.dumps({"x": 1, "label": "a"}) + "\n")
    shutil.copytree(ensure_demo_catalog() / "books", bad / "books")
    assert main(["fetch", "--target", str(bad / "empty"), "--candidates", "demo", *FETCH_FAST]) == 2
    err = capsys.readouterr().err
    assert f"target '{bad / 'empty'}' cannot be used" in err and "has no non-empty text" in err
    assert main(["fetch", "--target", "demo:kitchen", "--candidates", str(bad), *FETCH_FAST]) == 0
    (run,) = [r for r in runs_of("fetch") if r.info.status == "FINISHED"]
    catalog = json.loads((artifacts(run) / "catalog.json").read_text())
    status = {c["name"]: (c["status"], c["reason"]) for c in catalog["candidates"]}
    assert status["books"] == ("ok", "")
    assert status["empty"][0] == "rejected" and "no non-empty text" in status["empty"][1]
    assert status["numbers"][0] == "rejected" and "no text column" in status["numbers"][1]
    assert run.data.metrics["candidates_rejected"] == 2


def test_unreachable_tracking_server_fails_fast_in_one_line(tracking, monkeypatch, capsys):
    import time

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    start = time.perf_counter()
    assert main(["fetch", *FETCH_FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the MLflow tracking server at http://127.0.0.1:9" in err[0]
    assert time.perf_counter() - start < 30


def test_select_with_a_learned_policy_file(tracking):
    """A learned policy (fitted here on made-up gains that favour high JS) drives the selection."""
    from hubselect.benchmark import learned

    scores = pd.DataFrame({"js": [0.1, 0.2, 0.3, 0.4]}, index=["w", "x", "y", "z"])
    model = learned.fit(learned.pair_features(scores, ["js"], None), [0.0, 0.01, 0.02, 0.03])
    path = learned.save(model, tracking / "learned_policy.json")
    assert main(["select", "--policy", "learned", "--learned-model", str(path), "--k", "2", *FAST]) == 0
    (run,) = runs_of("select")
    selection = json.loads((artifacts(run) / "selection.json").read_text())
    ranking = selection["ranking"]
    assert [r["predicted_gain"] for r in ranking] == sorted((r["predicted_gain"] for r in ranking), reverse=True)
    js = [r["js"] for r in ranking]
    assert js == sorted(js, reverse=True)  # the made-up model prefers the farthest by JS
    assert selection["summary"]["policy"] == "learned" and selection["summary"]["selected"] == 2
