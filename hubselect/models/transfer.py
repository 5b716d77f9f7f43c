"""Transfer: fine-tune on each selected source, then evaluate each tuned model on the target.

Pure of MLflow (the steps in :mod:`hubselect.pipeline.steps` log what these functions return):
:func:`tune_selected` tunes every selected source (cached per source revision and settings) and
:func:`evaluate_pairs` scores the untuned baseline and every source -> target pair on the
target's labelled sample (cached per model and target sample), both fanned out over the
current executor. A killed job rerun with the same command redoes no finished pair.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from hubselect.core.cache import cache_dir, content_key, read_entry, write_entry
from hubselect.core.errors import HubselectError
from hubselect.data.entries import Catalog, TaskEntry, read_frame
from hubselect.models.champion import CHAMPION_POLICIES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferConfig:
    """How the selected sources are tuned, evaluated and the champion registered.

    Attributes:
        finetune: :class:`hubselect.models.training.FinetuneConfig`.
        label_map: ``{target_label: source_label}`` for label-aligned heads.
        label_template: Label description template, e.g. ``"This text is about {label}."``
            (empty = the default of :mod:`hubselect.models.zeroshot`).
        champion: ``metric`` (best target accuracy; needs an evaluation split), ``rank``
            (top-ranked selected source), a label-free estimator, or ``auto`` (see
            :mod:`hubselect.models.champion`).
        registered_model_name: Registry name (empty = ``hubselect-<target>``).
        require_eval: Fail when the target has no labelled evaluation split.
        metrics: Further ``evaluate`` metrics computed on the target besides accuracy and
            macro-F1 (see :func:`hubselect.models.evaluation.resolve_metrics`).
        trust_remote_code: Allow ``metrics`` that are scripts on the Hub (they run here); off by
            default, so only the shipped ones load.
    """

    finetune: Any
    label_map: tuple[tuple[str, str], ...] = ()
    label_template: str = ""
    champion: str = "auto"
    registered_model_name: str = ""
    require_eval: bool = False
    metrics: tuple[str, ...] = ()
    trust_remote_code: bool = False

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

    def params(self) -> dict[str, Any]:
        """MLflow params of the finetune/evaluate/register settings (flat)."""
        ft = self.finetune
        return {"model": ft.model, "model_revision": ft.model_revision, "epochs": ft.epochs,
                "learning_rate": ft.learning_rate, "batch_size": ft.batch_size, "train_max_length": ft.max_length,
                "max_train_examples": ft.max_train_examples, "holdout_fraction": ft.holdout_fraction,
                "formulation": ft.formulation, "label_map": ",".join(f"{a}:{b}" for a, b in self.label_map),
                "label_template": self.label_template, "champion": self.champion,
                "registered_model_name": self.registered_model_name, "metrics": ",".join(self.metrics)}

    def pair_params(self) -> dict[str, Any]:
        """The params that shape one source -> target pair (not how the champion is registered, nor
        which further metrics are reported)."""
        return {k: v for k, v in self.params().items() if k not in ("champion", "registered_model_name", "metrics")}


def parse_label_map(text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``"pos:positive,neg:negative"`` (target:source pairs)."""
    pairs: dict[str, str] = {}
    for item in (s.strip() for s in text.split(",") if s.strip()):
        a, _, b = (x.strip() for x in item.partition(":"))
        if item.count(":") != 1 or not a or not b:
            raise HubselectError(f"label map entry '{item}' is not 'target_label:source_label'")
        if a in pairs:
            raise HubselectError(f"label map names target label '{a}' twice ({a}:{pairs[a]}, {item}): "
                                 "give each target label one source label")
        pairs[a] = b
    return tuple(pairs.items())


def target_label_names(catalog: Catalog) -> list[str]:
    """The target's label names, or a one-line error asking for them."""
    from hubselect.models.zeroshot import require_label_names

    return require_label_names(catalog.target.label_names, role="target")


def tune_selected(catalog: Catalog, selected: list[str], cfg: TransferConfig, *,
                  quiet: bool, executor: Any = None) -> list[dict]:
    """Fine-tune on each selected source (cached); returns one record per source, in order.

    The tunes fan out over ``executor`` (default :func:`hubselect.core.executor.current`): each source
    is one task, handed its texts and labels (read here, one source at a time), so a worker needs
    no access to the fetch folder. Two tasks that want the same tuned model wait for one another
    (the cache's per-key lock) rather than both tuning.
    """
    from hubselect.core.executor import current

    executor = executor or current()
    names = target_label_names(catalog)
    jobs = (_tune_job(catalog, catalog.candidate(source), names, cfg) for source in selected)
    return executor.map(_tune_one, jobs, cfg, not quiet and executor.engine == "local")


def _tune_job(catalog: Catalog, entry: TaskEntry, target_names: list[str], cfg: TransferConfig) -> dict:
    from hubselect.models.zeroshot import choose_formulation

    frame = read_frame(catalog.path(entry), ["text", "label"])
    source_labels = list(entry.label_names or sorted(frame["label"].unique()))
    formulation = choose_formulation(source_labels, target_names, cfg.finetune.formulation, cfg.mapping)
    return {"source": entry.name, "source_revision": entry.revision, "formulation": formulation,
            "texts": frame["text"].tolist(), "labels": frame["label"].tolist(), "label_names": list(source_labels)}


