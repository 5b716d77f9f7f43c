"""The second half as MLflow runs: finetune → evaluate → register.

Artifacts:
    finetune: ``tuned.json`` (per selected source: formulation, cached model folder and key,
              train seconds, examples/s, held-out loss/accuracy, whether it came from the cache)
    evaluate: ``evaluation.json`` and ``evaluation.csv`` (the untuned baseline and every
              source → target pair: accuracy, macro-F1, gain, per-class report), one nested run
              per pair with the same param and metric names, ``plots/`` (accuracy per source)
    register: ``champion.json`` (registered name, version, alias, source, why it was chosen)
              and the logged model (``model/``)

Tuned models and pair evaluations are cached on disk (by source revision, sample, settings and
target sample), so a killed job rerun with the same command redoes no finished pair.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from hubselect.cache import cache_dir, content_key, read_entry, write_entry
from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

#: Label-free champion estimators (:mod:`hubselect.labelfree`), usable without target labels.
LABEL_FREE = ("confidence", "atc", "agreement", "entropy")
#: What ``champion=auto`` uses when the target has no labelled split: of ``rank`` and the
#: :data:`LABEL_FREE` estimators, the one with the lowest champion regret on the benchmark's dev
#: targets (docs/results/collection/trust.md: rank 1.73 points, atc 1.96, agreement 3.81).
LABEL_FREE_DEFAULT = "rank"
CHAMPION_POLICIES = ("auto", "metric", "rank", *LABEL_FREE)


@dataclass(frozen=True)
class TransferConfig:
    """How the selected sources are tuned, evaluated and the champion registered.

    Attributes:
        finetune: :class:`hubselect.training.FinetuneConfig`.
        label_map: ``{target_label: source_label}`` for label-aligned heads.
        label_template: Label description template, e.g. ``"This text is about {label}."``
            (empty = the default of :mod:`hubselect.zeroshot`).
        champion: ``metric`` (best target accuracy; needs an evaluation split), ``rank``
            (top-ranked selected source), a label-free estimator of :data:`LABEL_FREE`, or
            ``auto`` (metric when the target has an evaluation split, else
            :data:`LABEL_FREE_DEFAULT`).
        registered_model_name: Registry name (empty = ``hubselect-<target>``).
        require_eval: Fail when the target has no labelled evaluation split.
    """

    finetune: Any
    label_map: tuple[tuple[str, str], ...] = ()
    label_template: str = ""
    champion: str = "auto"
    registered_model_name: str = ""
    require_eval: bool = False

    def __post_init__(self) -> None:
        if self.champion not in CHAMPION_POLICIES:
            raise HubselectError(f"unknown champion policy '{self.champion}': choose from {', '.join(CHAMPION_POLICIES)}")
        if self.label_template and "{label}" not in self.label_template:
            raise HubselectError(f"label template '{self.label_template}' has no '{{label}}': "
                                 "write e.g. 'This text is about {label}.'")

    @property
    def mapping(self) -> dict[str, str] | None:
        return dict(self.label_map) or None

    @property
    def descriptions(self) -> str | None:
        return self.label_template or None


def transfer_params(cfg: TransferConfig) -> dict[str, Any]:
    """MLflow params of the finetune/evaluate/register settings."""
    ft = cfg.finetune
    return {"model": ft.model, "model_revision": ft.model_revision, "epochs": ft.epochs,
            "learning_rate": ft.learning_rate, "batch_size": ft.batch_size, "train_max_length": ft.max_length,
            "max_train_examples": ft.max_train_examples, "holdout_fraction": ft.holdout_fraction,
            "formulation": ft.formulation, "label_map": ",".join(f"{a}:{b}" for a, b in cfg.label_map),
            "label_template": cfg.label_template, "champion": cfg.champion,
            "registered_model_name": cfg.registered_model_name}


def parse_label_map(text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``"pos:positive,neg:negative"`` (target:source pairs)."""
    pairs = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item.count(":") != 1:
            raise HubselectError(f"label map entry '{item}' is not 'target_label:source_label'")
        a, b = (x.strip() for x in item.split(":"))
        pairs.append((a, b))
    return tuple(pairs)


def _read(path: Path, columns: list[str]) -> Any:
    import pandas as pd

    return pd.read_parquet(path, columns=columns)


