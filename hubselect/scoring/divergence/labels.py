"""Distances between two label spaces: what the labels mean and how the classes are balanced.

A zero-shot user knows the target's label *names* (never its labelled examples). These measures
compare a source's label space with the target's from the names alone, embedded with a sentence
encoder, and from the class balance: the source's label counts against the distribution the
untuned zero-shot model predicts on the target's unlabelled texts. Both are oriented
"lower = closer", non-negative, 0 for identical inputs, and pure (embeddings come in as arrays).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike

from hubselect.scoring.divergence.terms import _as_float_array, _check_finite

__all__ = ["label_set_distance", "label_balance_distance", "nearest_label_map", "label_space_distances",
           "LABEL_COLUMNS"]

#: The distances :func:`label_space_distances` gives, in order.
LABEL_COLUMNS = ("label_distance", "balance_distance")


def _label_matrix(a: ArrayLike, name: str, d: int | None = None) -> np.ndarray:
    a = _as_float_array(a, name)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array (labels, d) with at least one row, got shape {a.shape}")
    if d is not None and a.shape[1] != d:
        raise ValueError(f"{name} must have {d} columns like target_labels, got shape {a.shape}")
    _check_finite(a, name)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} has an all-zero row: label embeddings must be non-zero")
    return a / norms


def _cosines(target_labels: ArrayLike, source_labels: ArrayLike) -> np.ndarray:
    t = _label_matrix(target_labels, "target_labels")
    s = _label_matrix(source_labels, "source_labels", t.shape[1])
    return np.clip(t @ s.T, -1.0, 1.0)


def label_set_distance(target_labels: ArrayLike, source_labels: ArrayLike) -> float:
    """Semantic distance between two label sets (symmetric best-match cosine).

    .. math::
        d(T, S) = 1 - \\tfrac12 \\Big( \\tfrac{1}{|T|}\\sum_{t} \\max_{s} \\cos(t, s)
                  + \\tfrac{1}{|S|}\\sum_{s} \\max_{t} \\cos(t, s) \\Big)

    Each label of one set is matched to its closest label of the other (a BERTScore-style
    greedy match, Zhang et al. 2020) in both directions, so a source covering the target's labels
    *and* having no unrelated extra labels is closest. Same names give 0; ``negative/positive``
    against ``sarcastic/not sarcastic`` is far; ``negative/positive`` against
    ``negative/neutral/positive`` is close but not 0.

    Args:
        target_labels: Embeddings of the target's label names, shape ``(T, d)``.
        source_labels: Embeddings of the source's label names, shape ``(S, d)``.

    Returns:
        A float in ``[0, 2]`` (``[0, 1]`` for embeddings with non-negative cosines).

    Raises:
        ValueError: a non-2-D input, mismatched ``d``, non-finite values or an all-zero row.
    """
    cos = _cosines(target_labels, source_labels)
    return float(max(0.0, 1.0 - 0.5 * (cos.max(axis=1).mean() + cos.max(axis=0).mean())))


def nearest_label_map(target_labels: ArrayLike, source_labels: ArrayLike) -> np.ndarray:
    """For each source label, the index of its closest target label (cosine), shape ``(S,)``."""
    return _cosines(target_labels, source_labels).argmax(axis=0)


def label_balance_distance(target_probs: ArrayLike, source_probs: ArrayLike, target_labels: ArrayLike,
                           source_labels: ArrayLike) -> float:
    """Total variation between the target's class balance and the source's, mapped onto the
    target's labels.

    .. math::
        q_t = \\sum_{s:\\, m(s) = t} p^{src}_s, \\qquad d = \\tfrac12 \\sum_t |p^{tgt}_t - q_t|

    where :math:`m(s)` is the target label closest to source label :math:`s`
    (:func:`nearest_label_map`). ``target_probs`` is an estimate made without target labels: the
    mean predicted distribution of the untuned zero-shot model over the target's texts. A
    neutral-heavy source against a negative-heavy target is far even with the same label names.

    Args:
        target_probs: Target class distribution, shape ``(T,)``, non-negative (normalised here).
        source_probs: Source label counts or shares, shape ``(S,)``, non-negative.
        target_labels: Target label embeddings ``(T, d)``.
        source_labels: Source label embeddings ``(S, d)``.

    Returns:
        A float in ``[0, 1]``.

    Raises:
        ValueError: shapes that disagree with the label embeddings, negative or all-zero weights.
    """
    mapping = nearest_label_map(target_labels, source_labels)
    p = _distribution(target_probs, "target_probs", len(np.atleast_2d(target_labels)))
    q_src = _distribution(source_probs, "source_probs", len(mapping))
    q = np.bincount(mapping, weights=q_src, minlength=len(p))
    return float(0.5 * np.abs(p - q).sum())


def _distribution(w: ArrayLike, name: str, n: int) -> np.ndarray:
    w = _as_float_array(w, name)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match its label embeddings, got shape {w.shape}")
    _check_finite(w, name)
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"{name} must be non-negative with a positive sum, got {w.tolist()}")
    return w / w.sum()


def label_space_distances(target: tuple[ArrayLike, ArrayLike],
                          sources: Mapping[str, tuple[ArrayLike, ArrayLike]]) -> dict[str, dict[str, float]]:
    """Both label-space distances of every source from the target.

    Args:
        target: The target's label embeddings ``(T, d)`` and class distribution ``(T,)``.
        sources: ``{source: (label embeddings (S, d), label counts or shares (S,))}``.

    Returns:
        ``{"label_distance": {source: d}, "balance_distance": {source: d}}``
        (:func:`label_set_distance`, :func:`label_balance_distance`), sources in the given order.

    Raises:
        ValueError: as the two distances do, for any source.
    """
    labels, probs = target
    out: dict[str, dict[str, float]] = {column: {} for column in LABEL_COLUMNS}
    for name, (embeddings, counts) in sources.items():
        out["label_distance"][name] = label_set_distance(labels, embeddings)
        out["balance_distance"][name] = label_balance_distance(probs, counts, labels, embeddings)
    return out
