"""Label-space features of each candidate against the target, from label *names* and counts.

The target's labelled examples are never read: its label names are embedded with the scoring
encoder, and its class balance is estimated as the untuned encoder's mean zero-shot distribution
over the target's unlabelled texts (cosine to each label name, softmax at
:data:`ZERO_SHOT_SCALE`). Each candidate contributes its label names and label counts. The
measures themselves live in :mod:`hubselect.divergence.labels`.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)

#: Cosine-to-logit scale of the zero-shot class-balance estimate (as in :mod:`hubselect.zeroshot`).
ZERO_SHOT_SCALE = 20.0
LABEL_COLUMNS = ("label_distance", "balance_distance")


def label_name_embeddings(names: Sequence[str], encoder: Any) -> np.ndarray:
    """Embeddings of readable label names (:func:`hubselect.labelnames.humanize_labels`)."""
    from hubselect.labelnames import humanize_labels

    words = humanize_labels(names)
    return encoder([words[str(n)] for n in names])


def zero_shot_distribution(text_embeddings: np.ndarray, label_embeddings: np.ndarray,
                           scale: float = ZERO_SHOT_SCALE) -> np.ndarray:
    """Mean softmax over labels of ``scale * cos(text, label)``: the predicted class balance."""
    logits = scale * (text_embeddings @ label_embeddings.T)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=1, keepdims=True)).mean(axis=0)


def label_space_table(target_names: Sequence[str], target_texts: np.ndarray,
                      sources: Mapping[str, Mapping[str, float]], encoder: Any) -> Any:
    """One row per source: ``label_distance`` and ``balance_distance`` (lower = closer).

    Args:
        target_names: The target's label names (what a zero-shot user gives).
        target_texts: Embeddings of the target's unlabelled texts, ``(n, d)`` from ``encoder``.
        sources: ``{source: {label name: count}}``.
        encoder: A callable embedding a list of strings (:class:`hubselect.represent.store.Encoder`).
    """
    import pandas as pd

    from hubselect.divergence.labels import label_balance_distance, label_set_distance

    target_emb = label_name_embeddings(list(target_names), encoder)
    target_probs = zero_shot_distribution(np.asarray(target_texts), target_emb)
    rows = {}
    for name, counts in sources.items():
        labels = list(counts)
        emb = label_name_embeddings(labels, encoder)
        rows[name] = {"label_distance": label_set_distance(target_emb, emb),
                      "balance_distance": label_balance_distance(target_probs, [counts[k] for k in labels],
                                                                 target_emb, emb)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(LABEL_COLUMNS))
