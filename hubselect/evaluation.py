"""Zero-shot evaluation of a tuned model (or the untuned baseline) on the target's test texts.

Metrics are computed with scikit-learn, offline: accuracy, macro-F1 over the target's labels
and a per-class report (precision, recall, F1, support). Both formulations are handled: a
description model compares text embeddings with the target's label descriptions; a head model
uses its classification head, aligned to the target's labels.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from hubselect.errors import HubselectError
from hubselect.modeling import DEFAULT_MODEL, ResolvedModel, resolve_model
from hubselect.zeroshot import load_classifier, normalize_label, require_label_names

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

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat numeric metrics for logging, e.g. ``{prefix + "accuracy": ...}``."""
        out = {f"{prefix}accuracy": self.accuracy, f"{prefix}macro_f1": self.macro_f1,
               f"{prefix}n": float(self.n), f"{prefix}examples_per_second":
               self.examples_per_second}
        for label, row in self.per_class.items():
            safe = normalize_label(label).replace(" ", "_")
            out[f"{prefix}f1_{safe}"] = row["f1"]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (predictions left out)."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "per_class": self.per_class, "n": self.n, "seconds": self.seconds,
                "examples_per_second": self.examples_per_second,
                "formulation": self.formulation, "model": self.model}


def gain(tuned: EvalResult | float, baseline: EvalResult | float) -> float:
    """Return ``tuned accuracy - baseline accuracy`` (results or plain accuracies)."""
    a = tuned.accuracy if isinstance(tuned, EvalResult) else float(tuned)
    b = baseline.accuracy if isinstance(baseline, EvalResult) else float(baseline)
    return a - b


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], label_names: Sequence[str]
) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Return ``(accuracy, macro_f1, per_class)`` over ``label_names`` (scikit-learn).

    Labels never predicted nor present count with precision/recall/F1 0 (``zero_division=0``).
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    names = list(label_names)
    precision, recall, f1, support = precision_recall_fscore_support(
        list(gold), list(predicted), labels=names, average=None, zero_division=0)
    per_class = {n: {"precision": float(p), "recall": float(r), "f1": float(f),
                     "support": int(s)}
                 for n, p, r, f, s in zip(names, precision, recall, f1, support)}
    accuracy = float(accuracy_score(list(gold), list(predicted)))
    return accuracy, float(np.mean(f1)) if len(names) else 0.0, per_class


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
) -> EvalResult:
    """Predict the target's labels for ``texts`` zero-shot and score them against ``labels``.

    Args:
        model: A tuned model (:class:`hubselect.training.TunedModel` or its folder), an exported
            head folder, or a :class:`hubselect.modeling.ResolvedModel` (untuned baseline with
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

    Raises:
        HubselectError: no texts, a text/label count mismatch, unknown gold labels, missing
            target label names, or an unusable model folder.
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
    path = _model_path(model)
    classifier = load_classifier(path, names, descriptions=descriptions, mapping=mapping,
                                 device=device, max_length=max_length)
    bar = task = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        task = bar.add_task(f"evaluating {os.path.basename(path)}", total=len(texts))
        bar.start()
    try:
        advance = (lambda k: bar.update(task, advance=k)) if bar is not None else None
        result, _ = score_texts(classifier, texts, labels, batch_size=batch_size, progress=advance)
    finally:
        if bar is not None:
            bar.stop()
    logger.info("%s on %d target texts: accuracy %.4f, macro-F1 %.4f",
                os.path.basename(path), len(texts), result.accuracy, result.macro_f1)
    return replace(result, model=path)


def score_texts(classifier: Any, texts: Sequence[str], labels: Sequence[str | int], *,
                batch_size: int = 64, progress: Any = None) -> tuple[EvalResult, np.ndarray]:
    """Score ``texts`` with a loaded classifier; return the result and the raw scores.

    The scores (texts x the classifier's labels) let label-free statistics (confidence,
    entropy, agreement between models) be computed later without running the model again.
    ``progress`` is an optional ``advance(n)`` called after each batch. ``model`` of the result
    is empty (the classifier does not know its folder).
    """
    names = list(classifier.label_names)
    gold = _gold_names(labels, names)
    started = time.perf_counter()
    scores = classifier.scores([str(t) for t in texts], batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - started
    predicted = [names[i] for i in scores.argmax(axis=1)]
    accuracy, macro_f1, per_class = classification_metrics(gold, predicted, names)
    result = EvalResult(accuracy=accuracy, macro_f1=macro_f1, per_class=per_class, n=len(texts),
                        seconds=seconds, examples_per_second=len(texts) / seconds if seconds > 0 else 0.0,
                        formulation=classifier.formulation, model="", predictions=predicted)
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
        **kwargs: Passed to :func:`evaluate` (descriptions, batch_size, max_length, ...).
    """
    return evaluate(resolve_model(model, revision), texts, labels, target_label_names, **kwargs)


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
