"""The tuned-model folder: its file names, its ``hubselect.json`` metadata, reading and writing.

One home for the layout that fine-tuning writes (:mod:`hubselect.models.training`), the classifiers
read (:mod:`hubselect.models.zeroshot`) and MLflow logging exports (:mod:`hubselect.pipeline.tracking.models`)::

    config.json, model.safetensors        the encoder (description) or the
                                          AutoModelForSequenceClassification over the source
                                          labels (head)
    tokenizer.json, tokenizer_config.json, vocab.txt, ...
    hubselect.json                        metadata (below)

``hubselect.json`` (format version :data:`FORMAT_VERSION`) holds ``format_version``,
``formulation`` (``description`` or ``head``), ``label_names`` and ``source_label_names`` (the
source's labels; an exported head's ``label_names`` are the target's, with ``label_order``),
``descriptions`` (description only), ``scale`` (the cosine multiplier of training),
``temperature`` (fitted on the source's held-out slice, see below), ``source`` (name, revision,
data_sha256, n_examples, n_train, n_holdout), ``model`` (name, revision), ``config`` (all
fine-tuning settings), ``device``, ``metrics`` (best_holdout_loss, best_holdout_accuracy,
calibrated_holdout_loss, best_step, steps, total_steps, epochs_completed, stopped_early,
batch_size_used, train_seconds, examples_per_second, history of held-out evaluations) and
``cache_key``.

**Calibration.** Training's logits (``cosine * COSINE_SCALE`` for description matching, the head's
logits) are ranked well but not calibrated: a tuned model says 0.50-0.55 for nearly every text.
After training, one temperature ``T`` is fitted on the held-out slice of the source (the slice
early stopping used; 1-D search minimising the negative log-likelihood of ``softmax(logits /
T)`` with a weak prior on ``log T``, ``T`` in [:data:`MIN_TEMPERATURE`,
:data:`MAX_TEMPERATURE`], see :func:`fit_temperature`). Predictions divide the logits
by ``T``: the argmax, and so the accuracy, is unchanged; the probabilities mean something. A
folder without ``temperature`` predicts with ``T = 1``; a cached folder written before
calibration gets its temperature the first time fine-tuning reuses it (same held-out slice,
weights untouched); a model tuned without a held-out slice keeps ``T = 1``. The untuned encoder
has no source and no held-out slice: it uses :data:`hubselect.data.encoder.COSINE_SCALE` (see
there).

The folder format version stayed 1 when ``temperature`` was added (an optional key): folders
already in the cache load unchanged and keep their cache keys.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hubselect.core.errors import HubselectError
from hubselect.data.encoder import CONFIG_FILE, COSINE_SCALE

#: Version of the tuned-model folder layout and training procedure (part of the cache key).
FORMAT_VERSION = 1
#: Name of the metadata file written next to a tuned model's weights.
METADATA_FILE = "hubselect.json"

DESCRIPTION = "description"
HEAD = "head"
FORMULATIONS = (DESCRIPTION, HEAD)

#: Bounds of a fitted temperature (the logits are divided by it).
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


def read_metadata(model_path: str | os.PathLike) -> dict[str, Any]:
    """Return the ``hubselect.json`` metadata of a model folder, or ``{}`` if it has none."""
    path = os.path.join(os.fspath(model_path), METADATA_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_metadata(model_path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write ``meta`` as the folder's ``hubselect.json`` (atomically), stamped with the format
    version when it has none."""
    from hubselect.core.cache import atomic_write_json

    atomic_write_json(os.path.join(os.fspath(model_path), METADATA_FILE),
                      {"format_version": FORMAT_VERSION, **meta})


def folder_formulation(model_path: str | os.PathLike) -> str:
    """Return the formulation of a model folder (from its metadata, else from its config)."""
    path = os.fspath(model_path)
    meta = read_metadata(path)
    if meta.get("formulation") in FORMULATIONS:
        return meta["formulation"]
    with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as handle:
        config = json.load(handle)
    is_head = any(str(a).endswith("ForSequenceClassification")
                  for a in config.get("architectures") or [])
    return HEAD if is_head else DESCRIPTION


def temperature_of(meta: dict[str, Any]) -> float:
    """The calibration temperature of a folder's metadata (1 when it has none)."""
    value = meta.get("temperature")
    return float(value) if value else 1.0


def description_scale(meta: dict[str, Any]) -> float:
    """Cosine multiplier for description matching with a folder: its training scale over its
    temperature; :data:`hubselect.data.encoder.COSINE_SCALE` for a folder without hubselect
    metadata (the untuned encoder, about calibrated at that scale)."""
    if meta.get("formulation") not in FORMULATIONS:
        return COSINE_SCALE
    return float(meta.get("scale", COSINE_SCALE)) / temperature_of(meta)


