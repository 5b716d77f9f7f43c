"""Choosing among tuned models without target labels.

A real zero-shot target has no labelled split, so the champion among the ``k`` tuned models must
be chosen from what is known without target labels: each model's predictions on the target's
*unlabelled* texts, and its behaviour on a labelled held-out slice of its own *source*.
Estimators (higher = predicted better):

* ``confidence``: mean max-softmax probability on the target texts;
* ``atc``: Average Thresholded Confidence (Garg et al., ICLR 2022): the share of target texts
  whose confidence exceeds the threshold that reproduces the model's accuracy on its source's
  held-out slice (the slice early stopping used; never the target's labels);
* ``agreement``: mean agreement of the model's predictions with each other tuned model's;
* ``entropy``: minus the mean predictive entropy;
* ``rank``: the top-ranked selected source (the selection's own order).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from hubselect.data.entries import Catalog, read_frame, read_texts

logger = logging.getLogger(__name__)

def atc_threshold(confidence: Sequence[float], correct: Sequence[int]) -> float:
    """The threshold ``t`` with ``mean(confidence > t) = accuracy`` on a labelled held-out slice."""
    conf = np.asarray(confidence, dtype=float)
    if not len(conf):
        return 0.5
    return float(np.quantile(conf, 1.0 - float(np.mean(correct))))


def label_free_estimates(probs: list[np.ndarray], thresholds: Sequence[float]) -> dict[str, np.ndarray]:
    """Every estimator's value per model (in selection order), from target probabilities only."""
    preds = [p.argmax(axis=1) for p in probs]
    n = len(probs)
    agreement = [np.mean([np.mean(preds[i] == preds[j]) for j in range(n) if j != i]) if n > 1 else 0.0
                 for i in range(n)]
    entropy = [float(-(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1).mean()) for p in probs]
    return {"rank": -np.arange(n, dtype=float),
            "confidence": np.array([p.max(axis=1).mean() for p in probs]),
            "atc": np.array([np.mean(p.max(axis=1) > t) for p, t in zip(probs, thresholds)]),
            "agreement": np.array(agreement), "entropy": -np.array(entropy)}


def holdout_confidence(classifier: Any, texts: Sequence[str], labels: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(confidence, correct)`` of a loaded classifier on a labelled slice (source labels)."""
    from scipy.special import softmax

    from hubselect.models.evaluation import _gold_names, score_texts

    result, scores = score_texts(classifier, texts, labels)
    gold = _gold_names(labels, list(classifier.label_names))
    confidence = softmax(np.asarray(scores, dtype=float), axis=1).max(axis=1)
    return confidence, (np.array(result.predictions) == np.array(gold)).astype(int)


def choose_label_free(tuned: list[dict], catalog: Catalog, cfg: Any, estimator: str) -> tuple[dict, str]:
    """The champion among ``tuned`` (selection order) by ``estimator``, and why.

    Reads the target's unlabelled scoring sample and each source's sample (for its held-out
    slice); never the target's labels.
    """
    from scipy.special import softmax

    from hubselect.models.training import holdout_indices
    from hubselect.models.zeroshot import load_classifier

    target = catalog.target
    texts = read_texts(catalog.path(target.score))
    probs, thresholds = [], []
    for rec in tuned:
        clf = load_classifier(rec["path"], target.label_names, descriptions=cfg.descriptions, mapping=cfg.mapping,
                              max_length=cfg.finetune.max_length)
        probs.append(softmax(np.asarray(clf.scores(texts), dtype=float), axis=1))
        entry = catalog.candidate(rec["source"])
        frame = read_frame(catalog.path(entry), ["text", "label"])
        idx = holdout_indices(len(frame), cfg.finetune)
        source = load_classifier(rec["path"], entry.label_names or sorted(frame["label"].astype(str).unique()),
                                 descriptions=cfg.descriptions, max_length=cfg.finetune.max_length)
        conf, correct = holdout_confidence(source, frame["text"].iloc[idx].astype(str).tolist(),
                                           frame["label"].iloc[idx].tolist())
        thresholds.append(atc_threshold(conf, correct))
    values = label_free_estimates(probs, thresholds)[estimator]
    pick = int(np.argmax(values))
    shown = ", ".join(f"{r['source']} {v:.3f}" for r, v in zip(tuned, values))
    return tuned[pick], f"highest {estimator} on the target's unlabelled texts ({shown}); target labels not used"
