"""The plots hold no NaN rows and their titles fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hubselect.pipeline.plots import accuracy_per_source, measure_correlation, rank_correlation, scores_per_candidate


def _scores() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((5, 3)), columns=["js", "mmd", "kl"],
                         index=pd.Index([f"c{i}" for i in range(5)], name="candidate"))
    frame["pad"] = 2.0  # proxy A-distance saturates at 2 on small, separable samples
    return frame


def test_a_constant_measure_is_left_out_not_drawn_as_nan():
    corr, constant = rank_correlation(_scores())
    assert constant == ["pad"]
    assert list(corr.columns) == ["js", "mmd", "kl"] and not corr.isna().any().any()
    assert np.allclose(np.diag(corr), 1.0)


def test_plots_are_written(tmp_path):
    scores = _scores()
    assert measure_correlation(scores, tmp_path / "corr.png").stat().st_size > 1000
    table = scores.assign(decision=["selected", "selected", "pruned", "pruned", "pruned"])
    assert scores_per_candidate(table, list(scores.columns), tmp_path / "ranks.png").stat().st_size > 1000
    frame = pd.DataFrame({"source": ["(untuned baseline)", "books"], "accuracy": [0.8, 0.85], "gain": [0.0, 0.05]})
    assert accuracy_per_source(frame, tmp_path / "acc.png").stat().st_size > 1000
