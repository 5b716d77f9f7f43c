"""Tests of hubselect.scoring.divergence: measure properties, independent references, the registry."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance as ssd
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import hubselect.scoring.divergence as hd
from hubselect.core.errors import HubselectError
from hubselect.scoring.divergence import (
    MEASURES,
    MeasureSpec,
    bhattacharyya_distance,
    central_moment_discrepancy,
    centroid_cosine_distance,
    coral_distance,
    cosine_distance,
    frechet_distance,
    get_measure,
    hellinger_distance,
    jaccard_distance,
    jensen_shannon_divergence,
    kl_divergence,
    list_measures,
    mmd_rbf,
    oov_rate,
    proxy_a_distance,
    renyi_divergence,
    resolve_measures,
    total_variation_distance,
)
from hubselect.scoring.divergence.terms import BHATTACHARYYA_COEFFICIENT_FLOOR

TERM_SPECS = [s for s in MEASURES if s.kind == "terms"]
EMB_SPECS = [s for s in MEASURES if s.kind == "embeddings"]
ids = lambda s: s.name  # noqa: E731

CANONICAL = (
    "kl js renyi bhattacharyya hellinger cosine tv jaccard oov "
    "centroid_cosine frechet mmd coral cmd pad"
).split()


# ----------------------------------------------------------------------------- data


def term_counts(seed: int = 0, vocab: int = 60, m: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Sparse-ish integer counts: p (V,), q (m, V), every row with tokens and some zeros."""
    rng = np.random.default_rng(seed)
    p = rng.poisson(1.5, vocab).astype(float)
    q = rng.poisson(rng.uniform(0.3, 3.0, (m, 1)), (m, vocab)).astype(float)
    p[0] += 1
    q[:, 1] += 1
    return p, q


