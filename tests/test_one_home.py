"""Helpers with one home each (issue 16, part 3): label ids and names, the sample reader."""

from __future__ import annotations

import numpy as np
import pytest


def test_label_position_takes_ids_and_names_in_any_spelling():
    from hubselect.data.labelnames import label_lookup, label_position

    names = ["World", "Sci_Tech", "sports"]
    assert label_lookup(names) == {"world": 0, "sci tech": 1, "sports": 2}
    assert [label_position(x, names) for x in ["sci-tech ", "WORLD", "Sports", 2, np.int64(0)]] == [1, 0, 2, 2, 0]
    assert [label_position(x, names) for x in ["business", 3, -1, True, "2"]] == [None] * 5  # "2" is a name, not an id
    lookup = label_lookup(names)
    assert label_position("sci tech", names, lookup) == 1 and label_position("x", names, {}) is None


def test_label_maps_are_a_configs_id2label_and_label2id():
    from hubselect.data.labelnames import is_label_id, label_maps

    assert label_maps(["neg", "pos"]) == ({0: "neg", 1: "pos"}, {"neg": 0, "pos": 1})
    assert label_maps([]) == ({}, {})
    assert [is_label_id(x) for x in [0, np.int64(3), True, "1", 1.0]] == [True, True, False, False, False]


def test_sample_reader_reads_only_the_asked_columns(tmp_path):
    import pandas as pd

    from hubselect.data.entries import read_frame, read_texts

    path = tmp_path / "sample.parquet"
    pd.DataFrame({"text": ["great", "awful"], "label": [1, 0], "extra": [0.5, 0.1]}).to_parquet(path)
    assert read_texts(path) == ["great", "awful"]
    frame = read_frame(path, ["text", "label"])
    assert list(frame.columns) == ["text", "label"] and frame["label"].tolist() == [1, 0]


@pytest.mark.parametrize("case", ["missing", "not parquet", "no label column"])
def test_an_unreadable_sample_is_one_line_naming_it_and_the_fix(tmp_path, case):
    import pandas as pd

    from hubselect.core.errors import HubselectError
    from hubselect.data.entries import read_frame

    path = tmp_path / "sample.parquet"
    if case == "not parquet":
        path.write_text("text,label\ngreat,1\n", encoding="utf-8")
    elif case == "no label column":
        pd.DataFrame({"text": ["great"]}).to_parquet(path)
    with pytest.raises(HubselectError) as err:
        read_frame(path, ["text", "label"])
    message = str(err.value)
    assert "\n" not in message and f"'{path}'" in message and "run the fetch step again" in message


def test_the_select_steps_default_policy_has_one_name_in_the_benchmark():
    from hubselect.benchmark.trust import default_ranker, grid_names
    from hubselect.selection.policy import DEFAULT_POLICY, DEFAULT_WEIGHTS, SelectionConfig

    cfg = SelectionConfig()
    assert (cfg.policy, cfg.measures, cfg.weights) == (DEFAULT_POLICY, "all", DEFAULT_WEIGHTS) == (
        "combined", "all", "divergence=1,prior=1,labels=2,balance=0")
    assert default_ranker() == "combined:all:p1:l2:b0" and default_ranker() in grid_names()


def test_benchmark_plots_leave_pyplot_and_the_backend_alone(tmp_path):
    """The report draws on ``matplotlib.figure.Figure``: a host application's backend is not switched."""
    import subprocess
    import sys

    code = ("import sys, pathlib, matplotlib, pandas as pd; matplotlib.use('svg'); "
            "from hubselect.benchmark.report import heatmap; "
            "m = pd.DataFrame([[0.5, 0.7], [0.6, 0.4]], index=['a', 'b'], columns=['a', 'b']); "
            f"heatmap(m, pd.Series([0.5, 0.6], index=['a', 'b']), pathlib.Path(r'{tmp_path}') / 'h.png'); "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["svg", "False"] and (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
