"""How far a user can trust the pick: rankers against baselines, the noise ceiling, priors,
defaults chosen on a dev split and reported on a held-out one, and label-free champions.

Reads a finished matrix (:func:`hubselect.benchmark.matrix.build_matrix` with 2+ seeds) and a
task-group table (``task,group,collection``). Everything here is computed from the matrix; no
model is trained. Conventions: closeness is higher = better; regret is in accuracy points; the
ground truth is the mean over seeds (:func:`~hubselect.benchmark.matrix.seed_mean`).

Rankers (closeness per candidate of one target):

* baselines: ``random`` (exact expectation), ``oracle``, ``strongest`` (a source's mean gain on
  the *other* targets), ``same-labels`` (sources whose label names equal the target's first, then
  the largest), ``largest`` (most training rows);
* divergence: ``rank:<set>`` (mean rank over a measure set, lower divergence = closer);
* ``labels``: the label-set distance alone;
* ``combined:<set>:p<w>:l<w>:b<w>``: :func:`hubselect.selection.policy.combined_score` of the
  divergence rank, the leave-one-target-out prior, the label-set and label-balance distances;
* ``learned`` (ridge, leave-one-target-out) and ``learned:logo`` (leave-one-group-out).
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubselect.data.entries import Catalog, read_texts

logger = logging.getLogger(__name__)

MEASURE_SETS = ("terms", "embeddings", "all")
PRIOR_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
LABEL_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
BALANCE_WEIGHTS = (0.0, 0.5, 1.0)
BASELINES = ("random", "oracle", "strongest", "same-labels", "largest")
KS = (1, 3)
#: The per-target scores of a ranker (:func:`target_scores`), as summarised.
SCORE_COLUMNS = ("spearman", "regret@1", "regret@3", "rel_regret@1", "rel_regret@3", "ndcg@3")


@dataclass
class Collection:
    """What the analysis reads: per-seed pairs, the seed-mean truth with features, groups."""

    seed_pairs: Any
    truth: Any
    groups: dict[str, str]
    collections: dict[str, str]
    measures: list[str]
    kinds: dict[str, str]


def read_groups(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """``({task: group}, {task: collection})`` from a ``task,group,collection`` CSV."""
    import pandas as pd

    frame = pd.read_csv(path)
    return dict(zip(frame["task"], frame["group"])), dict(zip(frame["task"], frame["collection"]))


def label_features(matrix: dict, out_dir: Path) -> Any:
    """Per pair: label-set and balance distances, source rows, same label names (no target labels)."""
    import pandas as pd

    from hubselect.benchmark.matrix import target_catalog_dir
    from hubselect.scoring.divergence.labels import label_space_distances
    from hubselect.scoring.represent.labels import label_spaces
    from hubselect.scoring.represent.store import EmbeddingSettings, Encoder, cached_embeddings
    from hubselect.selection.learned import label_set_features

    s = matrix["settings"]
    encoder = Encoder(EmbeddingSettings(model=s["embedding_model"], model_revision=s["embedding_revision"] or None,
                                        max_length=int(s["max_length"]), max_texts=int(s["embed_examples"])))
    parts = []
    for rec in (r for r in matrix["targets"] if r["scored"]):
        catalog = Catalog.load(target_catalog_dir(out_dir, rec["target"]))
        texts = read_texts(catalog.path(catalog.target.score))
        emb, _ = cached_embeddings(texts, catalog.target.revision, encoder)
        ok = {c.name: c.sample for c in catalog.accepted()}
        counts = {c.name: c.label_counts_by_name() for c in catalog.accepted()}  # as hubselect select reads them
        spaces = label_spaces(rec["label_names"], emb, counts, encoder)
        table = pd.DataFrame(label_space_distances(*spaces))
        table["source_rows"] = [float(ok[n].rows_total or ok[n].n) for n in table.index]
        sets = [label_set_features(rec["label_names"], list(counts[n])) for n in table.index]
        table = table.assign(**{k: [f[k] for f in sets] for k in ("src_n_labels", "tgt_n_labels", "same_labels")})
        parts.append(table.rename_axis("source").reset_index().assign(target=rec["target"]))
    return pd.concat(parts, ignore_index=True)


def add_priors(truth: Any, groups: dict[str, str]) -> Any:
    """``prior_loto`` (mean gain of the source on every *other* target) and ``prior_logo``
    (on the targets outside the target's group) for every pair."""
    out = truth.copy()
    gain = truth.pivot(index="target", columns="source", values="gain")
    group_of = np.array([groups.get(t, t) for t in gain.index])
    loto, logo = [], []
    for target, source in zip(out["target"], out["source"]):
        col = gain[source].drop(index=target)
        loto.append(col.mean())
        logo.append(col[group_of[gain.index != target] != groups.get(target, target)].mean())
    out["prior_loto"], out["prior_logo"] = loto, logo
    neutral = out.groupby("target")[["prior_loto", "prior_logo"]].transform("mean")
    return out.fillna({"prior_loto": neutral["prior_loto"], "prior_logo": neutral["prior_logo"]})


def load_collection(matrix: dict, out_dir: str | Path, groups_csv: str | Path) -> Collection:
    """Assemble the :class:`Collection` of a finished matrix."""
    from hubselect.benchmark.matrix import pairs_frame, seed_mean
    from hubselect.scoring.divergence import resolve_measures

    out_dir = Path(out_dir)
    groups, collections = read_groups(groups_csv)
    seed_pairs = pairs_frame(matrix)
    truth = seed_mean(seed_pairs)
    truth = truth.merge(label_features(matrix, out_dir), on=["target", "source"], how="left")
    truth = add_priors(truth, groups)
    measures = [c[2:] for c in truth.columns if c.startswith("d_")]
    kinds = {s.name: s.kind for s in resolve_measures(measures)}
    return Collection(seed_pairs, truth, groups, collections, measures, kinds)


def matrix_from_records(out_dir: str | Path) -> dict:
    """The matrix (as :func:`hubselect.benchmark.matrix.build_matrix` returns it) assembled from the
    records of a benchmark folder that was never assembled: a sharded or still running benchmark,
    or one restored from a committed export (``scripts/matrix_sync.py restore``). Each scored target
    gets the pairs recorded so far, of every recorded model; nothing is tuned or evaluated."""
    from hubselect.benchmark.matrix import SETTINGS_FILE, _assemble, model_stem

    out_dir = Path(out_dir)
    settings = json.loads((out_dir / SETTINGS_FILE).read_text(encoding="utf-8"))["settings"]
    models = [{**json.loads(p.read_text(encoding="utf-8")), "from_cache": True}
              for p in sorted((out_dir / "models").glob("*.json"))]
    evals = {}
    for m in models:
        found = sorted((out_dir / "pairs").glob(f"*/{model_stem(m)}.json"))
        evals[(m["source"], m["seed"], m["formulation"])] = {f.parent.name: json.loads(f.read_text(encoding="utf-8"))
                                                            for f in found}
    targets = []
    for name in settings["task_names"].split(","):
        path = out_dir / "prepared" / f"{name}.json"
        if not path.exists():
            continue
        rec = json.loads(path.read_text(encoding="utf-8"))
        if rec["scored"]:
            base = json.loads((out_dir / "baseline" / f"{name}.json").read_text(encoding="utf-8"))
            rec = _assemble(rec, models, evals, base)
        targets.append(rec)
    return {"settings": settings, "tasks": [{"name": n} for n in settings["task_names"].split(",")],
            "targets": targets}


# ------------------------------------------------------------------------------------------ rankers


def measure_set(col: Collection, name: str) -> list[str]:
    return [m for m in col.measures if name == "all" or col.kinds[m] == name]


def combined_name(mset: str, wp: float, wl: float, wb: float, prior: str = "loto") -> str:
    tail = "" if prior == "loto" else f":{prior}"
    return f"combined:{mset}:p{wp:g}:l{wl:g}:b{wb:g}{tail}"


def default_ranker() -> str:
    """This analysis's name for the select step's default policy: ``combined:all:p1:l2:b0``.

    Read from :class:`hubselect.selection.policy.SelectionConfig`'s defaults
    (:data:`~hubselect.selection.policy.DEFAULT_POLICY` over its default measure group and weights,
    the weights scaled so that the divergence rank weighs 1, as :func:`closeness_for` has it).
    """
    from hubselect.selection.policy import SelectionConfig

    cfg = SelectionConfig()
    w = cfg.weight_map()
    if cfg.policy != "combined" or cfg.measures not in MEASURE_SETS or not w["divergence"]:
        raise ValueError(f"the default policy {cfg.policy} over {cfg.measures} has no ranker name here")
    return combined_name(cfg.measures, *(w[k] / w["divergence"] for k in ("prior", "labels", "balance")))


def closeness_for(col: Collection, group: Any, name: str) -> np.ndarray:
    """Closeness (higher = better) of ranker ``name`` over one target's candidates ``group``."""
    from hubselect.benchmark.metrics import rank_closeness
    from hubselect.selection.policy import combined_score

    if name == "oracle":
        return group["accuracy"].to_numpy(float)
    if name == "strongest":
        return group["prior_loto"].to_numpy(float)
    if name == "largest":
        return group["source_rows"].to_numpy(float)
    if name == "same-labels":
        return group["same_labels"].to_numpy(float) * 1e12 + group["source_rows"].to_numpy(float)
    if name == "labels":
        return -group["label_distance"].to_numpy(float)
    if name.startswith("rank:"):
        return rank_closeness(group[[f"d_{m}" for m in measure_set(col, name[5:])]])
    if name.startswith("combined:"):
        parts = name.split(":")
        mset, wp, wl, wb = parts[1], float(parts[2][1:]), float(parts[3][1:]), float(parts[4][1:])
        prior = group["prior_logo" if len(parts) > 5 and parts[5] == "logo" else "prior_loto"].to_numpy(float)
        rank = -rank_closeness(group[[f"d_{m}" for m in measure_set(col, mset)]])
        return combined_score(rank, {"divergence": 1.0, "prior": wp, "labels": wl, "balance": wb}, prior=prior,
                              label_distance=group["label_distance"].to_numpy(float),
                              balance_distance=group["balance_distance"].to_numpy(float))
    if name in group:  # precomputed (learned predictions)
        return group[name].to_numpy(float)
    raise KeyError(f"unknown ranker {name}")


def top_sources(col: Collection, group: Any, policy: str, k: int) -> np.ndarray:
    """The ``k`` sources ``policy`` selects for one target's candidates ``group`` (best first)."""
    from hubselect.benchmark.metrics import top_k

    return group["source"].to_numpy()[top_k(closeness_for(col, group, policy), k)]


def _relative(scores: dict[str, float], accuracy: np.ndarray) -> dict[str, float]:
    """Relative regret in percent, ``(best - chosen) / best`` (Poth et al. 2021)."""
    best = 100.0 * float(np.max(accuracy))
    return {**scores, **{f"rel_regret@{k}": 100.0 * scores[f"regret@{k}"] / best if best > 0 else float("nan")
                         for k in KS}}


def target_scores(closeness: np.ndarray, accuracy: np.ndarray) -> dict[str, float]:
    """Spearman, Regret@k (points), relative Regret@k (%) and NDCG@3 of one target's ranking."""
    from hubselect.benchmark.metrics import ndcg_at_k, regret_at_k, spearman

    k3 = min(3, len(accuracy))
    scores = {"spearman": spearman(closeness, accuracy), **{f"regret@{k}": regret_at_k(closeness, accuracy, k)
                                                            for k in KS}, "ndcg@3": ndcg_at_k(closeness, accuracy, k3)}
    return _relative(scores, accuracy)


def random_scores(accuracy: np.ndarray) -> dict[str, float]:
    """The exact expectation of :func:`target_scores` over uniformly random rankings."""
    from hubselect.benchmark.metrics import random_ndcg_at_k, random_regret_at_k

    scores = {"spearman": 0.0, **{f"regret@{k}": random_regret_at_k(accuracy, k) for k in KS},
              "ndcg@3": random_ndcg_at_k(accuracy, min(3, len(accuracy)))}
    return _relative(scores, accuracy)


def evaluate_rankers(col: Collection, names: list[str]) -> Any:
    """One row per (ranker, target): Spearman, Regret@1, Regret@3 against the seed-mean truth."""
    import pandas as pd

    rows = []
    for target, group in col.truth.groupby("target", sort=True):
        acc = group["accuracy"].to_numpy(float)
        for name in names:
            scores = random_scores(acc) if name == "random" else target_scores(closeness_for(col, group, name), acc)
            rows.append({"ranker": name, "target": target, **scores})
    return pd.DataFrame(rows)


def grid_names() -> list[str]:
    """Every combined configuration of the grid (see the module docstring)."""
    return [combined_name(m, wp, wl, wb) for m, wp, wl, wb in
            itertools.product(MEASURE_SETS, PRIOR_WEIGHTS, LABEL_WEIGHTS, BALANCE_WEIGHTS)]


def summarise(per_target: Any, targets: list[str]) -> Any:
    """Mean per ranker over ``targets`` with 95% bootstrap CIs over targets."""
    import pandas as pd

    from hubselect.benchmark.metrics import bootstrap_ci

    rows = {}
    for name, g in per_target[per_target["target"].isin(targets)].groupby("ranker", sort=False):
        row = {}
        for m in SCORE_COLUMNS:
            row[m] = float(np.nanmean(g[m]))
            row[f"{m}_lo"], row[f"{m}_hi"] = bootstrap_ci(g[m].to_numpy(), n_boot=1000)
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("ranker")


def choose_default(summary_dev: Any, candidates: list[str]) -> str:
    """The protocol's rule: lowest dev Regret@3; ties within 0.05 to lower Regret@1, then higher Spearman."""
    s = summary_dev.loc[candidates]
    best = s["regret@3"].min()
    tied = s[s["regret@3"] <= best + 0.05]
    return str(tied.sort_values(["regret@1", "spearman"], ascending=[True, False]).index[0])


# ------------------------------------------------------------------------------------ reliability


def _ceiling(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """One half of the seeds ranking the other, both directions averaged."""
    one, two = target_scores(a, b), target_scores(b, a)
    return {f"ceiling_{m}": (one[m] + two[m]) / 2 for m in ("spearman", "regret@1", "regret@3", "ndcg@3")}


def _seed_agreement(wide: Any) -> float:
    """Mean Spearman between every two seeds' rankings of the sources (one target)."""
    from hubselect.benchmark.metrics import spearman

    pairs = [spearman(wide[s], wide[t]) for s, t in itertools.combinations(wide.columns, 2)]
    return float(np.nanmean(pairs)) if pairs else float("nan")


def _spearman_brown(r: float, k: int) -> float:
    """Reliability of the mean of ``k`` measurements whose pairwise agreement is ``r``:
    ``k r / (1 + (k - 1) r)`` (NaN for undefined or ``r <= -1/(k-1)``)."""
    denom = 1 + (k - 1) * r
    return float(k * r / denom) if np.isfinite(r) and denom > 0 else float("nan")


RELIABILITY_COLUMNS = ("target", "sources", "seeds", "seed_spearman", "reliability_sb", "split_half_spearman",
                       "ceiling_spearman_sb", "ceiling_spearman", "ceiling_regret@1", "ceiling_regret@3",
                       "ceiling_ndcg@3", "seed_sd_points", "best_minus_median_points")


def reliability(seed_pairs: Any) -> Any:
    """Per target, how far the tuning seeds agree: the ground truth's own reliability.

    ``seed_pairs`` has one row per (target, source, seed) with ``accuracy``. Columns:

    * ``seed_spearman``: mean Spearman between every two seeds' source rankings (``r``);
    * ``reliability_sb``: Spearman-Brown reliability of the all-seed mean, ``k r / (1 + (k-1) r)``;
    * ``split_half_spearman``: the even seeds' mean against the odd seeds' mean, and
      ``ceiling_*``: that ranking scored as a ranker (Spearman, Regret@1, Regret@3, NDCG@3; both
      directions averaged), i.e. what a ranker that knew the expected accuracy up to tuning noise
      could reach against a noisy truth; ``ceiling_spearman_sb`` = ``sqrt(reliability_sb)``;
    * ``seed_sd_points``: the mean over sources of the seed SD of a pair's accuracy;
    * ``best_minus_median_points``: the best source's seed-mean accuracy above the median one's.

    A target where fewer than two sources have every seed (a matrix still running) is left out.
    """
    import pandas as pd

    rows, short = [], []
    for target, g in seed_pairs.groupby("target", sort=True):
        wide = g.pivot_table(index="source", columns="seed", values="accuracy").dropna()
        seeds = list(wide.columns)
        if len(wide) < 2 or len(seeds) < 2:  # a matrix still running: too few sources with every seed
            short.append(target)
            continue
        halves = [wide[seeds[0::2]].mean(axis=1).to_numpy(float), wide[seeds[1::2]].mean(axis=1).to_numpy(float)]
        r = _seed_agreement(wide)
        sb = _spearman_brown(r, len(seeds))
        mean = wide.mean(axis=1).to_numpy(float)
        rows.append({"target": target, "sources": len(wide), "seeds": len(seeds), "seed_spearman": r,
                     "reliability_sb": sb, "split_half_spearman": target_scores(*halves)["spearman"],
                     "ceiling_spearman_sb": float(np.sqrt(sb)) if np.isfinite(sb) and sb > 0 else float("nan"),
                     **_ceiling(*halves),
                     "seed_sd_points": float(100 * wide.std(axis=1, ddof=1).mean()),
                     "best_minus_median_points": float(100 * (mean.max() - np.median(mean)))})
    if short:
        logger.warning("reliability: %d targets left out, fewer than two sources have every seed (%s)", len(short),
                       ", ".join(short[:5]) + (", ..." if len(short) > 5 else ""))
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


# ---------------------------------------------------------------------------------------- champion

#: The label-free estimators computable from a pair record's ``pred`` and ``conf`` alone; entropy
#: also needs every label's probability (the ``.npy`` scores beside a live benchmark's records).
RECORD_ESTIMATORS = ("rank", "confidence", "atc", "agreement")


def prediction_estimates(preds: list[np.ndarray], confs: list[np.ndarray], thresholds: list[float],
                         probs: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The label-free estimators of :mod:`hubselect.models.labelfree` per model (in the given order), from
    each model's predicted label index (``preds``) and top probability (``confs``) on the target's
    texts: ``rank`` (minus the position), ``confidence`` (mean top probability), ``atc`` (share of
    texts above the model's source-held-out threshold), ``agreement`` (mean share of texts on which
    the model predicts what each other given model predicts; 0 for one model), and ``entropy``
    (minus the mean predictive entropy) only when full ``probs`` are given."""
    n = len(preds)
    agreement = [float(np.mean([np.mean(preds[i] == preds[j]) for j in range(n) if j != i])) if n > 1 else 0.0
                 for i in range(n)]
    out = {"rank": -np.arange(n, dtype=float), "confidence": np.array([np.mean(c) for c in confs], dtype=float),
           "atc": np.array([np.mean(np.asarray(c) > t) for c, t in zip(confs, thresholds)], dtype=float),
           "agreement": np.array(agreement, dtype=float)}
    if probs is not None:
        out["entropy"] = np.array([(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1).mean() for p in probs])
    return out


def pair_outputs(out_dir: str | Path, target: str, stem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(pred, conf, probs)`` of one evaluated pair on the target's test texts: from the ``.npy``
    scores of a live benchmark folder when they are there (``probs`` the softmax), else from the
    ``pred``/``conf`` lists of the pair record (``probs`` None), as the committed export keeps them.

    Raises:
        HubselectError: neither is there.
    """
    from scipy.special import softmax

    from hubselect.core.errors import HubselectError

    base = Path(out_dir) / "pairs" / target / stem
    npy = base.with_name(stem + ".npy")
    if npy.exists():
        probs = softmax(np.load(npy).astype(float), axis=1)
        return probs.argmax(axis=1), probs.max(axis=1), probs
    record = json.loads(base.with_name(stem + ".json").read_text(encoding="utf-8"))
    if "pred" not in record or "conf" not in record:
        raise HubselectError(f"pair '{base}.json' has neither its .npy scores nor pred/conf lists: restore the "
                             "folder from an export that keeps them (scripts/matrix_sync.py), or run the benchmark")
    return np.asarray(record["pred"], dtype=int), np.asarray(record["conf"], dtype=float), None


def holdout_threshold(out_dir: str | Path, stem: str) -> float:
    """The ATC threshold of one tuned model, from its source-held-out record (``holdout/``)."""
    from hubselect.models.labelfree import atc_threshold

    held = json.loads((Path(out_dir) / "holdout" / f"{stem}.json").read_text(encoding="utf-8"))
    return atc_threshold(held["confidence"], held["correct"])


def champion_table(col: Collection, out_dir: str | Path, policy: str, k: int = 3) -> Any:
    """Champion regret of every label-free estimator among the ``k`` sources ``policy`` selects.

    Per target and seed: the regret is the accuracy of the best of the ``k`` tuned models (the
    labelled choice) minus that of the estimator's choice, in points. Predictions are read by
    :func:`pair_outputs` (``.npy`` or the records' ``pred``/``conf``); ``entropy`` is kept only
    when every pair had full scores. A (target, seed) lacking one of the ``k`` models (a matrix
    still running) is left out.
    """
    import pandas as pd

    rows, skipped = [], 0
    accuracy = col.seed_pairs.set_index(["target", "source", "seed"])["accuracy"]
    for target, group in col.truth.groupby("target", sort=True):
        chosen = top_sources(col, group, policy, k)
        for seed in sorted(col.seed_pairs["seed"].unique()):
            if any((target, s, seed) not in accuracy.index for s in chosen):
                skipped += 1
                continue
            stems = [f"{s}.s{seed}.description" for s in chosen]
            outputs = [pair_outputs(out_dir, target, st) for st in stems]
            probs = [o[2] for o in outputs]
            est = prediction_estimates([o[0] for o in outputs], [o[1] for o in outputs],
                                       [holdout_threshold(out_dir, st) for st in stems],
                                       None if any(p is None for p in probs) else probs)
            accs = np.array([accuracy[(target, s, seed)] for s in chosen])
            for name, values in est.items():
                pick = int(np.argmax(values))
                rows.append({"target": target, "seed": int(seed), "estimator": name, "champion": chosen[pick],
                             "accuracy": accs[pick], "best": accs.max(), "regret": 100 * (accs.max() - accs[pick])})
    if skipped:
        logger.warning("champion table: %d (target, seed) left out, one of the %d chosen models missing", skipped, k)
    table = pd.DataFrame(rows, columns=["target", "seed", "estimator", "champion", "accuracy", "best", "regret"])
    full = table.groupby(["target", "seed"])["estimator"].nunique().eq(len(RECORD_ESTIMATORS) + 1).all()
    return table if full else table[table["estimator"] != "entropy"].reset_index(drop=True)


def probe_outputs(col: Collection, out_dir: str | Path, seed: int) -> dict[tuple[str, str], tuple]:
    """``{(target, source): (pred, conf, atc threshold)}`` of every pair's model of tuning ``seed``
    (the two-stage pick's probes, :mod:`hubselect.benchmark.twostage`); pairs without it are absent."""
    pairs = col.seed_pairs[col.seed_pairs["seed"] == seed]
    out, thresholds = {}, {}
    for target, source in zip(pairs["target"], pairs["source"]):
        stem = f"{source}.s{seed}.description"
        if stem not in thresholds:
            thresholds[stem] = holdout_threshold(out_dir, stem)
        pred, conf, _ = pair_outputs(out_dir, target, stem)
        out[(target, source)] = (pred, conf, thresholds[stem])
    return out


# ------------------------------------------------------------------------------------------ driver


def policy_score_seconds(col: Collection, matrix: dict, policy: str) -> dict[str, float]:
    """Per target, the cold cost of scoring every candidate for ``policy``: the representations and
    measures it reads (:func:`hubselect.benchmark.costs.score_seconds`), plus one embedded set (the
    target's texts) when the balance distance is weighed without embedding measures."""
    from hubselect.benchmark.costs import score_seconds

    parts = policy.split(":")
    mset = parts[1] if parts[0] in ("combined", "rank") else "all"
    secs = score_seconds(matrix, {policy: measure_set(col, mset),
                                  "embed": [m for m in col.measures if col.kinds[m] == "embeddings"]}, col.kinds)
    balance = parts[0] == "combined" and float(parts[4][1:]) > 0 and mset == "terms"
    sizes = col.truth.groupby("target").size()
    return {t: v + (secs["embed"][t] / max(int(sizes.get(t, 0)) + 1, 1) if balance else 0.0)
            for t, v in secs[policy].items()}


def saving_at_k(col: Collection, matrix: dict, policy: str, k: int = 3) -> Any:
    """End-to-end runtime saved per target by tuning ``policy``'s top ``k`` instead of every source.

    Scoring cost: :func:`policy_score_seconds`. Pair costs are the benchmark's tune + evaluate work
    at its median throughput.
    """
    import pandas as pd

    from hubselect.benchmark.costs import normalised_costs
    from hubselect.benchmark.metrics import runtime_saving, top_k

    secs = policy_score_seconds(col, matrix, policy)
    truth = col.truth.assign(cost_seconds=normalised_costs(col.truth))
    out = {}
    for target, group in truth.groupby("target", sort=True):
        top = top_k(closeness_for(col, group, policy), k)
        out[target] = runtime_saving(secs[target], group["cost_seconds"].to_numpy(float), top)
    return pd.Series(out, name=f"saving@{k}")
