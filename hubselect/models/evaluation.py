"""Zero-shot evaluation of a tuned model (or the untuned baseline) on the target's test texts.

Accuracy and macro-F1 over the target's labels come from the ``evaluate`` metric modules shipped
in :mod:`hubselect.models.metric_modules`, loaded by local path, so they need no Hub; the per-class
report (precision, recall, F1, support) comes from scikit-learn. Further ``evaluate`` metrics can
be named (:func:`resolve_metrics`): shipped ones load locally; any other is a Python script on the
Hub that would run here, so it loads only with ``trust_remote_code`` (``--trust-remote-code
true``), and is refused before any network call otherwise. Both
formulations are handled: a description model compares text embeddings with the target's label
descriptions; a head model uses its classification head, aligned to the target's labels.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hubselect.core.cache import cache_dir, content_key
from hubselect.core.errors import HubselectError
from hubselect.core.progress import progress_bar
from hubselect.data.encoder import DEFAULT_MODEL, ResolvedModel, resolve_model
from hubselect.data.labelnames import label_maps, normalize_label
from hubselect.models.zeroshot import load_classifier, require_label_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Zero-shot results on a labelled target split.

    Attributes:
        accuracy: Share of texts whose predicted label is the gold label.
        macro_f1: Unweighted mean of the per-label F1 over all target labels.
        per_class: ``{label: {"precision", "recall", "f1", "support"}}`` for every target label.
        n: Number of texts.
        seconds: Wall time of the predictions (model loading excluded).
        examples_per_second: ``n / seconds``.
        formulation: ``description`` or ``head``.
        model: The model folder evaluated.
        predictions: Predicted label name of each text, in input order.
        extra_metrics: The metrics named with ``metrics=`` (:func:`compute_metrics`), by name;
            empty when none were named.
    """

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    n: int
    seconds: float
    examples_per_second: float
    formulation: str
    model: str
    predictions: list[str] = field(default_factory=list, repr=False, compare=False)
    extra_metrics: dict[str, float] = field(default_factory=dict)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat numeric metrics for logging, e.g. ``{prefix + "accuracy": ...}``.

        Named extra metrics follow under their own names (one already there is kept).
        """
        out = {f"{prefix}accuracy": self.accuracy, f"{prefix}macro_f1": self.macro_f1,
               f"{prefix}n": float(self.n), f"{prefix}examples_per_second":
               self.examples_per_second}
        for label, row in self.per_class.items():
            safe = normalize_label(label).replace(" ", "_")
            out[f"{prefix}f1_{safe}"] = row["f1"]
        for name, value in self.extra_metrics.items():
            out.setdefault(f"{prefix}{name}", value)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (predictions left out); ``"metrics"`` only when some were named."""
        out = {"accuracy": self.accuracy, "macro_f1": self.macro_f1,
               "per_class": self.per_class, "n": self.n, "seconds": self.seconds,
               "examples_per_second": self.examples_per_second,
               "formulation": self.formulation, "model": self.model}
        if self.extra_metrics:
            out["metrics"] = dict(self.extra_metrics)
        return out


def gain(tuned: EvalResult | float, baseline: EvalResult | float) -> float:
    """Return ``tuned accuracy - baseline accuracy`` (results or plain accuracies)."""
    a = tuned.accuracy if isinstance(tuned, EvalResult) else float(tuned)
    b = baseline.accuracy if isinstance(baseline, EvalResult) else float(baseline)
    return a - b


SHIPPED_METRICS = ("accuracy", "f1")
"""The ``evaluate`` metrics shipped in :mod:`hubselect.models.metric_modules` (loaded without the Hub)."""

_AVERAGED = frozenset({"f1", "precision", "recall"})  # given average="macro" over the target labels
_METRIC_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE")


