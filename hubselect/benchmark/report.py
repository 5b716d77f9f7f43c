"""Benchmark artifacts: matrix CSVs and heatmap, per-policy tables, scatter plots, the
regret/runtime curve, and one Markdown + HTML report collecting them.

Layout written by :func:`write_report`::

    pairs.csv                    one row per pair (accuracy, macro-F1, gain, costs, divergences)
    matrix_accuracy.csv          target x source accuracy (and matrix_macro_f1.csv, matrix_gain.csv)
    per_target_metrics.csv       every policy x target x metric
    policies.csv                 the mean of every metric per policy, with bootstrap CIs
    tables/<policy>.csv          one table per measure / policy (rows: targets; ':' written as '_')
    regret_curve.csv             mean Regret@k and runtime saved at k = 1..N per policy
    plots/matrix_accuracy.png    heatmap of the matrix
    plots/scatter/<measure>.png  divergence against accuracy, one colour per target
    plots/regret_vs_saving.png   the curve of regret against runtime saved
    report.md, report.html       the report
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any, Sequence

logger = logging.getLogger(__name__)


def _figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure and its axes, drawn with matplotlib's object API (no pyplot, no global backend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def write_matrices(pairs: Any, out: Path) -> dict[str, Any]:
    """``matrix_<metric>.csv`` (rows: targets, columns: sources) for accuracy, macro-F1 and gain."""
    mats = {}
    for metric in ("accuracy", "macro_f1", "gain"):
        mats[metric] = pairs.pivot(index="target", columns="source", values=metric).sort_index().sort_index(axis=1)
        mats[metric].to_csv(out / f"matrix_{metric}.csv", float_format="%.4f")
    return mats


def heatmap(matrix: Any, baselines: Any, path: Path) -> Path:
    """Heatmap of target accuracy (rows: targets, columns: sources), the baseline as last column."""
    import numpy as np

    values = matrix.copy()
    values["(untuned)"] = baselines.reindex(values.index)
    fig, ax = _figure((2 + 0.55 * values.shape[1], 1.5 + 0.42 * values.shape[0]))
    image = ax.imshow(values.values * 100, cmap="viridis", aspect="auto")
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=60, ha="right")
    ax.set_yticks(range(values.shape[0]), values.index)
    for (i, j), v in np.ndenumerate(values.values):
        if np.isfinite(v):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xlabel("source (tuned on)")
    ax.set_ylabel("target (evaluated on)")
    ax.set_title("Zero-shot target accuracy (%) after tuning on each source")
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def scatter_plots(pairs: Any, measures: Sequence[str], folder: Path) -> list[Path]:
    """One scatter per measure: divergence (z-scored within target) against target accuracy."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in measures:
        fig, ax = _figure((5.5, 4))
        for target, g in pairs.groupby("target"):
            d = g[f"d_{m}"]
            z = (d - d.mean()) / (d.std(ddof=0) or 1.0)
            ax.scatter(z, 100 * g["accuracy"], s=12, label=target)
        ax.set_xlabel(f"{m} divergence (z-score within target; left = closer)")
        ax.set_ylabel("target accuracy (%)")
        ax.set_title(f"{m}: divergence vs accuracy")
        if pairs["target"].nunique() <= 16:
            ax.legend(fontsize=5, ncol=2, loc="best")
        fig.tight_layout()
        path = folder / f"{m}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def curve_plot(curve: Any, policies: Sequence[str], path: Path) -> Path:
    """Mean Regret@k against mean runtime saved, one line per policy (points are k = 1..N)."""
    fig, ax = _figure((6.5, 4.5))
    for name in policies:
        c = curve[curve["policy"] == name].sort_values("k")
        if len(c):
            ax.plot(100 * c["saving"], c["regret"], marker="o", ms=3, label=name)
    ax.set_xlabel("end-to-end runtime saved (%)")
    ax.set_ylabel("Regret@k (accuracy points)")
    ax.set_title("Regret against runtime saved (k = 1..N, right = smaller k)")
    ax.axhline(0.5, color="grey", lw=0.6, ls="--")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _fmt(v: Any, digits: int = 2) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "–" if f != f else f"{f:.{digits}f}"