def clouds(seed: int = 0, n: int = 40, m: int = 30, d: int = 5, shift: float = 0.7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + 1.0
    y = rng.normal(size=(m, d)) * 1.3 + 1.0 + shift
    return x, y


def pair(spec: MeasureSpec, seed: int = 0):
    if spec.kind == "terms":
        p, q = term_counts(seed)
        return p, q[0]
    return clouds(seed)


def self_tolerance(spec: MeasureSpec) -> float:
    return 0.3 if spec.name == "pad" else 1e-9


# ----------------------------------------------------------------------------- registry-wide properties


@pytest.mark.parametrize("spec", MEASURES, ids=ids)
def test_self_distance_is_zero(spec):
    for seed in range(3):
        a, b = pair(spec, seed)
        assert spec(a, a) == pytest.approx(0.0, abs=self_tolerance(spec))
        assert spec(b, b) == pytest.approx(0.0, abs=self_tolerance(spec))


@pytest.mark.parametrize("spec", TERM_SPECS, ids=ids)
def test_term_self_distance_is_exactly_zero_and_positive_otherwise(spec):
    p, q = term_counts(1)
    assert spec(p, p) == 0.0
    assert spec(p, np.stack([q[0], p, q[1], p]))[[1, 3]].tolist() == [0.0, 0.0]
    assert spec(p, np.stack([p, 3 * p])) == pytest.approx([0.0, 0.0], abs=1e-12)
    assert np.all(spec(p, q) > 0)


@pytest.mark.parametrize("spec", MEASURES, ids=ids)
def test_non_negative_finite_and_distinguishes(spec):
    for seed in range(4):
        a, b = pair(spec, seed)
        value = spec(a, b)
        assert isinstance(value, float)
        assert math.isfinite(value) and value >= 0.0
        assert value > (0.3 if spec.name == "pad" else 1e-6)


@pytest.mark.parametrize("spec", MEASURES, ids=ids)
def test_symmetry_flag_is_truthful(spec):
    values = [(spec(a, b), spec(b, a)) for a, b in (pair(spec, seed) for seed in range(4))]
    if spec.symmetric:
        for ab, ba in values:
            assert ab == pytest.approx(ba, rel=1e-9, abs=1e-12)
    else:
        assert any(not math.isclose(ab, ba, rel_tol=1e-6) for ab, ba in values)


@pytest.mark.parametrize("spec", TERM_SPECS, ids=ids)
def test_terms_invariant_to_rescaling_counts(spec):
    p, q = term_counts(2)
    np.testing.assert_allclose(spec(p * 7, q * 0.3), spec(p, q), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(spec(p, q * np.array([[1.0], [2.0], [1e-3], [1e5]])), spec(p, q), rtol=1e-9)


@pytest.mark.parametrize("spec", TERM_SPECS, ids=ids)
def test_terms_vectorised_equals_row_by_row(spec):
    p, q = term_counts(3, m=6)
    batch = spec(p, q)
    assert isinstance(batch, np.ndarray) and batch.shape == (6,) and batch.dtype == np.float64
    rows = [spec(p, row) for row in q]
    assert all(isinstance(r, float) for r in rows)
    np.testing.assert_allclose(batch, rows, rtol=1e-12, atol=1e-15)
    single = spec(p, q[:1])
    assert isinstance(single, np.ndarray) and single.shape == (1,)


@pytest.mark.parametrize("spec", TERM_SPECS, ids=ids)
def test_terms_accept_integer_lists_and_disjoint_supports(spec):
    value = spec([3, 1, 0, 0], [0, 0, 2, 5])
    assert math.isfinite(value) and value > 0
    assert spec([3, 1, 0, 0], [[0, 0, 2, 5], [3, 1, 0, 0]])[1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("spec", TERM_SPECS, ids=ids)
@pytest.mark.parametrize(
    ("p", "q", "pattern"),
    [
        (np.ones((2, 3)), np.ones(3), r"p must be a non-empty 1-D .*shape \(2, 3\)"),
        (np.ones(0), np.ones(0), r"p must be a non-empty 1-D .*shape \(0,\)"),
        (np.ones(5), np.ones((3, 4)), r"q must be 1-D or 2-D with 5 columns like p, got shape \(3, 4\)"),
        (np.ones(5), np.ones(4), r"q must be 1-D or 2-D with 5 columns like p, got shape \(4,\)"),
        (np.ones(5), np.ones((2, 2, 5)), r"q must be 1-D or 2-D with 5 columns .*\(2, 2, 5\)"),
        (np.ones(5), np.ones((0, 5)), r"q must be .*shape \(0, 5\)"),
        (np.array([1.0, np.nan, 1.0]), np.ones(3), r"p contains 1 NaN or infinite"),
        (np.ones(3), np.array([[1.0, 1.0, 1.0], [1.0, np.inf, 0.0]]), r"q contains 1 NaN or infinite"),
        (np.array([1.0, -1.0, 2.0]), np.ones(3), r"p contains negative counts"),
        (np.ones(3), np.array([1.0, -0.5, 2.0]), r"q contains negative counts"),
        (np.zeros(3), np.ones(3), r"p sums to zero"),
        (np.ones(3), np.zeros(3), r"q sum\(s\) to zero"),
        (np.ones(3), np.array([[1.0, 0, 0], [0, 0, 0], [0, 2, 0], [0, 0, 0]]), r"q row\(s\) \[1, 3\]"),
        (np.array(["a", "b"]), np.ones(2), r"p must be a real numeric array"),
        (np.ones(2), np.array([1 + 1j, 2]), r"q must be a real numeric array"),
    ],
)
def test_terms_reject_bad_input(spec, p, q, pattern):
    with pytest.raises(ValueError, match=pattern):
        spec(p, q)


@pytest.mark.parametrize("spec", EMB_SPECS, ids=ids)
@pytest.mark.parametrize(
    ("x", "y", "pattern"),
    [
        (np.ones(5), np.ones((3, 5)), r"x must be a 2-D array .*shape \(5,\)"),
        (np.ones((4, 0)), np.ones((3, 0)), r"x must be a 2-D array .*shape \(4, 0\)"),
        (np.ones((1, 5)), np.ones((3, 5)), r"x needs at least 2 rows.*\(1, 5\)"),
        (np.ones((4, 5)), np.ones((3, 4)), r"y must be 2-D with 5 columns like x, got shape \(3, 4\)"),
        (np.ones((4, 5)), np.ones((3, 5, 1)), r"y must be 2-D with 5 columns.*\(3, 5, 1\)"),
        (np.ones((4, 5)), np.ones((1, 5)), r"y needs at least 2 rows.*\(1, 5\)"),
        (np.full((4, 2), np.nan), np.ones((3, 2)), r"x contains 8 NaN or infinite"),
        (np.ones((4, 2)), np.array([[1.0, 2.0], [np.inf, 0.0]]), r"y contains 1 NaN or infinite"),
    ],
)
def test_embeddings_reject_bad_input(spec, x, y, pattern):
    with pytest.raises(ValueError, match=pattern):
        spec(x, y)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda v: st.tuples(
            st.lists(st.integers(0, 40), min_size=v, max_size=v).filter(any),
            st.lists(st.integers(0, 40), min_size=v, max_size=v).filter(any),
        )
    )
)
def test_terms_property_random_counts(pq):
    p, q = (np.array(a, dtype=float) for a in pq)
    for spec in TERM_SPECS:
        value = spec(p, q)
        assert math.isfinite(value) and value >= 0.0, spec.name
        assert spec(p, p) == pytest.approx(0.0, abs=1e-12), spec.name
        if spec.name in ("js", "hellinger", "cosine", "tv", "jaccard", "oov"):
            assert value <= 1.0 + 1e-12, spec.name


# ----------------------------------------------------------------------------- term references


def smooth(counts: np.ndarray, eps: float) -> np.ndarray:
    dist = counts / counts.sum()
    return (dist + eps) / (1 + counts.size * eps)


def test_kl_matches_scipy_entropy_with_same_smoothing():
    p, q = term_counts(4)
    for eps in (1e-6, 1e-3):
        expected = [scipy.stats.entropy(smooth(p, eps), smooth(row, eps)) for row in q]
        np.testing.assert_allclose(kl_divergence(p, q, epsilon=eps), expected, rtol=1e-10)
    # smoothing matters: a larger epsilon shrinks the divergence to a missing term
    assert kl_divergence([1, 1], [1, 0], epsilon=1e-3) < kl_divergence([1, 1], [1, 0], epsilon=1e-9)


def test_js_matches_scipy_jensenshannon_squared():
    p, q = term_counts(5)
    for base in (2, math.e, 10):
        expected = [ssd.jensenshannon(p, row, base=base) ** 2 for row in q]
        np.testing.assert_allclose(jensen_shannon_divergence(p, q, base=base), expected, rtol=1e-10)
    assert jensen_shannon_divergence([1, 0], [0, 1]) == pytest.approx(1.0)


def test_cosine_matches_scipy():
    p, q = term_counts(6)
    np.testing.assert_allclose(cosine_distance(p, q), [ssd.cosine(p, row) for row in q], rtol=1e-10)


def test_renyi_matches_closed_form_on_hand_made_distributions():
    p, q = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    for alpha, eps in ((0.5, 1e-6), (0.99, 1e-6), (2.0, 1e-3), (7.0, 1e-2)):
        ps, qs = smooth(p, eps), smooth(q, eps)
        expected = math.log(sum(a**alpha * b ** (1 - alpha) for a, b in zip(ps, qs))) / (alpha - 1)
        assert renyi_divergence(p, q, alpha=alpha, epsilon=eps) == pytest.approx(expected, rel=1e-10)
    # unsmoothed closed form, 0.1/0.2/0.3/0.4 vs 0.4/0.3/0.2/0.1 at alpha = 2: ln(sum p^2/q)
    expected = math.log(0.01 / 0.4 + 0.04 / 0.3 + 0.09 / 0.2 + 0.16 / 0.1)
    assert renyi_divergence(p, q, alpha=2.0, epsilon=1e-12) == pytest.approx(expected, rel=1e-9)


def test_renyi_limits_and_relations():
    p, q = term_counts(7)
    # alpha -> 1 gives KL (same smoothing)
    np.testing.assert_allclose(renyi_divergence(p, q, alpha=1 - 1e-7), kl_divergence(p, q), rtol=1e-5)
    np.testing.assert_allclose(renyi_divergence(p, q, alpha=1 + 1e-7), kl_divergence(p, q), rtol=1e-5)
    # alpha = 1/2 is twice the Bhattacharyya distance (negligible smoothing, full supports)
    full_p, full_q = p + 1, q + 1
    np.testing.assert_allclose(
        renyi_divergence(full_p, full_q, alpha=0.5, epsilon=1e-14),
        2 * bhattacharyya_distance(full_p, full_q),
        rtol=1e-9,
    )
    # non-decreasing in alpha
    orders = [0.2, 0.5, 0.9, 0.99, 1.5, 3.0, 20.0]
    values = np.array([renyi_divergence(p, q, alpha=a) for a in orders])
    assert np.all(np.diff(values, axis=0) >= -1e-12)
    # large orders stay finite (log-sum-exp shift)
    assert np.all(np.isfinite(renyi_divergence(p, q, alpha=500.0, epsilon=1e-12)))


def test_renyi_high_order_matches_log_sum_exp_reference():
    from scipy.special import logsumexp

    cases = [
        (np.array([1e12, 1.0]), np.array([1.0, 0.0]), 10.0, 1e-15),  # tiny mass dominates: no cancellation
        (np.array([5.0, 1.0, 0.0, 2.0]), np.array([0.0, 3.0, 1.0, 1.0]), 50.0, 1e-9),
        (np.array([5.0, 1.0, 0.0, 2.0]), np.array([0.0, 3.0, 1.0, 1.0]), 0.3, 1e-9),
    ]
    for p, q, alpha, eps in cases:
        ps, qs = smooth(p, eps), smooth(q, eps)
        expected = logsumexp(alpha * np.log(ps) + (1 - alpha) * np.log(qs)) / (alpha - 1)
        assert renyi_divergence(p, q, alpha=alpha, epsilon=eps) == pytest.approx(expected, rel=1e-9)


def test_hand_made_overlap_values():
    p, q = [1, 1, 0, 0], [0, 1, 1, 0]  # P = (.5, .5, 0, 0), Q = (0, .5, .5, 0), BC = 0.5
    assert bhattacharyya_distance(p, q) == pytest.approx(math.log(2))
    assert hellinger_distance(p, q) == pytest.approx(math.sqrt(0.5))
    assert total_variation_distance(p, q) == pytest.approx(0.5)
    assert cosine_distance(p, q) == pytest.approx(0.5)
    assert jaccard_distance(p, q) == pytest.approx(2 / 3)
    assert oov_rate(p, q) == pytest.approx(0.5)
    assert oov_rate([1, 3, 0], [5, 0, 0]) == pytest.approx(0.75)
    assert oov_rate([5, 0, 0], [1, 3, 0]) == pytest.approx(0.0)
    # unequal masses: P = (.2, .8), Q = (.5, .5)
    assert bhattacharyya_distance([1, 4], [3, 3]) == pytest.approx(-math.log(math.sqrt(0.1) + math.sqrt(0.4)))
    assert hellinger_distance([1, 4], [3, 3]) == pytest.approx(math.sqrt(1 - math.sqrt(0.1) - math.sqrt(0.4)))
    assert total_variation_distance([1, 4], [3, 3]) == pytest.approx(0.3)


def test_disjoint_supports_give_maximal_finite_values():
    p, q = [2, 3, 0, 0], [0, 0, 1, 9]
    assert bhattacharyya_distance(p, q) == pytest.approx(-math.log(BHATTACHARYYA_COEFFICIENT_FLOOR))
    assert 700 < bhattacharyya_distance(p, q) < 710
    for f in (hellinger_distance, total_variation_distance, jaccard_distance, oov_rate, cosine_distance,
              jensen_shannon_divergence):
        assert f(p, q) == pytest.approx(1.0), f.__name__


def test_bhattacharyya_and_hellinger_match_direct_formula_across_overlaps():
    rng = np.random.default_rng(8)
    p = rng.random(30)
    q = rng.random((40, 30)) * (rng.random((40, 30)) < np.linspace(0.02, 1, 40)[:, None])
    q[:, 0] += 1e-3  # no empty rows; overlaps from tiny (far branch) to large (near branch)
    P, Q = p / p.sum(), q / q.sum(axis=1, keepdims=True)
    bc = np.sqrt(P * Q).sum(axis=1)
    assert bc.min() < 0.5 < bc.max()
    np.testing.assert_allclose(bhattacharyya_distance(p, q), -np.log(bc), rtol=1e-9)
    np.testing.assert_allclose(hellinger_distance(p, q), np.sqrt(1 - bc), rtol=1e-9)


def test_term_parameter_validation():
    p, q = term_counts(9)
    for bad in (0, -1e-3, np.nan, np.inf):
        with pytest.raises(ValueError, match="epsilon"):
            kl_divergence(p, q, epsilon=bad)
        with pytest.raises(ValueError, match="epsilon"):
            renyi_divergence(p, q, epsilon=bad)
    for bad in (1, 1.0, 0, -0.5, np.nan):
        with pytest.raises(ValueError, match="alpha"):
            renyi_divergence(p, q, alpha=bad)
    for bad in (1, 0, -2, np.inf):
        with pytest.raises(ValueError, match="base"):
            jensen_shannon_divergence(p, q, base=bad)


def test_term_inputs_are_not_modified():
    p, q = term_counts(10)
    p0, q0 = p.copy(), q.copy()
    for spec in TERM_SPECS:
        spec(p, q)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(q, q0)


# ----------------------------------------------------------------------------- embedding references


def gaussian_w2(mu1, s1, mu2, s2) -> float:
    root = scipy.linalg.sqrtm(s1)
    cross = scipy.linalg.sqrtm(root @ s2 @ root).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * cross))


