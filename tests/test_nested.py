"""Nested leave-one-group-out (hubselect.benchmark.nested) on small synthetic collections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hubselect.benchmark.nested import logo_scores, nested_logo, prior_table
from hubselect.benchmark.trust import Collection

GROUPS = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "b3": "B", "c1": "C", "c2": "C", "c3": "C"}


def collection(seed: int = 0, informative: str = "d_js") -> Collection:
    """Every task a target and a source; accuracy falls with ``informative`` (a noisy copy
    otherwise), so the rank over that measure is the right ranker everywhere."""
    rng = np.random.default_rng(seed)
    rows, seed_rows = [], []
    tasks = sorted(GROUPS)
    for t in tasks:
        for s in tasks:
            if s == t:
                continue
            d = rng.uniform(0, 1)
            acc = 0.9 - 0.4 * d
            rows.append({"target": t, "source": s, "accuracy": acc, "gain": acc - 0.5, "d_js": d if informative == "d_js"
                         else rng.uniform(0, 1), "d_kl": rng.uniform(0, 1), "label_distance": rng.uniform(0, 1),
                         "balance_distance": rng.uniform(0, 1), "source_rows": 100.0 + rng.integers(0, 900),
                         "same_labels": 1.0, "src_n_labels": 2.0, "tgt_n_labels": 2.0})
            seed_rows += [{"target": t, "source": s, "seed": k, "accuracy": acc + rng.normal(0, 0.01)} for k in (0, 1)]
    truth = pd.DataFrame(rows)
    return Collection(pd.DataFrame(seed_rows), truth, dict(GROUPS), {t: "x" for t in tasks}, ["js", "kl"],
                      {"js": "terms", "kl": "terms"})


def test_prior_never_reads_an_excluded_group_or_the_pairs_own_target():
    col = collection()
    truth = col.truth.copy()
    base = prior_table(truth, col.groups, {"A"})
    poisoned = truth.copy()
    poisoned.loc[poisoned["target"].map(GROUPS) == "A", "gain"] = 1e6  # the held-out group's own results
    again = prior_table(poisoned, col.groups, {"A"})
    np.testing.assert_allclose(again, base)
    row = truth[(truth["target"] == "b1") & (truth["source"] == "c1")].index[0]
    others = truth[(truth["source"] == "c1") & truth["target"].isin(["b2", "b3", "c2", "c3"])]["gain"].mean()
    assert base[row] == pytest.approx(others)  # not b1 itself, nothing of group A


def test_the_informative_ranker_is_chosen_in_every_fold_and_scores_perfectly_held_out():
    col = collection()
    result = nested_logo(col, ["rank:terms", "labels", "largest"], ["random", "oracle"])
    assert set(result.choices) == {"A", "B", "C"}
    chosen = result.per_target[result.per_target["chosen"]]
    assert sorted(chosen["target"]) == sorted(GROUPS)  # every target held out exactly once
    assert set(result.choices.values()) == {"rank:terms"}  # half informative beats random signals
    assert (chosen["ranker"] == "rank:terms").all()
    assert not result.inner["target"].isin([t for t, g in GROUPS.items() if g == "A"])[
        result.inner["held_out"] == "A"].any()  # A's choice never saw A's targets
    oracle = result.per_target[result.per_target["ranker"] == "oracle"]
    assert (oracle["regret@1"] == 0).all() and np.allclose(oracle["ndcg@3"], 1)


def test_choice_follows_the_other_groups_only():
    """When group A's best ranker differs from B's and C's, A's fold chooses B's and C's."""
    col = collection()
    truth = col.truth
    in_a = truth["target"].map(GROUPS) == "A"
    # in group A accuracy follows the label distance instead of js
    truth.loc[in_a, "accuracy"] = 0.9 - 0.4 * truth.loc[in_a, "label_distance"]
    truth["gain"] = truth["accuracy"] - 0.5
    result = nested_logo(col, ["rank:terms", "labels"], [])
    assert result.choices["A"] == "rank:terms"  # B and C reward the divergence
    a_rows = result.per_target[(result.per_target["group"] == "A") & result.per_target["chosen"]]
    assert (a_rows["ranker"] == "rank:terms").all()


def test_learned_rankers_are_fitted_without_the_scored_group():
    col = collection()
    scores = logo_scores(col, ["learned", "learned:pairwise"])
    assert set(scores["ranker"]) == {"learned", "learned:pairwise"} and len(scores) == 2 * len(GROUPS)
    # a linear model on the informative feature ranks nearly perfectly held out
    assert scores.groupby("ranker")["spearman"].mean().min() > 0.8


def test_the_nested_result_carries_the_leave_one_group_out_truth():
    from hubselect.benchmark.nested import logo_truth

    col = collection()
    result = nested_logo(col, ["rank:terms", "labels"], ["learned"])
    pd.testing.assert_frame_equal(result.logo_truth, logo_truth(col))


def test_the_inner_truth_is_fitted_without_the_held_out_group_and_the_scored_targets_group():
    col = collection()
    result = nested_logo(col, ["rank:terms", "labels"], [])
    inner = result.inner_truth
    assert set(inner["held_out"]) == {"A", "B", "C"}
    rows = inner[(inner["held_out"] == "A") & (inner["target"].map(GROUPS) == "B")]
    assert sorted(rows["target"].unique()) == ["b1", "b2", "b3"]  # only the other groups' targets
    expected = prior_table(col.truth, col.groups, {"A", "B"})[rows.index]
    np.testing.assert_allclose(rows["prior_loto"], expected)  # the prior saw group C only
    assert not inner[inner["held_out"] == "A"]["target"].map(GROUPS).eq("A").any()
