"""Selection policies on hand-made score tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hubselect.core.errors import HubselectError
from hubselect.selection.policy import SelectionConfig, select

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


def test_combined_policy_weighs_the_prior_against_divergence_and_needs_its_signals():
    prior = {"a": 0.0, "b": 0.9, "c": 0.1, "d": 0.5, "e": 0.2}
    cfg = SelectionConfig("combined", k=2, measures="js,centroid_cosine,mmd", weights="prior=1")
    sel = select(SCORES, SIZES, cfg, features={"prior": prior})
    assert list(sel.table.index) == ["b", "d", "e", "c", "a"] and sel.selected == ["b", "d"]
    assert sel.table.loc["b", "prior"] == 0.9 and "label_distance" not in sel.table.columns
    assert sel.table.loc["b", "reason"].startswith("rank 1 of 5 by combined score +") and "(prior=1)" in \
        sel.table.loc["b", "reason"]
    assert sel.summary["weights"] == "prior=1"
    divergence_only = select(SCORES, SIZES, SelectionConfig("combined", k=2, measures="js,centroid_cosine,mmd",
                                                            weights="divergence=1"))
    assert list(divergence_only.table.index) == ["c", "a", "b", "e", "d"]  # the mean-rank order
    with pytest.raises(HubselectError, match="weighs 'labels' but it was not computed"):
        select(SCORES, SIZES, SelectionConfig("combined", measures="js", weights="labels=1"), features={})


def test_every_policy_comes_from_the_table_and_answers_in_the_same_shape():
    from hubselect.selection.policy import POLICIES, POLICY_FUNCTIONS

    assert POLICIES == tuple(POLICY_FUNCTIONS) == ("topk", "rank", "quantile", "budget", "learned", "combined")
    extra = {"learned": {"learned_model": "m.json"}, "budget": {"budget_examples": 600},
             "combined": {"weights": "divergence=1"}}
    predicted = pd.Series({"a": 0.01, "b": 0.05, "c": -0.02, "d": 0.03, "e": 0.0})
    shapes = set()
    for policy in POLICIES:
        sel = select(SCORES, SIZES, SelectionConfig(policy, k=2, measures="js,mmd", **extra.get(policy, {})),
                     predicted if policy == "learned" else None)
        assert list(sel.table.columns[:1]) == ["rank"] and list(sel.table.columns[-2:]) == ["decision", "reason"]
        assert list(sel.table["rank"]) == [1, 2, 3, 4, 5] and sel.summary["policy"] == policy
        assert 1 <= len(sel.selected) < 5 and sel.summary["selected_sources"] == sel.selected
        shapes.add(tuple(sel.summary))
    assert len(shapes) == 1  # the same summary keys for every policy


def _catalog_with_samples(folder, names):
    """A fetch catalog whose usable candidates have labelled samples (one more is rejected)."""
    from modelkit import toy_data

    from hubselect.data.entries import Catalog, SampleInfo, TargetEntry, TaskEntry

    (folder / "samples").mkdir(parents=True, exist_ok=True)
    candidates = []
    for i, name in enumerate(names):
        texts, labels = toy_data(10 + 10 * i, seed=i)
        pd.DataFrame({"text": texts, "label": labels}).to_parquet(folder / "samples" / f"{name}.parquet")
        sample = SampleInfo(f"samples/{name}.parquet", "train", len(texts), rows_total=1000 * (i + 1))
        candidates.append(TaskEntry(name, sample=sample))
    target = TargetEntry("target", SampleInfo("samples/target.parquet", "train", 1))
    return Catalog({}, target, (*candidates, TaskEntry("gone", status="rejected")), folder=folder)


def test_learned_policy_inference_reads_the_model_and_source_features_at_selection_time(tmp_path):
    from hubselect.benchmark import learned
    from hubselect.selection import learned as learned_policy

    catalog = _catalog_with_samples(tmp_path, list(SCORES.index))
    features = learned_policy.source_features_from_catalog(catalog)
    assert list(features.index) == list(SCORES.index) and list(features.columns) == list(learned_policy.SOURCE_FEATURES)
    assert features.loc["e", "src_log_rows"] == pytest.approx(np.log10(5000))
    # a model that favours big sources and high JS, fitted as the benchmark does
    table = pd.concat([learned_policy.pair_features(SCORES, ["js"], features)] * 2)
    model = learned.fit(table, list(table["src_log_rows"] + table["z_js"]))
    path = learned.save(model, tmp_path / "model" / learned_policy.FILENAME)
    gains = learned_policy.predict_from_catalog(learned_policy.load(path.parent), SCORES, catalog)
    assert list(gains.index) == list(SCORES.index) and gains.idxmax() == "d" and gains.idxmin() == "a"
    sel = select(SCORES, SIZES, SelectionConfig("learned", k=2, measures="js", learned_model=str(path)), gains)
    assert sel.selected == ["d", "e"]
    divergence_only = learned.save(learned.fit(table[["z_js"]], list(table["z_js"])), tmp_path / "d.json")
    model = learned_policy.load(divergence_only)  # needs no source features: the catalog is not read
    empty = _catalog_with_samples(tmp_path / "empty", [])
    assert learned_policy.predict_from_catalog(model, SCORES, empty).idxmax() == "d"
    with pytest.raises(HubselectError, match="no learned policy at"):
        learned_policy.load(tmp_path / "missing.json")