def test_frechet_matches_analytic_gaussian_w2():
    rng = np.random.default_rng(11)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 0.5, 0.0])
    a1, a2 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s1, s2 = a1 @ a1.T + 0.5 * np.eye(3), a2 @ a2.T + 0.2 * np.eye(3)
    x = rng.multivariate_normal(mu1, s1, size=40_000)
    y = rng.multivariate_normal(mu2, s2, size=40_000)
    analytic = gaussian_w2(mu1, s1, mu2, s2)
    assert frechet_distance(x, y) == pytest.approx(analytic, rel=0.05)
    # exactly the formula on the sample moments (no ridge)
    sample = gaussian_w2(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert frechet_distance(x, y, eps=0.0) == pytest.approx(sample, rel=1e-8)


def test_frechet_one_dimensional_closed_form_and_scaling():
    x = np.array([[0.0], [2.0], [4.0]])  # mean 2, sd 2
    y = np.array([[10.0], [11.0]])  # mean 10.5, sd sqrt(0.5)
    assert frechet_distance(x, y, eps=0) == pytest.approx(8.5**2 + (2 - math.sqrt(0.5)) ** 2, rel=1e-12)
    a, b = clouds(12)
    assert frechet_distance(3 * a, 3 * b) == pytest.approx(9 * frechet_distance(a, b), rel=1e-9)
    assert frechet_distance(a + 5, b + 5) == pytest.approx(frechet_distance(a, b), rel=1e-9)


def test_frechet_self_distance_rank_deficient():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(6, 40)) * 10  # n < d: singular covariance
    shift = np.full(40, 0.02)  # same covariance: W2^2 is exactly |shift|^2 (naive sqrtm is off by ~1e-4)
    assert frechet_distance(x, x + shift, eps=0) == pytest.approx(shift @ shift, rel=1e-6)
    assert frechet_distance(x, x + shift) == pytest.approx(shift @ shift, rel=1e-6)
    assert frechet_distance(x, x) <= 1e-9 * np.trace(np.cov(x, rowvar=False))
    assert frechet_distance(x, x, eps=0) <= 1e-9 * np.trace(np.cov(x, rowvar=False))
    assert frechet_distance(x, x[::-1]) <= 1e-9 * np.trace(np.cov(x, rowvar=False))


