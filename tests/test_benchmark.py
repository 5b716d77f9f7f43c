"""The transfer benchmark end to end on a tiny slice: three demo domains (plus a task without
labels), a tiny random BERT, real MLflow (SQLite in a temp dir). Called through
:mod:`hubselect.benchmark.run` directly (the CLI wiring is separate)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import runs_of
from modelkit import make_tiny_model

from hubselect.core.errors import HubselectError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture()
def tasks(tmp_path) -> Path:
    """A catalog folder: three demo review domains and one task with unlabelled texts only."""
    from hubselect.data.demo import ensure_demo_catalog

    demo, root = ensure_demo_catalog(), tmp_path / "tasks"
    for name in ("kitchen", "books", "electronics"):
        shutil.copytree(demo / name, root / name)
    (root / "nolabels").mkdir()
    shutil.copy(demo / "movies" / "unlabeled.jsonl", root / "nolabels" / "unlabeled.jsonl")
    return root


def parse(tiny: str, tasks: Path, *extra: str) -> argparse.Namespace:
    from hubselect.options import build_parser

    return build_parser().parse_args([
        "benchmark", "--tasks", str(tasks), "--output", "bench", "--quiet", "--sample-size", "40",
        "--target-sample-size", "40", "--eval-size", "30", "--embedding-model", tiny, "--embed-examples", "16",
        "--max-length", "32", "--model", tiny, "--train-max-length", "32", "--max-train-examples", "40", *extra])


def run(tiny: str, tasks: Path, *extra: str):
    from hubselect.cli import run_benchmark

    return run_benchmark(parse(tiny, tasks, *extra))


def test_tiny_benchmark_writes_matrix_report_runs_and_learned_policy(tracking, tiny, tasks, caplog):
    from hubselect.selection import learned as learned_policy

    out = run(tiny, tasks)
    report = out.path
    matrix = pd.read_csv(report / "matrix_accuracy.csv", index_col=0)
    assert sorted(matrix.index) == ["books", "electronics", "kitchen"] == sorted(matrix.columns)
    assert matrix.notna().sum().sum() == 6 and all(np.isnan(matrix.loc[t, t]) for t in matrix.index)
    for name in ("report.md", "report.html", "policies.csv", "per_target_metrics.csv", "regret_curve.csv",
                 "plots/matrix_accuracy.png", "plots/regret_vs_saving.png", "plots/scatter/js.png",
                 "tables/js.csv", "tables/rank_default.csv", "learned_policy.json"):
        assert (report / name).exists(), name
    md = (report / "report.md").read_text()
    assert "| policy | Spearman |" in md and "nolabels" in md  # the unlabelled task is listed
    policies = pd.read_csv(report / "policies.csv", index_col=0)
    assert {"rank:default", "learned", "random", "oracle", "js", "mmd"} <= set(policies.index)
    assert policies.loc["oracle", "regret@1"] == 0

    bench = runs_of("benchmark")[0]
    pairs = runs_of("pair")
    assert len(pairs) == 6 and all(p.data.tags["mlflow.parentRunId"] == bench.info.run_id for p in pairs)
    assert len({frozenset(p.data.params) for p in pairs}) == 1
    assert {"accuracy", "macro_f1", "gain", "train_seconds", "divergence_js"} <= set(pairs[0].data.metrics)

    model = learned_policy.load(report / "learned_policy.json")
    assert model["trained_on"] == ["books", "electronics", "kitchen"]
    scores = pd.DataFrame({m: [0.1, 0.3] for m in learned_policy.measures_of(model)}, index=["a", "b"])
    feats = pd.DataFrame({f: [1.0, 2.0] for f in learned_policy.SOURCE_FEATURES}, index=["a", "b"])
    assert list(learned_policy.predict_gain(model, scores, feats).index) == ["a", "b"]


def test_resume_redoes_only_missing_work(tracking, tiny, tasks):
    run(tiny, tasks)
    bench = Path("bench")
    pair_files = sorted((bench / "pairs").rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in pair_files}
    victim = pair_files[0]  # as if killed while evaluating this pair
    victim.unlink()
    victim.with_suffix(".npy").unlink()
    run(tiny, tasks)
    assert victim.exists() and victim.with_suffix(".npy").exists()
    assert {p: p.stat().st_mtime_ns for p in pair_files if p != victim} == {k: v for k, v in before.items() if k != victim}
    for path in (bench / "targets").glob("*.json"):
        assert all(p["from_cache"] for p in json.loads(path.read_text()).get("pairs", []))  # no source tuned twice


def test_exported_records_resume_in_a_fresh_folder_without_tuning_again(tracking, tiny, tasks, tmp_path,
                                                                       monkeypatch):
    """A matrix carried across sittings (scripts/matrix_sync.py): only records travel; the new
    folder has no samples, no .npy and an empty model cache, yet nothing is tuned again."""
    import importlib.util

    from hubselect.benchmark.matrix import pair_records

    spec = importlib.util.spec_from_file_location("matrix_sync", Path(__file__).parents[1] / "scripts/matrix_sync.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    run(tiny, tasks, "--seeds", "2")
    before = pair_records("bench").sort_values(["target", "source", "seed"]).reset_index(drop=True)
    assert len(before) == 12 and before["train_seconds"].notna().all()
    sync.export(Path("bench"), tmp_path / "carried")
    lines = (tmp_path / "carried" / "raw" / "pairs").glob("*.jsonl.gz")
    assert len(list(lines)) == 3 and len(pd.read_csv(tmp_path / "carried" / "pairs.csv")) == 12
    shutil.rmtree("bench")
    monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(tmp_path / "empty-cache"))  # no tuned model left anywhere
    sync.restore(tmp_path / "carried", Path("bench"))
    missing = next(Path("bench/pairs").rglob("*.s1.description.json"))
    missing.unlink()  # one pair never finished: only it is evaluated, by tuning its model again
    run(tiny, tasks, "--seeds", "2")
    after = pair_records("bench").sort_values(["target", "source", "seed"]).reset_index(drop=True)
    assert len(after) == 12
    models = list((tmp_path / "empty-cache" / "models").glob("*/hubselect.json"))
    assert len(models) == 1  # the one model whose pair was missing; the other five came from records
    retuned = (after["source"] == missing.name.split(".")[0]) & (after["seed"] == 1)
    pd.testing.assert_frame_equal(after[~retuned], before[~retuned])


def test_seeds_give_a_seed_mean_and_groups_a_held_out_trust_report(tracking, tiny, tasks, tmp_path):
    from hubselect.benchmark.matrix import pairs_frame, seed_mean
    from hubselect.pipeline.tracking import runs
    from hubselect.selection.prior import load_prior

    groups = tmp_path / "groups.csv"
    groups.write_text("task,group,collection\nkitchen,home,misc\nbooks,media,fdu-mtl\nelectronics,home,more\n")
    out = run(tiny, tasks, "--seeds", "2", "--groups", str(groups))
    trust = (out.path / "trust" / "trust.md").read_text()
    assert "Nested leave-one-group-out over 3 targets" in trust and "| nested default |" in trust
    assert "noise ceiling" in trust and "| strongest |" in trust and "label-free champion" in trust.lower()
    nested = pd.read_csv(out.path / "trust" / "per_target_nested.csv")
    chosen = nested[nested["chosen"]]
    assert sorted(chosen["target"]) == ["books", "electronics", "kitchen"]  # each held out once
    assert dict(zip(chosen["target"], chosen["group"])) == {"books": "media", "electronics": "home", "kitchen": "home"}
    pairs = pd.read_csv(out.path / "trust" / "pairs.csv")
    assert {"target", "source", "seed", "accuracy"} <= set(pairs.columns) and sorted(pairs["seed"].unique()) == [0, 1]
    prior = load_prior(runs.download(out.run_id) / "transfer_prior.json")
    assert set(prior["sources"]) == {"kitchen", "books", "electronics"}
    assert all(v["revision"] for v in prior["sources"].values())
    matrix = {"targets": [json.loads(p.read_text()) for p in sorted(Path("bench/targets").glob("*.json"))]}
    seeds = pairs_frame(matrix)
    assert sorted(seeds["seed"].unique()) == [0, 1]
    truth = seed_mean(seeds)
    assert len(truth) == len(seeds) // 2 and (truth["seeds"] == 2).all()
    one = seeds[(seeds["target"] == truth["target"][0]) & (seeds["source"] == truth["source"][0])]
    assert truth["accuracy"][0] == pytest.approx(one["accuracy"].mean())
    assert len(list(Path("bench/holdout").glob("*.json"))) == 2 * 3  # every source, every seed


def test_differing_settings_are_refused_naming_them(tracking, tiny, tasks):
    run(tiny, tasks)
    before = sorted(p.name for p in Path("bench").rglob("*"))
    with pytest.raises(HubselectError, match=r"eval_size: finished 30 vs now 20.*train_max_length"):
        run(tiny, tasks, "--eval-size", "20", "--train-max-length", "24")
    assert sorted(p.name for p in Path("bench").rglob("*")) == before  # nothing lost


def test_fewer_than_three_tasks_refused(tracking, tiny, tasks):
    with pytest.raises(HubselectError, match="at least 3 tasks.*gives 2"):
        run(tiny, tasks, "--only", "kitchen,books")
    with pytest.raises(HubselectError, match="only 2 of 3 tasks have labels"):
        run(tiny, tasks, "--only", "kitchen,books,nolabels")


def test_unknown_task_name_refused(tracking, tiny, tasks):
    with pytest.raises(HubselectError, match="task 'garden' is not in"):
        run(tiny, tasks, "--only", "kitchen,books,garden")


def test_quick_preset_picks_four_fdu_domains_and_small_samples(tiny, tmp_path):
    from hubselect.benchmark.presets import DEFAULT_TASKS, QUICK_TASKS
    from hubselect.options import benchmark_config as config_from_args

    args = parse(tiny, tmp_path, "--quick")
    args.tasks = DEFAULT_TASKS
    args.sample_size = 400  # back at the default, so the preset applies
    cfg = config_from_args(args)
    assert cfg.only == QUICK_TASKS and cfg.sample_size == 200
    assert cfg.eval_size == 30  # set explicitly: the preset leaves it alone
    args = parse(tiny, tmp_path, "--quick", "false")  # MLproject passes a value
    assert not args.quick
    args = parse(tiny, tmp_path, "--quick", "true")
    args.tasks = f"{DEFAULT_TASKS}/../fdu-mtl/"  # another spelling of the same folder
    assert config_from_args(args).only == QUICK_TASKS


def synthetic_table(n_targets: int = 5, n_sources: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_targets):
        for s in range(n_sources):
            d = rng.normal(size=2)
            rows.append({"target": f"t{t}", "source": f"s{s}", "z_a": d[0], "z_b": d[1],
                         "gain": -0.05 * d[0] + 0.01 * rng.normal()})
    return pd.DataFrame(rows)


def test_learned_loto_never_uses_a_targets_own_pairs():
    from hubselect.benchmark import learned

    table = synthetic_table()
    predicted, trained_on = learned.loto_predictions(table)
    assert all(t not in folds and len(folds) == 4 for t, folds in trained_on.items())
    changed = table.copy()
    changed.loc[changed["target"] == "t2", "gain"] += 10.0  # the target's own gains change ...
    again, _ = learned.loto_predictions(changed)
    own = table["target"] == "t2"
    assert np.allclose(predicted[own], again[own])  # ... and its predictions do not
    assert not np.allclose(predicted[~own], again[~own])  # other targets' models did see them
    assert np.corrcoef(predicted, -table["z_a"])[0, 1] > 0.9  # it learned the signal


def test_learned_policy_json_roundtrip_and_refusals(tmp_path):
    from hubselect.benchmark import learned
    from hubselect.selection import learned as learned_policy

    model = learned.fit_all(synthetic_table())
    path = learned.save(model, tmp_path / "learned_policy.json")
    assert learned_policy.load(tmp_path) == model  # a folder finds learned_policy.json
    path.write_text(json.dumps({**model, "version": 99}))
    with pytest.raises(HubselectError, match="version 99"):
        learned_policy.load(path)
    path.write_text("{}")
    with pytest.raises(HubselectError, match="not a hubselect learned policy"):
        learned_policy.load(path)
    with pytest.raises(HubselectError, match="no learned policy"):
        learned_policy.load(tmp_path / "missing.json")


def test_source_features():
    from hubselect.selection.learned import source_features

    f = source_features(["good good film", "bad film"], ["pos", "neg"], rows_total=100)
    assert f["src_log_rows"] == pytest.approx(2.0) and f["src_label_balance"] == pytest.approx(1.0)
    assert f["src_n_labels"] == 2 and f["src_vocab_richness"] == pytest.approx(3 / np.sqrt(5))
    assert source_features(["a b"], ["x"])["src_label_balance"] == 0.0
