"""Nested leave-one-group-out: every target held out once, its default chosen without its group.

For each task group G (``scripts/task_groups.csv``):

1. every pair feature that is *learned from other targets' results* (the source's prior and the
   learned rankers) is refitted on the targets outside G; for a target t of another group H it is
   fitted outside G and H (leave-one-group-out inside the remaining groups);
2. every ranker of the grid is scored on the targets outside G, and the protocol's rule
   (:func:`hubselect.benchmark.trust.choose_default`) picks one;
3. that one ranker is reported on G's targets, with its prior and learned model fitted without G.

The headline is the mean over all targets, each held out this way. The shipped default is the
rule's pick over all targets with leave-one-group-out features
(:func:`hubselect.benchmark.verdict.analyse_collection`).

Learned rankers (both linear, so they export as the JSON of :mod:`hubselect.selection.learned`):

* ``learned`` (pointwise): ridge regression of a pair's gain on the features;
* ``learned:pairwise``: logistic regression on feature differences of two sources of the same
  target, labelled by which is more accurate (RankNet's linear case, Burges et al. 2005); the
  score of a source is the linear function, which orders sources the same way.

Features (:func:`feature_table`): every divergence and the label-set and balance distances z-scored
within the target, the prior (a source's mean gain on the training targets), the source's log
size, both sides' number of labels and whether the label names are the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Iterable

import numpy as np

logger = logging.getLogger(__name__)

#: The learned rankers this module fits.
LEARNED = ("learned", "learned:pairwise")
PAIR_MARGIN = 0.01  # accuracy gap below which two sources count as tied (not a training pair)
MIN_TRAIN_TARGETS = 2  # fewer targets to learn from: the learned rankers score every source alike


@dataclass(frozen=True)
class NestedResult:
    """What :func:`nested_logo` gives.

    Attributes:
        per_target: One row per target: its group, the ranker chosen without that group, and that
            ranker's scores on the target (the headline rows).
        choices: ``{group: ranker chosen on the other groups}``.
        inner: One row per (held-out group, ranker, target outside it): the scores the choices
            were made on.
        logo_truth: Every target's pairs with the prior and learned rankers fitted without its
            group (what :func:`logo_truth` gives), as the held-out groups were scored.
        inner_truth: The pairs the choices were made on: for held-out group G (column
            ``held_out``), every target of another group H with the prior and learned rankers
            fitted outside G and H (what the inner scores read); later choices made per fold,
            such as the two-stage re-rank signal (:mod:`hubselect.benchmark.twostage`), read it.
    """

    per_target: Any
    choices: dict[str, str]
    inner: Any
    logo_truth: Any
    inner_truth: Any = None


def prior_table(truth: Any, groups: dict[str, str], excluded: Iterable[str]) -> Any:
    """A source's mean gain on the targets outside the ``excluded`` groups (never on the pair's own
    target); a source never seen there gets the mean of the target's other candidates.

    Returns:
        A Series aligned with ``truth`` (one value per pair).
    """
    import pandas as pd

    excluded = set(excluded)
    gain = truth.pivot(index="target", columns="source", values="gain")
    keep = [t for t in gain.index if groups.get(t, t) not in excluded]
    sums, counts = gain.loc[keep].sum(), gain.loc[keep].notna().sum()
    own = gain.reindex(truth["target"]).to_numpy()
    col = gain.columns.get_indexer(truth["source"])
    own_gain = np.where(truth["target"].isin(keep).to_numpy(), own[np.arange(len(truth)), col], np.nan)
    s, c = sums.reindex(truth["source"]).to_numpy(float), counts.reindex(truth["source"]).to_numpy(float)
    has_own = np.isfinite(own_gain)
    s, c = s - np.where(has_own, own_gain, 0.0), c - has_own
    prior = pd.Series(np.where(c > 0, s / np.maximum(c, 1), np.nan), index=truth.index)
    return prior.fillna(prior.groupby(truth["target"]).transform("mean")).fillna(0.0)


def feature_table(truth: Any, measures: list[str], prior: Any) -> Any:
    """Learned-ranker features of every pair, aligned with ``truth``, with ``prior`` as the prior:
    :func:`hubselect.selection.learned.pair_features_of`, the same features ``hubselect select``
    builds for a shipped model."""
    from hubselect.selection.learned import pair_features_of

    return pair_features_of(truth.assign(prior=np.asarray(prior, dtype=float)), measures)


def fit_pairwise(features: Any, targets: Any, accuracy: Any, *, c: float = 1.0) -> dict:
    """Pairwise logistic ranker (linear) fitted on every within-target pair of sources whose
    accuracies differ by more than :data:`PAIR_MARGIN`; returned as a learned-policy JSON dict."""
    from sklearn.linear_model import LogisticRegression

    from hubselect.selection.learned import FORMAT, VERSION

    x = np.asarray(features, dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z, acc, tgt = (x - mean) / scale, np.asarray(accuracy, float), np.asarray(targets)
    diffs, labels = [], []
    for t in np.unique(tgt):
        idx = np.flatnonzero(tgt == t)
        i, j = np.triu_indices(len(idx), 1)
        i, j = idx[i], idx[j]
        keep = np.abs(acc[i] - acc[j]) > PAIR_MARGIN
        diffs.append(z[i[keep]] - z[j[keep]])
        labels.append(acc[i[keep]] > acc[j[keep]])
    d, y = np.concatenate(diffs), np.concatenate(labels)
    coef = np.zeros(z.shape[1])
    if len(y):  # no pair differs by more than the margin: every source scores alike
        d, y = np.concatenate([d, -d]), np.concatenate([y, ~y])  # symmetric: no bias to learn
        coef = LogisticRegression(C=c, fit_intercept=False, max_iter=1000).fit(d, y).coef_[0]
    return {"format": FORMAT, "version": VERSION, "features": [str(col) for col in features.columns],
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(), "intercept": 0.0,
            "objective": "pairwise-logistic", "C": c, "target": "rank", "trained_on": sorted(set(tgt.tolist())),
            "n_pairs": int(len(y) // 2)}


def fit_learned(truth: Any, features: Any, train: Any, alpha: float = 1.0) -> dict[str, dict]:
    """Both learned rankers fitted on the rows ``train`` (a boolean mask over ``truth``); empty
    when fewer than :data:`MIN_TRAIN_TARGETS` targets are there to learn from."""
    from hubselect.benchmark.learned import fit

    x, rows = features[train], truth[train]
    if rows["target"].nunique() < MIN_TRAIN_TARGETS:
        return {}
    return {"learned": fit(x, rows["gain"], alpha=alpha, trained_on=rows["target"]),
            "learned:pairwise": fit_pairwise(x, rows["target"], rows["accuracy"])}


def fold_truth(col: Any, targets: list[str], excluded: set[str]) -> Any:
    """The rows of ``targets`` with the prior and the learned rankers fitted on the targets outside
    the ``excluded`` groups (``prior_loto`` holds that prior, so every ranker reads it)."""
    from hubselect.selection.learned import predict

    truth = col.truth
    outside = ~truth["target"].map(lambda t: col.groups.get(t, t)).isin(excluded).to_numpy()
    prior = prior_table(truth, col.groups, excluded)
    # training rows see a prior that leaves out their own target only (within the training groups)
    train_prior = prior_table(truth[outside], col.groups, excluded).reindex(truth.index)
    feats_train = feature_table(truth, col.measures, train_prior.fillna(0.0))
    models = fit_learned(truth, feats_train, outside)
    rows = truth["target"].isin(targets).to_numpy()
    out = truth[rows].copy()
    out["prior_loto"] = prior[rows].to_numpy()
    feats = feature_table(truth, col.measures, prior)[rows]
    for name in LEARNED:
        out[name] = predict(models[name], feats) if name in models else 0.0
    return out


def scores_held_out(col: Any, names: list[str], targets: list[str], excluded: set[str]) -> tuple[Any, Any]:
    """Per (ranker, target) scores of ``targets`` with learned parts fitted outside ``excluded``,
    and the fold's truth they were computed on (:func:`fold_truth`)."""
    from hubselect.benchmark.trust import evaluate_rankers

    truth = fold_truth(col, targets, excluded)
    return evaluate_rankers(replace(col, truth=truth), names), truth