def _nll(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    from scipy.special import log_softmax

    return float(-np.mean(log_softmax(logits / temperature, axis=1)[np.arange(len(gold)), gold]))


def fit_temperature(logits: Any, gold: Any) -> float:
    """The temperature minimising the mean negative log-likelihood of ``softmax(logits / T)``.

    Golden-section search on ``log T`` over [:data:`MIN_TEMPERATURE`, :data:`MAX_TEMPERATURE`]
    (the likelihood is unimodal in ``T``). A weak standard-normal prior on ``log T`` (the
    weight of one held-out example: ``(log T)^2 / 2n`` is added to the mean NLL) keeps a small
    or all-correct slice from pushing ``T`` to its bound (on 8 all-correct toy examples the
    plain likelihood wants ``T -> 0``); with 100 examples it moves ``T`` by a few percent. An
    empty slice gives 1.

    Args:
        logits: Array (examples, labels) of the held-out logits.
        gold: The gold label index of each example.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(gold, dtype=np.int64)
    if z.ndim != 2 or not len(z) or len(z) != len(y):
        return 1.0

    def objective(log_t: float) -> float:
        return _nll(z, y, math.exp(log_t)) + log_t * log_t / (2 * len(y))

    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = objective(a), objective(b)
    for _ in range(60):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = objective(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = objective(b)
    return float(math.exp((low + high) / 2))


def holdout_nll(logits: Any, gold: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` (``nan`` when empty)."""
    z = np.asarray(logits, dtype=np.float64)
    return _nll(z, np.asarray(gold, dtype=np.int64), temperature) if len(z) else float("nan")


@dataclass(frozen=True)
class TunedModel:
    """A fine-tuned model folder and what produced it.

    Attributes:
        path: Folder with safetensors weights, tokenizer files and ``hubselect.json``.
        formulation: ``description`` or ``head``.
        label_names: The source's label names (head rows / description order).
        descriptions: ``{label: description}`` of the source labels (description formulation;
            empty for head).
        source_name: Name of the source task.
        source_revision: Revision of the source data (``None`` when unknown).
        model_name: The starting encoder as resolved.
        model_revision: Its pinned revision.
        train_seconds: Wall time of the training run (the original run's, when cached).
        examples_per_second: Training examples per second of optimisation (forward, backward
            and step; held-out evaluations excluded).
        from_cache: ``True`` when the folder was found in the cache and nothing was trained.
        best_holdout_loss: Lowest held-out loss (``None`` without a holdout).
        best_holdout_accuracy: Held-out accuracy at that point (``None`` without a holdout).
        key: Cache key of the folder.
        metadata: The parsed ``hubselect.json``.
    """

    path: str
    formulation: str
    label_names: tuple[str, ...]
    descriptions: dict[str, str]
    source_name: str
    source_revision: str | None
    model_name: str
    model_revision: str
    train_seconds: float
    examples_per_second: float
    from_cache: bool
    best_holdout_loss: float | None
    best_holdout_accuracy: float | None
    key: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def examples_used(self) -> int:
        """Source examples the training run used: its training slice plus the held-out one
        (at most ``max_train_examples``, however large the source)."""
        source = self.metadata.get("source") or {}
        return int(source.get("n_train", 0)) + int(source.get("n_holdout", 0))

    @property
    def temperature(self) -> float:
        """The calibration temperature fitted on the held-out slice (1 when none)."""
        return temperature_of(self.metadata)


def load_tuned(path: str | os.PathLike, *, from_cache: bool = True) -> TunedModel:
    """Return the :class:`TunedModel` described by a tuned folder's ``hubselect.json``.

    Raises:
        HubselectError: the folder has no hubselect metadata.
    """
    meta = read_metadata(path)
    if meta.get("formulation") not in FORMULATIONS:
        raise HubselectError(f"{path} has no {METADATA_FILE}: pass a folder written by "
                             "hubselect fine-tuning")
    metrics = meta.get("metrics", {})
    return TunedModel(
        path=os.fspath(path), formulation=meta["formulation"],
        label_names=tuple(meta.get("source_label_names") or meta["label_names"]),
        descriptions=dict(meta.get("descriptions") or {}),
        source_name=meta["source"]["name"], source_revision=meta["source"].get("revision"),
        model_name=meta["model"]["name"], model_revision=meta["model"]["revision"],
        train_seconds=float(metrics.get("train_seconds", 0.0)),
        examples_per_second=float(metrics.get("examples_per_second", 0.0)),
        from_cache=from_cache,
        best_holdout_loss=metrics.get("best_holdout_loss"),
        best_holdout_accuracy=metrics.get("best_holdout_accuracy"),
        key=str(meta.get("cache_key", "")), metadata=meta)