def naive_mmd(x, y, sigma):
    def k(a, b):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * sigma**2))

    kxx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    kyy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return kxx + kyy - 2 * kxy


def test_mmd_matches_naive_double_loop():
    x, y = clouds(14, n=9, m=7, d=3)
    for sigma in (0.5, 2.0):
        assert mmd_rbf(x, y, bandwidth=sigma) == pytest.approx(naive_mmd(x, y, sigma), rel=1e-9)
    pooled = np.concatenate([x, y])
    dists = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(len(pooled)) for j in range(i + 1, len(pooled))]
    median = float(np.median(dists))
    assert mmd_rbf(x, y) == pytest.approx(naive_mmd(x, y, median), rel=1e-9)


def test_mmd_subsampling_is_seeded_and_keeps_self_zero():
    x, y = clouds(15, n=300, m=250, d=4)
    assert mmd_rbf(x, y, max_points=50) == mmd_rbf(x, y, max_points=50)
    assert mmd_rbf(x, y, max_points=50, seed=1) != mmd_rbf(x, y, max_points=50, seed=2)
    assert mmd_rbf(x, x, max_points=50) == 0.0
    assert mmd_rbf(x, y, max_points=50) == pytest.approx(mmd_rbf(x, y), rel=0.5)
    identical_points = np.ones((5, 3))
    assert mmd_rbf(identical_points, identical_points) == 0.0
    assert mmd_rbf(identical_points, identical_points + 1) > 0


