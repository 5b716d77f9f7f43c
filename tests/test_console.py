"""Every command ends with its answer: tables on the console, one JSON object with ``--json`` (issue 18).

Real runs through the CLI (real MLflow on SQLite in a temp dir, the demo tasks, a tiny random
BERT as encoder and model); the console's content (the candidates in order, the reasons, the
numbers) is checked against the artifacts the run logged, not its styling.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAST, FETCH_FAST, artifacts, runs_of
from modelkit import make_tiny_model

from hubselect.cli import main
from hubselect.options import COMMANDS, build_parser, render_mlproject
from hubselect.pipeline.steps.answers import benchmark_answer
from hubselect.pipeline.steps.console import render
from hubselect.scoring.divergence import resolve_measures

DEMO = ["--target", "demo:kitchen", "--candidates", "demo"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


def small(tiny: str) -> list[str]:
    return [*FAST, "--embedding-model", tiny]


def transfer(tiny: str) -> list[str]:
    return [*small(tiny), "--k", "2", "--model", tiny, "--train-max-length", "32", "--max-train-examples", "60",
            "--eval-size", "60"]


def one_json_object(out: str) -> dict:
    """The answer, checking stdout holds exactly one JSON object on one line and nothing else."""
    assert out.endswith("\n") and out.count("\n") == 1, f"stdout is not one line: {out[:300]!r}"
    return json.loads(out)


def flat(text: str) -> str:
    return " ".join(text.split())


def ranking_rows(out: str) -> list[list[str]]:
    """The rows of the console's ranking table: rank, candidate, score, four signals, decision."""
    return [line.split() for line in out.splitlines() if re.match(r"^\s*\d+\s+\S+\s+[+-]\d+\.\d\d\s", line)]


def test_select_console_ranks_every_candidate_and_says_why_the_kept_ones(tracking, tiny, capsys):
    assert main(["select", *DEMO, "--k", "2", *small(tiny)]) == 0
    out = capsys.readouterr().out
    (run,) = runs_of("select")
    files = artifacts(run)
    selection = json.loads((files / "selection.json").read_text())
    ranking = sorted(selection["ranking"], key=lambda r: r["rank"])
    rows = ranking_rows(out)
    assert [r[1] for r in rows] == [r["candidate"] for r in ranking]
    assert [r[2] for r in rows] == [f"{r['combined_score']:+.2f}" for r in ranking]
    assert [r[-1] for r in rows] == ["kept" if r["decision"] == "selected" else "pruned" for r in ranking]
    # the reasons, checked against what the run logged: the closest candidate by the term measures of
    # scores.csv is "closest in vocabulary"; a candidate with the target's label names has "same labels"
    scores = pd.read_csv(files / "scores.csv", index_col="candidate")
    terms = [s.name for s in resolve_measures("terms") if s.name in scores.columns]
    closest = scores[terms].rank().mean(axis=1).idxmin()
    catalog = json.loads((files / "fetch" / "catalog.json").read_text())
    labels = {c["name"]: c.get("label_names") for c in catalog["candidates"]}
    why = flat(out.split("Why the kept ones", 1)[1].split("Estimated tuning saving", 1)[0])
    kept = selection["summary"]["selected_sources"]
    reasons = dict(zip(kept, re.split(r"\s*\d+\. \S+:\s*", why)[1:]))
    assert list(reasons) == kept and all(reasons.values()), why
    said_closest = {n for n, r in reasons.items() if re.search(r"(^|[;,] )closest in vocabulary", r)}
    assert said_closest == {closest} & set(kept), reasons
    for name, reason in reasons.items():
        if labels[name] == catalog["target"]["label_names"]:
            assert f"same labels ({'/'.join(labels[name])})" in reason
    saving = selection["summary"]["estimated_tuning_saving"]
    assert f"Estimated tuning saving: {saving:.0%}" in out
    # where to look, and the warning a user should act on, apart after the table
    assert run.info.run_id in out and "mlflow ui --backend-store-uri sqlite:///mlflow.db" in out
    assert f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in out
    assert out.index("warning: the transfer prior has never seen 5 of 5 candidates") > out.index("Why the kept ones")
    assert max(len(line) for line in out.splitlines()) <= 100