def target_label_names(catalog: dict) -> list[str]:
    """The target's label names, or a one-line error asking for them."""
    from hubselect.zeroshot import require_label_names

    return require_label_names(catalog["target"].get("label_names"), role="target")


def tune_selected(catalog: dict, fetch_dir: Path, selected: list[str], cfg: TransferConfig, *,
                  quiet: bool, executor: Any = None) -> list[dict]:
    """Fine-tune on each selected source (cached); returns one record per source, in order.

    The tunes fan out over ``executor`` (default :func:`hubselect.executor.current`): each source
    is one task, handed its texts and labels (read here, one source at a time), so a worker needs
    no access to the fetch folder. Two tasks that want the same tuned model wait for one another
    (the cache's per-key lock) rather than both tuning.
    """
    from hubselect.executor import current

    executor = executor or current()
    names = target_label_names(catalog)
    by_name = {c["name"]: c for c in catalog["candidates"]}
    jobs = (_tune_job(by_name[source], fetch_dir, names, cfg) for source in selected)
    return executor.map(_tune_one, jobs, cfg, not quiet and executor.engine == "local")


def _tune_job(entry: dict, fetch_dir: Path, target_names: list[str], cfg: TransferConfig) -> dict:
    from hubselect.zeroshot import choose_formulation

    frame = _read(fetch_dir / entry["sample"], ["text", "label"])
    source_labels = entry.get("label_names") or sorted(frame["label"].unique())
    formulation = choose_formulation(source_labels, target_names, cfg.finetune.formulation, cfg.mapping)
    return {"source": entry["name"], "source_revision": entry["revision"], "formulation": formulation,
            "texts": frame["text"].tolist(), "labels": frame["label"].tolist(), "label_names": list(source_labels)}


def _tune_one(job: dict, cfg: TransferConfig, progress: bool) -> dict:
    """One fine-tune (a task of :func:`tune_selected`); returns the source's record."""
    from hubselect.training import finetune

    tuned = finetune(job["source"], job["source_revision"], job["texts"], job["labels"], job["label_names"],
                     cfg.finetune, formulation=job["formulation"], descriptions=cfg.descriptions, progress=progress)
    return {"source": job["source"], "source_revision": job["source_revision"], "formulation": job["formulation"],
            "path": tuned.path, "key": tuned.key, "from_cache": tuned.from_cache,
            "train_seconds": tuned.train_seconds, "examples_per_second": tuned.examples_per_second,
            "best_holdout_loss": tuned.best_holdout_loss,
            "best_holdout_accuracy": tuned.best_holdout_accuracy, "train_examples": tuned.examples_used}


def _evaluation_cached(key_parts: tuple, compute: Any) -> tuple[dict, bool]:
    path = cache_dir() / "evals" / f"{content_key('eval-v1', *key_parts)}.json"
    cached = read_entry(path, json.loads)
    if cached is not None:
        return cached, True
    result = compute().to_dict()
    write_entry(path, json.dumps(result, indent=2, default=str).encode("utf-8"))
    return result, False


@dataclass(frozen=True)
class PairRuns:
    """Where the pair tasks of :func:`evaluate_pairs` log their nested runs.

    Attributes:
        parent_run_id: The evaluate step's run (each pair's run is its child).
        scores: ``{source: {measure: divergence}}`` logged as ``divergence_<measure>``.
        ranking: ``{source: rank}`` from the selection.
        tracking_uri: The store (default: :func:`hubselect.tracking.runs.tracking_uri`).
    """

    parent_run_id: str
    scores: Mapping[str, Mapping[str, float]]
    ranking: Mapping[str, int]
    tracking_uri: str = ""


@dataclass(frozen=True)
class _EvalShared:
    texts: list
    labels: list
    names: list
    digest: tuple
    cfg: TransferConfig
    target: dict
    progress: bool
    runs: PairRuns | None


