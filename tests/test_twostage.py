"""The two-stage pick (hubselect.benchmark.twostage), the label-free champion read from pair records,
and a matrix assembled from records (hubselect.benchmark.trust), on synthetic matrices whose right
answer is known by construction."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest

from hubselect.benchmark.costs import two_stage_seconds
from hubselect.benchmark.nested import nested_logo
from hubselect.benchmark.trust import Collection
from hubselect.benchmark.twostage import (
    PERFECT,
    labelled_rows,
    nested_two_stage,
    paired_difference,
    rerank,
    restrict,
    saving_table,
    split_truth,
    two_stage_scores,
)
from hubselect.core.errors import HubselectError

GROUPS = {f"{g.lower()}{i}": g for g in "ABC" for i in range(1, 5)}
TEXTS = 40


def synthetic(seed: int = 0, signal: str = "truth", seed_sd: float = 0.02) -> tuple[Collection, dict]:
    """Every task a target and a source (11 candidates each). A pair's expected accuracy is
    ``0.5 + 0.4 q``; ``d_js`` is ``1 - q`` plus noise (an informative but imperfect first stage); the
    three seeds add independent noise of SD ``seed_sd``. Probes (seed 0): with ``signal="truth"`` the
    confidence of every text equals the mean accuracy of seeds 1 and 2 (a perfect signal; ATC
    constant, agreement random), else every signal is random."""
    rng = np.random.default_rng(seed)
    rows, seed_rows, probes = [], [], {}
    for t in sorted(GROUPS):
        for s in sorted(GROUPS):
            if s == t:
                continue
            q = rng.uniform(0, 1)
            accs = 0.5 + 0.4 * q + rng.normal(0, seed_sd, 3)
            cost = {"train_seconds": 50.0, "eval_seconds": 3.0, "train_examples": 800.0 if s[0] != "a" else 400.0,
                    "eval_n": 300.0}
            seed_rows += [{"target": t, "source": s, "seed": k, "accuracy": accs[k], **cost} for k in range(3)]
            rows.append({"target": t, "source": s, "accuracy": accs.mean(), "gain": accs.mean() - 0.5,
                         "d_js": 1 - q + rng.normal(0, 0.15), "d_kl": rng.uniform(0, 1),
                         "label_distance": rng.uniform(0, 1), "balance_distance": rng.uniform(0, 1),
                         "source_rows": 1000.0, "same_labels": 1.0, "src_n_labels": 2.0, "tgt_n_labels": 2.0, **cost})
            pred = rng.integers(0, 2, TEXTS)
            if signal == "truth":
                probes[(t, s)] = (pred, np.full(TEXTS, accs[1:].mean()), 1.0)
            else:
                probes[(t, s)] = (pred, rng.uniform(0.5, 1, TEXTS), float(rng.uniform(0.5, 1)))
    col = Collection(pd.DataFrame(seed_rows), pd.DataFrame(rows), dict(GROUPS), {t: "x" for t in GROUPS},
                     ["js", "kl"], {"js": "terms", "kl": "terms"})
    return col, probes


@functools.lru_cache(maxsize=None)
def _nested(seed: int, signal: str, seed_sd: float):
    col, probes = synthetic(seed, signal, seed_sd)
    return col, probes, nested_logo(col, ["rank:terms", "labels"], [])


def run(seed: int = 0, signal: str = "truth", seed_sd: float = 0.02, probes: dict | None = None):
    """The synthetic collection, its probes, the nested result and the nested two-stage result
    (the nested first stage computed once per synthetic matrix)."""
    col, own, nested = _nested(seed, signal, seed_sd)
    probes = own if probes is None else probes
    return col, probes, nested, nested_two_stage(col, nested, probes, split_truth(col.seed_pairs))


def test_rerank_orders_the_probes_by_the_signal_and_keeps_the_rest_in_first_stage_order():
    first = np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.5])  # first-stage order: 0, 2, 3, 5, 4, 1
    close = rerank(first, np.array([0, 2, 3]), np.array([0.1, 0.3, 0.2]))
    assert list(np.argsort(-close)) == [2, 3, 0, 5, 4, 1]
    tied = rerank(first, np.array([0, 2, 3]), np.zeros(3))  # a constant signal changes nothing
    assert list(np.argsort(-tied)) == list(np.argsort(-first))


def test_split_truth_leaves_the_probe_seed_out():
    col, _ = synthetic()
    split = split_truth(col.seed_pairs, 0)
    sp = col.seed_pairs
    manual = sp[sp["seed"].isin([1, 2])].groupby(["target", "source"])["accuracy"].mean()
    pd.testing.assert_series_equal(split, manual)
    one = sp[(sp["target"] == "a1") & (sp["source"] == "b2")]
    assert split[("a1", "b2")] != pytest.approx(one["accuracy"].mean())  # not the 3-seed mean


def test_a_signal_equal_to_the_truth_is_chosen_everywhere_and_re_ranks_perfectly():
    col, probes, nested, res = run()
    assert set(res.choices.values()) == {"confidence"}
    assert sorted(res.per_target["target"].unique()) == sorted(GROUPS)  # every target held out once
    per = res.per_target
    for n in (4, 8, 12):
        chosen = per[per["chosen"] & (per["n"] == n)].set_index("target")
        perfect = per[(per["n"] == n) & (per["signal"] == PERFECT)].set_index("target")
        np.testing.assert_allclose(chosen["regret@1"], perfect["regret@1"].reindex(chosen.index))
    # with every candidate probed (N >= 11) the perfect re-rank is the truth's own order
    full = per[(per["n"] == 12) & per["chosen"]]
    assert (full["regret@1"] == 0).all() and np.allclose(full["spearman"], 1.0)
    labelled = labelled_rows(per)
    mean, lo, hi = paired_difference(labelled, "two-stage N=8", "first stage alone")
    assert mean < 0 and hi <= 0  # the perfect signal helps on every target it can


def test_useless_signals_do_not_beat_the_first_stage_on_average():
    """Random probes re-rank an informative first stage's top N at random: averaged over 20 draws of
    the probes, no signal beats the first stage alone."""
    col, _ = synthetic()
    split, parts = split_truth(col.seed_pairs), []
    for draw in range(20):
        _, probes = synthetic(seed=draw + 1, signal="random")  # same pairs, other random probes
        truth = restrict(col.truth, split, probes)
        parts.append(two_stage_scores(col, truth, probes, "rank:terms", ns=(4, 8)))
    per = pd.concat(parts).groupby(["n", "signal"])["regret@3"].mean()
    first = per[(0, "none")]
    assert per[(0, "random")] > first  # the first stage is informative
    for n in (4, 8):
        for signal in ("confidence", "atc", "agreement"):
            assert per[(n, signal)] > first, (n, signal)
        assert per[(n, PERFECT)] <= first


def test_the_probe_seeds_accuracy_never_reaches_the_two_stage_scores():
    col, probes, nested, res = run(seed_sd=0.05)
    poisoned = col.seed_pairs.copy()
    poisoned.loc[poisoned["seed"] == 0, "accuracy"] = np.random.default_rng(9).uniform(0, 1, (poisoned["seed"] == 0).sum())
    again = nested_two_stage(col, nested, probes, split_truth(poisoned))
    pd.testing.assert_frame_equal(res.per_target, again.per_target)
    # ... while the seed-mean truth (seed 0 included) would have moved
    assert not np.allclose(split_truth(poisoned, probe_seed=-1), split_truth(col.seed_pairs, probe_seed=-1))


def test_signal_choice_follows_the_other_groups_only():
    """Group A's probes are random, B's and C's perfect: A still gets confidence (from B and C),
    and B's choice sees no row of group B."""
    col, probes, _, _ = run()
    rng = np.random.default_rng(5)
    probes = {(t, s): (pred, rng.uniform(0.5, 1, TEXTS) if GROUPS[t] == "A" else conf, thr)
              for (t, s), (pred, conf, thr) in probes.items()}
    *_, res = run(probes=probes)
    assert res.choices[("A", 8)] == "confidence"
    inner_b = res.inner[res.inner["held_out"] == "B"]
    assert not inner_b["target"].map(GROUPS).eq("B").any()


