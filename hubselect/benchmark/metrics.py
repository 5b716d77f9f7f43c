"""Ranking-quality metrics of a source-selection policy for one target. Pure functions.

Conventions: ``closeness`` is a predicted score where **higher = predicted better** (negate a
divergence first); ``accuracy`` is the measured target accuracy of each source (0-1). Both are
1-D arrays over the same sources. Regrets are in accuracy points (0-100 scale).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from hubselect.core.errors import HubselectError


def _pair(closeness: Sequence[float], accuracy: Sequence[float], min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return two equally long finite float arrays of at least ``min_n`` values."""
    c, a = np.asarray(closeness, dtype=float), np.asarray(accuracy, dtype=float)
    if c.ndim != 1 or a.ndim != 1 or c.shape != a.shape:
        raise HubselectError(f"closeness and accuracy must be 1-D and equally long, got shapes {c.shape} and {a.shape}")
    if len(c) < min_n:
        raise HubselectError(f"need at least {min_n} sources, got {len(c)}")
    if not (np.isfinite(c).all() and np.isfinite(a).all()):
        raise HubselectError("closeness and accuracy must be finite (no NaN or inf)")
    return c, a


def _check_k(k: int, n: int) -> int:
    if int(k) < 1:
        raise HubselectError(f"k must be at least 1, got {k}")
    return min(int(k), n)