def _targets_of(col: Any, group: str) -> list[str]:
    return sorted(t for t in col.truth["target"].unique() if col.groups.get(t, t) == group)


def nested_logo(col: Any, candidates: list[str], report: list[str]) -> NestedResult:
    """Run the nested scheme (module docstring) over ``col``'s groups.

    Args:
        col: A :class:`hubselect.benchmark.trust.Collection` whose truth has the label features.
        candidates: The rankers the rule chooses among (the policy grid).
        report: Further rankers scored on each held-out group the same way (baselines).
    """
    import pandas as pd

    from hubselect.benchmark.trust import choose_default, evaluate_rankers, summarise

    groups = sorted({col.groups.get(t, t) for t in col.truth["target"].unique()})
    choices, inner_parts, outer_parts, held_truths, inner_truths = {}, [], [], [], []
    for g in groups:
        folds = [scores_held_out(col, candidates, _targets_of(col, h), {g, h}) for h in groups if h != g]
        inner = pd.concat([f[0] for f in folds], ignore_index=True).assign(held_out=g)
        inner_truths += [f[1].assign(held_out=g) for f in folds]
        choices[g] = choose_default(summarise(inner, sorted(inner["target"].unique())), candidates)
        names = list(dict.fromkeys([choices[g], *report]))
        held_truths.append(fold_truth(col, _targets_of(col, g), {g}))
        outer = evaluate_rankers(replace(col, truth=held_truths[-1]), names).assign(group=g)
        outer_parts.append(outer.assign(chosen=outer["ranker"] == choices[g]))
        inner_parts.append(inner)
        logger.info("nested LOGO: %s held out, %s chosen on the other groups", g, choices[g])
    inner_truth = pd.concat(inner_truths) if inner_truths else col.truth.iloc[:0].assign(held_out="")
    return NestedResult(pd.concat(outer_parts, ignore_index=True), choices, pd.concat(inner_parts, ignore_index=True),
                        pd.concat(held_truths).sort_index(), inner_truth)


def logo_truth(col: Any) -> Any:
    """Every target's rows with the prior and learned rankers fitted without its own group."""
    import pandas as pd

    groups = sorted({col.groups.get(t, t) for t in col.truth["target"].unique()})
    return pd.concat([fold_truth(col, _targets_of(col, g), {g}) for g in groups]).sort_index()


def logo_scores(col: Any, names: list[str]) -> Any:
    """Every target scored with learned parts fitted without its own group (plain LOGO)."""
    from hubselect.benchmark.trust import evaluate_rankers

    scores = evaluate_rankers(replace(col, truth=logo_truth(col)), names)
    return scores.assign(group=scores["target"].map(lambda t: col.groups.get(t, t)))