def evaluate_pairs(catalog: dict, fetch_dir: Path, tuned: list[dict], cfg: TransferConfig, *,
                   quiet: bool, pair_runs: PairRuns | None = None, executor: Any = None) -> dict:
    """Evaluate the untuned baseline and every tuned model on the target's evaluation sample.

    The baseline and the pairs fan out over ``executor`` (default
    :func:`hubselect.executor.current`) as one task each; the target's evaluation sample goes to
    the object store once. With ``pair_runs``, each pair task logs its own nested run under
    ``pair_runs.parent_run_id`` (same params and metrics whichever engine ran it); ``gain`` and
    ``baseline_accuracy`` are added to those runs here, once the baseline is known.
    """
    from hubselect.executor import current
    from hubselect.represent.store import texts_digest

    executor = executor or current()
    target = catalog["target"]
    names = target_label_names(catalog)
    frame = _read(fetch_dir / target["eval"]["sample"], ["text", "label"])
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    digest = (target["revision"], texts_digest(texts), tuple(names), cfg.descriptions, cfg.finetune.max_length)
    if pair_runs is not None and not pair_runs.tracking_uri:
        from hubselect.tracking.runs import tracking_uri

        pair_runs = dataclasses.replace(pair_runs, tracking_uri=tracking_uri())
    shared = _EvalShared(texts, labels, names, digest, cfg, {"name": target["name"], "revision": target["revision"]},
                         not quiet and executor.engine == "local", pair_runs)
    results = executor.map(_evaluate_one, [None, *tuned], executor.put(shared))
    (baseline, _, _), outcomes = results[0], results[1:]
    pairs = []
    for record, (result, hit, run_id) in zip(tuned, outcomes):
        gain = result["accuracy"] - baseline["accuracy"]
        pairs.append({**record, "accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
                      "per_class": result["per_class"], "eval_n": result["n"], "eval_seconds": result["seconds"],
                      "eval_examples_per_second": result["examples_per_second"],
                      "gain": gain, "eval_from_cache": hit})
        if run_id:
            from hubselect.tracking import runs

            runs.log_run_metrics(run_id, {"gain": gain, "baseline_accuracy": baseline["accuracy"]},
                                 tracking_uri=pair_runs.tracking_uri)
    return {"target": target["name"], "baseline": baseline, "pairs": pairs}


def _evaluate_one(record: dict | None, shared: _EvalShared) -> tuple[dict, bool, str | None]:
    """One evaluation task: the untuned baseline (``record`` None) or one tuned source.

    Returns ``(result, from_cache, nested run id or None)``.
    """
    from hubselect.evaluation import evaluate, evaluate_baseline
    from hubselect.modeling import resolve_model
    from hubselect.training import load_tuned

    cfg, s = shared.cfg, shared
    if record is None:
        base = resolve_model(cfg.finetune.model, cfg.finetune.model_revision)
        result, hit = _evaluation_cached(("baseline", base.name, base.revision, *s.digest), lambda: evaluate_baseline(
            s.texts, s.labels, s.names, model=cfg.finetune.model, revision=cfg.finetune.model_revision,
            descriptions=cfg.descriptions, max_length=cfg.finetune.max_length, progress=s.progress))
        return result, hit, None
    result, hit = _evaluation_cached(("pair", record["key"], *s.digest), lambda: evaluate(
        load_tuned(record["path"]), s.texts, s.labels, s.names, descriptions=cfg.descriptions, mapping=cfg.mapping,
        max_length=cfg.finetune.max_length, progress=s.progress))
    run_id = _log_pair_run(record, result, s) if s.runs is not None else None
    return result, hit, run_id


def _log_pair_run(record: dict, result: dict, s: _EvalShared) -> str:
    """The pair's nested run under the evaluate step's run (logged from inside the task)."""
    from hubselect.tracking import runs

    source, target = record["source"], s.target
    params = {"source": source, "source_revision": record["source_revision"], "target": target["name"],
              "target_revision": target["revision"], "formulation": record["formulation"],
              **{k: v for k, v in transfer_params(s.cfg).items() if k not in ("champion", "registered_model_name")}}
    metrics = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
               "train_seconds": record["train_seconds"], "examples_per_second": record["examples_per_second"],
               "eval_examples_per_second": result["examples_per_second"],
               "selection_rank": s.runs.ranking.get(source, 0),
               **{f"divergence_{m}": float(v) for m, v in s.runs.scores.get(source, {}).items()}}
    return runs.log_child_run(s.runs.parent_run_id, "pair", params, metrics, run_name=f"{source} -> {target['name']}",
                              tracking_uri=s.runs.tracking_uri)


