"""Term normalisation and count matrices; on-disk representation caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hubselect.scoring.represent.store import cached_term_counts
from hubselect.scoring.represent.terms import count_matrix, term_counts, tokenize

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
    from hubselect.scoring.divergence import get_measure

    def texts(split):
        lines = (DATA / "fdu-mtl" / "kitchen_housewares" / f"{split}.jsonl").read_text().splitlines()[:800]
        return [json.loads(line)["text"] for line in lines]

    raw, ptb = texts("unlabeled"), texts("train")
    js = get_measure("js").function
    _, norm = count_matrix([term_counts(raw), term_counts(ptb)])
    naive = [dict(zip(*np.unique(" ".join(t).split(), return_counts=True))) for t in (raw, ptb)]
    _, plain = count_matrix(naive)
    assert js(norm[0], norm[1]) < 0.6 * js(plain[0], plain[1])


# ------------------------------------------------------------------------------------ the score step

@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory):
    from modelkit import make_tiny_model

    from hubselect.scoring.represent.store import EmbeddingSettings

    return EmbeddingSettings(model=str(make_tiny_model(tmp_path_factory.mktemp("tiny"))), max_length=32)


def _fetched(folder: Path):
    """A fetch catalog with a target and four candidates (one rejected), their samples written."""
    import pandas as pd
    from modelkit import toy_data

    from hubselect.data.entries import Catalog, SampleInfo, TargetEntry, TaskEntry

    (folder / "samples").mkdir(parents=True)
    samples = []
    for i, name in enumerate(["target", "a", "b", "c", "gone"]):
        texts, _ = toy_data(6 + 2 * i, seed=i)
        pd.DataFrame({"text": texts}).to_parquet(folder / "samples" / f"{name}.parquet")
        samples.append(SampleInfo(f"samples/{name}.parquet", "train", len(texts)))
    target = TargetEntry("target", samples[0], revision="r0")
    candidates = [TaskEntry(n, revision=f"r{i}", sample=s) for i, (n, s) in enumerate(zip("abc", samples[1:]), 1)]
    gone = TaskEntry("gone", revision="r4", status="rejected", reason="gone: for the test")
    return Catalog({}, target, (*candidates, gone), folder=folder)


def test_score_computes_each_measure_as_the_measure_itself_does(tmp_path, tiny_settings):
    from hubselect.data.entries import read_texts
    from hubselect.scoring.divergence import get_measure
    from hubselect.scoring.represent.store import Encoder
    from hubselect.scoring.scores import ScoreConfig, score

    catalog = _fetched(tmp_path)
    cfg = ScoreConfig(measures="kl,js,mmd,centroid_cosine,renyi:alpha=0.5", embedding=tiny_settings, device="cpu")
    result = score(catalog, cfg)
    assert result.measures == ["kl", "js", "mmd", "centroid_cosine", "renyi:alpha=0.5"]
    assert list(result.scores.columns) == result.measures and list(result.scores.index) == ["a", "b", "c"]
    texts = [read_texts(catalog.path(e)) for e in [catalog.target.score, *catalog.accepted()]]
    _, matrix = count_matrix([term_counts(t) for t in texts])
    encoder = Encoder(tiny_settings, "cpu")
    embedded = [encoder(t) for t in texts]
    for name in result.measures:
        spec = get_measure(name)
        if spec.kind == "terms":
            expected = [spec(matrix[0], row) for row in matrix[1:]]
        else:
            expected = [spec(embedded[0], e) for e in embedded[1:]]
        np.testing.assert_allclose(result.scores[name], expected, rtol=1e-5, err_msg=name)
    assert {"tokenise", "term_measures", "embed", "encoder", "embedding_measures", "measure_mmd"} <= set(result.timings)
    assert result.cached == {"terms": 0, "embeddings": 0}
    again = score(catalog, cfg)
    assert again.cached == {"terms": 4, "embeddings": 4}  # the target and three candidates, from the cache
    np.testing.assert_allclose(again.scores, result.scores)


def test_score_with_one_kind_of_measure_runs_only_that_block(tmp_path):
    from hubselect.scoring.scores import ScoreConfig, score

    result = score(_fetched(tmp_path), ScoreConfig(measures="terms"))
    assert set(result.timings) >= {"tokenise", "term_measures"} and "embed" not in result.timings
    assert result.cached == {"terms": 0, "embeddings": 0} and len(result.measures) == 9


def test_score_and_select_configs_give_their_mlflow_params():
    """The keys and values the steps log (and match finished runs by) stay exactly these."""
    from hubselect.scoring.scores import ScoreConfig
    from hubselect.selection.policy import SelectionConfig

    assert ScoreConfig().params() == {"measures": "all", "bigrams": False, "embedding_model": "all-MiniLM-L6-v2",
                                      "embedding_revision": None, "max_length": 128, "embed_examples": 500}
    assert SelectionConfig("budget", k=2, measures="js", budget_examples=9).params() == {
        "policy": "budget", "k": 2, "select_measures": "js", "quantile": 0.25, "budget_examples": 9,
        "learned_model": "", "weights": "divergence=1,prior=1,labels=2,balance=0", "prior": ""}


def test_label_spaces_embed_names_and_estimate_the_target_balance(tiny_settings):
    from hubselect.scoring.represent.labels import label_spaces
    from hubselect.scoring.represent.store import Encoder

    encoder = Encoder(tiny_settings, "cpu")
    texts = encoder(["great product", "awful, broke at once", "fine"])
    (labels, probs), sources = label_spaces(["negative", "positive"], texts,
                                            {"s": {"sarcastic": 3, "not_sarcastic": 7}, "t": {"pos": 2, "neg": 1}},
                                            encoder)
    assert labels.shape == (2, texts.shape[1]) and probs.shape == (2,) and probs.sum() == pytest.approx(1.0)
    assert list(sources) == ["s", "t"] and sources["s"][0].shape == (2, texts.shape[1])
    np.testing.assert_array_equal(sources["t"][1], [2.0, 1.0])
    np.testing.assert_allclose(sources["t"][0][0], encoder(["positive"])[0], rtol=1e-5)  # "pos" read as "positive"

