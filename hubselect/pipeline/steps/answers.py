"""What each command answers, as a plain dict: the ``--json`` object and what the console shows.

Each ``*_answer`` function reads a step's own output folder (and its upstream folders) and
returns a JSON-ready dict; :mod:`hubselect.pipeline.steps.console` renders the same dict as text, so the
two always agree. The schema of every answer is documented in ``docs/console.md``. Every answer
has ``command``, ``run_id``, ``target``, ``ui`` (the ``mlflow ui`` command), ``run_page`` (the
run's page once the UI runs), ``artifacts`` (the download command) and ``warnings`` (short lines
a user should act on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hubselect.data.entries import Catalog
from hubselect.pipeline.steps.common import CHAMPION, EVALUATION, SCORES, SELECTION, TUNED, read_json, upstream_dir
from hubselect.pipeline.steps.reasons import GROUP_WORDS, explain, group_mean_ranks, measure_groups

#: Candidates shown per measure group by ``score``.
CLOSEST = 10
#: Where ``mlflow ui`` serves by default.
UI_ADDRESS = "http://127.0.0.1:5000"


def _plain(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` and numpy scalars as Python numbers."""
    import math

    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(answer: Mapping[str, Any]) -> str:
    """``answer`` as one line of strict JSON (NaN and infinities as ``null``)."""
    import json

    return json.dumps(_plain(answer), ensure_ascii=False, allow_nan=False, default=str)


def base(command: str, run: Any, target: str | None) -> dict[str, Any]:
    """The fields every answer has; ``run`` is the step's MLflow run (or ``(run_id, experiment_id)``)."""
    from hubselect.pipeline.tracking.runs import ui_command

    run_id, experiment = (run.info.run_id, run.info.experiment_id) if hasattr(run, "info") else run
    page = f"{UI_ADDRESS}/#/experiments/{experiment}/runs/{run_id}" if experiment else ""
    return {"command": command, "run_id": run_id, "target": target, "ui": ui_command(), "run_page": page,
            "artifacts": f"mlflow artifacts download -r {run_id}", "warnings": []}


def catalog_warnings(catalog: Catalog) -> list[str]:
    """Candidates sharing texts with the target, and a target without label names."""
    from hubselect.data.identity import OVERLAP_WARN

    out = [f"{c.name} shares {c.target_overlap:.0%} of its sampled texts with the target (kept): drop it from "
           "--candidates if it holds the target's data" for c in catalog.accepted()
           if c.target_overlap is not None and c.target_overlap >= OVERLAP_WARN]
    if not catalog.target.label_names:
        out.append(f"target '{catalog.target.name}' has no label names: pass --label-names a,b,c (the label "
                   "signals and zero-shot classification need them)")
    return out


def fetch_answer(run: Any, fetch_dir: Path) -> dict[str, Any]:
    """``fetch``: accepted and rejected counts, why each was rejected, the Hub revisions pinned."""
    catalog = Catalog.load(fetch_dir)
    target = catalog.target
    rejections = []
    for c in catalog.rejected():
        reason, sep, fix = c.reason.rpartition(": ")
        rejections.append({"candidate": c.name, "reason": reason if sep else fix, "fix": fix if sep else ""})
    pinned = [{"candidate": c.name, "revision": c.revision, "uri": c.uri}
              for c in catalog.accepted() if c.kind == "hub"]
    if target.kind == "hub":
        pinned.insert(0, {"candidate": f"{target.name} (target)", "revision": target.revision, "uri": target.uri})
    return {**base("fetch", run, target.name), "found": len(catalog.candidates), "accepted": len(catalog.accepted()),
            "rejected": len(rejections), "accepted_candidates": [c.name for c in catalog.accepted()],
            "rejections": rejections, "pinned": pinned, "target_examples": target.score.n,
            "eval_examples": target.eval.n if target.eval else 0, "warnings": catalog_warnings(catalog)}