def test_two_stage_seconds_by_hand():
    tune, evaluate = np.full(10, 100.0), np.full(10, 5.0)
    probes, kept = np.arange(8), np.array([2, 5, 7])
    # fraction 1: 10 score + 8 full probe tunes + 8 prediction passes + 3 evaluations (the kept are probes)
    assert two_stage_seconds(10.0, tune, evaluate, probes, kept, 1.0) == pytest.approx(10 + 800 + 40 + 15)
    # fraction 0.25: the probes cost a quarter each, the kept 3 are tuned in full again
    assert two_stage_seconds(10.0, tune, evaluate, probes, kept, 0.25) == pytest.approx(10 + 200 + 40 + 300 + 15)
    with pytest.raises(HubselectError, match="kept"):
        two_stage_seconds(10.0, tune, evaluate, probes, np.array([9]), 1.0)
    with pytest.raises(HubselectError, match="fraction"):
        two_stage_seconds(10.0, tune, evaluate, probes, kept, 0.0)


def test_saving_table_prices_each_target_by_the_formula():
    col, probes, nested, res = run()
    split = split_truth(col.seed_pairs)
    held = restrict(nested.logo_truth, split, probes).assign(tune_seconds=100.0, evaluate_seconds=5.0)
    table = saving_table(col, held, res, probes, {t: 10.0 for t in GROUPS})
    brute = 11 * 105.0
    row = table[(table["target"] == "b1") & (table["n"] == 8) & (table["k"] == 3)].set_index("fraction")
    assert row.loc[1.0, "saving"] == pytest.approx(1 - (10 + 800 + 40 + 15) / brute)
    assert row.loc[0.25, "saving"] == pytest.approx(1 - (10 + 200 + 40 + 300 + 15) / brute)
    assert row.loc[1.0, "one_stage_saving"] == pytest.approx(1 - (10 + 3 * 105) / brute)
    assert len(table) == len(GROUPS) * 3 * 2 * 2  # targets x N x k x fractions


