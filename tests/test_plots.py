"""The plots hold no NaN rows, their titles fit, and they leave pyplot alone."""

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


def test_plots_leave_pyplot_and_its_backend_alone(tmp_path):
    """The plots are matplotlib figures drawn outside pyplot: the backend a caller chose is not switched
    to Agg, and no figure is left open in pyplot."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("svg")  # a caller's non-interactive backend, not Agg
    try:
        measure_correlation(_scores(), tmp_path / "corr.png")
        frame = pd.DataFrame({"source": ["(untuned baseline)", "books"], "accuracy": [0.8, 0.85], "gain": [0.0, 0.05]})
        accuracy_per_source(frame, tmp_path / "acc.png")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == []
        assert (tmp_path / "corr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # PNG, whatever the backend
    finally:
        plt.switch_backend(before)