def test_select_json_is_all_of_stdout_and_matches_selection_json(tracking, tiny, capsys):
    assert main(["select", "--json", *DEMO, "--k", "2", *small(tiny)]) == 0
    answer = one_json_object(capsys.readouterr().out)
    (run,) = runs_of("select")
    selection = json.loads((artifacts(run) / "selection.json").read_text())
    ranking = sorted(selection["ranking"], key=lambda r: r["rank"])
    assert answer["command"] == "select" and answer["run_id"] == run.info.run_id and answer["target"] == "kitchen"
    assert [r["candidate"] for r in answer["ranking"]] == [r["candidate"] for r in ranking]
    assert [r["decision"] for r in answer["ranking"]] == [r["decision"] for r in ranking]
    assert answer["selected_sources"] == selection["summary"]["selected_sources"]
    assert answer["estimated_tuning_saving"] == selection["summary"]["estimated_tuning_saving"]
    for row, logged in zip(answer["ranking"], ranking):
        # each signal's contribution, weighted as --weights says, adds up to the logged combined score
        assert set(row["contributions"]) == {"divergence", "prior", "labels"}  # balance weighs 0 by default
        assert sum(row["contributions"].values()) == pytest.approx(logged["combined_score"], abs=1e-6)
        assert row["why"] and row["policy_reason"] == logged["reason"]
    assert any("has never seen 5 of 5" in w for w in answer["warnings"])
    # the label signal in words: the target's labels, then the candidate's closest to each
    for row in answer["ranking"]:
        left, _, right = row["label_match"].partition(" ↔ ")
        assert left == "negative/positive" and right
        if left != right:
            assert f"labels differ: {row['label_match']}" in row["why"], row
    assert any(r["label_match"].endswith("↔ negative/positive") for r in answer["ranking"])
    assert any("labels differ" in r["why"] for r in answer["ranking"])  # the news topics

    # a long ranking shows the top 20 and says how many more
    many = dict(answer, ranking=[dict(r, candidate=f"{r['candidate']}{i}", rank=5 * i + r["rank"])
                                 for i in range(5) for r in answer["ranking"]])
    shown = render(many)
    assert len(ranking_rows(shown)) == 20 and "... and 5 more" in shown