def _tune_one(job: dict, cfg: TransferConfig, progress: bool) -> dict:
    """One fine-tune (a task of :func:`tune_selected`); returns the source's record."""
    from hubselect.models.training import finetune

    started = time.time()
    tuned = finetune(job["source"], job["source_revision"], job["texts"], job["labels"], job["label_names"],
                     cfg.finetune, formulation=job["formulation"], descriptions=cfg.descriptions, progress=progress)
    return {"source": job["source"], "source_revision": job["source_revision"], "formulation": job["formulation"],
            "path": tuned.path, "key": tuned.key, "from_cache": tuned.from_cache,
            "train_seconds": tuned.train_seconds, "examples_per_second": tuned.examples_per_second,
            "best_holdout_loss": tuned.best_holdout_loss,
            "best_holdout_accuracy": tuned.best_holdout_accuracy, "train_examples": tuned.examples_used,
            "tuned_from": started, "tuned_until": time.time()}


def _evaluation_cached(key_parts: tuple, compute: Any) -> tuple[dict, bool]:
    path = cache_dir() / "evals" / f"{content_key('eval-v1', *key_parts)}.json"
    cached = read_entry(path, json.loads)
    if cached is not None:
        return cached, True
    result = compute().to_dict()
    write_entry(path, json.dumps(result, indent=2, default=str).encode("utf-8"))
    return result, False


#: Called inside each pair's evaluation task as ``on_pair(record, result, target, started)``
#: (``target``: name and revision; ``started``: the task's wall-clock start); may return an id
#: (e.g. of the run it logged), kept as the pair's ``run_id``. Must be picklable for engine=ray.
PairHook = Callable[[dict, dict, dict, float], "str | None"]


@dataclass(frozen=True)
class _EvalShared:
    texts: list
    labels: list
    names: list
    digest: tuple
    cfg: TransferConfig
    target: dict
    progress: bool
    on_pair: PairHook | None


def evaluate_pairs(catalog: Catalog, tuned: list[dict], cfg: TransferConfig, *,
                   quiet: bool, on_pair: PairHook | None = None, executor: Any = None) -> dict:
    """Evaluate the untuned baseline and every tuned model on the target's evaluation sample.

    The baseline and the pairs fan out over ``executor`` (default
    :func:`hubselect.core.executor.current`) as one task each; the target's evaluation sample goes to
    the object store once. ``on_pair`` (see :data:`PairHook`) runs inside each pair's task.
    """
    from hubselect.core.executor import current
    from hubselect.scoring.represent.store import texts_digest

    executor = executor or current()
    target = catalog.target
    names = target_label_names(catalog)
    frame = read_frame(catalog.path(target.eval), ["text", "label"])
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    digest = (target.revision, texts_digest(texts), tuple(names), cfg.descriptions, cfg.finetune.max_length,
              *cfg.metrics)
    shared = _EvalShared(texts, labels, names, digest, cfg, {"name": target.name, "revision": target.revision},
                         not quiet and executor.engine == "local", on_pair)
    results = executor.map(_evaluate_one, [None, *tuned], executor.put(shared))
    (baseline, _, _), outcomes = results[0], results[1:]
    pairs = []
    for record, (result, hit, run_id) in zip(tuned, outcomes):
        pairs.append({**record, "accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
                      "per_class": result["per_class"], "eval_n": result["n"], "eval_seconds": result["seconds"],
                      "eval_examples_per_second": result["examples_per_second"],
                      "gain": result["accuracy"] - baseline["accuracy"], "eval_from_cache": hit, "run_id": run_id,
                      "metrics": result.get("metrics", {})})
    return {"target": target.name, "baseline": baseline, "pairs": pairs}


def _evaluate_one(record: dict | None, shared: _EvalShared) -> tuple[dict, bool, str | None]:
    """One evaluation task: the untuned baseline (``record`` None) or one tuned source.

    Returns ``(result, from_cache, on_pair's id or None)``.
    """
    from hubselect.data.encoder import resolve_model
    from hubselect.models.evaluation import evaluate, evaluate_baseline
    from hubselect.models.folder import load_tuned

    cfg, s, started = shared.cfg, shared, time.time()
    if record is None:
        base = resolve_model(cfg.finetune.model, cfg.finetune.model_revision)
        result, hit = _evaluation_cached(("baseline", base.name, base.revision, *s.digest), lambda: evaluate_baseline(
            s.texts, s.labels, s.names, model=cfg.finetune.model, revision=cfg.finetune.model_revision,
            descriptions=cfg.descriptions, max_length=cfg.finetune.max_length, progress=s.progress,
            metrics=cfg.metrics, trust_remote_code=cfg.trust_remote_code))
        return result, hit, None
    result, hit = _evaluation_cached(("pair", record["key"], *s.digest), lambda: evaluate(
        load_tuned(record["path"]), s.texts, s.labels, s.names, descriptions=cfg.descriptions, mapping=cfg.mapping,
        max_length=cfg.finetune.max_length, progress=s.progress, metrics=cfg.metrics, name=record["source"],
        trust_remote_code=cfg.trust_remote_code))
    run_id = s.on_pair(record, result, s.target, started) if s.on_pair is not None else None
    return result, hit, run_id