def test_two_stage_scores_keep_only_pairs_with_a_probe_and_a_split_truth():
    col, probes = synthetic()
    del probes[("a1", "b1")]
    split = split_truth(col.seed_pairs).drop(("a1", "b2"))
    kept = restrict(col.truth, split, probes)
    assert len(kept) == len(col.truth) - 2
    assert kept.loc[kept["target"] == "a1", "accuracy"].to_numpy() == pytest.approx(
        split.loc["a1"].reindex(kept.loc[kept["target"] == "a1", "source"]).to_numpy())
    scores = two_stage_scores(col, kept, probes, "rank:terms", ns=(4,))
    assert set(scores["signal"]) == {"none", "random", "confidence", "atc", "agreement", PERFECT}


# ------------------------------------------------------------------ records on disk


def _write_pair(folder, target, stem, pred, conf, accuracy, *, npy=None):
    path = folder / "pairs" / target / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"accuracy": accuracy, "macro_f1": accuracy, "n": len(pred), "seconds": 1.0, "per_class": {},
              "source": stem.split(".")[0], "seed": int(stem.split(".")[1][1:]), "formulation": "description"}
    if npy is None:
        record.update(pred=list(map(int, pred)), conf=list(map(float, conf)))
    else:
        np.save(path.with_suffix(".npy"), npy)
    path.write_text(json.dumps(record))


def _champion_folder(tmp_path, with_npy: bool):
    """One target ``t`` and three sources; per seed, source ``s2`` predicts confidently, ``s1`` and
    ``s3`` agree with each other."""
    rng = np.random.default_rng(0)
    seed_rows, truth = [], []
    for i, source in enumerate(("s1", "s2", "s3")):
        (tmp_path / "holdout").mkdir(parents=True, exist_ok=True)
        for seed in (0, 1):
            stem = f"{source}.s{seed}.description"
            (tmp_path / "holdout" / f"{stem}.json").write_text(json.dumps(
                {"confidence": [0.6, 0.7, 0.8, 0.9], "correct": [0, 1, 1, 1]}))
            logits = rng.normal(0, 1, (TEXTS, 3)) * (4.0 if source == "s2" else 0.3)
            if source != "s2":
                logits[:, 0] += 1.0  # s1 and s3 both lean to label 0
            logits = logits.astype(np.float16)  # as the benchmark stores them
            probs = np.exp(logits.astype(float)) / np.exp(logits.astype(float)).sum(axis=1, keepdims=True)
            acc = 0.5 + 0.1 * i
            _write_pair(tmp_path, "t", stem, probs.argmax(axis=1), probs.max(axis=1), acc,
                        npy=logits if with_npy else None)
            seed_rows.append({"target": "t", "source": source, "seed": seed, "accuracy": acc})
        truth.append({"target": "t", "source": source, "accuracy": 0.5 + 0.1 * i, "source_rows": 10.0 * (3 - i)})
    return Collection(pd.DataFrame(seed_rows), pd.DataFrame(truth), {"t": "A"}, {}, [], {})


