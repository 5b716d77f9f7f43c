"""The two-stage pick of issue 14 (section 3), measured on the transfer matrix; nothing is trained.

1. A first-stage ranker (any ranker of :mod:`hubselect.benchmark.trust`) scores every candidate.
2. Its top ``N`` are *probed*: each is tuned and predicts the target's (unlabelled) texts. Here the
   probe of a pair is the matrix's own model of tuning seed :data:`PROBE_SEED`, i.e. a **full**
   tune (probe fraction 1.0).
3. The ``N`` are re-ranked by a label-free signal of the probes' predictions; the top ``k`` are kept
   (``k`` = 1 and 3: Regret@1 and Regret@3 of the resulting order). Candidates outside the top
   ``N`` follow in the first stage's order, so Spearman and NDCG@3 are of the whole order.

Signals (higher = predicted better), from what a pair record holds (``pred``, the predicted label
index, and ``conf``, the top probability, per test text) and the probe's source-held-out slice:

* ``confidence``: mean top probability on the target's texts;
* ``atc``: share of the target's texts above the probe's ATC threshold (Garg et al. 2022),
  calibrated on its *source's* held-out slice;
* ``agreement``: mean share of texts on which the probe predicts what each other probe of the
  ``N`` predicts.

Left out, because the matrix does not record what they need (:data:`NOT_RECORDED`): entropy and
energy need every label's score (the committed records keep the top probability and the index
only; a live folder's ``.npy`` scores would allow them), and agreement with the untuned model
needs its predictions (the baseline records hold its accuracy only).

**No leak of the probe's own tuning noise.** The truth of every row here (the two-stage orders and
the first stage alone beside them) is the mean accuracy over the seeds *other than* the probe's
(:func:`split_truth`; seeds 1 and 2 with 3 seeds): a probe whose seed happened to land high on the
target would otherwise be rewarded by the same luck in the truth.

**Nested leave-one-group-out** (as :mod:`hubselect.benchmark.nested`): for a held-out group G the
first stage is the ranker chosen without G (``NestedResult.choices``), with priors and learned
rankers fitted without G; for each ``N`` the signal is chosen by the protocol's rule
(:func:`hubselect.benchmark.trust.choose_default`) on the other groups' targets, each scored with
features fitted outside G and its own group (``NestedResult.inner_truth``); the choice is reported
on G's targets.

**Cost** (:func:`hubselect.benchmark.costs.two_stage_seconds`): scoring + ``N`` probe tunes at a
fraction of the full tuning work, each with one prediction pass over the target's texts, + the
kept ``k`` tuned in full and evaluated (at fraction 1.0 the kept are probes: evaluated only).
The saving is reported at :data:`PROBE_FRACTIONS`; only fraction 1.0 is what the matrix measures:
how well a *brief* probe's predictions rank is not measured by it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

logger = logging.getLogger(__name__)

SIGNALS = ("confidence", "atc", "agreement")
NONE, PERFECT, RANDOM = "none", "perfect", "random"
PROBE_NS = (4, 8, 12)
DEFAULT_N = 8
KEPT = (1, 3)
PROBE_SEED = 0
PROBE_FRACTIONS = (1.0, 0.25)
#: Signals the issue names that the matrix cannot give, and why.
NOT_RECORDED = {
    "entropy": "needs every label's probability; the records keep the top probability and the predicted label",
    "energy": "needs the raw scores (logits) of every label; not kept in the records",
    "agreement with the untuned model": "the baseline records hold the untuned model's accuracy, not its predictions",
}


@dataclass(frozen=True)
class TwoStageResult:
    """What :func:`nested_two_stage` gives.

    Attributes:
        per_target: One row per (held-out target, N, signal) with its group, the first stage, the
            scores against the split truth and ``chosen`` (the signal chosen for that N without the
            target's group); ``N`` 0 holds the first stage alone (``none``) and ``random``.
        choices: ``{(group, N): signal chosen on the other groups}``.
        inner: The rows the choices were made on (``held_out`` names the group left out).
    """

    per_target: Any
    choices: dict[tuple[str, int], str]
    inner: Any


def split_truth(seed_pairs: Any, probe_seed: int = PROBE_SEED) -> Any:
    """Per ``(target, source)``: the mean accuracy over the tuning seeds other than ``probe_seed``
    (the truth of the two-stage rows); pairs with no other seed are absent."""
    others = seed_pairs[seed_pairs["seed"] != probe_seed]
    return others.groupby(["target", "source"])["accuracy"].mean()


def probe_signals(preds: list[np.ndarray], confs: list[np.ndarray], thresholds: list[float]) -> dict[str, np.ndarray]:
    """Every :data:`SIGNALS` value of each probe (in the given order), from its predicted label
    indices, top probabilities and ATC threshold (:func:`hubselect.benchmark.trust.prediction_estimates`)."""
    from hubselect.benchmark.trust import prediction_estimates

    est = prediction_estimates(preds, confs, thresholds)
    return {name: est[name] for name in SIGNALS}


def rerank(first: np.ndarray, top: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Closeness (higher = better) of the two-stage order of one target's candidates.

    Args:
        first: The first stage's closeness of every candidate.
        top: Indices of the probed candidates (the first stage's top ``N``).
        values: The re-rank signal of each of ``top`` (aligned with it).

    Returns:
        The probed candidates first, by ``values`` (ties keep the first stage's order), then the
        others in the first stage's order.
    """
    order = np.argsort(-np.asarray(first, dtype=float), kind="stable")
    top = np.asarray(top, dtype=int)
    ranked = top[np.argsort(-np.asarray(values, dtype=float), kind="stable")]
    rest = order[~np.isin(order, top)]
    closeness = np.empty(len(order))
    closeness[np.concatenate([ranked, rest])] = np.arange(len(order), 0, -1, dtype=float)
    return closeness


def restrict(truth: Any, split: Any, probes: dict) -> Any:
    """The pairs of ``truth`` that have a probe and a split truth, ``accuracy`` replaced by the split
    truth (:func:`split_truth`); targets left with fewer than two such candidates are dropped."""
    keys = list(zip(truth["target"], truth["source"]))
    keep = np.array([k in probes and k in split.index for k in keys], dtype=bool)
    out = truth[keep].copy()
    out["accuracy"] = split.reindex(list(zip(out["target"], out["source"]))).to_numpy(float)
    sizes = out.groupby("target")["source"].transform("size")
    dropped = out.loc[sizes < 2, "target"].nunique()
    if dropped or not keep.all():
        logger.info("two-stage: %d of %d pairs have a probe and a split truth; %d targets too small dropped",
                    int(keep.sum()), len(keep), dropped)
    return out[sizes >= 2]


def target_rows(col: Any, group: Any, probes: dict, first: str, ns: tuple[int, ...],
                signals: tuple[str, ...]) -> list[dict]:
    """Scores of one target's orders (``group``: its candidates, as :func:`restrict` gives them): the
    first stage alone and ``random`` (``N`` 0), and per ``N`` each signal's re-rank and the
    ``perfect`` one (re-ranked by the truth itself: the best the top ``N`` allows)."""
    from hubselect.benchmark.metrics import top_k
    from hubselect.benchmark.trust import closeness_for, random_scores, target_scores

    target, acc = group["target"].iloc[0], group["accuracy"].to_numpy(float)
    sources = group["source"].to_numpy()
    head = {"target": target, "first_stage": first}
    first_c = closeness_for(col, group, first)
    rows = [{**head, "n": 0, "signal": NONE, **target_scores(first_c, acc)},
            {**head, "n": 0, "signal": RANDOM, **random_scores(acc)}]
    for n in ns:
        top = top_k(first_c, min(n, len(acc)))
        outs = [probes[(target, s)] for s in sources[top]]
        values = probe_signals([o[0] for o in outs], [o[1] for o in outs], [o[2] for o in outs])
        values[PERFECT] = acc[top]
        rows += [{**head, "n": n, "signal": name, **target_scores(rerank(first_c, top, values[name]), acc)}
                 for name in (*signals, PERFECT)]
    return rows


def two_stage_scores(col: Any, truth: Any, probes: dict, first: str | Callable[[str], str],
                     ns: tuple[int, ...] = PROBE_NS, signals: tuple[str, ...] = SIGNALS) -> Any:
    """:func:`target_rows` of every target of ``truth`` (restricted by :func:`restrict`); ``first`` is a
    ranker name or a function of the target giving one."""
    import pandas as pd

    col = replace(col, truth=truth)
    first_of = first if callable(first) else (lambda _t: first)
    rows = [row for target, group in truth.groupby("target", sort=True)
            for row in target_rows(col, group, probes, first_of(target), ns, signals)]
    return pd.DataFrame(rows)


def choose_signal(scores: Any, n: int, signals: tuple[str, ...] = SIGNALS) -> str:
    """The signal the protocol's rule picks for ``N`` = ``n`` on ``scores`` (:func:`target_rows` rows):
    lowest mean Regret@3, ties within 0.05 to Regret@1, then Spearman."""
    from hubselect.benchmark.trust import choose_default

    rows = scores[(scores["n"] == n) & scores["signal"].isin(signals)]
    means = rows.groupby("signal")[["regret@3", "regret@1", "spearman"]].agg(lambda v: float(np.nanmean(v)))
    return choose_default(means, [s for s in signals if s in means.index])


def nested_two_stage(col: Any, nested: Any, probes: dict, split: Any, ns: tuple[int, ...] = PROBE_NS,
                     signals: tuple[str, ...] = SIGNALS) -> TwoStageResult:
    """The two-stage pick under nested leave-one-group-out (module docstring).

    Args:
        col: The :class:`hubselect.benchmark.trust.Collection`.
        nested: The :class:`hubselect.benchmark.nested.NestedResult` (first-stage choices and the
            inner and held-out truths with features fitted without the held-out group).
        probes: ``{(target, source): (pred, conf, ATC threshold)}`` of the probe seed's models
            (:func:`hubselect.benchmark.trust.probe_outputs`).
        split: :func:`split_truth` of the probe seed.
    """
    import pandas as pd

    group_of = lambda t: col.groups.get(t, t)  # noqa: E731
    choices, held_parts, inner_parts = {}, [], []
    for g, first in sorted(nested.choices.items()):
        inner_truth = nested.inner_truth[nested.inner_truth["held_out"] == g]
        inner = two_stage_scores(col, restrict(inner_truth, split, probes), probes, first, ns, signals)
        held_truth = nested.logo_truth[nested.logo_truth["target"].map(group_of) == g]
        held = two_stage_scores(col, restrict(held_truth, split, probes), probes, first, ns, signals)
        if held.empty:
            continue
        chosen = np.zeros(len(held), dtype=bool)
        for n in ns:
            choices[(g, n)] = choose_signal(inner, n, signals) if not inner.empty else signals[0]
            chosen |= ((held["n"] == n) & (held["signal"] == choices[(g, n)])).to_numpy()
        held_parts.append(held.assign(group=g, chosen=chosen))
        inner_parts.append(inner.assign(held_out=g))
        logger.info("two-stage: %s held out, first stage %s, signals %s", g, first,
                    {n: choices[(g, n)] for n in ns})
    empty = pd.DataFrame(columns=["target", "first_stage", "n", "signal", "group", "chosen"])
    return TwoStageResult(pd.concat(held_parts, ignore_index=True) if held_parts else empty, choices,
                          pd.concat(inner_parts, ignore_index=True) if inner_parts else empty)


def labelled_rows(per_target: Any) -> Any:
    """:attr:`TwoStageResult.per_target` with a ``ranker`` label per row, as the report shows them:
    ``first stage alone``, ``random``, ``two-stage N=<n>`` (the signal chosen per fold),
    ``two-stage N=<n>, <signal>`` (one signal in every fold) and ``two-stage N=<n>, perfect re-rank``."""
    import pandas as pd

    base = per_target[per_target["n"] == 0]
    base = base.assign(ranker=np.where(base["signal"] == NONE, "first stage alone", "random (split truth)"))
    probed = per_target[per_target["n"] > 0]
    fixed = probed.assign(ranker=[f"two-stage N={n}, {'perfect re-rank' if s == PERFECT else s}"
                                  for n, s in zip(probed["n"], probed["signal"])])
    chosen = probed[probed["chosen"].astype(bool)]
    chosen = chosen.assign(ranker=[f"two-stage N={n}" for n in chosen["n"]])
    return pd.concat([base, chosen, fixed], ignore_index=True)


def saving_table(col: Any, held: Any, result: TwoStageResult, probes: dict, score_seconds: dict[str, float],
                 fractions: tuple[float, ...] = PROBE_FRACTIONS, kept: tuple[int, ...] = KEPT) -> Any:
    """Runtime saved end to end per (target, N, k, probe fraction) by the nested two-stage pick.

    Args:
        col: The collection (groups; the rankers' closeness).
        held: The held-out pairs as :func:`restrict` gives them, with ``tune_seconds`` and
            ``evaluate_seconds`` per pair (:func:`hubselect.benchmark.costs.normalised_parts`).
        result: :func:`nested_two_stage`'s result (each target's first stage, each fold's signal).
        probes: As for :func:`nested_two_stage`.
        score_seconds: ``{target: seconds}`` to score every candidate for its first stage.

    Returns:
        Rows ``target, n, k, fraction, saving, one_stage_saving``: ``saving`` is
        ``1 - two-stage seconds / (tune + evaluate every candidate)``
        (:func:`hubselect.benchmark.costs.two_stage_seconds`); ``one_stage_saving`` that of tuning
        and evaluating the first stage's top ``k`` without probes.
    """
    import pandas as pd

    from hubselect.benchmark.costs import two_stage_seconds
    from hubselect.benchmark.metrics import runtime_saving, top_k
    from hubselect.benchmark.trust import closeness_for

    firsts = result.per_target.drop_duplicates("target").set_index("target")["first_stage"]
    ns, rows = sorted({n for (_, n) in result.choices}), []
    for target, group in held[held["target"].isin(firsts.index)].groupby("target", sort=True):
        first_c = closeness_for(col, group, firsts[target])
        tune, evaluate = group["tune_seconds"].to_numpy(float), group["evaluate_seconds"].to_numpy(float)
        sources, brute = group["source"].to_numpy(), float((tune + evaluate).sum())
        for n in ns:
            top = top_k(first_c, min(n, len(group)))
            outs = [probes[(target, s)] for s in sources[top]]
            values = probe_signals([o[0] for o in outs], [o[1] for o in outs], [o[2] for o in outs])
            order = rerank(first_c, top, values[result.choices[(col.groups.get(target, target), n)]])
            for k in kept:
                kept_idx, one = top_k(order, min(k, len(top))), top_k(first_c, min(k, len(group)))
                one_stage = runtime_saving(score_seconds[target], tune + evaluate, one)
                rows += [{"target": target, "n": n, "k": k, "fraction": f, "one_stage_saving": one_stage,
                          "saving": 1 - two_stage_seconds(score_seconds[target], tune, evaluate, top, kept_idx, f)
                          / brute} for f in fractions]
    return pd.DataFrame(rows, columns=["target", "n", "k", "fraction", "saving", "one_stage_saving"])


def paired_difference(labelled: Any, ranker: str, versus: str, metric: str = "regret@3") -> tuple[float, float, float]:
    """Mean over targets of ``metric`` of ``ranker`` minus that of ``versus`` on the same target
    (rows of :func:`labelled_rows`), with its 95% bootstrap CI over targets; NaNs when either is absent."""
    from hubselect.benchmark.metrics import bootstrap_ci

    a = labelled[labelled["ranker"] == ranker].set_index("target")[metric]
    b = labelled[labelled["ranker"] == versus].set_index("target")[metric]
    diff = (a - b.reindex(a.index)).dropna().to_numpy(float)
    if not len(diff):
        return float("nan"), float("nan"), float("nan")
    return (float(np.mean(diff)), *bootstrap_ci(diff, n_boot=1000))