def test_coral_matches_numpy_cov():
    x, y = clouds(16)
    expected = np.sum((np.cov(x, rowvar=False) - np.cov(y, rowvar=False)) ** 2) / (4 * 5**2)
    assert coral_distance(x, y) == pytest.approx(expected, rel=1e-12)
    assert coral_distance(x, x + 3) == pytest.approx(0.0, abs=1e-12)  # ignores the mean


def naive_cmd(x, y, k_max, a, b):
    total = np.linalg.norm(x.mean(0) - y.mean(0)) / (b - a)
    for k in range(2, k_max + 1):
        cx = ((x - x.mean(0)) ** k).mean(0)
        cy = ((y - y.mean(0)) ** k).mean(0)
        total += np.linalg.norm(cx - cy) / (b - a) ** k
    return total


def test_cmd_matches_naive_formula():
    x, y = clouds(17)
    a, b = min(x.min(), y.min()), max(x.max(), y.max())
    assert central_moment_discrepancy(x, y) == pytest.approx(naive_cmd(x, y, 5, a, b), rel=1e-10)
    assert central_moment_discrepancy(x, y, n_moments=2, bounds=(-10, 10)) == pytest.approx(
        naive_cmd(x, y, 2, -10, 10), rel=1e-10
    )
    assert central_moment_discrepancy(x, y, n_moments=1) == pytest.approx(
        np.linalg.norm(x.mean(0) - y.mean(0)) / (b - a), rel=1e-12
    )
    # default bounds make it invariant to an affine map of the embeddings
    assert central_moment_discrepancy(4 * x - 2, 4 * y - 2) == pytest.approx(central_moment_discrepancy(x, y))
    assert central_moment_discrepancy(np.ones((3, 2)), np.ones((4, 2))) == 0.0


