"""The brute-force transfer matrix: every task as a source, evaluated on every other task.

For each task taken as the target, the usual pipeline functions run with every other task as
a candidate: :func:`hubselect.hub.catalog.fetch` (samples, cached), :func:`hubselect.scoring.score`
(every divergence measure, representations cached), :func:`hubselect.transfer.tune_selected`
(each source tuned once: the model cache is keyed by source revision, sample and settings, not
by the target) and :func:`hubselect.transfer.evaluate_pairs` (baseline and every pair, each
evaluation cached). So the matrix costs one tuning per source and one evaluation per pair.

Output folder layout::

    benchmark.json          the settings and task list; a resumed benchmark must match it
    fetch/<target>/         the fetch step's output with that task as the target
    targets/<target>.json   one finished target: baseline, pairs, scores, score timings

A finished target's JSON is written last and atomically, so a killed benchmark rerun with the
same settings skips finished targets, and finished pairs of the interrupted target come from
the evaluation cache.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hubselect.cache import atomic_write_json
from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

#: Version of the benchmark folder layout (part of the settings compared on resume).
FORMAT_VERSION = 1
MIN_TASKS = 3
SETTINGS_FILE = "benchmark.json"


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of one benchmark.

    Attributes:
        tasks: Catalog folder(s), task paths, ``demo`` or Hub ids, comma-separated (as
            ``--candidates`` of the fetch step).
        sample_size: Training examples sampled per source.
        target_sample_size: Unlabelled target texts sampled for scoring.
        eval_size: Labelled target examples evaluated per pair.
        seed: Sampling seed (the tuning seed is ``transfer.finetune.seed``).
        score: :class:`hubselect.scoring.ScoreConfig` (measures, encoder settings).
        transfer: :class:`hubselect.transfer.TransferConfig` (fine-tuning settings).
        only: Task names to keep (empty = all), e.g. for the ``--quick`` preset.
    """

    tasks: str
    score: Any
    transfer: Any
    sample_size: int = 500
    target_sample_size: int = 500
    eval_size: int = 400
    seed: int = 0
    only: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("sample_size", "target_sample_size", "eval_size"):
            if getattr(self, name) < 1:
                raise HubselectError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")


def settings_of(cfg: BenchmarkConfig, tasks: list[dict]) -> dict[str, Any]:
    """The flat settings that decide the results (compared on resume) plus the task list."""
    from hubselect.steps import score_params
    from hubselect.transfer import transfer_params

    transfer = {k: v for k, v in transfer_params(cfg.transfer).items() if k not in ("champion", "registered_model_name")}
    settings = {"format_version": FORMAT_VERSION, "tasks": cfg.tasks, "sample_size": cfg.sample_size,
                "target_sample_size": cfg.target_sample_size, "eval_size": cfg.eval_size, "seed": cfg.seed,
                "train_seed": cfg.transfer.finetune.seed, **score_params(cfg.score), **transfer,
                "task_names": ",".join(t["name"] for t in tasks)}
    return {k: ("" if v is None else v) for k, v in settings.items()}