def test_the_champion_reads_predictions_from_pair_records_without_npy(tmp_path):
    from hubselect.benchmark.trust import champion_table

    col = _champion_folder(tmp_path / "records", with_npy=False)
    table = champion_table(col, tmp_path / "records", "largest", k=3)
    assert set(table["estimator"]) == {"rank", "confidence", "atc", "agreement"}  # no entropy without probs
    by = table.set_index(["seed", "estimator"])
    # accuracies 0.5 (s1), 0.6 (s2), 0.7 (s3); "largest" orders s1, s2, s3
    assert by.loc[(0, "rank"), "champion"] == "s1" and by.loc[(0, "rank"), "regret"] == pytest.approx(20.0)
    assert by.loc[(0, "confidence"), "champion"] == "s2" and by.loc[(0, "confidence"), "regret"] == pytest.approx(10.0)
    assert by.loc[(1, "agreement"), "champion"] in ("s1", "s3")
    live = _champion_folder(tmp_path / "live", with_npy=True)
    full = champion_table(live, tmp_path / "live", "largest", k=3)
    assert "entropy" in set(full["estimator"])
    pd.testing.assert_frame_equal(full[full["estimator"] != "entropy"].reset_index(drop=True), table,
                                  check_exact=False, atol=1e-9)


def test_a_pair_without_predictions_is_a_one_line_error(tmp_path):
    from hubselect.benchmark.trust import pair_outputs

    path = tmp_path / "pairs" / "t" / "s.s0.description.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"accuracy": 0.5}))
    with pytest.raises(HubselectError, match="pred/conf"):
        pair_outputs(tmp_path, "t", "s.s0.description")


def test_a_matrix_is_assembled_from_the_records_of_an_unassembled_folder(tmp_path):
    """A folder as a sharded run or a restore leaves it (records only, no targets/): every scored
    target gets the pairs recorded so far; an unscored target stays as prepared."""
    from hubselect.benchmark.matrix import SETTINGS_FILE, pairs_frame
    from hubselect.benchmark.trust import matrix_from_records

    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"settings": {"task_names": "t,u,v", "seeds": 2}}))
    for folder in ("prepared", "models", "baseline"):
        (tmp_path / folder).mkdir()
    for name, scored in (("t", True), ("u", True), ("v", False)):
        rec = {"target": name, "scored": scored, "label_names": ["a", "b"], "reason": "" if scored else "no labels"}
        if scored:
            rec.update(eval_n=40, scores={s: {"js": 0.1} for s in "tuv" if s != name})
            (tmp_path / "baseline" / f"{name}.json").write_text(json.dumps({"accuracy": 0.5, "macro_f1": 0.4}))
        (tmp_path / "prepared" / f"{name}.json").write_text(json.dumps(rec))
    for source, seed in (("u", 0), ("u", 1), ("t", 0)):
        stem = f"{source}.s{seed}.description"
        (tmp_path / "models" / f"{stem}.json").write_text(json.dumps(
            {"source": source, "source_revision": "r", "seed": seed, "formulation": "description", "key": "k",
             "train_seconds": 5.0, "train_examples": 100}))
        for target in ("t", "u"):
            if target != source:
                _write_pair(tmp_path, target, stem, [0] * 4, [0.9] * 4, 0.6 + 0.1 * seed)
    matrix = matrix_from_records(tmp_path)
    assert [r["target"] for r in matrix["targets"]] == ["t", "u", "v"]
    frame = pairs_frame(matrix)
    assert sorted(zip(frame["target"], frame["source"], frame["seed"])) == [("t", "u", 0), ("t", "u", 1),
                                                                            ("u", "t", 0)]
    assert frame.loc[frame["seed"] == 1, "gain"].iloc[0] == pytest.approx(0.2)
    assert not matrix["targets"][2]["scored"]


def test_reliability_leaves_out_targets_without_two_sources_of_every_seed():
    from hubselect.benchmark.trust import reliability

    rows = [{"target": "t", "source": s, "seed": k, "accuracy": 0.5 + 0.1 * i + 0.01 * k}
            for i, s in enumerate("abc") for k in (0, 1)]
    rows += [{"target": "u", "source": "a", "seed": 0, "accuracy": 0.5}, {"target": "u", "source": "b", "seed": 1,
                                                                        "accuracy": 0.6}]
    rel = reliability(pd.DataFrame(rows))
    assert list(rel["target"]) == ["t"] and rel.iloc[0]["split_half_spearman"] == pytest.approx(1.0)
    assert reliability(pd.DataFrame(rows[-2:])).empty
