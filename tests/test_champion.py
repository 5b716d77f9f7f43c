"""Unit tests of the champion choice, the job's runtime accounting and the label-map parser.

Each function is imported on one line below, so moving it to another module is a one-line
change here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubselect.core.errors import HubselectError
from hubselect.models.champion import BASELINE, choose_champion, pick_champion  # noqa: I001 - one line per moved function
from hubselect.models.transfer import parse_label_map
from hubselect.pipeline.steps.main import runtime_accounting


def pair(source: str, accuracy: float, macro_f1: float, baseline: float = 0.5) -> dict:
    return {"source": source, "source_revision": f"sha256:{source}", "path": f"/models/{source}",
            "accuracy": accuracy, "macro_f1": macro_f1, "gain": accuracy - baseline}


def evaluation(baseline: tuple[float, float], *pairs: dict) -> dict:
    return {"target": "kitchen", "baseline": {"accuracy": baseline[0], "macro_f1": baseline[1]}, "pairs": list(pairs)}


# ---------------------------------------------------------------- choose_champion


def test_metric_registers_the_untuned_baseline_when_tuning_hurt():
    tuned = [pair("books", 0.70, 0.69), pair("news", 0.55, 0.50)]
    champion, reason = choose_champion(evaluation((0.81, 0.80), *tuned), tuned, "metric")
    assert champion["source"] == BASELINE and champion["path"] is None and champion["gain"] == 0.0
    assert champion["accuracy"] == 0.81 and champion["macro_f1"] == 0.80
    assert reason == "best target accuracy 0.8100 among 2 tuned sources and the untuned baseline (0.8100)"


def test_metric_registers_the_best_tuned_source_whatever_its_rank():
    tuned = [pair("books", 0.70, 0.69), pair("appliances", 0.84, 0.83)]
    champion, reason = choose_champion(evaluation((0.81, 0.80), *tuned), tuned, "metric")
    assert champion is tuned[1]
    assert reason.startswith("best target accuracy 0.8400 among 2 tuned sources") and "(0.8100)" in reason


@pytest.mark.parametrize("books_f1, baseline_f1, winner", [
    (0.79, 0.70, "books"),  # same accuracy as the baseline: the higher macro-F1 wins
    (0.70, 0.79, BASELINE),
])
def test_an_accuracy_tie_is_broken_by_macro_f1(books_f1, baseline_f1, winner):
    tuned = [pair("books", 0.80, books_f1), pair("news", 0.60, 0.99)]
    champion, _ = choose_champion(evaluation((0.80, baseline_f1), *tuned), tuned, "metric")
    assert champion["source"] == winner


def test_a_tie_between_tuned_sources_is_broken_by_macro_f1_then_by_rank():
    tuned = [pair("books", 0.80, 0.70), pair("movies", 0.80, 0.75), pair("news", 0.80, 0.75)]
    champion, _ = choose_champion(evaluation((0.50, 0.50), *tuned), tuned, "metric")
    assert champion["source"] == "movies"  # higher macro-F1 than books; news ties it and ranks lower


def test_metric_without_an_evaluation_split_is_a_one_line_error():
    with pytest.raises(HubselectError) as raised:
        choose_champion(None, [pair("books", 0.8, 0.8)], "metric")
    message = str(raised.value)
    assert "\n" not in message and "champion=metric needs a labelled evaluation split" in message
    assert "--eval-split" in message and "--champion rank" in message


def test_rank_takes_the_top_ranked_source_and_never_reads_the_evaluation():
    tuned = [pair("books", 0.10, 0.10), pair("appliances", 0.90, 0.90)]
    for result in (evaluation((0.8, 0.8), *tuned), None):
        champion, reason = choose_champion(result, tuned, "rank")
        assert champion is tuned[0]
        assert reason == "top-ranked selected source (rank 1 of the selection); target labels not used"


def test_rank_on_a_labelled_target_reports_the_accuracy_its_blind_choice_reached():
    """The choice is the top-ranked source whatever the labels say; its record is the measured pair."""
    from types import SimpleNamespace

    measured = [pair("books", 0.10, 0.10), pair("appliances", 0.90, 0.90)]
    tuned = [{k: p[k] for k in ("source", "source_revision", "path")} for p in measured]  # as finetune writes them
    result = evaluation((0.8, 0.8), *measured)
    champion, reason, policy = pick_champion(result, tuned, SimpleNamespace(champion="rank"), catalog=None)
    assert policy == "rank" and champion["source"] == "books"
    assert champion["accuracy"] == 0.10 and champion["macro_f1"] == 0.10 and champion["gain"] == 0.10 - 0.5
    champion, _, _ = pick_champion(None, tuned, SimpleNamespace(champion="rank"), catalog=None)
    assert champion is tuned[0]  # no labels: nothing measured to report


scores = st.floats(0, 1, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.tuples(scores, scores), st.lists(st.tuples(scores, scores), min_size=1, max_size=6))
def test_metric_champion_is_the_lexicographic_best_of_the_pairs_and_the_baseline(baseline, measured):
    tuned = [pair(f"s{i}", acc, f1, baseline[0]) for i, (acc, f1) in enumerate(measured)]
    champion, _ = choose_champion(evaluation(baseline, *tuned), tuned, "metric")
    best = max([baseline, *measured])
    assert (champion["accuracy"], champion["macro_f1"]) == best
    assert champion["gain"] >= 0.0  # never worse than the untuned model
    if champion["source"] == BASELINE:
        assert all((acc, f1) < baseline for acc, f1 in measured)  # an exact tie goes to the tuned source
    else:
        assert champion in tuned and champion["path"] is not None


# ---------------------------------------------------------------- runtime_accounting


def write_job(tmp_path: Path, tuned: list[dict], eval_seconds: dict[str, float], statuses: list[str]) -> Path:
    """The evaluate step's folder as the job leaves it: its evaluation, and its inputs' folders."""
    evaluate = tmp_path / "evaluate"
    fetch = evaluate / "finetune" / "select" / "score" / "fetch"
    fetch.mkdir(parents=True)
    pairs = [{"source": s, "eval_seconds": secs} for s, secs in eval_seconds.items()]
    (evaluate / "evaluation.json").write_text(json.dumps({"baseline": {"accuracy": 0.5}, "pairs": pairs}))
    (evaluate / "finetune" / "tuned.json").write_text(json.dumps({"tuned": tuned}))
    candidates = [{"name": f"c{i}", "status": status} for i, status in enumerate(statuses)]
    target = {"name": "kitchen", "score": {"sample": "samples/kitchen.parquet", "split": "train", "n": 100}}
    (fetch / "catalog.json").write_text(json.dumps({"settings": {}, "target": target, "candidates": candidates}))
    return evaluate


def tuned_record(source: str, train_seconds: float, from_cache: bool = False) -> dict:
    return {"source": source, "train_seconds": train_seconds, "from_cache": from_cache}


PHASES = {"fetch": 10.0, "score": 5.0, "select": 1.0, "finetune": 999.0, "register": 999.0}


def test_runtime_accounting_against_brute_force(tmp_path):
    folder = write_job(tmp_path, [tuned_record("a", 30.0), tuned_record("b", 50.0)], {"a": 4.0, "b": 6.0},
                       ["ok", "ok", "ok", "ok", "rejected"])
    got = runtime_accounting(folder, PHASES, 123.0)
    ours, brute = 10 + 5 + 1 + 34 + 56, 10 + 4 * 45  # register and finetune's own clock are left out
    assert got == pytest.approx({"end_to_end_estimate_s": ours, "brute_force_estimate_s": brute,
                                 "runtime_saving": 1 - ours / brute, "pair_cost_mean_s": 45.0,
                                 "time_wall_total_s": 123.0})


def test_a_cached_model_costs_its_original_training_time(tmp_path):
    """A rerun that takes every model from the cache must not flatter the saving."""
    fresh = runtime_accounting(write_job(tmp_path / "fresh", [tuned_record("a", 30.0)], {"a": 4.0}, ["ok"] * 3),
                               PHASES, 60.0)
    cached = runtime_accounting(write_job(tmp_path / "cached", [tuned_record("a", 30.0, from_cache=True)],
                                          {"a": 4.0}, ["ok"] * 3), PHASES, 2.0)
    assert cached["pair_cost_mean_s"] == fresh["pair_cost_mean_s"] == 34.0
    assert cached["runtime_saving"] == fresh["runtime_saving"] and cached["time_wall_total_s"] == 2.0


def test_zero_candidates_and_zero_time_give_no_saving_and_no_division_by_zero(tmp_path):
    got = runtime_accounting(write_job(tmp_path, [], {}, []), {}, 0.0)
    assert got == {"end_to_end_estimate_s": 0.0, "brute_force_estimate_s": 0.0, "runtime_saving": 0.0,
                   "pair_cost_mean_s": 0.0, "time_wall_total_s": 0.0}
    got = runtime_accounting(write_job(tmp_path / "fetched", [], {}, ["rejected"]), {"fetch": 2.0, "score": 2.0}, 4.0)
    assert got["brute_force_estimate_s"] == 2.0 and got["runtime_saving"] == pytest.approx(-1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.1, 1e4), min_size=1, max_size=5), st.floats(0, 100), st.integers(0, 5))
def test_tuning_every_usable_candidate_without_scoring_saves_nothing(tmp_path_factory, costs, fetch, extra):
    """Brute force is the job with every usable candidate tuned; selecting fewer is what saves."""
    tuned = [tuned_record(f"s{i}", cost) for i, cost in enumerate(costs)]
    folder = write_job(tmp_path_factory.mktemp("job"), tuned, {}, ["ok"] * len(costs))
    assert runtime_accounting(folder, {"fetch": fetch}, 1.0)["runtime_saving"] == pytest.approx(0.0, abs=1e-9)
    folder = write_job(tmp_path_factory.mktemp("job"), tuned, {}, ["ok"] * (len(costs) + extra))
    saving = runtime_accounting(folder, {"fetch": fetch}, 1.0)["runtime_saving"]
    assert saving == pytest.approx(1 - (fetch + sum(costs)) / (fetch + (len(costs) + extra) * sum(costs) / len(costs)))
    assert 0.0 <= saving + 1e-9 and saving < 1.0


# ---------------------------------------------------------------- parse_label_map


@pytest.mark.parametrize("text, expected", [
    ("pos:positive,neg:negative", (("pos", "positive"), ("neg", "negative"))),
    (" pos : positive , neg:negative ,", (("pos", "positive"), ("neg", "negative"))),
    ("", ()),
    (" , ", ()),
])
def test_label_map_parses_target_source_pairs(text, expected):
    assert parse_label_map(text) == expected


@pytest.mark.parametrize("entry", ["pos", "pos:positive:extra", "pos=positive", ":positive", "pos:", " : "])
def test_a_bad_label_map_entry_is_one_line_naming_it(entry):
    with pytest.raises(HubselectError) as raised:
        parse_label_map(f"neg:negative,{entry}")
    assert str(raised.value) == f"label map entry '{entry.strip()}' is not 'target_label:source_label'"


def test_a_target_label_named_twice_is_refused_naming_both_entries():
    with pytest.raises(HubselectError) as raised:
        parse_label_map("pos:positive,neg:negative,pos : negative")
    assert str(raised.value) == ("label map names target label 'pos' twice (pos:positive, pos : negative): "
                                 "give each target label one source label")