def pair_runs_for(parent_run_id: str, scores: Any, selection: dict) -> PairRuns:
    """:class:`PairRuns` from the score step's frame (candidates × measures) and ``selection.json``."""
    table = {} if scores is None else {str(src): {str(m): float(v) for m, v in row.items()}
                                       for src, row in scores.iterrows()}
    return PairRuns(parent_run_id, table, {row["candidate"]: row["rank"] for row in selection["ranking"]})


BASELINE = "(untuned baseline)"


def choose_champion(evaluation: dict | None, tuned: list[dict], policy: str) -> tuple[dict, str]:
    """The model to register and why.

    ``metric``: the best target accuracy (macro-F1 breaks ties) among the tuned sources *and*
    the untuned baseline, so a job whose tuning hurt registers the untuned model rather than a
    worse one (its record has ``source`` :data:`BASELINE` and ``path`` ``None``).
    ``rank``: the top-ranked selected source; the target's labels play no part.
    """
    if policy == "metric":
        if evaluation is None:
            raise HubselectError("champion=metric needs a labelled evaluation split of the target: "
                                 "pass --eval-split, or use --champion rank")
        base = evaluation["baseline"]
        baseline = {"source": BASELINE, "source_revision": None, "path": None, "accuracy": base["accuracy"],
                    "macro_f1": base["macro_f1"], "gain": 0.0}
        best = max([*evaluation["pairs"], baseline], key=lambda p: (p["accuracy"], p["macro_f1"]))
        return best, (f"best target accuracy {best['accuracy']:.4f} among {len(evaluation['pairs'])} tuned sources "
                      f"and the untuned baseline ({base['accuracy']:.4f})")
    return tuned[0], "top-ranked selected source (rank 1 of the selection); target labels not used"


def champion_policy(cfg: TransferConfig, has_labels: bool) -> str:
    """The champion policy ``cfg.champion`` resolves to (``auto``: metric with labels, else label-free)."""
    if cfg.champion != "auto":
        return cfg.champion
    return "metric" if has_labels else LABEL_FREE_DEFAULT


def pick_champion(evaluation: dict | None, tuned: list[dict], cfg: TransferConfig, catalog: dict,
                  fetch_dir: Path) -> tuple[dict, str, str]:
    """``(champion record, reason, policy)``; label-free policies never read the target's labels."""
    from hubselect.labelfree import choose_label_free

    policy = champion_policy(cfg, evaluation is not None)
    if policy not in LABEL_FREE:
        return (*choose_champion(evaluation, tuned, policy), policy)
    champion, reason = choose_label_free(tuned, catalog, fetch_dir, cfg, policy)
    if evaluation is not None:  # report its accuracy when the target happens to have labels
        champion = next((p for p in evaluation["pairs"] if p["source"] == champion["source"]), champion)
    return champion, reason, policy


def runtime_accounting(evaluate_dir: Path, phase: Mapping[str, float], total: float) -> dict[str, float]:
    """End-to-end time of the job against the brute-force estimate.

    Per-pair cost is the measured tune + evaluate time of each selected source (the original
    training time when the model came from the cache, so reruns don't flatter the saving).
    Ours = fetch + score + select + the selected pairs; brute force = fetch + every usable
    candidate at the mean pair cost. Register and the baseline are common to both and left out.
    """
    evaluation = json.loads((Path(evaluate_dir) / "evaluation.json").read_text())
    catalog = json.loads((Path(evaluate_dir) / "finetune" / "select" / "score" / "fetch" / "catalog.json").read_text())
    tuned = json.loads((Path(evaluate_dir) / "finetune" / "tuned.json").read_text())["tuned"]
    eval_seconds = {p["source"]: p["eval_seconds"] for p in evaluation.get("pairs", [])}
    costs = [t["train_seconds"] + eval_seconds.get(t["source"], 0.0) for t in tuned]
    usable = sum(c["status"] == "ok" for c in catalog["candidates"])
    ours = phase.get("fetch", 0.0) + phase.get("score", 0.0) + phase.get("select", 0.0) + sum(costs)
    brute = phase.get("fetch", 0.0) + usable * (sum(costs) / max(len(costs), 1))
    return {"end_to_end_estimate_s": ours, "brute_force_estimate_s": brute,
            "runtime_saving": 1.0 - ours / brute if brute > 0 else 0.0, "pair_cost_mean_s": sum(costs) / max(len(costs), 1),
            "time_wall_total_s": total}
