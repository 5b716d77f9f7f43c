"""The console ending of each command: an answer dict (:mod:`hubselect.pipeline.steps.answers`) as rich text.

Only the rendering lives here; every number and word comes from the answer, so the console and
``--json`` cannot disagree. :func:`render` returns the text (ANSI-coloured when ``color``) at a
given width; the CLI writes it. Warnings come after the tables, apart, one short line each.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Mapping

#: Rows of the ranking shown before "and N more".
TOP = 20
#: The signals of the combined policy, as table columns.
SIGNALS = ("divergence", "prior", "labels", "balance")
#: The headline columns of the benchmark report that fit 100 columns (all of them are in --json).
BENCHMARK_COLUMNS = ("policy", "Spearman", "Regret@1", "Regret@3", "saved@3")

Answer = Mapping[str, Any]


def _num(value: Any, fmt: str = "+.2f") -> str:
    return "-" if value is None else format(float(value), fmt)


def _bold(text: str) -> Any:
    from rich.text import Text

    return Text(text, style="bold")


def _command(text: str) -> Any:
    """A line holding a command: never wrapped, so it copies as one line."""
    from rich.text import Text

    return Text(text, no_wrap=True, overflow="ignore")


def _row(table: Any, *cells: str, style: str | None = None) -> None:
    """Add a row of plain text (a name with brackets is not read as markup)."""
    from rich.text import Text

    table.add_row(*(Text(str(c)) for c in cells), style=style)


def _table(*columns: str, title: str | None = None) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    return Table(*columns, box=box.SIMPLE_HEAD, title=Text(title) if title else None, title_justify="left",
                 title_style="bold", pad_edge=False, show_edge=False)


def _reasons(rows: list[Mapping[str, Any]]) -> Any:
    """``1. dvd: why`` per row, the reason wrapped under itself."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1), pad_edge=True)
    grid.add_column(no_wrap=True)
    grid.add_column()
    for r in rows:
        grid.add_row(Text(f" {r['rank']}. {r['candidate']}:"), Text(r["why"]))
    return grid


def _select(a: Answer) -> list[Any]:
    rows = a["ranking"]
    combined = a["policy"] == "combined"
    weights = f" ({a['weights']})" if combined else ""
    head = (f"{a['target']}: {a['selected']} of {a['candidates']} candidates kept by the {a['policy']} policy"
            f"{weights}")
    table = _table("#", "candidate", *(("score", *SIGNALS) if combined else ("mean rank",)), "decision")
    for r in rows[:TOP]:
        parts = r["contributions"]
        values = ([_num(r["combined_score"]), *(_num(parts.get(s)) for s in SIGNALS)] if combined
                  else [_num(r["mean_rank"], ".2f")])
        kept = r["decision"] == "selected"
        _row(table, str(r["rank"]), r["candidate"], *values, "kept" if kept else "pruned",
             style="bold" if kept else "dim")
    out: list[Any] = [_bold(head), table]
    if len(rows) > TOP:
        out.append(f"... and {len(rows) - TOP} more (all of them: --json, or selection.json in the run's artifacts)")
    out += ["", _bold("Why the kept ones"), _reasons([r for r in rows if r["decision"] == "selected"])]
    out.append(f"Estimated tuning saving: {a['estimated_tuning_saving']:.0%} of the training examples (tuning "
               f"{a['tuning_examples_selected']:,} of {a['tuning_examples_all']:,})")
    return out


def _score(a: Answer) -> list[Any]:
    out: list[Any] = [f"{a['target']}: {a['candidates']} candidates scored; the closest by each kind of measure"]
    for group in a["groups"].values():
        shown = group["measures"][:3]
        more = f"; {len(shown)} shown, all in --json" if len(group["measures"]) > len(shown) else ""
        table = _table("#", "candidate", "mean rank", *shown)
        for r in group["closest"]:
            _row(table, str(r["rank"]), r["candidate"], f"{r['mean_rank']:.1f}",
                 *(f"{r['scores'][m]:.4g}" for m in shown))
        out += ["", _bold(f"By {group['words']} (mean rank over {len(group['measures'])} measures{more})"), table]
    out += [f"Every score (lower = closer): {a['scores_csv']}", _command(f"  download: {a['download']}")]
    return out


def _fetch(a: Answer) -> list[Any]:
    out: list[Any] = [f"{a['target']}: {a['accepted']} of {a['found']} candidates accepted, {a['rejected']} "
                      f"rejected ({a['target_examples']} target texts to score, {a['eval_examples']} labelled "
                      "for evaluation)"]
    if a["rejections"]:
        table = _table("rejected", "why, and the fix")
        table.columns[0].no_wrap = True
        for r in a["rejections"]:
            _row(table, r["candidate"], r["reason"] + (f"\n-> {r['fix']}" if r["fix"] else ""))
        out.append(table)
    if a["pinned"]:
        table = _table("Hub dataset", "pinned revision", title="Hub revisions pinned (reruns read these)")
        for p in a["pinned"]:
            _row(table, p["candidate"], str(p["revision"]))
        out.append(table)
    return out


