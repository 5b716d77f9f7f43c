"""Label spaces as arrays: label *names* embedded, and a class balance for each domain.

The target's labelled examples are never read: its label names are embedded with the scoring
encoder, and its class balance is estimated as the untuned encoder's mean zero-shot distribution
over the target's unlabelled texts (cosine to each label name, softmax at
:data:`hubselect.data.encoder.COSINE_SCALE`). Each candidate contributes its label names and label counts. The
distances between these label spaces live one layer up, in :mod:`hubselect.scoring.divergence.labels`
(``label_space_distances(*label_spaces(...))``).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from hubselect.data.encoder import COSINE_SCALE

logger = logging.getLogger(__name__)

#: A label space: label-name embeddings ``(labels, d)`` and class weights ``(labels,)`` in the same order.
LabelSpace = tuple[np.ndarray, np.ndarray]


def label_name_embeddings(names: Sequence[str], encoder: Any) -> np.ndarray:
    """Embeddings of readable label names (:func:`hubselect.data.labelnames.humanize_labels`)."""
    from hubselect.data.labelnames import humanize_labels

    words = humanize_labels(names)
    return encoder([words[str(n)] for n in names])


def zero_shot_distribution(text_embeddings: np.ndarray, label_embeddings: np.ndarray,
                           scale: float = COSINE_SCALE) -> np.ndarray:
    """Mean softmax over labels of ``scale * cos(text, label)``: the predicted class balance."""
    from scipy.special import softmax

    return softmax(scale * (text_embeddings @ label_embeddings.T), axis=1).mean(axis=0)


def label_spaces(target_names: Sequence[str], target_texts: np.ndarray,
                 sources: Mapping[str, Mapping[str, float]], encoder: Any) -> tuple[LabelSpace, dict[str, LabelSpace]]:
    """The target's label space and each source's, as arrays for :mod:`hubselect.scoring.divergence.labels`.

    Args:
        target_names: The target's label names (what a zero-shot user gives).
        target_texts: Embeddings of the target's unlabelled texts, ``(n, d)`` from ``encoder``.
        sources: ``{source: {label name: count}}``.
        encoder: A callable embedding a list of strings (:class:`hubselect.scoring.represent.store.Encoder`).

    Returns:
        ``(target, {source: space})``: the target's label embeddings with its estimated class
        balance (:func:`zero_shot_distribution`), and each source's label embeddings with its counts.
    """
    target_emb = label_name_embeddings(list(target_names), encoder)
    target = (target_emb, zero_shot_distribution(np.asarray(target_texts), target_emb))
    spaces = {}
    for name, counts in sources.items():
        labels = list(counts)
        spaces[name] = (label_name_embeddings(labels, encoder), np.array([counts[k] for k in labels], dtype=float))
    return target, spaces