def test_centroid_cosine_matches_scipy():
    x, y = clouds(18)
    assert centroid_cosine_distance(x, y) == pytest.approx(ssd.cosine(x.mean(0), y.mean(0)), rel=1e-10)
    assert centroid_cosine_distance(x, 5 * x) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="x has a zero mean embedding"):
        centroid_cosine_distance(np.array([[1.0, 1.0], [-1.0, -1.0]]), x[:, :2])


def test_pad_separated_clouds_near_two_and_same_distribution_small():
    rng = np.random.default_rng(19)
    x = rng.normal(size=(60, 5))
    assert proxy_a_distance(x, rng.normal(size=(45, 5)) + 6.0) > 1.9
    assert proxy_a_distance(x, rng.normal(size=(20, 5)) + 6.0) > 1.9  # unbalanced sizes
    assert proxy_a_distance(x, rng.normal(size=(60, 5))) < 0.5
    assert proxy_a_distance(x, x) < 0.3
    # below-chance cross-validation errors on tiny same-distribution samples are clipped to 0
    values = []
    for seed in range(6):
        r = np.random.default_rng(seed)
        values.append(proxy_a_distance(r.normal(size=(12, 3)), r.normal(size=(12, 3))))
    assert all(0.0 <= v <= 2.0 for v in values) and 0.0 in values
    # deterministic, and works when the sets are smaller than the number of folds
    assert proxy_a_distance(x, x + 1.0) == proxy_a_distance(x, x + 1.0)
    assert 0.0 <= proxy_a_distance(x[:3], x[:3] + 10, folds=5) <= 2.0


