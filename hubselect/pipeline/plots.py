"""Plots a person would rather look at than read (matplotlib figures, files only).

Each figure is saved with ``bbox_inches="tight"``: the file grows to hold long candidate or
measure names, where ``tight_layout`` warned that it could not fit them (a warning ``--quiet``
let through) and cut them off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """A new figure of ``width`` x ``height`` inches and its one axes, outside pyplot: no backend is
    chosen or changed and no figure is kept open (``savefig`` renders PNG with Agg)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def scores_per_candidate(table: Any, measures: list[str], path: str | Path) -> Path:
    """Heat-strip of each candidate's rank under each measure, candidates in final order.

    Ranks (1 = closest) make measures on different scales comparable; selected rows are marked.
    """
    ranks = table[measures].rank(method="average")
    fig, ax = _figure(1.2 + 0.7 * len(measures), 1.0 + 0.32 * len(table))
    image = ax.imshow(ranks.values, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(measures)), measures, rotation=45, ha="right")
    labels = [f"{'* ' if d == 'selected' else ''}{c}" for c, d in zip(table.index, table.get("decision", [""] * len(table)))]
    ax.set_yticks(range(len(table)), labels)
    ax.set_title("Rank of each candidate per measure\n(1 = closest; * = selected)", fontsize=9)
    fig.colorbar(image, ax=ax, label="rank")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def rank_correlation(scores: Any) -> tuple[Any, list[str]]:
    """Spearman correlation between the measures (columns) of ``scores`` across candidates (rows),
    and the measures left out because they give every candidate the same value (no ranking, so
    no correlation: NaN)."""
    constant = [m for m in scores.columns if scores[m].nunique(dropna=True) <= 1]
    return scores.drop(columns=constant).rank().corr(), constant


def measure_correlation(scores: Any, path: str | Path) -> Path:
    """Heatmap of :func:`rank_correlation`; the measures left out are named under the title."""
    corr, constant = rank_correlation(scores)
    if corr.empty:  # every measure gives every candidate the same value: a note, not an empty heatmap
        fig, ax = _figure(4.0, 1.2)
        ax.axis("off")
        ax.text(0.5, 0.5, f"No measure ranks the candidates:\nevery one gives them all the same value\n"
                f"({', '.join(constant)})", ha="center", va="center", fontsize=9, wrap=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        return Path(path)
    fig, ax = _figure(1.5 + 0.55 * len(corr), 1.2 + 0.5 * len(corr))
    image = ax.imshow(corr.values, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), corr.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(corr)), corr.index)
    for i in range(len(corr)):
        for j in range(len(corr)):
            ax.text(j, i, f"{corr.values[i, j]:.2f}", ha="center", va="center", fontsize=7)
    note = f"\n(left out, same value for every candidate: {', '.join(constant)})" if constant else ""
    ax.set_title("Spearman correlation between measures" + note, fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def accuracy_per_source(frame: Any, path: str | Path) -> Path:
    """Bar chart of target accuracy per tuned source, the untuned baseline as a line."""
    base = float(frame["accuracy"].iloc[0])
    tuned = frame.iloc[1:]
    fig, ax = _figure(2.0 + 0.8 * len(tuned), 3.2)
    colors = ["tab:green" if g > 0 else "tab:red" for g in tuned["gain"]]
    ax.bar(range(len(tuned)), tuned["accuracy"], color=colors)
    ax.axhline(base, color="black", linestyle="--", label=f"untuned baseline {base:.3f}")
    ax.set_xticks(range(len(tuned)), tuned["source"], rotation=30, ha="right")
    ax.set_ylabel("target accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.set_title("Zero-shot accuracy on the target\nper tuned source", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)
