"""Label-space distances, the transfer prior, the combined policy and the trust analysis helpers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from modelkit import make_tiny_model

from hubselect.core.errors import HubselectError


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    from hubselect.scoring.represent.store import EmbeddingSettings, Encoder

    return Encoder(EmbeddingSettings(model=str(make_tiny_model(tmp_path_factory.mktemp("tiny"))), max_length=32))


# ------------------------------------------------------------------------------ label names as text

def test_humanize_labels_splits_codes_drops_shared_prefix_and_expands_abbreviations():
    from hubselect.data.labelnames import humanize_labels

    assert humanize_labels(["AddToPlaylist", "GetWeather"]) == {"AddToPlaylist": "add to playlist",
                                                               "GetWeather": "get weather"}
    assert humanize_labels(["atis_flight", "atis_airfare"]) == {"atis_flight": "flight", "atis_airfare": "airfare"}
    assert humanize_labels(["pants-fire", "true"]) == {"pants-fire": "pants fire", "true": "true"}
    assert humanize_labels(["sci_tech", "world"])["sci_tech"] == "science technology"
    assert humanize_labels(["money-fx", "earn"])["money-fx"] == "money foreign exchange"
    # a shared first word that is the whole of some label is kept
    assert humanize_labels(["not", "not_hate"]) == {"not": "not", "not_hate": "not hate"}


def test_label_descriptions_use_readable_words():
    from hubselect.models.zeroshot import label_descriptions

    assert label_descriptions(["atis_flight", "atis_airfare"]) == {
        "atis_flight": "This text is about flight.", "atis_airfare": "This text is about airfare."}


# ----------------------------------------------------------------------------- label-space distances

vectors = arrays(np.float64, st.tuples(st.integers(1, 5), st.just(4)),
                 elements=st.floats(-1, 1, allow_nan=False)).filter(lambda a: (np.abs(a).sum(axis=1) > 1e-3).all())


@settings(max_examples=60, deadline=None)
@given(vectors, vectors)
def test_label_set_distance_properties(a, b):
    from hubselect.scoring.divergence.labels import label_set_distance

    assert label_set_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    d = label_set_distance(a, b)
    assert 0.0 <= d <= 2.0
    assert d == pytest.approx(label_set_distance(b, a))  # symmetric
    assert d == pytest.approx(label_set_distance(3.0 * a, 0.5 * b))  # scale-invariant


def test_label_set_distance_closed_form():
    from hubselect.scoring.divergence.labels import label_set_distance

    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    s = np.array([[1.0, 0.0]])
    # target->source: (1 + 0)/2; source->target: 1  =>  1 - (0.5 + 1)/2
    assert label_set_distance(t, s) == pytest.approx(0.25)


def test_label_balance_distance_maps_source_labels_to_nearest_target_label():
    from hubselect.scoring.divergence.labels import label_balance_distance

    t = np.eye(2)
    s = np.array([[1.0, 0.1], [0.1, 1.0], [0.9, 0.0]])  # two source labels map onto target label 0
    assert label_balance_distance([0.5, 0.5], [1, 1, 0], t, s) == pytest.approx(0.0)
    assert label_balance_distance([0.5, 0.5], [1, 1, 2], t, s) == pytest.approx(0.25)  # q = [0.75, 0.25]
    assert label_balance_distance([1, 0], [0, 5, 0], t, s) == pytest.approx(1.0)


@pytest.mark.parametrize("args, match", [
    (([0.5, 0.5], [1, 1], np.eye(2), np.eye(3)), "source_labels must have 2 columns"),
    (([0.5, 0.5, 0.0], [1, 1], np.eye(2), np.eye(2)), r"target_probs must have shape \(2,\)"),
    (([0.5, 0.5], [-1, 1], np.eye(2), np.eye(2)), "source_probs must be non-negative"),
    (([0.5, 0.5], [1, 1], np.zeros((2, 2)), np.eye(2)), "target_labels has an all-zero row"),
])
def test_label_distances_validate_inputs(args, match):
    from hubselect.scoring.divergence.labels import label_balance_distance

    with pytest.raises(ValueError, match=match):
        label_balance_distance(*args)


def test_label_space_table_with_a_real_encoder(tiny_encoder):
    from hubselect.scoring.divergence.labels import label_space_distances
    from hubselect.scoring.represent.labels import label_spaces

    texts = tiny_encoder(["great product", "awful, broke at once", "fine"])
    spaces = label_spaces(["negative", "positive"], texts,
                          {"same": {"negative": 5, "positive": 5}, "other": {"sarcastic": 3, "not_sarcastic": 7}},
                          tiny_encoder)
    table = pd.DataFrame(label_space_distances(*spaces))
    assert list(table.columns) == ["label_distance", "balance_distance"]
    assert table.loc["same", "label_distance"] == pytest.approx(0.0, abs=1e-6)
    assert table.loc["other", "label_distance"] > 0
    assert ((table["balance_distance"] >= 0) & (table["balance_distance"] <= 1)).all()


# ---------------------------------------------------------------------------------- transfer prior

def _pairs():
    return pd.DataFrame({"target": ["a", "a", "b", "b", "c", "c"], "source": ["b", "c", "a", "c", "a", "b"],
                         "gain": [0.1, 0.3, 0.0, 0.2, 0.4, -0.1]})


def test_prior_builds_loads_and_gives_unseen_sources_the_neutral_value(tmp_path):
    from hubselect.selection.prior import build_prior, load_prior, prior_values, save_prior

    prior = build_prior(_pairs(), {"a": "r1", "b": "r2", "c": "r3"})
    assert prior["sources"]["c"]["mean_gain"] == pytest.approx(0.25)
    assert prior["neutral"] == pytest.approx((0.2 + 0.0 + 0.25) / 3)
    loaded = load_prior(save_prior(prior, tmp_path / "transfer_prior.json").parent)
    values = prior_values(loaded, {"c": "r3", "a": "other-revision", "new": None})
    assert values["c"] == (pytest.approx(0.25), True)
    assert values["a"] == (pytest.approx(prior["neutral"]), False)  # same name, another revision
    assert values["new"] == (pytest.approx(prior["neutral"]), False)


def test_prior_leaves_out_excluded_targets():
    from hubselect.selection.prior import build_prior

    prior = build_prior(_pairs(), {}, exclude_targets=["a"])
    assert prior["sources"]["c"]["mean_gain"] == pytest.approx(0.2) and prior["sources"]["c"]["targets"] == 1


@pytest.mark.parametrize("content, match", [(None, "was not found"), ("{not json", "not readable JSON"),
                                            ('{"format": "other"}', "not a hubselect transfer prior")])
def test_bad_prior_files_are_one_line_errors(tmp_path, content, match):
    from hubselect.selection.prior import load_prior

    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(HubselectError, match=match):
        load_prior(path)


# ------------------------------------------------------------------------------- combined policy

def test_parse_weights_and_its_errors():
    from hubselect.selection.policy import parse_weights

    assert parse_weights("prior=2,labels=0.5") == {"divergence": 0.0, "prior": 2.0, "labels": 0.5, "balance": 0.0}
    for bad, match in (("prior", "not signal=number"), ("colour=1", "not signal=number"), ("prior=x", "not a number"),
                       ("prior=-1", ">= 0"), ("prior=0", "every signal weight 0")):
        with pytest.raises(HubselectError, match=match):
            parse_weights(bad)


def test_combined_policy_weighs_prior_against_divergence():
    from hubselect.selection.policy import SelectionConfig, select

    scores = pd.DataFrame({"js": [0.1, 0.2, 0.3]}, index=["near", "mid", "far"])
    sizes = dict.fromkeys(scores.index, 10)
    prior = {"prior": {"near": 0.0, "mid": 0.0, "far": 0.5}}
    only_div = select(scores, sizes, SelectionConfig("combined", 1, "js", weights="divergence=1"), features=prior)
    assert only_div.selected == ["near"]
    strong_prior = select(scores, sizes, SelectionConfig("combined", 1, "js", weights="divergence=1,prior=3"),
                          features=prior)
    assert strong_prior.selected == ["far"]
    assert "combined score" in strong_prior.table.loc["far", "reason"]
    with pytest.raises(HubselectError, match="weighs 'labels' but it was not computed"):
        select(scores, sizes, SelectionConfig("combined", 1, "js", weights="divergence=1,labels=1"), features=prior)


# --------------------------------------------------------------------------------- trust analysis

def test_grouped_predictions_never_train_on_the_held_out_fold():
    from hubselect.benchmark.learned import grouped_predictions

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"target": np.repeat(list("abcd"), 5), "source": list("vwxyz") * 4,
                          "gain": rng.normal(size=20), "f": rng.normal(size=20)})
    fold = {"a": "g1", "b": "g1", "c": "g2", "d": "g2"}
    pred = grouped_predictions(table, fold)
    assert pred.notna().all()
    # a fold's predictions equal a model fitted on the other fold only
    from hubselect.benchmark.learned import fit
    from hubselect.selection.learned import predict

    other = table[table["target"].isin(["c", "d"])]
    model = fit(other[["f"]], other["gain"])
    np.testing.assert_allclose(pred[table["target"].isin(["a", "b"])], predict(model, table.loc[:9, ["f"]]))


def test_atc_threshold_matches_the_held_out_accuracy():
    from hubselect.models.labelfree import atc_threshold

    conf = np.linspace(0.5, 1.0, 11)
    t = atc_threshold(conf, [1] * 8 + [0] * 3)  # accuracy 8/11
    assert np.mean(conf > t) == pytest.approx(8 / 11, abs=1 / 11)


def test_label_free_estimates_prefer_the_confident_agreeing_model():
    from hubselect.models.labelfree import label_free_estimates

    sure = np.array([[0.95, 0.05], [0.1, 0.9], [0.9, 0.1]])
    unsure = np.array([[0.55, 0.45], [0.45, 0.55], [0.4, 0.6]])
    est = label_free_estimates([unsure, sure, sure.copy()], [0.7, 0.7, 0.7])
    for name in ("confidence", "entropy", "atc"):
        assert int(np.argmax(est[name])) in (1, 2), name
    assert est["agreement"][1] > est["agreement"][0]
    assert int(np.argmax(est["rank"])) == 0  # the top-ranked source


def test_choose_default_breaks_ties_by_regret_at_1_then_spearman():
    from hubselect.benchmark.trust import choose_default

    s = pd.DataFrame({"regret@3": [1.0, 1.03, 2.0], "regret@1": [3.0, 2.0, 0.0], "spearman": [0.5, 0.4, 0.9]},
                     index=["a", "b", "c"])
    assert choose_default(s, ["a", "b", "c"]) == "b"


def test_reliability_of_identical_seeds_is_perfect():
    from hubselect.benchmark.trust import Collection, reliability

    rows = [{"target": "t", "source": s, "seed": seed, "accuracy": acc}
            for s, acc in zip("abcd", (0.5, 0.6, 0.7, 0.8)) for seed in (0, 1)]
    col = Collection(pd.DataFrame(rows), pd.DataFrame(), {}, {}, [], {})
    rel = reliability(col.seed_pairs).iloc[0]
    assert rel["split_half_spearman"] == pytest.approx(1.0)
    assert rel["ceiling_regret@1"] == 0 and rel["seed_sd_points"] == 0 and rel["ceiling_ndcg@3"] == 1
    assert json.loads(json.dumps(float(rel["reliability_sb"]))) == pytest.approx(1.0)


def test_reliability_of_three_seeds_against_scipy_and_the_spearman_brown_formula():
    from scipy.stats import spearmanr

    from hubselect.benchmark.trust import reliability

    acc = np.array([[0.50, 0.52, 0.61], [0.60, 0.58, 0.55], [0.70, 0.75, 0.72], [0.80, 0.66, 0.69],
                    [0.40, 0.45, 0.41]])
    rows = [{"target": "t", "source": f"s{i}", "seed": j, "accuracy": acc[i, j]}
            for i in range(5) for j in range(3)]
    rel = reliability(pd.DataFrame(rows)).iloc[0]
    r = np.mean([spearmanr(acc[:, a], acc[:, b])[0] for a, b in ((0, 1), (0, 2), (1, 2))])
    assert rel["seed_spearman"] == pytest.approx(r)
    assert rel["reliability_sb"] == pytest.approx(3 * r / (1 + 2 * r))
    halves = acc[:, [0, 2]].mean(axis=1), acc[:, 1]
    assert rel["split_half_spearman"] == pytest.approx(spearmanr(*halves)[0])
    assert rel["seed_sd_points"] == pytest.approx(100 * acc.std(axis=1, ddof=1).mean())
    mean = acc.mean(axis=1)
    assert rel["best_minus_median_points"] == pytest.approx(100 * (mean.max() - np.median(mean)))
    assert rel["sources"] == 5 and rel["seeds"] == 3


def test_average_weights_of_a_model_with_itself_is_itself(tmp_path):
    from safetensors.torch import load_file

    from hubselect.data.encoder import average_weights

    a = make_tiny_model(tmp_path / "a")
    out = average_weights([a, a], tmp_path / "avg")
    left, right = load_file(a / "model.safetensors"), load_file(out / "model.safetensors")
    assert left.keys() == right.keys() and all((left[k] == right[k]).all() for k in left)
    assert (out / "config.json").exists() and (out / "vocab.txt").exists()


def test_average_weights_refuses_other_architectures(tmp_path):
    from safetensors.torch import load_file, save_file

    from hubselect.data.encoder import average_weights

    a, b = make_tiny_model(tmp_path / "a"), make_tiny_model(tmp_path / "b")
    state = load_file(b / "model.safetensors")
    state.pop(next(iter(state)))
    save_file(state, str(b / "model.safetensors"))
    with pytest.raises(HubselectError, match="does not share the architecture"):
        average_weights([a, b], tmp_path / "avg")


# ------------------------------------------------------------------ the select step, end to end

def _select(args):
    from helpers import FAST, artifacts, runs_of

    from hubselect.cli import main

    assert main(["select", "--target", "demo:kitchen", "--candidates", "demo", "--policy", "combined", *args,
                 *FAST]) == 0
    (run,) = runs_of("select")
    return json.loads((artifacts(run) / "selection.json").read_text()), run


def test_select_combined_reads_a_prior_file(tracking):
    from hubselect.selection.prior import save_prior

    prior = {"format": "hubselect-transfer-prior", "version": 1, "neutral": 0.0, "description": "test",
             "sources": {"news": {"revision": None, "mean_gain": 0.5, "targets": 3},
                         "books": {"revision": None, "mean_gain": 0.0, "targets": 3}}}
    path = save_prior(prior, tracking / "transfer_prior.json")
    selection, run = _select(["--weights", "divergence=1,prior=5", "--prior", str(path), "--k", "1"])
    assert selection["summary"]["selected_sources"] == ["news"]  # the prior outweighs the divergence
    assert run.data.params["prior"] == str(path) and run.data.params["weights"] == "divergence=1,prior=5"
    ranking = {r["candidate"]: r for r in selection["ranking"]}
    assert ranking["news"]["prior"] == 0.5 and ranking["movies"]["prior"] == 0.0  # unseen: neutral


def test_select_combined_puts_unrelated_label_spaces_last(tracking):
    selection, _ = _select(["--weights", "labels=1", "--k", "4"])
    ranking = selection["ranking"]
    assert ranking[-1]["candidate"] == "news"  # world/sports/business against negative/positive
    assert ranking[0]["label_distance"] == pytest.approx(0.0, abs=1e-6)
    assert "news" not in selection["summary"]["selected_sources"]


def test_select_without_target_label_names_leaves_the_label_signals_out(tracking, caplog):
    selection, _ = _select(["--eval-size", "0", "--k", "2"])
    assert selection["summary"]["weights"] == "divergence=1,prior=1"
    assert "label_distance" not in selection["ranking"][0]
    assert any("has no label names: the label signals are left out" in r.message for r in caplog.records)


def test_default_select_measures_are_the_computed_ones(tracking):
    from hubselect.scoring.divergence import resolve_measures

    selection, run = _select(["--measures", "terms", "--k", "2"])
    terms = [s.name for s in resolve_measures("terms")]
    assert selection["summary"]["measures"] == terms and run.data.params["select_measures"] == ",".join(terms)