def score_answer(run: Any, score_dir: Path) -> dict[str, Any]:
    """``score``: the closest candidates per measure group and where ``scores.csv`` is."""
    import pandas as pd

    catalog = Catalog.load(upstream_dir(score_dir, "score", "fetch"))
    scores = pd.read_csv(Path(score_dir) / SCORES, index_col="candidate")
    groups, columns = {}, measure_groups(scores.columns)
    for group, mean in group_mean_ranks(scores, list(scores.columns)).items():
        order = mean.sort_values(kind="stable").index[:CLOSEST]
        measures = columns[group]
        groups[group] = {"words": GROUP_WORDS[group], "measures": measures,
                         "closest": [{"rank": i, "candidate": str(c), "mean_rank": float(mean[c]),
                                      "scores": {m: float(scores.loc[c, m]) for m in measures}}
                                     for i, c in enumerate(order, 1)]}
    answer = base("score", run, catalog.target.name)
    return {**answer, "candidates": len(scores), "groups": groups,
            "scores_csv": f"runs:/{answer['run_id']}/scores.csv",
            "download": f"mlflow artifacts download -u runs:/{answer['run_id']}/scores.csv",
            "warnings": catalog_warnings(catalog)}


def selection_warnings(selection: Mapping[str, Any]) -> list[str]:
    """Candidates the transfer prior has never seen (they get its neutral value)."""
    rows = selection["ranking"]
    unseen = [r["candidate"] for r in rows if r.get("prior_seen") is False]
    if not unseen:
        return []
    shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
    return [f"the transfer prior has never seen {len(unseen)} of {len(rows)} candidates ({shown}): they get its "
            "neutral value; --prior runs:/<benchmark run id> uses a prior that has seen them"]


def select_answer(run: Any, select_dir: Path) -> dict[str, Any]:
    """``select``: every candidate ranked, each signal's contribution, the reasons, the saving."""
    selection = read_json(select_dir, SELECTION)
    catalog = Catalog.load(upstream_dir(select_dir, "select", "fetch"))
    s = selection["summary"]
    keys = ("policy", "k", "weights", "measures", "candidates", "selected", "pruned", "selected_sources",
            "estimated_tuning_saving", "tuning_examples_selected", "tuning_examples_all")
    return {**base("select", run, catalog.target.name), **{k: s.get(k) for k in keys},
            "ranking": explain(selection), "warnings": catalog_warnings(catalog) + selection_warnings(selection)}


def transfer_answer(command: str, run: Any, finetune_dir: Path, evaluation: Mapping[str, Any] | None) -> dict[str, Any]:
    """``finetune`` / ``evaluate``: per source the training time and held-out accuracy, and (with
    an evaluation) the target accuracy and gain against the untuned baseline."""
    catalog = Catalog.load(upstream_dir(finetune_dir, "finetune", "fetch"))
    tuned = read_json(finetune_dir, TUNED)["tuned"]
    pairs = {p["source"]: p for p in (evaluation or {}).get("pairs", [])}
    sources = []
    for t in tuned:
        pair = pairs.get(t["source"], {})
        sources.append({"source": t["source"], "formulation": t["formulation"], "train_seconds": t["train_seconds"],
                        "from_cache": t["from_cache"], "train_examples": t.get("train_examples"),
                        "holdout_accuracy": t.get("best_holdout_accuracy"), "accuracy": pair.get("accuracy"),
                        "macro_f1": pair.get("macro_f1"), "gain": pair.get("gain")})
    baseline = (evaluation or {}).get("baseline")
    warnings = catalog_warnings(catalog)
    if command == "evaluate" and not pairs:
        warnings.append(f"target '{catalog.target.name}' has no labelled evaluation split: no accuracy to report "
                        "(pass --eval-split)")
    return {**base(command, run, catalog.target.name), "evaluated": bool(pairs), "sources": sources,
            "baseline": None if not baseline else {"accuracy": baseline["accuracy"], "macro_f1": baseline["macro_f1"]},
            "warnings": warnings}


def finetune_answer(run: Any, finetune_dir: Path) -> dict[str, Any]:
    """``finetune``: the sources tuned, how long each took and its held-out accuracy."""
    return transfer_answer("finetune", run, finetune_dir, None)


def evaluate_answer(run: Any, evaluate_dir: Path) -> dict[str, Any]:
    """``evaluate``: :func:`transfer_answer` with the target accuracies of ``evaluation.json``."""
    evaluation = read_json(evaluate_dir, EVALUATION)
    return transfer_answer("evaluate", run, upstream_dir(evaluate_dir, "evaluate", "finetune"), evaluation)


