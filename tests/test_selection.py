"""Selection policies on hand-made score tables."""

from __future__ import annotations

import pandas as pd
import pytest

from hubselect.errors import HubselectError
from hubselect.selection import SelectionConfig, select

SCORES = pd.DataFrame(
    {"js": [0.1, 0.4, 0.2, 0.9, 0.5], "centroid_cosine": [0.3, 0.1, 0.2, 0.8, 0.6], "mmd": [0.2, 0.3, 0.1, 0.7, 0.9]},
    index=pd.Index(["a", "b", "c", "d", "e"], name="candidate"),
)
SIZES = {"a": 100, "b": 200, "c": 300, "d": 400, "e": 500}


def test_topk_uses_the_first_measure_only():
    sel = select(SCORES, SIZES, SelectionConfig("topk", k=2, measures="centroid_cosine,js"))
    assert sel.selected == ["b", "c"]
    assert list(sel.table.index) == ["b", "c", "a", "e", "d"]


def test_rank_aggregation_orders_by_mean_rank_and_explains():
    sel = select(SCORES, SIZES, SelectionConfig("rank", k=2, measures="js,centroid_cosine,mmd"))
    # mean ranks: a (1+3+2)/3=2, b (3+1+3)/3=2.33, c (2+2+1)/3=1.67, d 4.67, e 4.33
    assert list(sel.table.index) == ["c", "a", "b", "e", "d"]
    assert sel.selected == ["c", "a"]
    assert sel.table.loc["b", "decision"] == "pruned" and "outside top 2" in sel.table.loc["b", "reason"]
    assert sel.summary["tuning_examples_selected"] == 400 and sel.summary["tuning_examples_all"] == 1500
    assert sel.summary["estimated_tuning_saving"] == pytest.approx(1 - 400 / 1500)
    assert sel.summary["pruned_fraction"] == pytest.approx(0.6)


def test_aliases_select_the_same_measures():
    a = select(SCORES, SIZES, SelectionConfig("rank", k=2, measures="jensen_shannon,textemb,mmd"))
    assert a.selected == ["c", "a"]


def test_quantile_keeps_the_closest_share():
    sel = select(SCORES, SIZES, SelectionConfig("quantile", quantile=0.4, measures="js,centroid_cosine,mmd"))
    assert sel.selected == ["c", "a"]


def test_budget_walks_the_ranking_until_the_budget_is_spent():
    sel = select(SCORES, SIZES, SelectionConfig("budget", budget_examples=450, measures="js,centroid_cosine,mmd"))
    assert sel.selected == ["c", "a"]  # 300 + 100; adding b (200) would exceed 450
    with pytest.raises(HubselectError, match="below the closest candidate's 300"):
        select(SCORES, SIZES, SelectionConfig("budget", budget_examples=50, measures="js,centroid_cosine,mmd"))


@pytest.mark.parametrize("kwargs, message", [
    ({"policy": "best"}, "unknown policy 'best': choose from topk, rank, quantile, budget"),
    ({"k": 0}, "k must be at least 1"),
    ({"quantile": 1.5}, "quantile must be in"),
    ({"policy": "budget"}, "needs --budget-examples"),
])
def test_bad_policies_are_refused(kwargs, message):
    with pytest.raises(HubselectError, match=message):
        SelectionConfig(**kwargs)


def test_k_larger_than_candidates_and_unscored_measures_are_refused():
    with pytest.raises(HubselectError, match="k=6 is larger than the 5 usable candidates"):
        select(SCORES, SIZES, SelectionConfig("rank", k=6, measures="js"))
    with pytest.raises(HubselectError, match="measure 'frechet' was not scored"):
        select(SCORES, SIZES, SelectionConfig("rank", measures="frechet"))
    with pytest.raises(HubselectError, match="unknown measure 'nope'"):
        select(SCORES, SIZES, SelectionConfig("rank", measures="nope"))


def test_learned_policy_orders_by_predicted_gain_and_needs_a_model():
    predicted = pd.Series({"a": 0.01, "b": 0.05, "c": -0.02, "d": 0.03, "e": 0.0})
    sel = select(SCORES, SIZES, SelectionConfig("learned", k=2, measures="js", learned_model="model.json"), predicted)
    assert list(sel.table.index) == ["b", "d", "a", "e", "c"] and sel.selected == ["b", "d"]
    assert "predicted gain +0.0500" in sel.table.loc["b", "reason"]
    with pytest.raises(HubselectError, match="needs --learned-model"):
        SelectionConfig("learned")
    with pytest.raises(HubselectError, match="was given no predictions"):
        select(SCORES, SIZES, SelectionConfig("learned", measures="js", learned_model="model.json"))