def markdown_table(frame: Any, digits: int = 2, index: bool = True) -> str:
    """A pipe table of ``frame`` (no dependency on tabulate)."""
    cols = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = ([str(idx)] if index else []) + [_fmt(v, digits) for v in row.values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_table(summary: Any, order: Sequence[str]) -> Any:
    """Measure/policy, Spearman [CI], Regret@1 [CI], Regret@3 [CI], runtime saved at k=1 and 3."""
    import pandas as pd

    rows = []
    for name in order:
        if name not in summary.index:
            continue
        s = summary.loc[name]

        def ci(col: str, scale: float = 1.0) -> str:
            lo, hi = s.get(f"{col}_lo"), s.get(f"{col}_hi")
            return f"{_fmt(s[col] * scale)} [{_fmt(lo * scale)}, {_fmt(hi * scale)}]" if lo is not None else _fmt(s[col])

        rows.append({"policy": name, "Spearman": ci("spearman"), "Kendall": _fmt(s["kendall"]),
                     "Regret@1": ci("regret@1"), "Regret@3": ci("regret@3"), "NDCG@3": _fmt(s["ndcg@3"]),
                     "pairwise": _fmt(s["pairwise"]), "P/R gain@3": f"{_fmt(s['precision_gain@3'])}/{_fmt(s['recall_gain@3'])}",
                     "P/R >median@3": f"{_fmt(s['precision_median@3'])}/{_fmt(s['recall_median@3'])}",
                     "saved@1": f"{100 * s['saving@1']:.0f}%", "saved@3": f"{100 * s['saving@3']:.0f}%"})
    return pd.DataFrame(rows).set_index("policy")


def _html(markdown: str) -> str:
    """A small Markdown-to-HTML conversion for the report (headings, tables, images, code, text)."""
    out, table, code = [], [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            out.append("</pre>" if code else "<pre>")
            code = not code
            continue
        if code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                table.append(cells)
            continue
        if table:
            head, *body = table
            out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</table>")
            table = []
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("![") and "](" in line:
            alt, src = line[2:].split("](", 1)
            out.append(f'<p><img src="{html.escape(src.rstrip(")"))}" alt="{html.escape(alt)}" style="max-width:100%"></p>')
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if table:
        out.append(_html("\n".join("| " + " | ".join(r) + " |" for r in table) + "\n\n"))
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}" \
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>\n" \
           + "\n".join(out) + "\n</body></html>\n"


def write_report(out: Path, *, title: str, context: dict[str, Any], pairs: Any, baselines: Any, per_target: Any,
                 summary: Any, curve: Any, measures: Sequence[str], order: Sequence[str],
                 unusable: dict[str, str], notes: Sequence[str] = ()) -> Path:
    """Write every artifact into ``out`` and return the path of ``report.md``."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    pairs.to_csv(out / "pairs.csv", index=False, float_format="%.6g")
    mats = write_matrices(pairs, out)
    per_target.to_csv(out / "per_target_metrics.csv", index=False, float_format="%.4f")
    summary.to_csv(out / "policies.csv", float_format="%.4f")
    curve.to_csv(out / "regret_curve.csv", index=False, float_format="%.4f")
    for name, g in per_target.groupby("policy"):
        safe = name.replace(":", "_")  # no ':' in file names (Windows checkouts)
        g.drop(columns="policy").set_index("target").to_csv(out / "tables" / f"{safe}.csv", float_format="%.4f")
    heatmap(mats["accuracy"], baselines, out / "plots" / "matrix_accuracy.png")
    scatter_plots(pairs, measures, out / "plots" / "scatter")
    present = set(curve["policy"])
    shown = [p for p in order if p in present and p not in ("random", "oracle")][:6]
    shown += [p for p in ("random", "oracle") if p in present]
    curve_plot(curve, shown, out / "plots" / "regret_vs_saving.png")

    head = headline_table(summary, order)
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: " + (", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else str(v))
              for k, v in context.items()]
    lines += ["", "## Headline", "",
              "Mean over targets; [95% bootstrap CI over targets]. Regret in accuracy points; runtime saved is "
              "end-to-end for one target and N candidates (score all + tune/evaluate k, against tune/evaluate all N).", "",
              markdown_table(head), ""]
    lines += [f"- {n}" for n in notes]
    if unusable:
        lines += ["", "## Tasks left out", ""] + [f"- {k}: {v}" for k, v in unusable.items()]
    acc = mats["accuracy"].copy() * 100
    acc["(untuned)"] = baselines.reindex(acc.index) * 100
    lines += ["", "## Transfer matrix (accuracy %, rows = targets, columns = sources)", "",
              markdown_table(acc, 1), "", "![matrix](plots/matrix_accuracy.png)", "",
              "## Regret against runtime saved", "",
              "Mean Regret@k (accuracy points) by k; runtime saved per k in `regret_curve.csv`.", "",
              markdown_table(curve.pivot(index="k", columns="policy", values="regret")[shown]), "",
              "![curve](plots/regret_vs_saving.png)", "", "## Per measure and policy (all metrics, means)", "",
              markdown_table(summary[[c for c in summary.columns if not c.endswith(("_lo", "_hi"))]].loc[
                  [p for p in order if p in summary.index]].T, 2), "",
              "Per-target tables: `tables/<policy>.csv`. Scatter plots:", ""]
    lines += [f"![{m}](plots/scatter/{m}.png)" for m in measures]
    md = "\n".join(lines) + "\n"
    (out / "report.md").write_text(md, encoding="utf-8")
    (out / "report.html").write_text(_html(md), encoding="utf-8")
    return out / "report.md"
