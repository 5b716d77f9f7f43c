"""The ``learned`` selection policy at selection time: load a fitted model, build its features, predict.

A model is a ridge regression fitted by the benchmark (:mod:`hubselect.benchmark.learned`, which
fits and evaluates it) and saved as JSON: feature names, standardisation, coefficients. Loading
it runs no code and needs no pickle. Its features for a (source, target) pair are:

* every divergence measure, z-scored **within the target** (each target's candidates are
  standardised among themselves, so the model learns "closer than the other candidates"
  rather than absolute values that shift from one target to the next);
* features of the source alone (:func:`source_features`): log10 of its size, log10 of its mean
  text length in words, label balance (normalised entropy), number of labels and vocabulary
  richness (Guiraud's index: types / sqrt(tokens) over the first 20k tokens).

The rankers of the transfer-matrix benchmark (:mod:`hubselect.benchmark.nested`) read *pair*
features instead (:func:`pair_features_of`, the one home of their definition): every divergence
and the label-set and balance distances z-scored within the target, the source's transfer prior,
log10 of its size, both sides' number of labels and whether the label names are the same. A model
names the features it reads, so either kind loads the same way.

The select step calls :func:`load` and :func:`predict_from_catalog` and hands the result to
:func:`hubselect.selection.policy.select` (which does no I/O).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hubselect.core.errors import HubselectError
from hubselect.data.entries import Catalog, read_frame

FORMAT = "hubselect-learned-policy"
VERSION = 1
#: The file a benchmark run writes, and the name looked for in a folder.
FILENAME = "learned_policy.json"
SOURCE_FEATURES = ("src_log_rows", "src_log_words", "src_label_balance", "src_n_labels", "src_vocab_richness")
#: Columns a pair table needs besides ``target`` and ``d_<measure>`` (:func:`pair_features_of`).
PAIR_COLUMNS = ("label_distance", "balance_distance", "prior", "source_rows", "src_n_labels", "tgt_n_labels",
                "same_labels")
#: The pair features no source-feature model reads (``src_log_rows`` and ``src_n_labels`` are in
#: both kinds); a model reading any of them is a pair model and needs the signals.
PAIR_FEATURES = ("z_label_distance", "z_balance_distance", "prior", "tgt_n_labels", "same_labels")
_TOKEN = re.compile(r"\w+")
_RICHNESS_TOKENS = 20000


def source_features(texts: Sequence[str], labels: Sequence[Any], rows_total: int | None = None) -> dict[str, float]:
    """Features of one source's training sample (see the module docstring)."""
    if not texts:
        raise HubselectError("a source sample without texts has no features")
    counts = Counter(labels)
    p = np.array(list(counts.values()), dtype=float) / len(labels)
    balance = float(-(p * np.log(p)).sum() / math.log(len(p))) if len(p) > 1 else 0.0
    words = [len(_TOKEN.findall(t)) for t in texts]
    tokens: list[str] = []
    for t in texts:
        tokens += _TOKEN.findall(t.lower())
        if len(tokens) >= _RICHNESS_TOKENS:
            break
    tokens = tokens[:_RICHNESS_TOKENS]
    return {"src_log_rows": math.log10(max(rows_total or len(texts), 1)),
            "src_log_words": math.log10(max(float(np.mean(words)), 1.0)),
            "src_label_balance": balance, "src_n_labels": float(len(counts)),
            "src_vocab_richness": len(set(tokens)) / math.sqrt(max(len(tokens), 1))}


def source_features_from_catalog(catalog: Catalog) -> Any:
    """:func:`source_features` of every usable candidate of a fetch catalog (DataFrame by name)."""
    import pandas as pd

    rows = {}
    for cand in catalog.accepted():
        frame = read_frame(catalog.path(cand), ["text", "label"])
        rows[cand.name] = source_features(frame["text"].tolist(), frame["label"].tolist(), cand.sample.rows_total)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("source")


def _zscore(frame: Any) -> Any:
    std = frame.std(axis=0, ddof=0).replace(0, 1.0)
    return (frame - frame.mean(axis=0)) / std


