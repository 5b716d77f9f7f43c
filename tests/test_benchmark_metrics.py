"""The benchmark's metric functions against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hubselect.benchmark import metrics as m
from hubselect.core.errors import HubselectError

CLOSE = [0.9, 0.1, 0.5, 0.3]  # predicted order: s0, s2, s3, s1
ACC = [0.70, 0.80, 0.75, 0.60]  # true order: s1, s2, s0, s3


def test_spearman_and_kendall_match_scipy():
    rng = np.random.default_rng(1)
    c, a = rng.normal(size=12), rng.normal(size=12)
    assert m.spearman(c, a) == pytest.approx(stats.spearmanr(c, a).statistic)
    assert m.kendall(c, a) == pytest.approx(stats.kendalltau(c, a).statistic)
    assert m.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(m.spearman([1, 1, 1], [1, 2, 3]))


def test_regret_at_k_by_hand():
    assert m.regret_at_k(CLOSE, ACC, 1) == pytest.approx(10.0)  # picks s0 (70) vs best s1 (80)
    assert m.regret_at_k(CLOSE, ACC, 2) == pytest.approx(5.0)  # best of s0, s2 = 75
    assert m.regret_at_k(CLOSE, ACC, 4) == 0.0
    assert m.regret_at_k(CLOSE, ACC, 10) == 0.0  # k beyond n means all


def test_ndcg_at_k_by_hand():
    rel = np.array(ACC) - 0.60  # [0.10, 0.20, 0.15, 0.00]
    dcg = rel[0] / np.log2(2) + rel[2] / np.log2(3)
    ideal = 0.20 / np.log2(2) + 0.15 / np.log2(3)
    assert m.ndcg_at_k(CLOSE, ACC, 2) == pytest.approx(dcg / ideal)
    assert m.ndcg_at_k(ACC, ACC, 3) == pytest.approx(1.0)
    assert m.ndcg_at_k(CLOSE, [0.5] * 4, 3) == 1.0


def test_pairwise_accuracy_by_hand():
    # pairs (i<j): (0,1) acc down, close up -> wrong; (0,2) wrong; (0,3) right; (1,2) wrong; (1,3) wrong; (2,3) right
    assert m.pairwise_accuracy(CLOSE, ACC) == pytest.approx(2 / 6)
    assert m.pairwise_accuracy([1, 1], [0.1, 0.2]) == 0.5  # a tie in closeness counts half
    assert math.isnan(m.pairwise_accuracy([1, 2], [0.3, 0.3]))


def test_effective_and_precision_recall():
    gain = m.effective(ACC, 0.72, kind="gain")
    assert gain.tolist() == [False, True, True, False]
    assert m.effective(ACC, 0.0, kind="median").tolist() == [False, True, True, False]  # median 0.725
    assert m.precision_recall_at_k(CLOSE, gain, 2) == (0.5, 0.5)
    p, r = m.precision_recall_at_k(CLOSE, [False] * 4, 1)
    assert p == 0 and math.isnan(r)
    with pytest.raises(HubselectError, match="unknown effectiveness"):
        m.effective(ACC, 0.5, kind="best")


def test_runtime_saving_by_hand():
    assert m.runtime_saving(10.0, [100, 100, 100, 100], [0]) == pytest.approx(1 - 110 / 400)
    assert m.runtime_saving(0.0, [50, 150], [1]) == pytest.approx(0.25)
    with pytest.raises(HubselectError):
        m.runtime_saving(1.0, [0.0, 0.0], [0])


def test_random_regret_is_the_exact_expectation():
    acc = [0.8, 0.75, 0.7, 0.6]
    # k=1: mean regret = (0 + 5 + 10 + 20) / 4
    assert m.random_regret_at_k(acc, 1) == pytest.approx(8.75)
    # k=2: all 6 subsets, best of each: 0.8 x3, 0.75 x2, 0.7 x1 -> regret (0*3 + 5*2 + 10) / 6
    assert m.random_regret_at_k(acc, 2) == pytest.approx(20 / 6)
    from itertools import combinations

    brute = np.mean([100 * (0.8 - max(c)) for c in combinations(acc, 3)])
    assert m.random_regret_at_k(acc, 3) == pytest.approx(brute)


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, big = rng.normal(1, 1, 10), rng.normal(1, 1, 1000)
    lo, hi = m.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = m.bootstrap_ci(big)
    assert hi2 - lo2 < hi - lo
    assert all(math.isnan(x) for x in m.bootstrap_ci([float("nan")]))


def test_two_level_bootstraps_bracket_the_point_estimate():
    accs = [np.array(ACC), np.array([0.6, 0.9, 0.7, 0.65])]
    close = [np.array(CLOSE), np.array([0.2, 0.9, 0.5, 0.1])]
    lo, hi = m.accuracy_resample_ci(accs, [400, 400], close, lambda c, a: m.regret_at_k(c, a, 1), n_boot=200)
    point = np.mean([m.regret_at_k(c, a, 1) for c, a in zip(close, accs)])
    assert lo <= point <= hi
    rng = np.random.default_rng(0)
    correct = [(rng.random((4, 200)) < np.array(a)[:, None]).astype(float) for a in accs]
    lo, hi = m.bootstrap_examples_ci(correct, close, m.spearman, n_boot=100)
    assert -1 <= lo <= hi <= 1


def test_invalid_inputs_are_refused():
    with pytest.raises(HubselectError, match="equally long"):
        m.spearman([1, 2], [1, 2, 3])
    with pytest.raises(HubselectError, match="finite"):
        m.regret_at_k([1, float("nan")], [0.1, 0.2], 1)
    with pytest.raises(HubselectError, match="k must be at least 1"):
        m.regret_at_k([1, 2], [0.1, 0.2], 0)


def test_evaluate_policies_oracle_random_and_rank():
    pairs = pd.DataFrame({"target": ["t"] * 4, "source": list("abcd"), "accuracy": ACC,
                          "baseline_accuracy": 0.65, "train_seconds": 90.0, "eval_seconds": 10.0,
                          "d_x": [-c for c in CLOSE], "d_y": [0.1, 0.2, 0.3, 0.4]})
    table = m.evaluate_policies(pairs, {"t": 20.0}, ["x", "y"], {"rank:xy": ["x", "y"]})
    by = table.set_index("policy")
    assert by.loc["oracle", "regret@1"] == 0 and by.loc["oracle", "spearman"] == pytest.approx(1)
    assert by.loc["x", "regret@1"] == pytest.approx(10.0)
    assert by.loc["x", "saving@1"] == pytest.approx(1 - 120 / 400)
    assert by.loc["random", "saving@3"] == pytest.approx(0.25)
    # Borda of x ranks (a1, c2, d3, b4) and y ranks (a1, b2, c3, d4): a, c, then b/d tied
    assert by.loc["rank:xy", "regret@1"] == pytest.approx(10.0)
    summary = m.summarise(table, n_boot=50)
    assert {"spearman_lo", "regret@3_hi"} <= set(summary.columns)
