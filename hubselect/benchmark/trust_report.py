"""``trust.md``: the held-out verdict of :func:`hubselect.benchmark.trust.analyse_collection`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

GOALS = {"regret@3": 0.5, "regret@1": 1.5, "spearman": 0.65, "saving@3": 0.75, "champion_regret": 1.0}


def _ci(row: Any, m: str, digits: int = 2) -> str:
    return f"{row[m]:.{digits}f} [{row[m + '_lo']:.{digits}f}, {row[m + '_hi']:.{digits}f}]"


def _table(summary: Any, names: list[str], saving: dict[str, float] | None = None) -> list[str]:
    lines = ["| ranker | Spearman | Regret@1 | Regret@3 |" + (" saved@3 |" if saving else ""),
             "|---|---|---|---|" + ("---|" if saving else "")]
    for n in names:
        if n not in summary.index:
            continue
        r = summary.loc[n]
        cell = f" {saving[n]:.0%} |" if saving and n in saving else (" — |" if saving else "")
        lines.append(f"| {n} | {_ci(r, 'spearman')} | {_ci(r, 'regret@1')} | {_ci(r, 'regret@3')} |{cell}")
    return lines


def _ceiling(rel: Any, targets: list[str]) -> str:
    r = rel[rel["target"].isin(targets)]
    return (f"| noise ceiling (seed half vs seed half) | {r['ceiling_spearman'].mean():.2f} "
            f"(Spearman-Brown {r['ceiling_spearman_sb'].mean():.2f}) | {r['ceiling_regret@1'].mean():.2f} | "
            f"{r['ceiling_regret@3'].mean():.2f} |")


def _goals(res: dict) -> list[str]:
    t, d = res["test"], res["default"]
    row, strongest = t.loc[d], t.loc["strongest"]
    champ = res["champion_test"].loc[res["champion"], "champion_regret"]
    saving = float(res["saving"][res["col"].test].mean())
    lines = ["| goal | held-out | met |", "|---|---|---|"]
    for m, goal in (("regret@3", GOALS["regret@3"]), ("regret@1", GOALS["regret@1"])):
        lines.append(f"| {m} ≤ {goal} | {row[m]:.2f} | {'yes' if row[m] <= goal else f'no, by {row[m] - goal:.2f}'} |")
    sp, goal = row["spearman"], GOALS["spearman"]
    lines.append(f"| Spearman ≥ {goal} | {sp:.2f} | {'yes' if sp >= goal else f'no, by {goal - sp:.2f}'} |")
    better = all(row[m] < strongest[m] for m in ("regret@1", "regret@3")) and row["spearman"] > strongest["spearman"]
    lines.append(f"| strictly better than strongest-source on all three | Spearman {sp:.2f} vs "
                 f"{strongest['spearman']:.2f}, R@1 {row['regret@1']:.2f} vs {strongest['regret@1']:.2f}, R@3 "
                 f"{row['regret@3']:.2f} vs {strongest['regret@3']:.2f} | {'yes' if better else 'no'} |")
    lines.append(f"| saved@3 ≥ 75% | {saving:.0%} | {'yes' if saving >= 0.75 else 'no'} |")
    lines.append(f"| label-free champion regret ≤ 1 | {champ:.2f} ({res['champion']}) | "
                 f"{'yes' if champ <= 1 else f'no, by {champ - 1:.2f}'} |")
    return lines


def write_trust_report(path: str | Path, res: dict) -> Path:
    """Write the report (Markdown) and return its path."""
    col, d, logo = res["col"], res["default"], res["default_logo"]
    base = ["oracle", "strongest", "same-labels", "largest", "random"]
    saving = {d: float(res["saving"][col.test].mean())}
    dev_top = res["dev"].drop(index=base + ["learned:logo"], errors="ignore").sort_values("regret@3").head(8)
    rel = res["reliability"]
    lines = [
        "# Can the pick be trusted? Held-out results on 40 tasks", "",
        f"Dev targets ({len(col.dev)}): {', '.join(col.dev)}.", "",
        f"Test targets ({len(col.test)}, held out): {', '.join(col.test)}.", "",
        "Mean over targets [95% bootstrap CI over targets]; regret in accuracy points; ground truth = mean "
        "over tuning seeds. The default was chosen on dev by the rule in PROTOCOL.md and is reported here on "
        "test unchanged.", "",
        f"## Held-out (test) headline: default `{d}`", "",
        *_table(res["test"], [d, logo, "learned", "learned:logo", "rank:terms", "rank:embeddings", "labels", *base],
                saving),
        _ceiling(rel, col.test), "",
        "## Goals (held-out)", "", *_goals(res), "",
        "## How the default was chosen (dev only)", "",
        *_table(res["dev"], list(dev_top.index) + base), _ceiling(rel, col.dev), "",
        "## Ground-truth reliability", "",
        f"- split-half (seed vs seed) Spearman per target: mean {rel['split_half_spearman'].mean():.2f} "
        f"(median {rel['split_half_spearman'].median():.2f}); Spearman-Brown reliability of the 2-seed mean "
        f"{rel['reliability_sb'].mean():.2f}.",
        f"- tuning-seed SD of a pair's accuracy: {rel['seed_sd_points'].mean():.2f} points; best minus median "
        f"source per target: {rel['best_minus_median_points'].mean():.2f} points.", "",
        "## Per group (test targets), default against the strongest-source baseline", "",
        *_group_lines(res), "",
        "## Label-free champion (among the default's 3 tuned models)", "",
        "Champion regret = accuracy of the best of the 3 (a labelled choice) minus the chosen one's, points; "
        f"chosen on dev: `{res['champion']}`.", "",
        "| estimator | dev regret | test regret [CI] | test: picks the best |", "|---|---|---|---|",
        *[f"| {e} | {res['champion_dev'].loc[e, 'champion_regret']:.2f} | {r['champion_regret']:.2f} "
          f"[{r['lo']:.2f}, {r['hi']:.2f}] | {r['picks_best']:.0%} |" for e, r in res["champion_test"].iterrows()],
        "", "## One averaged model instead of a choice", "", *_averaged_lines(res),
    ]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _group_lines(res: dict) -> list[str]:
    col, pt, d = res["col"], res["per_target"], res["default"]
    lines = ["| group | targets | default R@3 | strongest R@3 | default Spearman | strongest Spearman |",
             "|---|---|---|---|---|---|"]
    test = pt[pt["target"].isin(col.test)].assign(group=lambda f: f["target"].map(col.groups))
    for group, g in test.groupby("group"):
        a, b = g[g["ranker"] == d], g[g["ranker"] == "strongest"]
        lines.append(f"| {group} | {len(a)} | {a['regret@3'].mean():.2f} | {b['regret@3'].mean():.2f} | "
                     f"{np.nanmean(a['spearman']):.2f} | {np.nanmean(b['spearman']):.2f} |")
    return lines


def _averaged_lines(res: dict) -> list[str]:
    col, avg = res["col"], res["averaged"]
    lines = ["Uniform weight average of the default's 3 tuned encoders (seed 0), mean accuracy over targets:", "",
             "| targets | averaged | best single (labelled choice) | mean single | untuned baseline |",
             "|---|---|---|---|---|"]
    for name, targets in (("dev", col.dev), ("test", col.test)):
        a = avg[avg["target"].isin(targets)]
        lines.append(f"| {name} ({len(a)}) | {a['averaged'].mean():.4f} | {a['best_single'].mean():.4f} | "
                     f"{a['mean_single'].mean():.4f} | {a['baseline'].mean():.4f} |")
    return lines
