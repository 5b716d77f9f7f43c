"""The learned selection policy: a ridge regression that predicts a pair's gain.

Features of a (source, target) pair:

* every divergence measure, z-scored **within the target** (each target's candidates are
  standardised among themselves, so the model learns "closer than the other candidates"
  rather than absolute values that shift from one target to the next);
* features of the source alone (:func:`source_features`): log10 of its size, log10 of its mean
  text length in words, label balance (normalised entropy), number of labels and vocabulary
  richness (Guiraud's index: types / sqrt(tokens) over the first 20k tokens).

The model is plain ridge regression solved in closed form with numpy and saved as JSON
(feature names, standardisation, coefficients): loading it runs no code and needs no pickle.
Evaluation is leave-one-target-out (:func:`loto_predictions`): the predictions for a target come
from a model fitted on the pairs of every *other* target.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

FORMAT = "hubselect-learned-policy"
VERSION = 1
SOURCE_FEATURES = ("src_log_rows", "src_log_words", "src_label_balance", "src_n_labels", "src_vocab_richness")
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


def source_features_from_catalog(catalog: dict, fetch_dir: str | os.PathLike) -> Any:
    """:func:`source_features` of every usable candidate of a fetch catalog (DataFrame by name)."""
    import pandas as pd

    rows = {}
    for cand in catalog["candidates"]:
        if cand["status"] == "ok":
            frame = pd.read_parquet(Path(fetch_dir) / cand["sample"], columns=["text", "label"])
            rows[cand["name"]] = source_features(frame["text"].tolist(), frame["label"].tolist(), cand.get("rows_total"))
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("source")


def _zscore(frame: Any) -> Any:
    std = frame.std(axis=0, ddof=0).replace(0, 1.0)
    return (frame - frame.mean(axis=0)) / std


def pair_features(scores: Any, measures: Sequence[str], src_features: Any | None) -> Any:
    """Feature rows for one target: ``scores`` (rows candidates, columns measures) + source features."""
    import pandas as pd

    missing = [m for m in measures if m not in scores.columns]
    if missing:
        raise HubselectError(f"the learned policy needs measure '{missing[0]}', which was not scored: "
                             "score with --measures all")
    feats = _zscore(scores[list(measures)].astype(float)).add_prefix("z_")
    if src_features is not None:
        lacking = [c for c in scores.index if c not in src_features.index]
        if lacking:
            raise HubselectError(f"no source features for candidate '{lacking[0]}'")
        feats = pd.concat([feats, src_features.loc[scores.index, list(SOURCE_FEATURES)]], axis=1)
    return feats


def fit(features: Any, gains: Sequence[float], *, alpha: float = 1.0, trained_on: Sequence[str] = ()) -> dict:
    """Fit ridge regression on standardised ``features``; return the JSON-able model."""
    x = np.asarray(features, dtype=float)
    y = np.asarray(gains, dtype=float)
    if x.ndim != 2 or len(x) != len(y) or len(y) < 2:
        raise HubselectError(f"need a 2-D feature table with one row per gain (at least 2), got {x.shape} and {y.shape}")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return {"format": FORMAT, "version": VERSION, "features": [str(c) for c in features.columns],
            "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(), "intercept": float(y.mean()),
            "alpha": alpha, "target": "gain", "trained_on": sorted(set(trained_on)), "n_pairs": int(len(y))}


def predict(model: dict, features: Any) -> np.ndarray:
    """Predicted gains for feature rows with the model's columns."""
    missing = [f for f in model["features"] if f not in features.columns]
    if missing:
        raise HubselectError(f"the learned model needs feature '{missing[0]}', which is missing")
    x = np.asarray(features[model["features"]], dtype=float)
    return ((x - np.asarray(model["mean"])) / np.asarray(model["scale"])) @ np.asarray(model["coef"]) + model["intercept"]


def measures_of(model: dict) -> list[str]:
    """The divergence measures a model reads."""
    return [f[2:] for f in model["features"] if f.startswith("z_")]


def uses_source_features(model: dict) -> bool:
    """Whether the model needs :func:`source_features`."""
    return any(f in SOURCE_FEATURES for f in model["features"])