def test_embedding_parameter_validation():
    x, y = clouds(20)
    with pytest.raises(ValueError, match="eps"):
        frechet_distance(x, y, eps=-1)
    for kwargs in ({"bandwidth": 0}, {"bandwidth": np.nan}, {"max_points": 1}, {"max_points": 2.5}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            mmd_rbf(x, y, **kwargs)
    for kwargs, word in (({"n_moments": 0}, "n_moments"), ({"bounds": (1, 1)}, "bounds"),
                         ({"bounds": (0, np.inf)}, "bounds"), ({"bounds": "ab"}, "bounds")):
        with pytest.raises(ValueError, match=word):
            central_moment_discrepancy(x, y, **kwargs)
    for kwargs, word in (({"folds": 1}, "folds"), ({"folds": True}, "folds"), ({"C": 0}, "C must")):
        with pytest.raises(ValueError, match=word):
            proxy_a_distance(x, y, **kwargs)


# ----------------------------------------------------------------------------- registry


def test_registry_has_the_canonical_measures_and_unique_names():
    assert [s.name for s in MEASURES] == CANONICAL
    keys = [k.lower() for s in MEASURES for k in (s.name, *s.aliases)]
    assert len(keys) == len(set(keys))
    public = set(hd.__all__)
    for spec in MEASURES:
        assert spec.function.__name__ in public
        assert spec.kind in ("terms", "embeddings") and spec.description and spec.params == {}
        first_two = list(spec.function.__code__.co_varnames[:2])
        assert first_two == (["p", "q"] if spec.kind == "terms" else ["x", "y"])


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("kl", "kl"), ("Kullback-Leibler", "kl"), ("KULLBACK_LEIBLER", "kl"),
        ("jensen_shannon", "js"), (" Jensen-Shannon ", "js"), ("total_variation", "tv"),
        ("total variation", "tv"), ("vocab_overlap", "jaccard"), ("vocab-overlap", "jaccard"),
        ("textemb", "centroid_cosine"), ("TextEmb", "centroid_cosine"), ("wasserstein", "frechet"),
        ("FID", "frechet"), ("proxy_a_distance", "pad"), ("proxy-a-distance", "pad"),
        ("oov_rate", "oov"), ("maximum_mean_discrepancy", "mmd"), ("central-moment-discrepancy", "cmd"),
    ],
)
def test_get_measure_resolves_aliases(name, canonical):
    assert get_measure(name).name == canonical


def test_every_alias_resolves_to_its_spec():
    for spec in MEASURES:
        for key in (spec.name, *spec.aliases):
            assert get_measure(key) is spec
            assert get_measure(key.upper().replace("_", "-")) is spec


def test_unknown_measure_error_lists_choices():
    with pytest.raises(HubselectError) as info:
        get_measure("xyz")
    message = str(info.value)
    assert message.startswith("unknown measure 'xyz': choose from kl, js, renyi,")
    assert all(name in message for name in CANONICAL)
    assert "aliases:" in message and "kullback_leibler" in message and "textemb" in message
    assert "\n" not in message
    with pytest.raises(HubselectError, match="unknown measure 'nope'"):
        resolve_measures("js, nope")
    with pytest.raises(HubselectError, match="measure names must be strings, got 3"):
        get_measure(3)  # type: ignore[arg-type]


def test_resolve_measures_groups_order_and_dedup():
    assert resolve_measures("all") == MEASURES
    assert resolve_measures("terms") == tuple(TERM_SPECS)
    assert resolve_measures("Embeddings") == tuple(EMB_SPECS)
    assert [s.name for s in resolve_measures("tv, js,kl")] == ["tv", "js", "kl"]
    assert [s.name for s in resolve_measures("js,jensen_shannon,JS, jsd")] == ["js"]
    assert [s.name for s in resolve_measures(["textemb", "kl,js", "fid"])] == ["centroid_cosine", "kl", "js", "frechet"]
    names = [s.name for s in resolve_measures("mmd,terms,kl")]
    assert names == ["mmd"] + [s.name for s in TERM_SPECS]
    assert len(resolve_measures("all,terms,embeddings")) == len(MEASURES)
    for empty in ("", " , ,", [], [""]):
        with pytest.raises(HubselectError, match="no measure selected"):
            resolve_measures(empty)