def _measure_columns(scores: Any, measures: Sequence[str]) -> Any:
    """The columns of ``measures`` in the score step's table (floats); a missing one is named."""
    missing = [m for m in measures if m not in scores.columns]
    if missing:
        raise HubselectError(f"the learned policy needs measure '{missing[0]}', which was not scored: "
                             "score with --measures all")
    return scores[list(measures)].astype(float)


def pair_features(scores: Any, measures: Sequence[str], src_features: Any | None) -> Any:
    """Feature rows for one target: ``scores`` (rows candidates, columns measures) + source features."""
    import pandas as pd

    feats = _zscore(_measure_columns(scores, measures)).add_prefix("z_")
    if src_features is not None:
        lacking = [c for c in scores.index if c not in src_features.index]
        if lacking:
            raise HubselectError(f"no source features for candidate '{lacking[0]}'")
        feats = pd.concat([feats, src_features.loc[scores.index, list(SOURCE_FEATURES)]], axis=1)
    return feats


def pair_features_of(table: Any, measures: Sequence[str]) -> Any:
    """The pair features of every row of ``table`` (one row per target and source), aligned with it.

    ``z_<measure>``, ``z_label_distance`` and ``z_balance_distance`` are z-scored among the
    target's rows (a target with one distinct value gets 0); ``prior``, ``src_n_labels``,
    ``tgt_n_labels`` and ``same_labels`` are taken as they are; ``src_log_rows`` is
    ``log10(max(source_rows, 1))``. Missing values become 0 (the neutral value).

    Args:
        table: DataFrame with ``target``, ``d_<measure>`` for each of ``measures`` and
            :data:`PAIR_COLUMNS`.
        measures: The divergence measures to include.

    Raises:
        HubselectError: a column is missing.
    """
    missing = [c for c in ["target", *(f"d_{m}" for m in measures), *PAIR_COLUMNS] if c not in table.columns]
    if missing:
        raise HubselectError(f"the pair features need column '{missing[0]}', which the table lacks")
    zcols = [f"d_{m}" for m in measures] + ["label_distance", "balance_distance"]
    z = table.groupby("target")[zcols].transform(lambda v: (v - v.mean()) / (v.std(ddof=0) or 1.0))
    z.columns = [f"z_{c[2:]}" if c.startswith("d_") else f"z_{c}" for c in zcols]
    z["prior"] = table["prior"].to_numpy(float)
    z["src_log_rows"] = np.log10(table["source_rows"].astype(float).clip(lower=1).to_numpy())
    for column in ("src_n_labels", "tgt_n_labels", "same_labels"):
        z[column] = table[column].to_numpy(float)
    return z.fillna(0.0)


def label_set_features(target_names: Sequence[Any], source_names: Sequence[Any]) -> dict[str, float]:
    """``src_n_labels``, ``tgt_n_labels`` and ``same_labels`` of one pair, from label *names*
    (compared by :func:`hubselect.data.labelnames.normalize_label`)."""
    from hubselect.data.labelnames import normalize_label

    target, source = {normalize_label(n) for n in target_names}, {normalize_label(n) for n in source_names}
    return {"src_n_labels": float(len(source)), "tgt_n_labels": float(len(target)),
            "same_labels": float(bool(target) and source == target)}


def uses_pair_features(model: dict) -> bool:
    """Whether the model reads pair features (and so needs the prior and the label signals)."""
    return any(f in PAIR_FEATURES for f in model["features"])


