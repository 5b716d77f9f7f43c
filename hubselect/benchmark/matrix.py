"""The brute-force transfer matrix: every task as a source, evaluated on every other task.

For each task taken as the target, the usual pipeline functions run with every other task as
a candidate: :func:`hubselect.data.catalog.fetch` (samples, cached), :func:`hubselect.scoring.scores.score`
(every divergence measure, representations cached), :func:`hubselect.models.transfer.tune_selected`
(each source tuned once: the model cache is keyed by source revision, sample and settings, not
by the target) and :func:`hubselect.models.transfer.evaluate_pairs` (baseline and every pair, each
evaluation cached). So the matrix costs one tuning per source and one evaluation per pair.

Output folder layout::

    benchmark.json          the settings and task list; a resumed benchmark must match it
    fetch/<target>/         the fetch step's output with that task as the target
    prepared/<target>.json  the target's label names and every candidate's divergences
    models/<stem>.json      one tuned model (source, seed, formulation): revision, key, seconds
    pairs/<target>/<stem>.json  one evaluated pair (``.npy`` beside it: texts x labels scores)
    baseline/<target>.json  the untuned encoder on that target (its own folder, so no task name
                            can collide with it)
    holdout/<stem>.json     the tuned model on its source's held-out slice
    targets/<target>.json   one finished target: baseline, pairs, scores, score timings

``<stem>`` is ``<source>.s<seed>.<formulation>``. Every file is written atomically and the
JSON records are small, so a benchmark folder without its ``fetch/`` samples, ``.npy`` scores
and the model cache (for example one committed to a repository) still resumes: a model whose
record and every pair exist is not tuned again, and only missing pairs are evaluated.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hubselect.core.cache import atomic_write_json
from hubselect.core.errors import HubselectError
from hubselect.data.entries import CATALOG_FILE, Catalog, TaskEntry, read_frame

logger = logging.getLogger(__name__)

#: Version of the benchmark folder layout (part of the settings compared on resume).
FORMAT_VERSION = 2
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
        seeds: Tuning seeds per source (``transfer.finetune.seed`` + 0..seeds-1); the ground
            truth is the mean over seeds, and two halves of the seeds give test-retest
            reliability.
        score: :class:`hubselect.scoring.scores.ScoreConfig` (measures, encoder settings).
        transfer: :class:`hubselect.models.transfer.TransferConfig` (fine-tuning settings).
        only: Task names to keep (empty = all), e.g. for the ``--quick`` preset.
        shard: ``(i, n)``: this process prepares and tunes every n-th target and model starting
            at i (for n processes sharing a machine or a disk); only ``n == 1`` assembles the
            records, so run once more without a shard when the shards are done. Not a setting:
            results do not depend on it.
    """

    tasks: str
    score: Any
    transfer: Any
    sample_size: int = 500
    target_sample_size: int = 500
    eval_size: int = 400
    seed: int = 0
    seeds: int = 1
    only: tuple[str, ...] = field(default_factory=tuple)
    shard: tuple[int, int] = (0, 1)

    def __post_init__(self) -> None:
        for name in ("sample_size", "target_sample_size", "eval_size", "seeds"):
            if getattr(self, name) < 1:
                raise HubselectError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        i, n = self.shard
        if not 0 <= i < n:
            raise HubselectError(f"shard {i}/{n} is not i/n with 0 <= i < n: write e.g. --shard 0/2")


class ShardDone(HubselectError):
    """A sharded benchmark process finished its share (not an error of the input)."""