def resolve_metrics(text: str | Sequence[str] | None, *, trust_remote_code: bool = False) -> tuple[str, ...]:
    """Parse metric names such as ``"accuracy,f1"`` and check that each one can be loaded.

    Shipped metrics (:data:`SHIPPED_METRICS`) are checked by name alone. Any other name is an
    ``evaluate`` metric on the Hub (``bleu`` for ``evaluate-metric/bleu``, or ``owner/name``), a
    script that runs on this machine: without ``trust_remote_code`` it is refused here, before
    any network call; with it, it is loaded now, so that a command fails before any work when the
    Hub cannot give it.

    Returns:
        The names, stripped, in order, without repeats (empty for ``""`` or None).

    Raises:
        HubselectError: a malformed name, a Hub metric without ``trust_remote_code``, or a metric
            neither shipped nor loadable from the Hub.
    """
    items = text.split(",") if isinstance(text, str) else list(text or ())
    names = tuple(dict.fromkeys(str(n).strip() for n in items if str(n).strip()))
    for name in names:
        if not _METRIC_NAME.fullmatch(name):
            raise HubselectError(f"metric name '{name}' is malformed: give evaluate metric names "
                                 f"separated by commas, e.g. {','.join(SHIPPED_METRICS)}")
        _check_consent(name, trust_remote_code)
    for name in names:
        if name not in SHIPPED_METRICS:
            _metric_class(name, str(_modules_root()))
    return names


def _check_consent(name: str, trust_remote_code: bool) -> None:
    """Refuse a Hub metric (its script would run here) unless the user trusts remote code."""
    if name in SHIPPED_METRICS:
        return
    if not trust_remote_code:
        raise HubselectError(f"metric '{name}' is not shipped with hubselect: it is a script on the Hub that "
                             "would run on your machine; pass --trust-remote-code true only if you trust it, "
                             f"or use one of {', '.join(SHIPPED_METRICS)}")
    if "/" in name:
        from hubselect.data.refs import check_hub_id

        check_hub_id(name, f"metric '{name}'", "'owner/name'")


def load_metric(name: str, *, trust_remote_code: bool = False) -> Any:
    """A fresh in-memory :class:`evaluate.EvaluationModule` for the metric ``name``.

    Shipped metrics load from their folder in this package (``evaluate``'s local-path loading),
    others (only with ``trust_remote_code``) from the Hub, or, offline, from the copy an earlier
    load left in hubselect's cache. ``evaluate`` copies each module into
    ``<cache>/evaluate/modules`` and gives it a scratch folder in ``<cache>/evaluate/data``;
    nothing goes to ``~/.cache/huggingface``.

    Raises:
        HubselectError: a Hub metric without ``trust_remote_code``, or a metric neither shipped
            nor loadable from the Hub.
    """
    _check_consent(name, trust_remote_code)
    root = _modules_root()
    cls, key = _metric_class(name, str(root))
    return cls(keep_in_memory=True, cache_dir=str(root.parent / "data"), hash=key)