def test_fetch_answer_counts_rejections_and_pins_hub_revisions(hub_endpoint, tracking, capsys):
    args = ["fetch", "--target", "acme/sentiment", "--candidates", "search:", "--language", "en", *FETCH_FAST]
    assert main([*args, "--json"]) == 0
    answer = one_json_object(capsys.readouterr().out)
    (run,) = runs_of("fetch")
    catalog = json.loads((artifacts(run) / "catalog.json").read_text())
    rejected = {c["name"]: c["reason"] for c in catalog["candidates"] if c["status"] == "rejected"}
    assert answer["rejected"] == len(rejected) >= 2
    assert answer["accepted"] == len(catalog["candidates"]) - len(rejected)
    assert {r["candidate"] for r in answer["rejections"]} == set(rejected)
    assert all(r["reason"] in rejected[r["candidate"]] for r in answer["rejections"])
    sha = hub_endpoint.repos["acme/big-reviews"].main.sha
    assert {"candidate": "acme__big-reviews", "revision": sha, "uri": catalog_uri(catalog, "acme__big-reviews")} \
        in answer["pinned"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{answer['accepted']} of {answer['found']} candidates accepted, {answer['rejected']} rejected" in out
    for r in answer["rejections"]:  # the name, then why and the fix (wrapped under themselves)
        assert f"{r['candidate']} {r['reason']} -> {r['fix']}" in flat(out)
    assert re.search(rf"acme__big-reviews\s+{sha}", out)


def catalog_uri(catalog: dict, name: str) -> str:
    return next(c["uri"] for c in catalog["candidates"] if c["name"] == name)


def test_score_console_shows_the_closest_per_measure_group_and_where_the_scores_are(tracking, tiny, capsys):
    assert main(["score", *DEMO, *small(tiny)]) == 0
    out = capsys.readouterr().out
    (run,) = runs_of("score")
    scores = pd.read_csv(artifacts(run) / "scores.csv", index_col="candidate")
    terms_part, embeddings_part = out.split("By sentence embeddings", 1)
    for kind, part in (("terms", terms_part.split("By vocabulary", 1)[1]), ("embeddings", embeddings_part)):
        names = [s.name for s in resolve_measures(kind) if s.name in scores.columns]
        expected = list(scores[names].rank().mean(axis=1).sort_values(kind="stable").index)
        shown = [line.split()[1] for line in part.splitlines() if re.match(r"^\s*\d+\s+\S+\s+\d", line)]
        assert shown == expected, kind
    assert f"runs:/{run.info.run_id}/scores.csv" in out
    assert main(["score", "--json", *DEMO, *small(tiny)]) == 0
    answer = one_json_object(capsys.readouterr().out)
    terms = [s.name for s in resolve_measures("terms") if s.name in scores.columns]
    assert answer["groups"]["terms"]["measures"] == terms
    assert [r["candidate"] for r in answer["groups"]["terms"]["closest"]] == \
        list(scores[terms].rank().mean(axis=1).sort_values(kind="stable").index)


def test_evaluate_json_matches_evaluation_json_and_register_shows_how_to_serve(tracking, tiny, capsys):
    assert main(["evaluate", "--json", *DEMO, *transfer(tiny)]) == 0
    answer = one_json_object(capsys.readouterr().out)
    (run,) = runs_of("evaluate")
    evaluation = json.loads((artifacts(run) / "evaluation.json").read_text())
    assert answer["evaluated"] and answer["baseline"]["accuracy"] == evaluation["baseline"]["accuracy"]
    logged = {p["source"]: (p["accuracy"], p["gain"], p["train_seconds"]) for p in evaluation["pairs"]}
    assert {s["source"]: (s["accuracy"], s["gain"], s["train_seconds"]) for s in answer["sources"]} == logged
    assert all(0 <= s["holdout_accuracy"] <= 1 for s in answer["sources"])

    assert main(["register", *DEMO, *transfer(tiny)]) == 0
    out = capsys.readouterr().out
    (reg,) = runs_of("register")
    champion = json.loads((artifacts(reg) / "champion.json").read_text())
    assert f"registered models:/hubselect-kitchen@champion (version {champion['version']}" in flat(out)
    assert "mlflow models serve -m models:/hubselect-kitchen@champion" in out
    assert f"Champion: {champion['source']}" in out


def test_bad_input_with_json_is_one_line_on_stderr_and_nothing_on_stdout(tracking, capsys):
    assert main(["select", "--json", "--policy", "best", *FAST]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().count("\n") == 0 and "unknown policy 'best'" in captured.err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_takes_json_and_mlproject_does_not(command):
    assert build_parser().parse_args([command, "--json"]).json is True
    assert build_parser().parse_args([command]).json is False
    assert "json" not in render_mlproject()


def test_benchmark_answer_is_the_headline_table_of_the_report(tmp_path):
    shutil.copy(ROOT / "docs" / "results" / "fdu-mtl" / "report.md", tmp_path / "report.md")
    answer = benchmark_answer("r1", tmp_path)
    text = (tmp_path / "report.md").read_text()
    table = text.split("## Headline", 1)[1].split("\n\n| ", 1)[1].split("\n\n", 1)[0]
    policies = [line.split("|")[1].strip() for line in ("| " + table).splitlines()[2:]]
    assert [row["policy"] for row in answer["headline"]] == policies
    assert answer["headline"][0]["Spearman"] == ("| " + table).splitlines()[2].split("|")[2].strip()
    shown = render(answer)
    assert all(p in shown for p in policies) and "saved@3" in shown
    assert benchmark_answer("r1", tmp_path / "shard")["headline"] == []