def settings_of(cfg: BenchmarkConfig, tasks: list[dict]) -> dict[str, Any]:
    """The flat settings that decide the results (compared on resume) plus the task list."""
    transfer = cfg.transfer.pair_params()
    settings = {"format_version": FORMAT_VERSION, "tasks": cfg.tasks, "sample_size": cfg.sample_size,
                "target_sample_size": cfg.target_sample_size, "eval_size": cfg.eval_size, "seed": cfg.seed, "seeds": cfg.seeds,
                "train_seed": cfg.transfer.finetune.seed, **cfg.score.params(), **transfer,
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
    from hubselect.data.catalog import expand_candidates

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


def _fetch_target(cfg: BenchmarkConfig, task: dict, tasks: list[dict], out: Path) -> Catalog:
    from hubselect.data.catalog import FetchConfig, fetch

    if (out / CATALOG_FILE).exists():
        return Catalog.load(out)
    fetch_cfg = FetchConfig(target=task["ref"], candidates=",".join(t["ref"] for t in tasks),
                            sample_size=cfg.sample_size, target_sample_size=cfg.target_sample_size,
                            eval_size=cfg.eval_size, seed=cfg.seed)
    return fetch(fetch_cfg, out)


def _unlabelled_reason(catalog: Catalog) -> str:
    target = catalog.target
    if not target.eval:
        return f"no labelled evaluation split (splits: {', '.join(target.splits)})"
    if not target.label_names:
        return "the evaluation split has no label names"
    return ""


def target_catalog_dir(out_dir: Path, target: str) -> Path:
    """The fetch folder of ``target`` inside a benchmark output folder (its ``catalog.json``)."""
    return Path(out_dir) / "fetch" / target


def prepare_target(cfg: BenchmarkConfig, task: dict, tasks: list[dict], out_dir: Path) -> dict:
    """Fetch and score every other task against ``task`` (cached in ``prepared/<name>.json``)."""
    from hubselect.scoring.scores import score

    path = out_dir / "prepared" / f"{task['name']}.json"
    fetch_dir = target_catalog_dir(out_dir, task["name"])
    catalog = _fetch_target(cfg, task, tasks, fetch_dir)  # samples again where only records were kept
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    reason = _unlabelled_reason(catalog)
    names = catalog.target.label_names
    record: dict[str, Any] = {"target": task["name"], "target_revision": catalog.target.revision,
                              "label_names": None if names is None else list(names),
                              "rejected_sources": {c.name: c.reason for c in catalog.rejected()}}
    if reason or not catalog.accepted():
        record.update(scored=False, reason=reason or "no usable source")
    else:
        start = time.perf_counter()
        scored = score(catalog, cfg.score)
        record.update(scored=True, reason="", eval_n=catalog.target.eval.n,
                      scores=scored.scores.to_dict(orient="index"), score_timings=scored.timings,
                      score_cached=scored.cached, embed_sets=len(catalog.accepted()) + 1,
                      score_seconds=time.perf_counter() - start)
    atomic_write_json(path, record)
    return record


def _source_entries(out_dir: Path, prepared: list[dict]) -> dict[str, tuple[TaskEntry, Path]]:
    """Each usable source's catalog entry and its sample (from the first target's fetch folder)."""
    out: dict[str, tuple[TaskEntry, Path]] = {}
    for rec in prepared:
        catalog = Catalog.load(target_catalog_dir(out_dir, rec["target"]))
        for entry in catalog.accepted():
            out.setdefault(entry.name, (entry, catalog.path(entry)))
    return out


def _formulation(cfg: BenchmarkConfig, source_labels: list[str], target_labels: list[str]) -> str:
    from hubselect.models.zeroshot import choose_formulation

    return choose_formulation(source_labels, target_labels, cfg.transfer.finetune.formulation, cfg.transfer.mapping)


def _source_labels(entry: TaskEntry, frame: Any) -> list[str]:
    return list(entry.label_names or sorted(frame["label"].astype(str).unique()))


def tune_source(cfg: BenchmarkConfig, entry: TaskEntry, sample: Path, seed: int, formulation: str, *,
                quiet: bool = True) -> dict:
    """Tune one source with one seed and formulation (cached by the model cache); its record."""
    from dataclasses import replace

    from hubselect.models.training import finetune

    frame = read_frame(sample, ["text", "label"])
    ft = replace(cfg.transfer.finetune, seed=seed)
    tuned = finetune(entry.name, entry.revision, frame["text"].tolist(), frame["label"].tolist(),
                     _source_labels(entry, frame), ft, formulation=formulation,
                     descriptions=cfg.transfer.descriptions, progress=not quiet)
    return {"source": entry.name, "source_revision": entry.revision, "seed": seed,
            "formulation": formulation, "path": tuned.path, "key": tuned.key, "from_cache": tuned.from_cache,
            "train_seconds": tuned.train_seconds, "train_examples": tuned.examples_used,
            "best_holdout_accuracy": tuned.best_holdout_accuracy}


def model_stem(model: dict) -> str:
    """``<source>.s<seed>.<formulation>``: the file stem of one tuned model's records."""
    return f"{model['source']}.s{model['seed']}.{model['formulation']}"


def _eval_paths(out_dir: Path, target: str, model: dict | None) -> tuple[Path, Path]:
    """Where a pair's record and raw scores go; ``model`` None: the untuned baseline."""
    base = out_dir / "baseline" / target if model is None else out_dir / "pairs" / target / model_stem(model)
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".npy")


def target_eval_data(out_dir: Path, rec: dict) -> tuple[list[str], list[str]]:
    catalog = Catalog.load(target_catalog_dir(out_dir, rec["target"]))
    frame = read_frame(catalog.path(catalog.target.eval), ["text", "label"])
    return frame["text"].astype(str).tolist(), frame["label"].tolist()


