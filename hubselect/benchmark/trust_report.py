"""``trust.md``: the held-out verdict of :func:`hubselect.benchmark.verdict.analyse_collection`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Issue 14's goals for the nested held-out default (regret in points).
GOALS = {"regret@3": 1.0, "regret@1": 2.5, "spearman": 0.5, "ndcg@3": 0.9, "saving@3": 0.85, "champion_regret": 1.0}
HIGHER_IS_BETTER = ("spearman", "ndcg@3")
COLUMNS = (("spearman", "Spearman"), ("regret@1", "Regret@1"), ("regret@3", "Regret@3"),
           ("rel_regret@3", "rel. Regret@3 %"), ("ndcg@3", "NDCG@3"))
BASELINE_ROWS = ("strongest", "same-labels", "largest", "labels", "rank:all", "random", "oracle")


def _ci(row: Any, m: str, digits: int = 2) -> str:
    return f"{row[m]:.{digits}f} [{row[m + '_lo']:.{digits}f}, {row[m + '_hi']:.{digits}f}]"


def _table(summary: Any, names: list[str]) -> list[str]:
    lines = ["| ranker | " + " | ".join(label for _, label in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for n in names:
        if n in summary.index:
            lines.append(f"| {n} | " + " | ".join(_ci(summary.loc[n], m) for m, _ in COLUMNS) + " |")
    return lines


def _ceiling_row(rel: Any) -> str:
    return (f"| *noise ceiling* (seed half vs seed half) | {rel['ceiling_spearman'].mean():.2f} "
            f"(Spearman-Brown {rel['ceiling_spearman_sb'].mean():.2f}) | {rel['ceiling_regret@1'].mean():.2f} | "
            f"{rel['ceiling_regret@3'].mean():.2f} | | {rel['ceiling_ndcg@3'].mean():.2f} |")


def _goal(metric: str, value: float) -> str:
    goal = GOALS[metric]
    met = value >= goal if metric in HIGHER_IS_BETTER else value <= goal
    sign = "≥" if metric in HIGHER_IS_BETTER else "≤"
    return f"| {metric} {sign} {goal} | {value:.2f} | {'yes' if met else f'no, by {abs(value - goal):.2f}'} |"


def _goals(res: dict) -> list[str]:
    head, rel = res["headline"], res["reliability"]
    row = head.loc["nested default"]
    lines = ["| goal | nested held-out | met |", "|---|---|---|"]
    lines += [_goal(m, float(row[m])) for m in ("regret@3", "regret@1", "spearman", "ndcg@3")]
    beaten = [b for b in BASELINE_ROWS[:-1] if b in head.index and not all(
        (row[m] > head.loc[b, m]) if m in HIGHER_IS_BETTER else (row[m] < head.loc[b, m])
        for m in ("regret@3", "regret@1", "spearman", "ndcg@3"))]
    lines.append(f"| better than every baseline on each | | {'yes' if not beaten else 'no: ' + ', '.join(beaten)} |")
    saving = float(res["saving"].mean())
    lines.append(f"| saved@3 ≥ 85% | {saving:.0%} | {'yes' if saving >= GOALS['saving@3'] else 'no'} |")
    ceiling = float(rel["ceiling_regret@3"].mean())
    lines.append(f"| within 0.5 of the ceiling's Regret@3 ({ceiling:.2f}) | {row['regret@3']:.2f} | "
                 f"{'yes' if row['regret@3'] <= ceiling + 0.5 else 'no'} |")
    champ = float(res["champion_held"]["regret"].mean())
    lines.append(f"| label-free champion regret ≤ 1 | {champ:.2f} | {'yes' if champ <= 1 else f'no, by {champ - 1:.2f}'} |")
    return lines


def _choices(res: dict) -> list[str]:
    from hubselect.benchmark.trust import default_ranker

    agree = sum(c == res["default"] for c in res["choices"].values())
    current = default_ranker()
    lines = [f"Shipped default (the rule over every target, leave-one-group-out): `{res['default']}`; the nested "
             f"choices agree with it in {agree} of {len(res['choices'])} folds. The select step's default policy "
             f"today is `{current}`" + (" (the same)." if current == res["default"] else
                                        ": shipping this pick means changing hubselect.selection.policy's defaults."),
             "",
             "| held-out group | targets | chosen on the other groups | its Regret@3 there | label-free champion |",
             "|---|---|---|---|---|"]
    per = res["nested"].per_target
    for g, choice in res["choices"].items():
        rows = per[(per["group"] == g) & per["chosen"]]
        lines.append(f"| {g} | {len(rows)} | `{choice}` | {rows['regret@3'].mean():.2f} | "
                     f"{res['champion_choices'].get(g, '')} |")
    return lines


def _group_lines(res: dict) -> list[str]:
    per, rel, col = res["nested"].per_target, res["reliability"], res["col"]
    rel = rel.assign(group=rel["target"].map(lambda t: col.groups.get(t, t)))
    lines = ["| group | targets | nested default R@3 | strongest R@3 | random R@3 | ceiling R@3 | nested Spearman | "
             "median seed Spearman |", "|---|---|---|---|---|---|---|---|"]
    for g, rows in per.groupby("group"):
        pick = lambda name: rows[rows["ranker"] == name]  # noqa: E731
        chosen, r = rows[rows["chosen"]], rel[rel["group"] == g]
        lines.append(f"| {g} | {len(chosen)} | {chosen['regret@3'].mean():.2f} | {pick('strongest')['regret@3'].mean():.2f}"
                     f" | {pick('random')['regret@3'].mean():.2f} | {r['ceiling_regret@3'].mean():.2f} | "
                     f"{np.nanmean(chosen['spearman']):.2f} | {r['seed_spearman'].median():.2f} |")
    return lines


def _two_stage_lines(two: dict) -> list[str]:
    from hubselect.benchmark.twostage import (
        DEFAULT_N,
        NOT_RECORDED,
        PROBE_NS,
        PROBE_SEED,
        SIGNALS,
        labelled_rows,
        paired_difference,
    )

    res, summary, saving = two["result"], two["summary"], two["saving"]
    names = ["first stage alone", *(f"two-stage N={n}" for n in PROBE_NS),
             *(f"two-stage N={DEFAULT_N}, {s}" for s in SIGNALS), f"two-stage N={DEFAULT_N}, perfect re-rank",
             "random (split truth)"]
    labelled = labelled_rows(res.per_target)
    lines = [f"{two['targets']} held-out targets, median {two['sources']} candidates each. First stage: each group's "
             f"nested default. Probes: the matrix's seed-{PROBE_SEED} models (full tunes, probe fraction 1.0), "
             f"re-ranked by a label-free signal of their predictions on the target's texts, the signal chosen per "
             f"N on the other groups. Truth of every row here, the first stage alone included: the mean accuracy "
             f"over the seeds other than {PROBE_SEED}, so the probe's own tuning noise is not in it (the rows "
             "differ from the headline's for that reason).", "", *_table(summary, names), ""]
    for n in PROBE_NS:
        mean, lo, hi = paired_difference(labelled, f"two-stage N={n}", "first stage alone")
        lines.append(f"- N = {n}: Regret@3 minus the first stage alone's, same targets: {mean:+.2f} [{lo:+.2f}, "
                     f"{hi:+.2f}]; signals chosen: " + ", ".join(f"{g} {s}" for (g, m), s in sorted(res.choices.items())
                                                                if m == n) + ".")
    lines += ["", "| N | probe fraction | saved, k = 1 | saved, k = 3 | first stage alone, k = 3 |", "|---|---|---|---|---|"]
    for (n, f), rows in saving.groupby(["n", "fraction"]):
        at = lambda k: rows[rows["k"] == k]  # noqa: E731
        lines.append(f"| {n} | {f:g} | {at(1)['saving'].mean():.0%} | {at(3)['saving'].mean():.0%} | "
                     f"{at(3)['one_stage_saving'].mean():.0%} |")
    lines += ["", "Cost: scoring + N probe tunes at the fraction of the full tuning work, each with one prediction "
              "pass over the target's texts, + the k kept tuned in full and evaluated (at fraction 1 the kept are "
              "probes, evaluated only). Only fraction 1 is what the matrix measures: how well a brief probe's "
              "predictions rank is not measured here, so the savings below 1 are costs at fraction 1's ranking.",
              "", "Signals the matrix cannot give: " + "; ".join(f"{k} ({v})" for k, v in NOT_RECORDED.items()) + "."]
    return lines


def write_trust_report(path: str | Path, res: dict) -> Path:
    """Write the report (Markdown) and return its path."""
    rel, head = res["reliability"], res["headline"]
    targets = len(rel)
    lines = [
        f"# Can the pick be trusted? Nested leave-one-group-out over {targets} targets", "",
        "Every target is held out once: the ranker reported on a group was chosen by the rule of PROTOCOL.md on "
        "the other groups' targets, with priors and learned rankers fitted without the held-out group. Mean over "
        "targets [95% bootstrap CI over targets]; regret in accuracy points, relative regret in percent of the "
        "best source's accuracy; ground truth = mean over tuning seeds.", "",
        "## Headline", "",
        *_table(head, ["nested default", res["default"], *[n for n in ("learned", "learned:pairwise")
                                                           if n != res["default"]], *BASELINE_ROWS]),
        _ceiling_row(rel), "",
        f"Runtime saved end to end at k = 3 by the shipped default: {res['saving'].mean():.0%} (mean over targets).",
        "", "## Goals", "", *_goals(res), "",
        "## The choice in each fold", "", *_choices(res), "",
        "## Per group", "", *_group_lines(res), "",
        *(["## Two-stage pick", "", *_two_stage_lines(res["two_stage"]), ""] if "two_stage" in res else []),
        "## Ground-truth reliability", "",
        f"- seed-vs-seed Spearman of the source ranking per target: median {rel['seed_spearman'].median():.2f} "
        f"(mean {rel['seed_spearman'].mean():.2f}); Spearman-Brown reliability of the seed mean: median "
        f"{rel['reliability_sb'].median():.2f}; split half: median {rel['split_half_spearman'].median():.2f}.",
        f"- tuning-seed SD of a pair's accuracy: {rel['seed_sd_points'].mean():.2f} points; best minus median "
        f"source per target: {rel['best_minus_median_points'].mean():.2f} points.", "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
