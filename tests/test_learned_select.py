"""A learned ranker with pair features (the transfer-matrix benchmark's kind) drives ``hubselect
select``: the features are built at select time as the benchmark builds them
(:func:`hubselect.selection.learned.pair_features_of`), from the scores, the catalog, the shipped prior
and the label signals. Real CLI, real MLflow (SQLite in a temp dir), the demo tasks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import FAST, artifacts, runs_of

from hubselect.cli import main
from hubselect.core.errors import HubselectError
from hubselect.selection.learned import FORMAT, VERSION, pair_features_of


def _table(**extra) -> pd.DataFrame:
    base = {"target": ["a", "a", "a", "b", "b"], "d_js": [0.1, 0.2, 0.6, 5.0, 5.0],
            "label_distance": [0.0, 1.0, 2.0, 3.0, 1.0], "balance_distance": [0.1, 0.1, 0.1, 0.2, 0.4],
            "prior": [0.01, -0.02, np.nan, 0.03, 0.0], "source_rows": [10, 1000, 0, 100, 100],
            "src_n_labels": [2, 2, 3, 4, 2], "tgt_n_labels": [2, 2, 2, 4, 4], "same_labels": [1, 1, 0, 1, 0]}
    return pd.DataFrame({**base, **extra})


def test_pair_features_are_z_scored_within_each_target():
    feats = pair_features_of(_table(), ["js"])
    assert list(feats.columns) == ["z_js", "z_label_distance", "z_balance_distance", "prior", "src_log_rows",
                                   "src_n_labels", "tgt_n_labels", "same_labels"]
    a = np.array([0.1, 0.2, 0.6])
    assert feats["z_js"][:3].tolist() == pytest.approx(((a - a.mean()) / a.std()).tolist())
    assert feats["z_js"][3:].tolist() == [0.0, 0.0]  # one distinct value: the neutral 0, not a division by 0
    assert feats["z_label_distance"][3:].tolist() == pytest.approx([1.0, -1.0])
    assert feats["src_log_rows"].tolist() == pytest.approx([1.0, 3.0, 0.0, 2.0, 2.0])  # size 0 counts as 1
    assert feats["prior"].tolist() == [0.01, -0.02, 0.0, 0.03, 0.0]  # unknown: the neutral 0


def test_a_missing_pair_column_is_named():
    with pytest.raises(HubselectError, match="need column 'same_labels'"):
        pair_features_of(_table().drop(columns="same_labels"), ["js"])


def test_select_ranks_with_a_pair_feature_model(tracking):
    """A hand-written model: same label names first (weight 10), then closer by JS (weight -1)."""
    features = ["z_js", "prior", "same_labels", "z_label_distance"]
    model = {"format": FORMAT, "version": VERSION, "features": features, "mean": [0.0] * 4, "scale": [1.0] * 4,
             "coef": [-1.0, 0.0, 10.0, 0.0], "intercept": 0.0}
    (tracking / "model.json").write_text(json.dumps(model))
    args = ["select", "--target", "demo:kitchen", "--candidates", "demo", "--policy", "learned",
            "--learned-model", str(tracking / "model.json"), "--k", "2", "--measures", "js", *FAST]
    assert main(args) == 0
    (run,) = runs_of("select")
    ranking = json.loads((artifacts(run) / "selection.json").read_text())["ranking"]
    js = np.array([r["js"] for r in ranking])
    same = np.array([r["candidate"] != "news" for r in ranking], dtype=float)  # news has topic labels
    expected = 10 * same - (js - js.mean()) / js.std()
    assert [r["predicted_gain"] for r in ranking] == pytest.approx(expected.tolist())
    assert ranking[-1]["candidate"] == "news"
    assert [r["decision"] for r in ranking[:2]] == ["selected", "selected"]