def _save_pair(json_path: Path, npy_path: Path, result: Any, scores: Any, extra: dict) -> dict:
    import numpy as np

    from hubselect.core.cache import atomic_path

    npy_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(npy_path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, scores.astype(np.float16))
    record = {**extra, **result.to_dict()}
    atomic_write_json(json_path, record)
    return record


def evaluate_model(cfg: BenchmarkConfig, model: dict | None, targets: list[dict], out_dir: Path) -> dict[str, dict]:
    """Evaluate one tuned model (``None``: the untuned baseline) on every target it serves.

    The weights are loaded once and each target's texts encoded once; per pair the result
    (``pairs/<target>/<source>.s<seed>.<formulation>.json``) and the raw scores (``.npy``, texts x
    target labels) are written atomically, so a resumed run only evaluates missing pairs.
    """
    from hubselect.data.encoder import resolve_model
    from hubselect.models.evaluation import score_texts
    from hubselect.models.zeroshot import load_classifier

    tag = model or {"source": "", "seed": 0, "formulation": "description"}
    results, todo = {}, []
    for rec in targets:
        json_path, _ = _eval_paths(out_dir, rec["target"], model)
        if json_path.exists():
            results[rec["target"]] = json.loads(json_path.read_text(encoding="utf-8"))
        else:
            todo.append(rec)
    if not todo:
        return results
    path = model["path"] if model else resolve_model(cfg.transfer.finetune.model,
                                                     cfg.transfer.finetune.model_revision).path
    base = None
    for rec in todo:
        names = rec["label_names"]
        if base is not None and hasattr(base, "relabel"):
            clf = base.relabel(names, cfg.transfer.descriptions)
        else:
            clf = base = load_classifier(path, names, descriptions=cfg.transfer.descriptions,
                                         mapping=cfg.transfer.mapping, max_length=cfg.transfer.finetune.max_length)
        texts, labels = target_eval_data(out_dir, rec)
        result, scores = score_texts(clf, texts, labels)
        results[rec["target"]] = _save_pair(*_eval_paths(out_dir, rec["target"], model), result, scores,
                                            {k: v for k, v in tag.items() if k != "path"})
    return results


def source_holdout(cfg: BenchmarkConfig, model: dict, entry: TaskEntry, sample: Path, out_dir: Path) -> dict:
    """The tuned model's confidence and correctness on its *source's* held-out slice.

    Label-free champion estimators calibrate on this slice (never on the target's labels).
    Written to ``holdout/<source>.s<seed>.<formulation>.json``.
    """
    from dataclasses import replace

    import numpy as np

    from hubselect.models.labelfree import holdout_confidence
    from hubselect.models.training import holdout_indices
    from hubselect.models.zeroshot import load_classifier

    path = out_dir / "holdout" / f"{model_stem(model)}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    frame = read_frame(sample, ["text", "label"])
    idx = holdout_indices(len(frame), replace(cfg.transfer.finetune, seed=model["seed"]))
    clf = load_classifier(model["path"], _source_labels(entry, frame), descriptions=cfg.transfer.descriptions,
                          max_length=cfg.transfer.finetune.max_length)
    conf, correct = holdout_confidence(clf, frame["text"].iloc[idx].astype(str).tolist(),
                                       frame["label"].iloc[idx].tolist())
    record = {"accuracy": float(np.mean(correct)) if len(correct) else 0.0, "n": int(len(correct)),
              "confidence": conf.round(5).tolist(), "correct": correct.tolist()}
    atomic_write_json(path, record)
    return record


def _model_path(out_dir: Path, model: dict) -> Path:
    return out_dir / "models" / f"{model_stem(model)}.json"


def _finished_model(out_dir: Path, triple: tuple[str, int, str], serves: list[dict]) -> dict | None:
    """The recorded model ``(source, seed, formulation)`` when it and all its pairs are done (so it
    is not tuned again), else ``None``."""
    name, seed, form = triple
    path = _model_path(out_dir, {"source": name, "seed": seed, "formulation": form})
    if not path.exists():
        return None
    model = json.loads(path.read_text(encoding="utf-8"))
    done = all(_eval_paths(out_dir, rec["target"], model)[0].exists() for rec in serves)
    held = form != "description" or (out_dir / "holdout" / f"{model_stem(model)}.json").exists()
    return {**model, "path": "", "from_cache": True} if done and held else None