def store_uri() -> str:
    """The tracking store as ``mlflow ui`` is told it."""
    from hubselect.pipeline.tracking.runs import ui_command

    return ui_command().rpartition(" ")[2]


def register_answer(run: Any, register_dir: Path) -> dict[str, Any]:
    """``register``: the model URI and alias, why it won, and the command that serves it."""
    c = read_json(register_dir, CHAMPION)
    catalog = Catalog.load(upstream_dir(register_dir, "register", "fetch"))
    uri = c.get("uri") or f"models:/{c['registered_model']}@{c['alias']}"
    keys = ("registered_model", "version", "alias", "source", "policy", "reason", "accuracy", "baseline_accuracy",
            "gain")
    return {**base("register", run, catalog.target.name), **{k: c.get(k) for k in keys}, "model_uri": uri,
            "version_uri": f"models:/{c['registered_model']}/{c['version']}",
            "serve": f"MLFLOW_TRACKING_URI={store_uri()} mlflow models serve -m {uri} --env-manager local "
                     "-h 127.0.0.1 -p 5001", "warnings": catalog_warnings(catalog)}


def main_answer(run: Any, story: Any) -> dict[str, Any]:
    """``main``: the chosen sources and why, the champion, the registered model, the saving."""
    answer = base("main", run, story.catalog.target.name)
    return {**answer, "chosen": [r for r in explain(story.selection) if r["decision"] == "selected"],
            "champion": story.champion, "headline": story.headline(), "model_uri": story.model_uri(),
            "runtime_saving": story.saving, "text": story.text(answer["run_id"]),
            "warnings": catalog_warnings(story.catalog) + selection_warnings(story.selection)}


def benchmark_answer(run_id: str, report_dir: Path) -> dict[str, Any]:
    """``benchmark``: the report's headline table (read from ``report.md``) and where the report is."""
    report = Path(report_dir) / "report.md"
    answer = {**base("benchmark", (run_id, ""), None), "report": str(report) if report.exists() else None,
              "headline": []}
    if not report.exists():
        answer["warnings"] = ["this shard is done; run the same command without --shard to assemble the report"]
        return answer
    lines = report.read_text(encoding="utf-8").split("## Headline", 1)[-1].splitlines()
    table = _first_table(lines)
    if len(table) > 2:
        header = [cell.strip() for cell in table[0].strip("|").split("|")]
        header[0] = header[0] or "policy"
        answer["headline"] = [dict(zip(header, (cell.strip() for cell in row.strip("|").split("|"))))
                              for row in table[2:]]
    return answer


def cache_answer(action: str, older_than: float | None = None, max_bytes: int | None = None) -> dict[str, Any]:
    """``cache info|prune``: the cache's location, and its entries per kind (after pruning, for
    ``prune``, with what it removed and kept)."""
    from hubselect.core.cache import cache_dir, cache_entries, prune_cache

    answer: dict[str, Any] = {"command": "cache", "action": action, "location": str(cache_dir())}
    if action == "prune":
        pruned = prune_cache(older_than=older_than, max_bytes=max_bytes)
        entries = list(pruned.left)
        answer.update(removed=len(pruned.removed), removed_bytes=sum(e.size for e in pruned.removed),
                      kept_in_use=len(pruned.in_use), temporaries_swept=pruned.temporaries)
    else:
        entries = cache_entries()
    kinds: dict[str, dict[str, Any]] = {}
    for entry in entries:  # oldest first
        kind = kinds.setdefault(entry.kind, {"entries": 0, "bytes": 0, "oldest": entry.written})
        kind.update(entries=kind["entries"] + 1, bytes=kind["bytes"] + entry.size, newest=entry.written)
    answer.update(entries=len(entries), bytes=sum(e.size for e in entries),
                  oldest=entries[0].written if entries else None, newest=entries[-1].written if entries else None,
                  kinds=kinds)
    return answer


def _first_table(lines: list[str]) -> list[str]:
    """The lines of the first Markdown table in ``lines``."""
    out: list[str] = []
    for line in lines:
        if line.startswith("|"):
            out.append(line.strip())
        elif out:
            break
    return out