def check_resume(out_dir: Path, settings: dict[str, Any]) -> None:
    """Write ``benchmark.json``, or refuse when the one there holds other settings.

    Raises:
        HubselectError: naming every differing setting with both values.
    """
    path = Path(out_dir) / SETTINGS_FILE
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8")).get("settings", {})
        keys = sorted(set(old) | set(settings))
        diff = [k for k in keys if str(old.get(k, "<unset>")) != str(settings.get(k, "<unset>"))]
        if diff:
            shown = "; ".join(f"{k}: finished {old.get(k, '<unset>')!s:.60} vs now {settings.get(k, '<unset>')!s:.60}"
                              for k in diff)
            raise HubselectError(f"'{out_dir}' holds a benchmark with other settings ({shown}): refusing to mix; "
                                 "rerun with the finished settings or choose another --output folder")
        return
    atomic_write_json(path, {"settings": settings, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def list_tasks(cfg: BenchmarkConfig) -> list[dict]:
    """Expand ``cfg.tasks`` into ``[{name, ref}]`` (filtered by ``cfg.only``).

    Raises:
        HubselectError: an unknown name in ``only``, or fewer than :data:`MIN_TASKS` tasks.
    """
    from hubselect.hub.catalog import expand_candidates

    refs = expand_candidates(cfg.tasks)
    if cfg.only:
        names = {r.name for r in refs}
        unknown = [n for n in cfg.only if n not in names]
        if unknown:
            raise HubselectError(f"task '{unknown[0]}' is not in '{cfg.tasks}' (tasks: {', '.join(sorted(names))})")
        refs = [r for r in refs if r.name in cfg.only]
    if len(refs) < MIN_TASKS:
        raise HubselectError(f"a benchmark needs at least {MIN_TASKS} tasks, '{cfg.tasks}' gives {len(refs)}"
                             f"{' (' + ', '.join(r.name for r in refs) + ')' if refs else ''}: add tasks")
    return [{"name": r.name, "ref": str(r)} for r in refs]


def _fetch_target(cfg: BenchmarkConfig, task: dict, tasks: list[dict], out: Path) -> dict:
    from hubselect.hub.catalog import FetchConfig, fetch, load_catalog

    if (out / "catalog.json").exists():
        return load_catalog(out)
    fetch_cfg = FetchConfig(target=task["ref"], candidates=",".join(t["ref"] for t in tasks),
                            sample_size=cfg.sample_size, target_sample_size=cfg.target_sample_size,
                            eval_size=cfg.eval_size, seed=cfg.seed)
    return fetch(fetch_cfg, out)


def _unlabelled_reason(catalog: dict) -> str:
    target = catalog["target"]
    if not target.get("eval"):
        return f"no labelled evaluation split (splits: {', '.join(target.get('splits') or [])})"
    if not target.get("label_names"):
        return "the evaluation split has no label names"
    return ""


def run_target(cfg: BenchmarkConfig, task: dict, tasks: list[dict], out_dir: Path, *, quiet: bool = True) -> dict:
    """Fetch, score, tune (cached) and evaluate every other task on ``task``; return its record."""
    from hubselect.hub.catalog import accepted
    from hubselect.scoring import score
    from hubselect.transfer import evaluate_pairs, tune_selected

    start = time.perf_counter()
    fetch_dir = out_dir / "fetch" / task["name"]
    catalog = _fetch_target(cfg, task, tasks, fetch_dir)
    rejected = {c["name"]: c["reason"] for c in catalog["candidates"] if c["status"] != "ok"}
    reason = _unlabelled_reason(catalog)
    record: dict[str, Any] = {"target": task["name"], "target_revision": catalog["target"]["revision"],
                              "label_names": catalog["target"].get("label_names"), "rejected_sources": rejected}
    if reason or not accepted(catalog):
        record.update(scored=False, reason=reason or "no usable source")
        return record
    scored = score(catalog, fetch_dir, cfg.score)
    tuned = tune_selected(catalog, fetch_dir, [c["name"] for c in accepted(catalog)], cfg.transfer, quiet=quiet)
    evaluation = evaluate_pairs(catalog, fetch_dir, tuned, cfg.transfer, quiet=quiet)
    record.update(scored=True, reason="", baseline={k: evaluation["baseline"][k] for k in ("accuracy", "macro_f1")},
                  baseline_seconds=evaluation["baseline"].get("seconds"), eval_n=catalog["target"]["eval"]["n"],
                  scores=scored.scores.to_dict(orient="index"), score_timings=scored.timings,
                  score_cached=scored.cached, embed_sets=len(accepted(catalog)) + 1,
                  pairs=[{k: p[k] for k in ("source", "source_revision", "formulation", "key", "accuracy", "macro_f1",
                                            "gain", "train_seconds", "eval_seconds", "train_examples", "from_cache",
                                            "eval_from_cache", "per_class")} for p in evaluation["pairs"]],
                  seconds=time.perf_counter() - start)
    return record


def source_features_frame(out_dir: Path, tasks: list[dict]) -> Any:
    """Features of each task as a source, read from its sample in any target's fetch folder."""
    import pandas as pd

    from hubselect.benchmark.learned import source_features

    rows = {}
    for folder in sorted((Path(out_dir) / "fetch").iterdir()):
        catalog = json.loads((folder / "catalog.json").read_text(encoding="utf-8"))
        for cand in catalog["candidates"]:
            if cand["status"] == "ok" and cand["name"] not in rows:
                frame = pd.read_parquet(folder / cand["sample"])
                rows[cand["name"]] = source_features(frame["text"].tolist(), frame["label"].tolist(),
                                                     cand.get("rows_total"))
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("source")


def build_matrix(cfg: BenchmarkConfig, out_dir: str | Path, *, quiet: bool = True,
                 on_target: Callable[[dict, bool], None] | None = None) -> dict:
    """Run (or resume) the benchmark into ``out_dir``; return ``{settings, tasks, targets}``.

    ``on_target(record, resumed)`` is called after each target (e.g. to log its pair runs).

    Raises:
        HubselectError: fewer than three tasks, settings differing from a finished benchmark in
            ``out_dir``, or fewer than three tasks usable as scored targets.
    """
    tasks = list_tasks(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_of(cfg, tasks)
    check_resume(out_dir, settings)
    records = []
    for i, task in enumerate(tasks, 1):
        path = out_dir / "targets" / f"{task['name']}.json"
        resumed = path.exists()
        if resumed:
            record = json.loads(path.read_text(encoding="utf-8"))
            logger.info("target %d/%d %s: finished before, skipped", i, len(tasks), task["name"])
        else:
            record = run_target(cfg, task, tasks, out_dir, quiet=quiet)
            atomic_write_json(path, record)
            logger.info("target %d/%d %s: %s in %.0f s", i, len(tasks), task["name"],
                        f"{len(record['pairs'])} pairs" if record["scored"] else f"not scored ({record['reason']})",
                        record.get("seconds", 0.0))
        records.append(record)
        if on_target:
            on_target(record, resumed)
    skipped = [r for r in records if not r["scored"]]
    for r in skipped:
        logger.warning("task %s cannot be a scored target: %s", r["target"], r["reason"])
    if len(records) - len(skipped) < MIN_TASKS:
        raise HubselectError(f"only {len(records) - len(skipped)} of {len(records)} tasks have labels to evaluate on "
                             f"(unlabelled: {', '.join(r['target'] for r in skipped)}): a benchmark needs {MIN_TASKS}")
    return {"settings": settings, "tasks": tasks, "targets": records}


def pairs_frame(matrix: dict) -> Any:
    """One row per scored pair: target, source, accuracy, macro-F1, gain, costs and every measure."""
    import pandas as pd

    rows = []
    for rec in matrix["targets"]:
        if not rec["scored"]:
            continue
        for p in rec["pairs"]:
            row = {"target": rec["target"], "source": p["source"], "accuracy": p["accuracy"], "macro_f1": p["macro_f1"],
                   "gain": p["gain"], "baseline_accuracy": rec["baseline"]["accuracy"],
                   "train_seconds": p["train_seconds"], "eval_seconds": p["eval_seconds"],
                   "formulation": p["formulation"], "train_examples": p["train_examples"], "eval_n": rec["eval_n"]}
            row.update({f"d_{m}": v for m, v in rec["scores"].get(p["source"], {}).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def unusable_tasks(matrix: dict) -> dict[str, str]:
    """Tasks that could not be scored targets or sources, with the reason."""
    out = {r["target"]: f"not a target: {r['reason']}" for r in matrix["targets"] if not r["scored"]}
    for r in matrix["targets"]:
        for name, reason in r.get("rejected_sources", {}).items():
            out.setdefault(name, f"not a source: {reason}")
    return out


def retune_pairs(cfg: BenchmarkConfig, out_dir: str | Path, target: str, sources: list[str], seed: int, *,
                 quiet: bool = True) -> list[dict]:
    """Tune ``sources`` again with another training ``seed`` and evaluate them on ``target``.

    Uses the finished benchmark's fetch folder of ``target``; both steps are cached like the
    main matrix. Returns ``[{target, source, seed, accuracy, macro_f1}]``.
    """
    from dataclasses import replace

    from hubselect.hub.catalog import load_catalog
    from hubselect.transfer import evaluate_pairs, tune_selected

    fetch_dir = Path(out_dir) / "fetch" / target
    catalog = load_catalog(fetch_dir)
    transfer = replace(cfg.transfer, finetune=replace(cfg.transfer.finetune, seed=seed))
    tuned = tune_selected(catalog, fetch_dir, sources, transfer, quiet=quiet)
    evaluation = evaluate_pairs(catalog, fetch_dir, tuned, transfer, quiet=quiet)
    return [{"target": target, "source": p["source"], "seed": seed, "accuracy": p["accuracy"],
             "macro_f1": p["macro_f1"]} for p in evaluation["pairs"]]