def _labels_of_sources(sources: dict[str, tuple[TaskEntry, Path]]) -> dict[str, list[str]]:
    """Each source's label names (read once from its sample when the catalog has none)."""
    return {name: _source_labels(entry, read_frame(sample, ["label"]))
            for name, (entry, sample) in sources.items()}


def _served(cfg: BenchmarkConfig, scored: list[dict], name: str, labels: list[str], form: str) -> list[dict]:
    """The scored targets a model of source ``name`` tuned with formulation ``form`` is evaluated on."""
    return [r for r in scored if r["target"] != name and name in r["scores"]
            and _formulation(cfg, labels, r["label_names"]) == form]


def _needed_models(cfg: BenchmarkConfig, scored: list[dict], labels: dict[str, list[str]],
                   seeds: list[int]) -> list[tuple]:
    """(source, seed, formulation) triples some scored target needs, in a stable order."""
    need = []
    for name, source_labels in labels.items():
        forms = sorted({_formulation(cfg, source_labels, rec["label_names"]) for rec in scored if rec["target"] != name})
        need += [(name, seed, form) for seed in seeds for form in forms]
    return need


def _assemble(rec: dict, models: list[dict], evals: dict[tuple, dict], baseline: dict) -> dict:
    """A target's record: its pairs are the models evaluated on it (one per source, seed)."""
    pairs = []
    for m in models:
        r = evals[(m["source"], m["seed"], m["formulation"])].get(rec["target"])
        if r is None:  # the target itself, a refused candidate, or another formulation
            continue
        pairs.append({"source": m["source"], "source_revision": m["source_revision"], "seed": m["seed"],
                      "formulation": m["formulation"], "key": m["key"], "accuracy": r["accuracy"],
                      "macro_f1": r["macro_f1"], "gain": r["accuracy"] - baseline["accuracy"],
                      "train_seconds": m["train_seconds"], "eval_seconds": r["seconds"],
                      "train_examples": m["train_examples"], "from_cache": m["from_cache"],
                      "per_class": r["per_class"]})
    return {**rec, "baseline": {k: baseline[k] for k in ("accuracy", "macro_f1")},
            "baseline_seconds": baseline.get("seconds"), "pairs": pairs}


def source_features_frame(out_dir: Path) -> Any:
    """Features of each task as a source, read from its sample in any target's fetch folder."""
    import pandas as pd

    from hubselect.selection.learned import source_features

    rows = {}
    for folder in sorted((Path(out_dir) / "fetch").iterdir()):
        catalog = Catalog.load(folder)
        for cand in catalog.accepted():
            if cand.name not in rows:
                frame = read_frame(catalog.path(cand), ["text", "label"])
                rows[cand.name] = source_features(frame["text"].tolist(), frame["label"].tolist(),
                                                  cand.sample.rows_total)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("source")