def compute_metrics(names: Sequence[str], gold: Sequence[str], predicted: Sequence[str],
                    label_names: Sequence[str], *, trust_remote_code: bool = False) -> dict[str, float]:
    """Compute the ``evaluate`` metrics ``names`` on label names mapped to ids in ``label_names``.

    ``f1``, ``precision`` and ``recall`` are macro averages over all ``label_names`` with
    ``zero_division=0``. A metric returning one number is keyed by its name; one returning
    several gives ``name.key`` for each number. Hub metrics need ``trust_remote_code``.

    Raises:
        HubselectError: a metric that cannot be loaded (or is not trusted), or fails on label ids.
    """
    ids = dict(label_maps(label_names)[1])
    refs = [ids.setdefault(g, len(ids)) for g in gold]  # an unknown label gets an id of its own
    preds = [ids.setdefault(p, len(ids)) for p in predicted]
    out: dict[str, float] = {}
    for name in names:
        kwargs = ({"average": "macro", "labels": list(range(len(label_names))), "zero_division": 0}
                  if name in _AVERAGED else {})
        metric = load_metric(name, trust_remote_code=trust_remote_code)
        try:
            result = metric.compute(predictions=preds, references=refs, **kwargs)
        except Exception as err:  # a Hub metric may want other inputs
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise HubselectError(f"metric '{name}' failed on the target's label ids ({reason}): "
                                 "name a classification metric, e.g. accuracy,f1") from err
        numbers = {k: float(v) for k, v in (result or {}).items()
                   if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        if not numbers:
            raise HubselectError(f"metric '{name}' gave no single number ({result!r}): name a "
                                 "metric with a scalar result, e.g. accuracy,f1")
        out.update({name: v for v in numbers.values()} if len(numbers) == 1
                   else {f"{name}.{k}": v for k, v in numbers.items()})
    return out


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], label_names: Sequence[str]
) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Return ``(accuracy, macro_f1, per_class)`` over ``label_names``.

    Accuracy and macro-F1 come from the shipped ``evaluate`` modules, the per-class report from
    scikit-learn. Labels never predicted nor present count with precision/recall/F1 0
    (``zero_division=0``).
    """
    from sklearn.metrics import precision_recall_fscore_support

    names = list(label_names)
    precision, recall, f1, support = precision_recall_fscore_support(
        list(gold), list(predicted), labels=names, average=None, zero_division=0)
    per_class = {n: {"precision": float(p), "recall": float(r), "f1": float(f),
                     "support": int(s)}
                 for n, p, r, f, s in zip(names, precision, recall, f1, support)}
    scores = compute_metrics(SHIPPED_METRICS if names else ("accuracy",), gold, predicted, names)
    return scores["accuracy"], scores.get("f1", 0.0), per_class


def _modules_root() -> Path:
    return cache_dir() / "evaluate" / "modules"


def _offline() -> bool:
    return any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"} for v in _OFFLINE_VARS)


@functools.lru_cache(maxsize=None)
def _metric_class(name: str, root: str) -> tuple[type, str]:
    """The metric class of ``name`` and its code hash; ``evaluate`` copies its module to ``root``."""
    from evaluate.loading import evaluation_module_factory, import_main_class, init_dynamic_modules

    # One importable package per cache root: a second root must not resolve to the first's files.
    modules = init_dynamic_modules("hubselect_metrics_" + content_key(root)[:12], root)
    if name in SHIPPED_METRICS:
        folder = importlib.resources.files("hubselect.models") / "metric_modules" / name
        with importlib.resources.as_file(folder) as path:
            module = evaluation_module_factory(str(path), dynamic_modules_path=modules)
    else:
        module = _hub_module(name, modules)
    return import_main_class(module.module_path), module.hash


def _hub_module(name: str, modules: str) -> Any:
    """Load the metric ``name`` from the Hub (offline: from this cache's copy) into ``modules``."""
    from datasets import DownloadConfig
    from evaluate.loading import CachedEvaluationModuleFactory, evaluation_module_factory

    problem = (f"metric '{name}' is not shipped with hubselect and the Hub "
               f"{'is off (HF_HUB_OFFLINE)' if _offline() else 'is unreachable or has no such metric'}"
               f": use one of {', '.join(SHIPPED_METRICS)}, or connect and check the name")
    try:
        if _offline():
            cached = name.replace("/", "--") if "/" in name else f"evaluate-metric--{name}"
            return CachedEvaluationModuleFactory(cached, dynamic_modules_path=modules).get_module()
        downloads = DownloadConfig(cache_dir=str(Path(modules).parent.parent / "downloads"))
        return evaluation_module_factory(name, module_type="metric", download_config=downloads,
                                         dynamic_modules_path=modules)
    except Exception as err:  # evaluate raises FileNotFoundError for an unreachable Hub too
        raise HubselectError(problem) from err


def evaluate(
    model: Any,
    texts: Sequence[str],
    labels: Sequence[str | int],
    target_label_names: Sequence[str],
    *,
    descriptions: str | Mapping[str, str] | None = None,
    mapping: Mapping[str, str] | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | None = None,
    progress: bool = False,
    metrics: str | Sequence[str] = (),
    name: str = "",
    trust_remote_code: bool = False,
) -> EvalResult:
    """Predict the target's labels for ``texts`` zero-shot and score them against ``labels``.

    Args:
        model: A tuned model (:class:`hubselect.models.training.TunedModel` or its folder), an exported
            head folder, or a :class:`hubselect.data.encoder.ResolvedModel` (untuned baseline with
            description matching).
        texts: Target texts.
        labels: Gold labels: target label names (matched after normalisation) or indices.
        target_label_names: The target's label names, in order.
        descriptions: Target label descriptions (template or dict) for description models.
        mapping: ``{target_label: source_label}`` for head models whose labels differ.
        batch_size: Texts per forward pass.
        max_length: Token limit per text (use the one the model was tuned with).
        device: ``cuda``/``cpu``/``None`` (auto).
        progress: Show a rich progress bar.
        metrics: Further ``evaluate`` metrics (names or ``"accuracy,f1"``) for the result's
            ``extra_metrics`` (``to_dict()["metrics"]``); see :func:`resolve_metrics`.
        name: What the progress bar and the log call the model (e.g. its source); default its
            folder's name.
        trust_remote_code: allow ``metrics`` from the Hub (their scripts run here).

    Raises:
        HubselectError: no texts, a text/label count mismatch, unknown gold labels, missing
            target label names, an unusable model folder, or a metric that cannot be loaded.
    """
    names = require_label_names(target_label_names, role="target")
    texts = [str(t) for t in texts]
    if not texts:
        raise HubselectError("the target evaluation split has no texts: give a labelled "
                             "test split with at least one text")
    if len(texts) != len(labels):
        raise HubselectError(f"the target has {len(texts)} texts but {len(labels)} labels: "
                             "give one gold label per text")
    _gold_names(labels, names)  # unknown gold labels fail before the model is loaded
    metrics = resolve_metrics(metrics, trust_remote_code=trust_remote_code)  # and an untrusted or missing one
    path = _model_path(model)
    classifier = load_classifier(path, names, descriptions=descriptions, mapping=mapping,
                                 device=device, max_length=max_length)
    name = name or os.path.basename(path)
    with progress_bar(f"evaluating {name}", len(texts), quiet=not progress) as advance:
        result, _ = score_texts(classifier, texts, labels, batch_size=batch_size, progress=advance,
                                metrics=metrics, trust_remote_code=trust_remote_code)
    logger.info("%s on %d target texts: accuracy %.4f, macro-F1 %.4f", name, len(texts), result.accuracy,
                result.macro_f1)
    return replace(result, model=path)


def score_texts(classifier: Any, texts: Sequence[str], labels: Sequence[str | int], *,
                batch_size: int = 64, progress: Any = None, metrics: str | Sequence[str] = (),
                trust_remote_code: bool = False) -> tuple[EvalResult, np.ndarray]:
    """Score ``texts`` with a loaded classifier; return the result and the raw scores.

    The scores (texts x the classifier's labels) let label-free statistics (confidence,
    entropy, agreement between models) be computed later without running the model again.
    ``progress`` is an optional ``advance(n)`` called after each batch. ``model`` of the result
    is empty (the classifier does not know its folder). ``metrics`` names further ``evaluate``
    metrics for the result's ``extra_metrics`` (see :func:`resolve_metrics`; Hub ones only with
    ``trust_remote_code``).
    """
    names = list(classifier.label_names)
    gold = _gold_names(labels, names)
    metrics = resolve_metrics(metrics, trust_remote_code=trust_remote_code)
    started = time.perf_counter()
    scores = classifier.scores([str(t) for t in texts], batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - started
    predicted = [names[i] for i in scores.argmax(axis=1)]
    accuracy, macro_f1, per_class = classification_metrics(gold, predicted, names)
    result = EvalResult(accuracy=accuracy, macro_f1=macro_f1, per_class=per_class, n=len(texts),
                        seconds=seconds, examples_per_second=len(texts) / seconds if seconds > 0 else 0.0,
                        formulation=classifier.formulation, model="", predictions=predicted,
                        extra_metrics=compute_metrics(metrics, gold, predicted, names,
                                                      trust_remote_code=trust_remote_code))
    return result, scores


def evaluate_baseline(
    texts: Sequence[str],
    labels: Sequence[str | int],
    target_label_names: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    revision: str | None = None,
    **kwargs: Any,
) -> EvalResult:
    """Evaluate the untuned model (description matching) as the zero-shot baseline.

    Args:
        model: Model name, folder or Hub id (resolved with :func:`resolve_model`).
        revision: Its revision.
        **kwargs: Passed to :func:`evaluate` (descriptions, batch_size, max_length, metrics,
            trust_remote_code...).
    """
    resolved = resolve_model(model, revision)
    kwargs.setdefault("name", f"untuned {resolved.name}")
    return evaluate(resolved, texts, labels, target_label_names, **kwargs)


def _model_path(model: Any) -> str:
    if isinstance(model, ResolvedModel):
        return model.path
    path = getattr(model, "path", model)
    if isinstance(path, (str, os.PathLike)) and os.path.isdir(path):
        return os.fspath(path)
    raise HubselectError(f"cannot evaluate {model!r}: pass a tuned model, its folder, or a "
                         "resolved base model for the baseline")


def _gold_names(labels: Sequence[str | int], names: list[str]) -> list[str]:
    by_key = {normalize_label(n): n for n in names}
    out = []
    for label in labels:
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not 0 <= int(label) < len(names):
                raise HubselectError(f"gold label id {label} is outside the target's "
                                     f"{len(names)} label names {names}: fix --label-names")
            out.append(names[int(label)])
            continue
        name = by_key.get(normalize_label(label))
        if name is None:
            raise HubselectError(f"gold label '{label}' is not one of the target label names "
                                 f"{names}: fix --label-names")
        out.append(name)
    return out
