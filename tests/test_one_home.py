"""Helpers with one home each (issue 16, part 3): label ids and names, the sample reader."""

from __future__ import annotations

import numpy as np


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