def _transfer(a: Answer) -> list[Any]:
    evaluated = a["evaluated"]
    columns = ("source", "formulation", "tuning", "held-out acc", *(("target acc", "gain") if evaluated else ()))
    table = _table(*columns)
    for s in a["sources"]:
        tuning = f"{s['train_seconds']:.0f} s" + (" (cached)" if s["from_cache"] else "")
        cells = [s["source"], s["formulation"], tuning, _num(s["holdout_accuracy"], ".3f")]
        if evaluated:
            cells += [_num(s["accuracy"], ".3f"), _num(s["gain"], "+.3f")]
        _row(table, *cells)
    head = f"{a['target']}: {len(a['sources'])} sources tuned" + (", each evaluated on the target" if evaluated else "")
    out: list[Any] = [head, table]
    if a["baseline"]:
        out.append(f"Untuned baseline on the target: accuracy {a['baseline']['accuracy']:.3f} (macro-F1 "
                   f"{a['baseline']['macro_f1']:.3f}); gain = target accuracy - baseline")
    elif a["command"] == "finetune":
        out.append("Target accuracy and gain: hubselect evaluate (same options)")
    return out


def _register(a: Answer) -> list[Any]:
    out: list[Any] = [_bold(f"{a['target']}: registered {a['model_uri']} (version {a['version']}, "
                            f"{a['version_uri']}, alias @{a['alias']})"),
                      f"Champion: {a['source']}, chosen by {a['policy']}: {a['reason']}"]
    if a.get("accuracy") is not None and a.get("baseline_accuracy") is not None:
        out.append(f"Accuracy on the target {a['accuracy']:.3f} against the untuned {a['baseline_accuracy']:.3f} "
                   f"(gain {a['accuracy'] - a['baseline_accuracy']:+.3f})")
    out.append(_command(f"Serve it: {a['serve']}"))
    return out


def _main(a: Answer) -> list[Any]:
    """The story of :meth:`hubselect.pipeline.steps.main.Story.text` as written, but its last line (where to look)."""
    return [_command(line) for line in a["text"].rstrip("\n").splitlines()[:-1]]


def _benchmark(a: Answer) -> list[Any]:
    if not a["headline"]:
        return [f"benchmark run {a['run_id']}: no report yet"]
    columns = [c for c in BENCHMARK_COLUMNS if c in a["headline"][0]]
    table = _table(*columns, title="Headline (mean over targets; [95% CI]; regret in accuracy points)")
    for row in a["headline"]:
        _row(table, *(row[c] for c in columns))
    return [table, f"Report: {a['report']}", "  (every table and column; --json has all of the headline's columns)"]


def _size(n: float) -> str:
    """``n`` bytes in decimal units (``1.5 GB``), as ``--max-size`` reads them."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _when(seconds: float | None) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M") if seconds is not None else "-"


def _count(n: int) -> str:
    return f"{n} {'entry' if n == 1 else 'entries'}"


def _cache(a: Answer) -> list[Any]:
    """``cache``: what was pruned, the totals, and a table of kinds (plain lines, never wrapped)."""
    lines = []
    if a["action"] == "prune":
        lines.append(f"removed {_count(a['removed'])} ({_size(a['removed_bytes'])})"
                     + (f"; kept {a['kept_in_use']} in use by a running job" if a["kept_in_use"] else "")
                     + (f"; swept {a['temporaries_swept']} temporaries of killed jobs" if a["temporaries_swept"] else ""))
    lines.append(f"cache {a['location']}: {_size(a['bytes'])} in {_count(a['entries'])}"
                 + (f", written {_when(a['oldest'])} to {_when(a['newest'])}" if a["entries"] else ""))
    if a["kinds"]:
        lines.append("")
        lines.append(f"{'kind':<12} {'entries':>8} {'size':>10}  {'oldest':<16}  {'newest':<16}")
        for name, kind in sorted(a["kinds"].items()):
            lines.append(f"{name:<12} {kind['entries']:>8} {_size(kind['bytes']):>10}  {_when(kind['oldest']):<16}  "
                         f"{_when(kind['newest']):<16}")
    if a["action"] == "info":
        lines += ["", "prune with: hubselect cache prune --older-than 30d and/or --max-size 5GB"]
    return [_command(line) for line in lines]


RENDERERS: dict[str, Callable[[Answer], list[Any]]] = {
    "fetch": _fetch, "score": _score, "select": _select, "finetune": _transfer, "evaluate": _transfer,
    "register": _register, "main": _main, "benchmark": _benchmark, "cache": _cache}


def _footer(a: Answer) -> list[Any]:
    """Where to look further (``main``: the last line of its story; nothing for ``cache``, which has
    no run), a command a line."""
    if a["command"] == "cache":
        return []
    if a["command"] == "main":
        return [_command(a["text"].rstrip("\n").splitlines()[-1])]
    page = [f"  then open {a['run_page']}"] if a.get("run_page") else []
    lines = [f"See it: {a['ui']}" + ("" if page else f" (run {a['run_id']})"), *page, f"Artifacts: {a['artifacts']}"]
    return [_command(line) for line in lines]


def renderables(answer: Answer) -> list[Any]:
    """What the console shows for ``answer``: the command's tables and lines, warnings apart, where to look."""
    from rich.text import Text

    warnings = [Text(f"warning: {w}", style="yellow") for w in answer.get("warnings", [])]
    body = [*RENDERERS[answer["command"]](answer), *([Text("")] + warnings if warnings else []), *_footer(answer)]
    return [Text(x) if isinstance(x, str) else x for x in body]


def render(answer: Answer, *, width: int = 100, color: bool = False) -> str:
    """The console text of ``answer`` at ``width`` columns (ANSI styles when ``color``)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=io.StringIO(), width=width, force_terminal=color, color_system="standard" if color else None,
                      highlight=False, emoji=False)
    for item in renderables(answer):
        console.print(item, soft_wrap=isinstance(item, Text) and bool(item.no_wrap))  # commands: one line
    return "".join(line.rstrip() + "\n" for line in console.file.getvalue().splitlines())
