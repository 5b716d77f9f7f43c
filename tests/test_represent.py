"""Term normalisation and count matrices; on-disk representation caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hubselect.represent.store import cached_term_counts
from hubselect.represent.terms import count_matrix, term_counts, tokenize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("raw, ptb", [
    ("I don't like it's packaging.", "i do n't like it 's packaging ."),
    ("Can't stop: \"Great\" value!", "ca n't stop : `` great '' value !"),
    ("Worked fine<br />for 2 years", "worked fine for 3 years"),
])
def test_raw_and_ptb_forms_tokenise_alike(raw, ptb):
    assert tokenize(raw) == tokenize(ptb)


def test_bigrams_and_count_matrix():
    counts = term_counts(["a b a", "b c"], bigrams=True)
    assert counts["a"] == 2 and counts["a b"] == 1 and counts["b a"] == 1 and "b b" not in counts
    vocab, matrix = count_matrix([{"x": 2, "y": 1}, {"y": 3, "z": 1}])
    assert vocab == ["x", "y", "z"]
    np.testing.assert_array_equal(matrix, [[2, 1, 0], [0, 3, 1]])


def test_term_counts_are_cached_by_revision_and_texts():
    texts = ["one two", "two three"]
    first, hit1 = cached_term_counts(texts, "rev1", bigrams=False)
    second, hit2 = cached_term_counts(texts, "rev1", bigrams=False)
    _, hit3 = cached_term_counts(texts, "rev2", bigrams=False)
    _, hit4 = cached_term_counts(texts, "rev1", bigrams=True)
    assert (hit1, hit2, hit3, hit4) == (False, True, False, False)
    assert first == second


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is absent (tests read it beside the checkout)")
def test_fdu_mtl_unlabeled_and_labelled_forms_share_vocabulary():
    """Normalised, the raw unlabeled reviews and the PTB-tokenised train reviews of one domain
    are much closer than the forms' raw whitespace tokens suggest."""
    from hubselect.divergence import get_measure

    def texts(split):
        lines = (DATA / "fdu-mtl" / "kitchen_housewares" / f"{split}.jsonl").read_text().splitlines()[:800]
        return [json.loads(line)["text"] for line in lines]

    raw, ptb = texts("unlabeled"), texts("train")
    js = get_measure("js").function
    _, norm = count_matrix([term_counts(raw), term_counts(ptb)])
    naive = [dict(zip(*np.unique(" ".join(t).split(), return_counts=True))) for t in (raw, ptb)]
    _, plain = count_matrix(naive)
    assert js(norm[0], norm[1]) < 0.6 * js(plain[0], plain[1])