def predict_gain(model: dict, scores: Any, src_features: Any | None = None) -> Any:
    """Predicted gain of each candidate (a Series indexed like ``scores``); higher = better."""
    import pandas as pd

    feats = pair_features(scores, measures_of(model), src_features if uses_source_features(model) else None)
    return pd.Series(predict(model, feats), index=scores.index, name="predicted_gain")


def training_table(pairs: Any, measures: Sequence[str], src_features: Any | None) -> Any:
    """Feature rows for every pair of a benchmark (``pairs`` from :func:`matrix.pairs_frame`)."""
    import pandas as pd

    parts = []
    for target, group in pairs.groupby("target", sort=True):
        scores = group.set_index("source")[[f"d_{m}" for m in measures]]
        scores.columns = list(measures)
        feats = pair_features(scores, measures, src_features)
        feats.insert(0, "target", target)
        feats["gain"] = group.set_index("source")["gain"]
        parts.append(feats.reset_index().rename(columns={"index": "source"}))
    return pd.concat(parts, ignore_index=True)


def grouped_predictions(table: Any, fold_of: dict[str, str], *, alpha: float = 1.0) -> Any:
    """Out-of-fold predictions: each target's pairs are predicted by a model fitted on the
    targets of every *other* fold (``fold_of[target]``; the target itself for leave-one-target-out,
    its task group for leave-one-group-out). Returns a Series aligned with ``table``.
    """
    import pandas as pd

    feature_cols = [c for c in table.columns if c not in ("target", "source", "gain")]
    folds = table["target"].map(fold_of)
    predicted = pd.Series(np.nan, index=table.index, name="predicted_gain")
    for fold in sorted(folds.unique()):
        test = folds == fold
        train = table[~test]
        model = fit(train[feature_cols], train["gain"], alpha=alpha, trained_on=train["target"])
        if set(table.loc[test, "target"]) & set(model["trained_on"]):  # a target must never score itself
            raise AssertionError(f"fold {fold} leaked into its own model")
        predicted[test] = predict(model, table.loc[test, feature_cols])
    return predicted


def loto_predictions(table: Any, *, alpha: float = 1.0) -> tuple[Any, dict[str, list[str]]]:
    """Leave-one-target-out predictions for every pair of ``table`` (:func:`training_table`).

    Returns:
        (predicted gains aligned with ``table``, {target: the targets its model was trained on}).
    """
    targets = sorted(table["target"].unique())
    predicted = grouped_predictions(table, {t: t for t in targets}, alpha=alpha)
    return predicted, {t: [o for o in targets if o != t] for t in targets}


def fit_all(table: Any, *, alpha: float = 1.0) -> dict:
    """The model shipped for ``policy=learned``: fitted on every pair of the benchmark."""
    feature_cols = [c for c in table.columns if c not in ("target", "source", "gain")]
    return fit(table[feature_cols], table["gain"], alpha=alpha, trained_on=table["target"])


def save(model: dict, path: str | os.PathLike) -> Path:
    """Write ``model`` as JSON."""
    from hubselect.cache import atomic_write_json

    return atomic_write_json(path, model)


def load(path: str | os.PathLike) -> dict:
    """Read a model written by :func:`save` (validated; no code runs).

    Raises:
        HubselectError: missing file, not a hubselect learned policy, unknown version, or
            inconsistent lengths.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "learned_policy.json"
    if not path.exists():
        raise HubselectError(f"no learned policy at '{path}': pass the learned_policy.json of a benchmark run")
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HubselectError(f"'{path}' is not valid JSON ({exc.msg}): pass a benchmark's learned_policy.json") from None
    if not isinstance(model, dict) or model.get("format") != FORMAT:
        raise HubselectError(f"'{path}' is not a hubselect learned policy (format '{FORMAT}')")
    if model.get("version") != VERSION:
        raise HubselectError(f"'{path}' has learned-policy version {model.get('version')}, this hubselect reads {VERSION}")
    n = len(model["features"])
    if not (len(model["mean"]) == len(model["scale"]) == len(model["coef"]) == n):
        raise HubselectError(f"'{path}' is inconsistent: features, mean, scale and coef differ in length")
    return model