def build_matrix(cfg: BenchmarkConfig, out_dir: str | Path, *, quiet: bool = True,
                 on_target: Callable[[dict, bool], None] | None = None) -> dict:
    """Run (or resume) the benchmark into ``out_dir``; return ``{settings, tasks, targets}``.

    Four phases, each resumable: fetch and score every target (``prepared/``); tune every
    source once per seed (model cache); evaluate each tuned model on every target, loading it
    once (``pairs/``), with its source held-out slice (``holdout/``); assemble one record per
    target (``targets/<name>.json``). ``on_target(record, resumed)`` is called per target.

    Raises:
        HubselectError: fewer than three tasks, settings differing from a finished benchmark in
            ``out_dir``, or fewer than three tasks usable as scored targets.
    """
    tasks = list_tasks(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_of(cfg, tasks)
    check_resume(out_dir, settings)
    shard, shards = cfg.shard
    mine = tasks[shard::shards]
    rotated = mine + [t for t in tasks if t not in mine]
    done = {}
    for i, task in enumerate(rotated, 1):
        done[task["name"]] = prepare_target(cfg, task, tasks, out_dir)
        logger.info("prepared target %d/%d %s", i, len(tasks), task["name"])
    prepared = [done[t["name"]] for t in tasks]
    scored = [r for r in prepared if r["scored"]]
    if len(scored) < MIN_TASKS:
        raise HubselectError(f"only {len(scored)} of {len(prepared)} tasks have labels to evaluate on "
                             f"(unlabelled: {', '.join(r['target'] for r in prepared if not r['scored'])}): "
                             f"a benchmark needs {MIN_TASKS}")
    sources = _source_entries(out_dir, prepared)
    labels = _labels_of_sources(sources)
    seeds = [cfg.transfer.finetune.seed + i for i in range(cfg.seeds)]
    baseline = evaluate_model(cfg, None, scored, out_dir)
    models, evals = [], {}
    needed = _needed_models(cfg, scored, labels, seeds)[shard::shards]
    for i, (name, seed, form) in enumerate(needed, 1):
        serves = _served(cfg, scored, name, labels[name], form)
        model = _finished_model(out_dir, (name, seed, form), serves)
        if model is None:
            model = tune_source(cfg, *sources[name], seed, form, quiet=quiet)
            atomic_write_json(_model_path(out_dir, model), {k: v for k, v in model.items() if k != "path"})
        evals[(name, seed, form)] = evaluate_model(cfg, model, serves, out_dir)
        if form == "description":
            source_holdout(cfg, model, *sources[name], out_dir)
        models.append(model)
        logger.info("source %d/%d %s seed %d: tuned and evaluated on %d targets", i, len(needed), name, seed,
                    len(serves))
    if shards > 1:
        raise ShardDone(f"shard {shard}/{shards} finished {len(needed)} models: when every shard is done, run the "
                        "same command without --shard to assemble the matrix and the report")
    records = []
    for rec in prepared:
        path = out_dir / "targets" / f"{rec['target']}.json"
        resumed = path.exists()
        record = _assemble(rec, models, evals, baseline[rec["target"]]) if rec["scored"] else rec
        atomic_write_json(path, record)
        records.append(record)
        if on_target:
            on_target(record, resumed)
    return {"settings": settings, "tasks": tasks, "targets": records}


def pairs_frame(matrix: dict) -> Any:
    """One row per scored pair and seed: target, source, seed, accuracy, macro-F1, gain, costs
    and every measure (see :func:`seed_mean` for the ground truth)."""
    import pandas as pd

    rows = []
    for rec in matrix["targets"]:
        if not rec["scored"]:
            continue
        for p in rec["pairs"]:
            row = {"target": rec["target"], "source": p["source"], "seed": p.get("seed", 0),
                   "accuracy": p["accuracy"], "macro_f1": p["macro_f1"],
                   "gain": p["gain"], "baseline_accuracy": rec["baseline"]["accuracy"],
                   "train_seconds": p["train_seconds"], "eval_seconds": p["eval_seconds"],
                   "formulation": p["formulation"], "train_examples": p["train_examples"], "eval_n": rec["eval_n"]}
            row.update({f"d_{m}": v for m, v in rec["scores"].get(p["source"], {}).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def pair_records(out_dir: str | Path) -> Any:
    """One row per evaluated pair and seed, read from a benchmark folder as it fills (no assembly
    needed, so a running or sharded benchmark can be exported): target, source, seed,
    formulation, accuracy, macro-F1, test texts, evaluation seconds, and the model's tuning
    seconds and examples where its record exists (``models/``)."""
    import pandas as pd

    out_dir = Path(out_dir)
    models = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (out_dir / "models").glob("*.json")}
    rows = []
    for path in sorted((out_dir / "pairs").glob("*/*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        m = models.get(path.stem, {})
        rows.append({"target": path.parent.name, "source": r["source"], "seed": r["seed"],
                     "formulation": r["formulation"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"],
                     "eval_n": r["n"], "eval_seconds": r["seconds"], "train_seconds": m.get("train_seconds"),
                     "train_examples": m.get("train_examples")})
    return pd.DataFrame(rows, columns=["target", "source", "seed", "formulation", "accuracy", "macro_f1", "eval_n",
                                       "eval_seconds", "train_seconds", "train_examples"])


def seed_mean(pairs: Any) -> Any:
    """One row per pair: accuracy, macro-F1, gain and costs averaged over the tuning seeds (the
    ground truth), ``seeds`` the number averaged and ``accuracy_sd`` their standard deviation."""
    keys = ["target", "source"]
    numeric = [c for c in pairs.columns if c not in (*keys, "seed", "formulation")]
    grouped = pairs.groupby(keys, sort=False)
    out = grouped[numeric].mean()
    out["formulation"] = grouped["formulation"].first()
    out["seeds"] = grouped["seed"].nunique()
    out["accuracy_sd"] = grouped["accuracy"].std(ddof=0)
    return out.reset_index()


def unusable_tasks(matrix: dict) -> dict[str, str]:
    """Tasks that could not be scored targets or sources, with the reason."""
    out = {r["target"]: f"not a target: {r['reason']}" for r in matrix["targets"] if not r["scored"]}
    for r in matrix["targets"]:
        for name, reason in r.get("rejected_sources", {}).items():
            out.setdefault(name, f"not a source: {reason}")
    return out