def pair_table(scores: Any, catalog: Catalog, signals: dict[str, dict[str, Any]]) -> Any:
    """One target's pair table for :func:`pair_features_of`, from the score step's table, the fetch
    catalog and the prior and label signals of :mod:`hubselect.selection.signals`.

    ``same_labels`` compares the candidate's label names with the target's
    (:func:`hubselect.data.labelnames.normalize_label`); the target's labelled examples are not read.
    """
    entries = {c.name: c for c in catalog.accepted()}
    lacking = [k for k in ("prior", "label_distance", "balance_distance") if k not in signals]
    if lacking:
        raise HubselectError(f"the learned model needs the '{lacking[0]}' signal: give the target label names "
                             "(--label-names a,b,c) so the label signals can be computed")
    table = scores.add_prefix("d_")
    table["target"] = catalog.target.name
    for key in ("prior", "label_distance", "balance_distance"):
        table[key] = [signals[key].get(n) for n in table.index]
    table["source_rows"] = [float(entries[n].sample.rows_total or entries[n].sample.n) for n in table.index]
    sets = [label_set_features(catalog.target.label_names or (), list(entries[n].label_counts_by_name()))
            for n in table.index]
    return table.assign(**{k: [f[k] for f in sets] for k in ("src_n_labels", "tgt_n_labels", "same_labels")})


def predict(model: dict, features: Any) -> np.ndarray:
    """Predicted gains for feature rows with the model's columns."""
    missing = [f for f in model["features"] if f not in features.columns]
    if missing:
        raise HubselectError(f"the learned model needs feature '{missing[0]}', which is missing")
    x = np.asarray(features[model["features"]], dtype=float)
    return ((x - np.asarray(model["mean"])) / np.asarray(model["scale"])) @ np.asarray(model["coef"]) + model["intercept"]


def measures_of(model: dict) -> list[str]:
    """The divergence measures a model reads (its ``z_`` features that are not label signals)."""
    return [f[2:] for f in model["features"] if f.startswith("z_") and f not in PAIR_FEATURES]


def uses_source_features(model: dict) -> bool:
    """Whether the model needs :func:`source_features`."""
    return any(f in SOURCE_FEATURES for f in model["features"])


def predict_gain(model: dict, scores: Any, src_features: Any | None = None) -> Any:
    """Predicted gain of each candidate (a Series indexed like ``scores``); higher = better."""
    import pandas as pd

    feats = pair_features(scores, measures_of(model), src_features if uses_source_features(model) else None)
    return pd.Series(predict(model, feats), index=scores.index, name="predicted_gain")


def predict_from_catalog(model: dict, scores: Any, catalog: Catalog,
                         signals: dict[str, dict[str, Any]] | None = None) -> Any:
    """The gains ``model`` (from :func:`load`) predicts for the candidates of ``scores``.

    Source features are read from the fetch step's samples only when the model uses them; pair
    features (:func:`pair_features_of`) are built from ``signals`` when it reads them.

    Args:
        model: A learned policy, as :func:`load` returns it.
        scores: The score step's table (rows candidates, columns measures).
        catalog: The fetch step's catalog (its folder holds the samples).
        signals: The prior and label signals (:mod:`hubselect.selection.signals`), for a model with
            pair features.
    """
    import pandas as pd

    if uses_pair_features(model):
        measures = measures_of(model)
        feats = pair_features_of(pair_table(_measure_columns(scores, measures), catalog, signals or {}), measures)
        return pd.Series(predict(model, feats), index=scores.index, name="predicted_gain")
    features = source_features_from_catalog(catalog) if uses_source_features(model) else None
    return predict_gain(model, scores, features)


def load(path: str | os.PathLike) -> dict:
    """Read a model written by :func:`hubselect.benchmark.learned.save` (validated; no code runs).

    Raises:
        HubselectError: missing file, not a hubselect learned policy, unknown version, or
            inconsistent lengths.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.exists():
        raise HubselectError(f"no learned policy at '{path}': pass the {FILENAME} of a benchmark run")
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HubselectError(f"'{path}' is not valid JSON ({exc.msg}): pass a benchmark's {FILENAME}") from None
    if not isinstance(model, dict) or model.get("format") != FORMAT:
        raise HubselectError(f"'{path}' is not a hubselect learned policy (format '{FORMAT}')")
    if model.get("version") != VERSION:
        raise HubselectError(f"'{path}' has learned-policy version {model.get('version')}, this hubselect reads {VERSION}")
    n = len(model["features"])
    if not (len(model["mean"]) == len(model["scale"]) == len(model["coef"]) == n):
        raise HubselectError(f"'{path}' is inconsistent: features, mean, scale and coef differ in length")
    return model
