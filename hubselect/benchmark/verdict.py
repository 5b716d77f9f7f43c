"""The verdict of a benchmark with seeds and task groups: can the pick be trusted?

Runs every analysis of :mod:`hubselect.benchmark.trust` with the nested leave-one-group-out
scheme of :mod:`hubselect.benchmark.nested` and writes the tables, the shipped prior and learned
rankers, and ``trust.md`` (:mod:`hubselect.benchmark.trust_report`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hubselect.benchmark.nested import LEARNED
from hubselect.benchmark.trust import (
    BASELINES,
    MEASURE_SETS,
    Collection,
    champion_table,
    choose_default,
    evaluate_rankers,
    grid_names,
    load_collection,
    policy_score_seconds,
    reliability,
    saving_at_k,
    summarise,
)


def ranker_names() -> list[str]:
    """Every ranker evaluated: baselines, divergence sets, labels alone, the grid, learned."""
    return [*BASELINES, *(f"rank:{m}" for m in MEASURE_SETS), "labels", *grid_names(), *LEARNED]


def choice_names() -> list[str]:
    """The policy grid the protocol's rule chooses among."""
    return [*grid_names(), *LEARNED, *(f"rank:{m}" for m in MEASURE_SETS), "labels"]


def nested_champion(table: Any, groups: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The label-free champion estimator chosen per held-out group on the other groups' targets
    (lowest mean champion regret), and its regret on the held-out group's targets."""
    import pandas as pd

    per_target = table.groupby(["estimator", "target"])["regret"].mean().reset_index()
    per_target["group"] = per_target["target"].map(lambda t: groups.get(t, t))
    choices, rows = {}, []
    for g in sorted(per_target["group"].unique()):
        others = per_target[per_target["group"] != g]
        choices[g] = str(others.groupby("estimator")["regret"].mean().idxmin()) if len(others) else "rank"
        rows.append(per_target[(per_target["group"] == g) & (per_target["estimator"] == choices[g])])
    return pd.concat(rows, ignore_index=True), choices


def shipped_learned(col: Collection) -> dict[str, dict]:
    """Both learned rankers fitted on every target (each target's prior feature leaves it out)."""
    from hubselect.benchmark.nested import feature_table, fit_learned, prior_table

    prior = prior_table(col.truth, col.groups, set())
    return fit_learned(col.truth, feature_table(col.truth, col.measures, prior), np.ones(len(col.truth), bool))


def two_stage(col: Collection, matrix: dict, out_dir: str | Path, nested: Any) -> dict:
    """The nested two-stage pick (:mod:`hubselect.benchmark.twostage`): its per-target rows, the
    summary per row label with 95% bootstrap CIs over targets, and the runtime saving table.

    The probes are the matrix's models of :data:`~hubselect.benchmark.twostage.PROBE_SEED`; the truth
    is the mean over the other seeds; the first stage of a group is its nested default.
    """
    from hubselect.benchmark.costs import normalised_parts
    from hubselect.benchmark.trust import probe_outputs
    from hubselect.benchmark.twostage import (
        PROBE_SEED,
        labelled_rows,
        nested_two_stage,
        restrict,
        saving_table,
        split_truth,
    )

    split = split_truth(col.seed_pairs, PROBE_SEED)
    probes = probe_outputs(col, out_dir, PROBE_SEED)
    result = nested_two_stage(col, nested, probes, split)
    targets = sorted(result.per_target["target"].unique())
    summary = summarise(labelled_rows(result.per_target), targets)
    tune, evaluate = normalised_parts(col.truth)
    held = restrict(nested.logo_truth, split, probes).assign(tune_seconds=tune, evaluate_seconds=evaluate)
    logo_col = replace(col, truth=nested.logo_truth)
    secs = {p: policy_score_seconds(logo_col, matrix, p) for p in set(nested.choices.values())}
    first = {t: nested.choices[col.groups.get(t, t)] for t in targets}
    saving = saving_table(col, held, result, probes, {t: secs[first[t]][t] for t in targets})
    return {"result": result, "summary": summary, "saving": saving, "targets": len(targets),
            "sources": int(held.groupby("target").size().median()) if len(held) else 0}


def analyse_collection(matrix: dict, out_dir: str | Path, groups_csv: str | Path, report_dir: str | Path) -> dict:
    """Run every analysis of this module and write CSVs, the prior and ``trust.md`` to ``report_dir``.

    The headline is nested leave-one-group-out (:mod:`hubselect.benchmark.nested`); the shipped
    default is the rule's pick over every target scored leave-one-group-out.
    """
    import pandas as pd

    from hubselect.benchmark.learned import save
    from hubselect.benchmark.nested import nested_logo
    from hubselect.selection.prior import build_prior, save_prior

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    col = load_collection(matrix, out_dir, groups_csv)
    targets = sorted(col.truth["target"].unique())
    nested = nested_logo(col, choice_names(), [*BASELINES, "labels", "rank:all", *LEARNED])
    logo_col = replace(col, truth=nested.logo_truth)
    logo = evaluate_rankers(logo_col, ranker_names()).assign(group=lambda f: f["target"].map(col.groups))
    overall = summarise(logo, targets)
    shipped = choose_default(overall, choice_names())
    held = nested.per_target[nested.per_target["chosen"]].assign(ranker="nested default")
    headline = summarise(pd.concat([held, logo], ignore_index=True), targets)
    rel = reliability(col.seed_pairs)
    champions = champion_table(logo_col, out_dir, shipped)
    champ_held, champ_choices = nested_champion(champions, col.groups)
    saving = saving_at_k(logo_col, matrix, shipped)
    two = two_stage(col, matrix, out_dir, nested)
    revisions = {r["source"]: r["source_revision"] for t in matrix["targets"] if t["scored"] for r in t["pairs"]}
    prior = build_prior(col.truth, revisions, description=f"{len(targets)} targets of {out_dir} "
                        f"({matrix['settings'].get('seeds', 1)} seeds)")
    save_prior(prior, report_dir / "transfer_prior.json")
    for name, model in shipped_learned(col).items():
        save(model, report_dir / f"{name.replace(':', '_')}_policy.json")
    _write_tables(report_dir, col, logo, nested, rel, champions, saving)
    _write_two_stage(report_dir, two)
    result = {"default": shipped, "choices": nested.choices, "headline": headline, "nested": nested,
              "reliability": rel, "champion_choices": champ_choices, "champion_held": champ_held,
              "champions": champions, "saving": saving, "col": col, "per_target": logo, "two_stage": two}
    from hubselect.benchmark.trust_report import write_trust_report

    write_trust_report(report_dir / "trust.md", result)
    return result


def _write_tables(report_dir: Path, col: Collection, logo: Any, nested: Any, rel: Any, champions: Any,
                  saving: Any) -> None:
    keep = ["target", "source", "seed", "accuracy", "macro_f1", "gain", "baseline_accuracy", "formulation",
            "train_examples", "eval_n", *[c for c in col.seed_pairs.columns if c.startswith("d_")]]
    seed_pairs = col.seed_pairs[keep].assign(target_group=col.seed_pairs["target"].map(col.groups),
                                             source_group=col.seed_pairs["source"].map(col.groups))
    seed_pairs.to_csv(report_dir / "pairs.csv", index=False, float_format="%.5g")
    feats = ["target", "source", "accuracy", "accuracy_sd", "gain", "label_distance", "balance_distance",
             "same_labels", "source_rows", "src_n_labels", "tgt_n_labels", "prior_loto", "prior_logo"]
    col.truth[feats].to_csv(report_dir / "truth_and_features.csv", index=False, float_format="%.5g")
    logo.to_csv(report_dir / "per_target_rankers_logo.csv", index=False, float_format="%.4f")
    nested.per_target.to_csv(report_dir / "per_target_nested.csv", index=False, float_format="%.4f")
    rel.to_csv(report_dir / "reliability.csv", index=False, float_format="%.4f")
    champions.to_csv(report_dir / "champions.csv", index=False, float_format="%.4f")
    saving.rename_axis("target").to_csv(report_dir / "saving.csv", float_format="%.4f")


def _write_two_stage(report_dir: Path, two: dict) -> None:
    import pandas as pd

    res = two["result"]
    res.per_target.to_csv(report_dir / "per_target_two_stage.csv", index=False, float_format="%.4f")
    two["summary"].to_csv(report_dir / "two_stage_summary.csv", float_format="%.4f")
    two["saving"].to_csv(report_dir / "two_stage_saving.csv", index=False, float_format="%.4f")
    pd.DataFrame([{"held_out": g, "n": n, "signal": s} for (g, n), s in sorted(res.choices.items())]).to_csv(
        report_dir / "two_stage_choices.csv", index=False)
