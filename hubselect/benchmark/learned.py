"""Fitting and evaluating the learned selection policy: a ridge regression that predicts a pair's gain.

Its features and its use at selection time (loading the JSON, predicting) live in
:mod:`hubselect.selection.learned`; this module fits the model on a benchmark's pairs.

The model is plain ridge regression solved in closed form with numpy and saved as JSON
(feature names, standardisation, coefficients): loading it runs no code and needs no pickle.
Evaluation is leave-one-target-out (:func:`loto_predictions`): the predictions for a target come
from a model fitted on the pairs of every *other* target.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hubselect.core.errors import HubselectError
from hubselect.selection.learned import FORMAT, VERSION, pair_features, predict

logger = logging.getLogger(__name__)


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
    from hubselect.core.cache import atomic_write_json

    return atomic_write_json(path, model)