def test_list_measures_by_kind():
    assert list_measures() == MEASURES
    assert list_measures("terms") == tuple(TERM_SPECS) and len(TERM_SPECS) == 9
    assert list_measures("embeddings") == tuple(EMB_SPECS) and len(EMB_SPECS) == 6
    with pytest.raises(HubselectError, match="unknown measure kind 'images'"):
        list_measures("images")


def test_parameterised_measure_names():
    p, q = term_counts(21)
    spec = get_measure("Renyi:alpha=.5")
    assert spec.name == "renyi:alpha=0.5" and dict(spec.params) == {"alpha": 0.5}
    assert spec.kind == "terms" and not spec.symmetric
    np.testing.assert_allclose(spec(p, q), renyi_divergence(p, q, alpha=0.5))
    assert not np.allclose(spec(p, q), renyi_divergence(p, q))
    assert spec(p, q, alpha=2.0) == pytest.approx(renyi_divergence(p, q, alpha=2.0))
    pad = get_measure("proxy-a-distance:c=0.5:folds=3")
    assert pad.name == "pad:C=0.5:folds=3" and dict(pad.params) == {"C": 0.5, "folds": 3}
    assert isinstance(pad.params["folds"], int)
    assert dict(get_measure("mmd:bandwidth=none").params) == {"bandwidth": None}
    assert [s.name for s in resolve_measures("renyi, renyi:alpha=0.5, renyi_divergence:alpha=0.50")] == [
        "renyi",
        "renyi:alpha=0.5",
    ]
    with pytest.raises(HubselectError, match=r"'renyi' has no parameter 'beta'.*alpha, epsilon"):
        get_measure("renyi:beta=2")
    with pytest.raises(HubselectError, match="bad parameter 'alpha'"):
        get_measure("renyi:alpha")
    with pytest.raises(HubselectError, match="has no parameter"):
        get_measure("hellinger:alpha=2")
    with pytest.raises(HubselectError, match="bad parameter value.*alpha must be"):  # checked when resolved
        get_measure("renyi:alpha=1")


def test_measure_spec_is_frozen_and_hashable():
    spec = get_measure("js")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.params["x"] = 1  # type: ignore[index]
    assert len({spec, get_measure("jsd"), get_measure("kl")}) == 2
    custom = MeasureSpec("mine", total_variation_distance, "terms", True, (), "custom")
    assert custom.params == {} and custom([1, 0], [0, 1]) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ label spaces

def test_label_space_distances_give_both_distances_per_source_in_order():
    from hubselect.scoring.divergence.labels import (
        LABEL_COLUMNS,
        label_balance_distance,
        label_set_distance,
        label_space_distances,
    )

    eye = np.eye(3)
    target = (eye[:2], np.array([0.8, 0.2]))
    sources = {"same": (eye[:2], np.array([8.0, 2.0])), "flipped": (eye[:2], np.array([1.0, 9.0])),
               "extra": (eye, np.array([4.0, 4.0, 2.0]))}
    out = label_space_distances(target, sources)
    assert tuple(out) == LABEL_COLUMNS == ("label_distance", "balance_distance")
    assert list(out["label_distance"]) == list(out["balance_distance"]) == ["same", "flipped", "extra"]
    assert out["label_distance"]["same"] == pytest.approx(0.0) and out["balance_distance"]["same"] == pytest.approx(0.0)
    assert out["balance_distance"]["flipped"] == pytest.approx(0.7)
    assert out["label_distance"]["extra"] == label_set_distance(eye[:2], eye) > 0
    assert out["balance_distance"]["extra"] == label_balance_distance([0.8, 0.2], [4, 4, 2], eye[:2], eye)
    assert label_space_distances(target, {}) == {"label_distance": {}, "balance_distance": {}}
    with pytest.raises(ValueError, match="source_probs must have shape"):
        label_space_distances(target, {"bad": (eye[:2], np.array([1.0, 2.0, 3.0]))})