def top_k(closeness: Sequence[float], k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``closeness`` values; ties keep the input order (stable)."""
    c = np.asarray(closeness, dtype=float)
    return np.argsort(-c, kind="stable")[:_check_k(k, len(c))]


def spearman(closeness: Sequence[float], accuracy: Sequence[float]) -> float:
    """Spearman rank correlation (ties averaged); NaN when either input is constant."""
    from scipy.stats import spearmanr

    c, a = _pair(closeness, accuracy)
    if np.ptp(c) == 0 or np.ptp(a) == 0:
        return float("nan")
    return float(spearmanr(c, a).statistic)


def kendall(closeness: Sequence[float], accuracy: Sequence[float]) -> float:
    """Kendall's tau-b; NaN when either input is constant."""
    from scipy.stats import kendalltau

    c, a = _pair(closeness, accuracy)
    if np.ptp(c) == 0 or np.ptp(a) == 0:
        return float("nan")
    return float(kendalltau(c, a).statistic)


def regret_at_k(closeness: Sequence[float], accuracy: Sequence[float], k: int) -> float:
    """Accuracy points between the best source and the best of the predicted top ``k`` (>= 0)."""
    c, a = _pair(closeness, accuracy, 1)
    return float(100.0 * (a.max() - a[top_k(c, k)].max()))


def ndcg_at_k(closeness: Sequence[float], accuracy: Sequence[float], k: int) -> float:
    """NDCG@k with gains = accuracy minus the worst source's accuracy (so the worst gains 0).

    Returns 1.0 when every source has the same accuracy (any order is ideal).
    """
    c, a = _pair(closeness, accuracy, 1)
    k = _check_k(k, len(c))
    rel = a - a.min()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float((np.sort(rel)[::-1][:k] * discounts).sum())
    if ideal == 0:
        return 1.0
    return float((rel[top_k(c, k)] * discounts).sum() / ideal)


def pairwise_accuracy(closeness: Sequence[float], accuracy: Sequence[float]) -> float:
    """Share of source pairs with different accuracy that ``closeness`` orders the same way.

    A tie in ``closeness`` counts half. NaN when every source has the same accuracy.
    """
    c, a = _pair(closeness, accuracy)
    i, j = np.triu_indices(len(c), 1)
    da, dc = np.sign(a[i] - a[j]), np.sign(c[i] - c[j])
    mask = da != 0
    if not mask.any():
        return float("nan")
    score = np.where(dc[mask] == 0, 0.5, (dc[mask] == da[mask]).astype(float))
    return float(score.mean())


def effective(accuracy: Sequence[float], baseline: float, *, kind: str = "gain") -> np.ndarray:
    """Which sources are effective: ``gain`` (accuracy above ``baseline``) or ``median``
    (accuracy above the median source's for this target)."""
    a = np.asarray(accuracy, dtype=float)
    if kind == "gain":
        return a > float(baseline)
    if kind == "median":
        return a > np.median(a)
    raise HubselectError(f"unknown effectiveness '{kind}': use gain or median")


def precision_recall_at_k(closeness: Sequence[float], is_effective: Sequence[bool], k: int) -> tuple[float, float]:
    """Precision and recall of the predicted top ``k`` against the effective sources.

    Recall is NaN when no source is effective.
    """
    c, e = _pair(closeness, np.asarray(is_effective, dtype=float), 1)
    chosen = top_k(c, k)
    hits = float(e[chosen].sum())
    total = float(e.sum())
    return hits / len(chosen), (hits / total if total else float("nan"))


def runtime_saving(score_seconds: float, pair_seconds: Sequence[float], chosen: Sequence[int]) -> float:
    """End-to-end saving for one target: ``1 - (score all + tune/evaluate chosen) / (tune/evaluate all)``.

    Args:
        score_seconds: Time to score every candidate against the target (cold cache).
        pair_seconds: Tune + evaluate time of each candidate.
        chosen: Indices of the candidates the policy tunes.
    """
    costs = np.asarray(pair_seconds, dtype=float)
    if costs.ndim != 1 or len(costs) == 0 or (costs < 0).any() or score_seconds < 0:
        raise HubselectError("pair_seconds must be a non-empty 1-D array of times >= 0 and score_seconds >= 0")
    brute = float(costs.sum())
    if brute == 0:
        raise HubselectError("the brute-force cost is zero: pair times are missing")
    return float(1.0 - (score_seconds + costs[np.asarray(chosen, dtype=int)].sum()) / brute)


def random_regret_at_k(accuracy: Sequence[float], k: int) -> float:
    """Expected Regret@k of choosing ``k`` sources uniformly at random (exact, in points).

    The best of a random k-subset is the i-th best source (1-based, sorted descending) with
    probability C(n-i, k-1) / C(n, k).
    """
    a = np.sort(np.asarray(accuracy, dtype=float))[::-1]
    n = len(a)
    k = _check_k(k, n)
    probs = np.array([math.comb(n - i, k - 1) for i in range(1, n + 1)], dtype=float) / math.comb(n, k)
    return float(100.0 * (a[0] - (probs * a).sum()))


def random_ndcg_at_k(accuracy: Sequence[float], k: int) -> float:
    """Expected NDCG@k of a uniformly random order (every position holds the mean relevance)."""
    a = np.asarray(accuracy, dtype=float)
    k = _check_k(k, len(a))
    rel = a - a.min()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float((np.sort(rel)[::-1][:k] * discounts).sum())
    return 1.0 if ideal == 0 else float(rel.mean() * discounts.sum() / ideal)


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 statistic: Callable[[np.ndarray], float] = np.nanmean) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (e.g. per-target metrics)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(v[rng.integers(0, len(v), len(v))]) for _ in range(n_boot)])
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def bootstrap_examples_ci(correct: np.ndarray, closeness_by_target: Sequence[np.ndarray],
                          metric: Callable[[np.ndarray, np.ndarray], float], *, n_boot: int = 500,
                          level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Two-level bootstrap: resample targets, and each target's evaluation examples.

    Args:
        correct: Per target, a ``(sources, examples)`` 0/1 array of correct predictions (a list of
            arrays; targets may differ in size). Resampling examples (columns, the same for all
            sources of a target) re-draws every source's accuracy jointly.
        closeness_by_target: Per target, the policy's closeness of each source.
        metric: ``metric(closeness, accuracy) -> float`` for one target.
    """
    rng = np.random.default_rng(seed)
    n_t = len(correct)
    if n_t == 0 or n_t != len(closeness_by_target):
        raise HubselectError("correct and closeness_by_target must be non-empty and equally long")
    means = []
    for _ in range(n_boot):
        vals = []
        for t in rng.integers(0, n_t, n_t):
            m = np.asarray(correct[t], dtype=float)
            cols = rng.integers(0, m.shape[1], m.shape[1])
            vals.append(metric(closeness_by_target[t], m[:, cols].mean(axis=1)))
        means.append(np.nanmean(vals))
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def accuracy_resample_ci(accuracy_by_target: Sequence[np.ndarray], n_eval: Sequence[int],
                         closeness_by_target: Sequence[np.ndarray],
                         metric: Callable[[np.ndarray, np.ndarray], float], *, n_boot: int = 500,
                         level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Bootstrap over targets and examples when only accuracies are stored.

    Each resampled accuracy is drawn as ``Binomial(n, acc) / n`` independently per source: a
    parametric stand-in for resampling the ``n`` evaluation examples (it ignores the positive
    correlation between sources on the same examples, so it is somewhat wide for pairwise
    metrics).
    """
    rng = np.random.default_rng(seed)
    n_t = len(accuracy_by_target)
    if n_t == 0 or not (n_t == len(n_eval) == len(closeness_by_target)):
        raise HubselectError("accuracy_by_target, n_eval and closeness_by_target must be non-empty and equally long")
    means = []
    for _ in range(n_boot):
        vals = []
        for t in rng.integers(0, n_t, n_t):
            acc = np.asarray(accuracy_by_target[t], dtype=float)
            drawn = rng.binomial(int(n_eval[t]), np.clip(acc, 0, 1)) / int(n_eval[t])
            vals.append(metric(np.asarray(closeness_by_target[t], dtype=float), drawn))
        means.append(np.nanmean(vals))
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def target_metrics(closeness: Sequence[float], accuracy: Sequence[float], baseline: float,
                   pair_seconds: Sequence[float], score_seconds: float, ks: Sequence[int] = (1, 3)) -> dict[str, Any]:
    """Every metric for one target and one policy (keys like ``regret@3``, ``saving@3``)."""
    c, a = _pair(closeness, accuracy)
    out: dict[str, Any] = {"spearman": spearman(c, a), "kendall": kendall(c, a), "pairwise": pairwise_accuracy(c, a)}
    gain, median = effective(a, baseline, kind="gain"), effective(a, baseline, kind="median")
    for k in ks:
        out[f"regret@{k}"] = regret_at_k(c, a, k)
        out[f"ndcg@{k}"] = ndcg_at_k(c, a, k)
        out[f"precision_gain@{k}"], out[f"recall_gain@{k}"] = precision_recall_at_k(c, gain, k)
        out[f"precision_median@{k}"], out[f"recall_median@{k}"] = precision_recall_at_k(c, median, k)
        out[f"saving@{k}"] = runtime_saving(score_seconds, pair_seconds, top_k(c, k))
    return out


# ---------------------------------------------------------------------------------------------
# Policies over a whole benchmark (DataFrames in, DataFrames out; still no I/O).

#: The measures of the benchmark's ``rank:default`` row: the ``rank`` policy's measures when it was
#: the select step's default, before the 40-task benchmark chose ``combined``. Kept as the headline's
#: fixed reference row; the select step's default now is
#: :data:`hubselect.selection.policy.DEFAULT_POLICY`, which the trust analysis scores as
#: :func:`hubselect.benchmark.trust.default_ranker`.
REFERENCE_RANK_MEASURES = ("js", "centroid_cosine", "mmd")


def rank_closeness(divergences: Any) -> np.ndarray:
    """Borda aggregation: minus the mean rank (1 = closest) over the columns of ``divergences``."""
    return -np.asarray(divergences.rank(method="average", ascending=True).mean(axis=1), dtype=float)


def _score_secs(score_seconds: dict, policy: str, target: str) -> float:
    """Scoring time of ``policy`` for ``target``: ``{target: s}`` for every policy alike, or
    ``{policy: {target: s}}`` (policies missing from it cost nothing: random, oracle)."""
    if policy == "oracle":
        return 0.0
    values = list(score_seconds.values())
    if values and isinstance(values[0], dict):
        return float(score_seconds.get(policy, {}).get(target, 0.0))
    return float(score_seconds.get(target, 0.0))


def _costs(group: Any) -> np.ndarray:
    """Per-pair cost: ``cost_seconds`` when given, else measured train + eval seconds."""
    if "cost_seconds" in group:
        return group["cost_seconds"].to_numpy(dtype=float)
    return (group["train_seconds"] + group["eval_seconds"]).to_numpy(dtype=float)


def policy_closeness(group: Any, measures: Sequence[str], rank_policies: dict[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Closeness (higher = better) of every measure and rank policy for one target's pairs."""
    out = {m: -group[f"d_{m}"].to_numpy(dtype=float) for m in measures}
    for name, used in rank_policies.items():
        out[name] = rank_closeness(group[[f"d_{m}" for m in used]])
    return out


def evaluate_policies(pairs: Any, score_seconds: dict[str, float], measures: Sequence[str],
                      rank_policies: dict[str, Sequence[str]], learned: dict[str, Any] | None = None,
                      ks: Sequence[int] = (1, 3)) -> Any:
    """Per-target metrics of every policy, the random expectation and the oracle.

    Args:
        pairs: One row per pair (``target``, ``source``, ``accuracy``, ``baseline_accuracy``,
            ``train_seconds``, ``eval_seconds`` or ``cost_seconds``, ``d_<measure>``).
        score_seconds: Cold scoring time per target (``{target: s}``), or per policy and target
            (``{policy: {target: s}}``: a policy pays only for the measures it reads).
        measures: Single-measure policies (each ranks by one divergence).
        rank_policies: ``{name: measures}`` Borda policies.
        learned: ``{name: Series of predicted gains aligned with pairs.index}`` (LOTO).

    Returns:
        DataFrame with columns ``policy``, ``target``, ``n_sources`` and every metric.
    """
    import pandas as pd

    rows = []
    for target, group in pairs.groupby("target", sort=True):
        acc = group["accuracy"].to_numpy(dtype=float)
        base = float(group["baseline_accuracy"].iloc[0])
        cost = _costs(group)
        policies = policy_closeness(group, measures, rank_policies)
        for name, series in (learned or {}).items():
            policies[name] = series.loc[group.index].to_numpy(dtype=float)
        policies["oracle"] = acc
        for name, close in policies.items():
            secs = _score_secs(score_seconds, name, target)
            rows.append({"policy": name, "target": target, "n_sources": len(acc),
                         **target_metrics(close, acc, base, cost, secs, ks)})
        rows.append({"policy": "random", "target": target, "n_sources": len(acc),
                     **random_metrics(acc, base, ks)})
    return pd.DataFrame(rows)


def random_metrics(accuracy: Sequence[float], baseline: float, ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """Expected metrics of a uniformly random choice (no scoring cost)."""
    a = np.asarray(accuracy, dtype=float)
    n = len(a)
    gain, median = effective(a, baseline, kind="gain"), effective(a, baseline, kind="median")
    out = {"spearman": 0.0, "kendall": 0.0, "pairwise": 0.5}
    for k in ks:
        kk = min(k, n)
        out[f"regret@{k}"] = random_regret_at_k(a, k)
        out[f"ndcg@{k}"] = random_ndcg_at_k(a, k)
        out[f"precision_gain@{k}"] = float(gain.mean())
        out[f"recall_gain@{k}"] = kk / n if gain.any() else float("nan")
        out[f"precision_median@{k}"] = float(median.mean())
        out[f"recall_median@{k}"] = kk / n if median.any() else float("nan")
        out[f"saving@{k}"] = 1.0 - kk / n  # in expectation: k of n mean-cost pairs
    return out


def summarise(per_target: Any, ci_columns: Sequence[str] = ("spearman", "regret@1", "regret@3"), *,
              n_boot: int = 2000, seed: int = 0) -> Any:
    """Mean of every metric per policy, with bootstrap-over-targets CIs for ``ci_columns``."""
    metric_cols = [c for c in per_target.columns if c not in ("policy", "target", "n_sources")]
    means = per_target.groupby("policy", sort=False)[metric_cols].mean()
    for col in ci_columns:
        cis = {p: bootstrap_ci(g[col].to_numpy(), n_boot=n_boot, seed=seed) for p, g in per_target.groupby("policy")}
        means[f"{col}_lo"] = [cis[p][0] for p in means.index]
        means[f"{col}_hi"] = [cis[p][1] for p in means.index]
    return means


def regret_curve(pairs: Any, closeness: dict[str, Any], score_seconds: dict[str, float]) -> Any:
    """Mean Regret@k and runtime saving@k over targets for k = 1..N, per policy, and for a
    random choice (its expectation).

    ``closeness`` maps a policy name to a Series aligned with ``pairs.index``.
    """
    import pandas as pd

    rows = []
    for name, series in closeness.items():
        for target, group in pairs.groupby("target", sort=True):
            acc = group["accuracy"].to_numpy(dtype=float)
            close = series.loc[group.index].to_numpy(dtype=float)
            cost = _costs(group)
            secs = _score_secs(score_seconds, name, target)
            for k in range(1, len(acc) + 1):
                rows.append({"policy": name, "target": target, "k": k, "regret": regret_at_k(close, acc, k),
                             "saving": runtime_saving(secs, cost, top_k(close, k))})
    for target, group in pairs.groupby("target", sort=True):
        acc, cost = group["accuracy"].to_numpy(dtype=float), _costs(group)
        for k in range(1, len(acc) + 1):  # random: expected regret, k mean-cost pairs, no scoring
            rows.append({"policy": "random", "target": target, "k": k, "regret": random_regret_at_k(acc, k),
                         "saving": 1.0 - k / len(acc)})
    frame = pd.DataFrame(rows)
    return frame.groupby(["policy", "k"], as_index=False)[["regret", "saving"]].mean()
