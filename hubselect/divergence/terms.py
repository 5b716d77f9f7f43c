"""Divergences between term (unigram) distributions.

Every function takes ``p``, the target's term counts with shape ``(V,)``, and ``q``, one
candidate's counts with shape ``(V,)`` or ``m`` candidates' counts with shape ``(m, V)`` over the
same vocabulary axis. Counts are non-negative and need not sum to one: each function normalises
them itself, so every measure is invariant to rescaling ``p`` or any row of ``q``.

A 1-D ``q`` gives a Python ``float``; a 2-D ``q`` gives a float array of shape ``(m,)``, one value
per row. Every measure is oriented "lower = closer", is non-negative, and is 0 for identical
distributions. All are vectorised over the rows of ``q``.

Background: Plank & van Noord (2011), "Effective Measures of Domain Similarity for Parsing", ACL;
Ruder & Plank (2017), "Learning to select data for transfer learning with Bayesian Optimization",
EMNLP; Pugantsov & McCreadie (2023), "Divergence-Based Domain Transferability for Zero-Shot
Classification", Findings of EACL.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "kl_divergence",
    "jensen_shannon_divergence",
    "renyi_divergence",
    "bhattacharyya_distance",
    "hellinger_distance",
    "cosine_distance",
    "total_variation_distance",
    "jaccard_distance",
    "oov_rate",
]

#: Floor for the Bhattacharyya coefficient, so disjoint supports give a finite distance
#: ``-ln(tiny) ~= 708.4`` instead of ``inf`` (a non-finite value would break rankings).
BHATTACHARYYA_COEFFICIENT_FLOOR = float(np.finfo(np.float64).tiny)
_TINY = float(np.finfo(np.float64).tiny)


# ----------------------------------------------------------------------------- validation


def _as_float_array(a: ArrayLike, name: str) -> np.ndarray:
    """Return ``a`` as a float64 ndarray; ``ValueError`` naming ``name`` if it is not numeric."""
    if hasattr(a, "toarray"):  # scipy.sparse matrix or array
        a = a.toarray()
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype} with shape {arr.shape}")
    return arr.astype(np.float64, copy=False)


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.isfinite(a).all():
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s) (shape {a.shape})")


def _counts(p: ArrayLike, q: ArrayLike) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate counts; return normalised ``P (V,)``, ``Q (m, V)`` and whether ``q`` was 1-D."""
    p = _as_float_array(p, "p")
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"p must be a non-empty 1-D array of term counts with shape (V,), got shape {p.shape}")
    _check_finite(p, "p")
    if p.min() < 0:
        raise ValueError(f"p contains negative counts (min {p.min():g}, shape {p.shape})")
    p_total = p.sum()
    if not p_total > 0:
        raise ValueError(f"p sums to zero (no tokens), shape {p.shape}: the target needs at least one counted term")
    vocab = p.shape[0]

    q = _as_float_array(q, "q")
    if q.ndim not in (1, 2) or q.shape[-1] != vocab or q.size == 0:
        raise ValueError(f"q must be 1-D or 2-D with {vocab} columns like p, got shape {q.shape}")
    one_d = q.ndim == 1
    q2 = q.reshape(1, vocab) if one_d else q
    _check_finite(q2, "q")
    if q2.min() < 0:
        raise ValueError(f"q contains negative counts (min {q2.min():g}, shape {q.shape})")
    q_totals = q2.sum(axis=1)
    empty = np.flatnonzero(~(q_totals > 0))
    if empty.size:
        where = "q" if one_d else f"q row(s) {empty[:10].tolist()}"
        raise ValueError(f"{where} sum(s) to zero (no tokens), shape {q.shape}: every candidate needs at least one counted term")
    return p / p_total, q2 / q_totals[:, None], one_d


def _check_epsilon(epsilon: float) -> float:
    epsilon = float(epsilon)
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    return epsilon


def _smooth(dist: np.ndarray, epsilon: float) -> np.ndarray:
    """Additive smoothing of normalised rows: ``(d + eps) / (1 + V * eps)``."""
    vocab = dist.shape[-1]
    return (dist + epsilon) / (1.0 + vocab * epsilon)


def _safe_log(a: np.ndarray) -> np.ndarray:
    """Natural log of probabilities, finite at 0 (``log(tiny)``): callers multiply it by that 0."""
    return np.log(np.maximum(a, _TINY))


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two equally shaped 2-D arrays."""
    return np.einsum("ij,ij->i", a, b)


def _result(values: np.ndarray, one_d: bool) -> float | np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return float(values[0]) if one_d else values


# ----------------------------------------------------------------------------- measures


def kl_divergence(p: ArrayLike, q: ArrayLike, epsilon: float = 1e-6) -> float | np.ndarray:
    r"""Kullback-Leibler divergence ``KL(P_target || Q_source)`` in nats, with additive smoothing.

    Both count vectors are normalised to probabilities and then smoothed by adding ``epsilon``
    probability mass to every one of the ``V`` vocabulary terms and renormalising:

    .. math::
        p'_i = \frac{p_i / \sum_j p_j + \epsilon}{1 + V\epsilon}, \qquad
        q'_i = \frac{q_i / \sum_j q_j + \epsilon}{1 + V\epsilon}, \qquad
        KL = \sum_i p'_i \ln \frac{p'_i}{q'_i}.

    Smoothing keeps the value finite when the candidate lacks a target term. Because ``epsilon``
    is a probability (not a pseudo-count) the result does not depend on corpus sizes, but the
    total smoothing mass is ``V * epsilon`` (0.1 for ``V = 100 000`` and the default), so compare
    values only across the same vocabulary. Asymmetric: the target is the reference
    distribution.

    Args:
        p: target term counts, shape ``(V,)``, non-negative, not all zero.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.
        epsilon: smoothing mass per term, finite and > 0.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array; always ``>= 0``.

    Raises:
        ValueError: on bad shapes, non-finite or negative counts, all-zero rows, bad ``epsilon``.

    References:
        Kullback & Leibler (1951), "On Information and Sufficiency", Ann. Math. Statist.;
        Plank & van Noord (2011), ACL.
    """
    epsilon = _check_epsilon(epsilon)
    P, Q, one_d = _counts(p, q)
    Ps, Qs = _smooth(P, epsilon), _smooth(Q, epsilon)
    values = (np.log(Ps) - np.log(Qs)) @ Ps
    return _result(np.maximum(values, 0.0), one_d)


def jensen_shannon_divergence(p: ArrayLike, q: ArrayLike, base: float = 2) -> float | np.ndarray:
    r"""Jensen-Shannon divergence (the divergence, not its square root, the JS distance).

    .. math::
        JS(P, Q) = \tfrac12 KL(P \| M) + \tfrac12 KL(Q \| M), \qquad M = \tfrac12 (P + Q),

    with logarithms in ``base``. Symmetric, needs no smoothing (``0 \log 0 = 0``), and lies in
    ``[0, 1]`` for ``base=2``. Equals ``scipy.spatial.distance.jensenshannon(p, q, base) ** 2``.

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.
        base: logarithm base, finite, > 0 and != 1.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array.

    Raises:
        ValueError: on invalid counts or ``base``.

    References:
        Lin (1991), "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory.
    """
    base = float(base)
    if not (np.isfinite(base) and base > 0 and base != 1):
        raise ValueError(f"base must be a finite number > 0 and != 1, got {base!r}")
    P, Q, one_d = _counts(p, q)
    M = 0.5 * (P + Q)
    # JS = H(M) - (H(P) + H(Q)) / 2 with H(A) = -sum_i a_i ln a_i (0 ln 0 = 0); every row sum
    # goes through the same kernel, so identical inputs give exactly 0
    p_term = _row_dot(P[None, :], _safe_log(P)[None, :])
    values = (0.5 * (p_term + _row_dot(Q, _safe_log(Q))) - _row_dot(M, _safe_log(M))) / np.log(base)
    return _result(np.maximum(values, 0.0), one_d)


def renyi_divergence(
    p: ArrayLike, q: ArrayLike, alpha: float = 0.99, epsilon: float = 1e-6
) -> float | np.ndarray:
    r"""Rényi divergence of order ``alpha``, ``D_alpha(P_target || Q_source)``, in nats.

    .. math::
        D_\alpha(P \| Q) = \frac{1}{\alpha - 1} \ln \sum_i p_i'^{\,\alpha} q_i'^{\,1-\alpha}

    on the same smoothed distributions as :func:`kl_divergence`. It tends to KL as
    ``alpha -> 1``; the default ``alpha = 0.99`` is the value used for domain similarity by
    Van Asch & Daelemans (2010) and Plank & van Noord (2011), and adopted for source selection by
    Pugantsov & McCreadie (2023). Computed as a weighted log-sum-exp of ``(1-alpha) ln(q'/p')`` with weights ``p'`` so
    it is stable for any order and exactly 0 for identical inputs. Asymmetric.

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.
        alpha: order, finite, > 0 and != 1.
        epsilon: smoothing mass per term, finite and > 0 (see :func:`kl_divergence`).

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array; always ``>= 0``.

    Raises:
        ValueError: on invalid counts, ``alpha`` or ``epsilon``.

    References:
        Rényi (1961), "On measures of entropy and information", Berkeley Symp.;
        Van Asch & Daelemans (2010), "Using domain similarity for performance estimation", ACL
        DANLP workshop.
    """
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha > 0 and alpha != 1):
        raise ValueError(f"alpha must be a finite number > 0 and != 1, got {alpha!r}")
    epsilon = _check_epsilon(epsilon)
    P, Q, one_d = _counts(p, q)
    Ps, Qs = _smooth(P, epsilon), _smooth(Q, epsilon)
    log_ps = np.log(Ps)
    exponent = (1.0 - alpha) * (np.log(Qs) - log_ps)
    values = _log_mean_exp(exponent, Ps) / (alpha - 1.0)
    return _result(np.maximum(values, 0.0), one_d)


def _log_mean_exp(exponent: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise ``ln(sum_i w_i exp(e_i) / sum_i w_i)`` without overflow and exact for ``e = 0``.

    The row maximum ``s`` is shifted out. When ``s < 1`` the mean is ``1 + mean(expm1(e - s))``
    and ``log1p`` keeps full precision near 0 (identical inputs give exactly 0); otherwise the
    plain shifted log-sum-exp is used, which avoids cancellation when the mean is far from 1.
    """
    shift = exponent.max(axis=1)
    total = weights.sum()
    out = np.empty(exponent.shape[0])
    near = shift < 1.0
    for rows, transform, link in ((near, np.expm1, np.log1p), (~near, np.exp, np.log)):
        if rows.any():
            block = exponent if rows.all() else exponent[rows]
            mean = (transform(block - shift[rows][:, None]) @ weights) / total
            out[rows] = link(mean) + shift[rows]
    return out


def _hellinger_squared(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    return 0.5 * np.square(np.sqrt(Q) - np.sqrt(P)).sum(axis=1)


def bhattacharyya_distance(p: ArrayLike, q: ArrayLike) -> float | np.ndarray:
    r"""Bhattacharyya distance ``-ln BC(P, Q)`` with ``BC = \sum_i \sqrt{p_i q_i}``.

    Symmetric. For overlapping distributions ``BC`` is computed as ``1 - H^2`` (``H`` the Hellinger
    distance) through ``-log1p(-H^2)``, which is exact at 0 for identical inputs; for small ``BC``
    (< 0.5) the direct sum is used. ``BC`` is floored at
    :data:`BHATTACHARYYA_COEFFICIENT_FLOOR` (the smallest normal float64), so disjoint supports
    give the finite maximum ``~708.4`` instead of ``inf``.

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array, in ``[0, ~708.4]``.

    Raises:
        ValueError: on invalid counts.

    References:
        Bhattacharyya (1943), "On a measure of divergence between two statistical populations",
        Bull. Calcutta Math. Soc.; Ruder & Plank (2017), EMNLP.
    """
    P, Q, one_d = _counts(p, q)
    bc_direct = np.sqrt(Q) @ np.sqrt(P)
    h2 = np.clip(_hellinger_squared(P, Q), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        near = -np.log1p(-h2)
    far = -np.log(np.maximum(bc_direct, BHATTACHARYYA_COEFFICIENT_FLOOR))
    values = np.where(bc_direct < 0.5, far, near)
    return _result(np.clip(values, 0.0, -np.log(BHATTACHARYYA_COEFFICIENT_FLOOR)), one_d)


def hellinger_distance(p: ArrayLike, q: ArrayLike) -> float | np.ndarray:
    r"""Hellinger distance ``H(P, Q) = \sqrt{1 - BC(P, Q)}``.

    Computed in the equivalent, cancellation-free form

    .. math::
        H(P, Q) = \frac{1}{\sqrt 2} \big\| \sqrt{P} - \sqrt{Q} \big\|_2 ,

    symmetric and in ``[0, 1]`` (1 for disjoint supports).

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array.

    Raises:
        ValueError: on invalid counts.

    References:
        Hellinger (1909), J. reine angew. Math.; Le Cam & Yang (2000), "Asymptotics in
        Statistics".
    """
    P, Q, one_d = _counts(p, q)
    return _result(np.sqrt(np.clip(_hellinger_squared(P, Q), 0.0, 1.0)), one_d)


def cosine_distance(p: ArrayLike, q: ArrayLike) -> float | np.ndarray:
    r"""Cosine distance ``1 - p.q / (|p| |q|)`` between the count vectors.

    Computed as ``0.5 * || p/|p| - q/|q| ||^2`` (the same quantity, exactly 0 for identical or
    proportional inputs). Symmetric, in ``[0, 1]`` for non-negative counts. Agrees with
    ``scipy.spatial.distance.cosine``.

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array.

    Raises:
        ValueError: on invalid counts.

    References:
        Salton & McGill (1983), "Introduction to Modern Information Retrieval"; Ruder & Plank
        (2017), EMNLP.
    """
    P, Q, one_d = _counts(p, q)
    u = P / np.linalg.norm(P[None, :], axis=1)  # same code path as the rows of Q
    w = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    values = 0.5 * np.square(w - u).sum(axis=1)
    return _result(np.clip(values, 0.0, 1.0), one_d)


def total_variation_distance(p: ArrayLike, q: ArrayLike) -> float | np.ndarray:
    r"""Total variation distance ``TV(P, Q) = \tfrac12 \sum_i |p_i - q_i|``.

    Symmetric, in ``[0, 1]`` (1 for disjoint supports). Also called the variational distance
    (Ruder & Plank 2017 use its ``L1`` form, twice this value).

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array.

    Raises:
        ValueError: on invalid counts.

    References:
        Levin, Peres & Wilmer (2009), "Markov Chains and Mixing Times", ch. 4.
    """
    P, Q, one_d = _counts(p, q)
    values = 0.5 * np.abs(Q - P).sum(axis=1)
    return _result(np.clip(values, 0.0, 1.0), one_d)


def jaccard_distance(p: ArrayLike, q: ArrayLike) -> float | np.ndarray:
    r"""Vocabulary-overlap (Jaccard) distance of the supports.

    .. math::
        J(P, Q) = 1 - \frac{|\mathrm{supp}\,P \cap \mathrm{supp}\,Q|}{|\mathrm{supp}\,P \cup \mathrm{supp}\,Q|}

    where ``supp`` is the set of terms with a non-zero count. Ignores frequencies; symmetric,
    in ``[0, 1]``.

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array.

    Raises:
        ValueError: on invalid counts.

    References:
        Jaccard (1912), "The distribution of the flora in the alpine zone", New Phytologist;
        Dai et al. (2019), "Using Similarity Measures to Select Pretraining Data for NER", NAACL.
    """
    P, Q, one_d = _counts(p, q)
    in_p = P > 0
    in_q = Q > 0
    inter = np.count_nonzero(in_q & in_p, axis=1)
    union = np.count_nonzero(in_p) + np.count_nonzero(in_q, axis=1) - inter
    return _result(1.0 - inter / union, one_d)


def oov_rate(p: ArrayLike, q: ArrayLike) -> float | np.ndarray:
    r"""Out-of-vocabulary rate: share of the target's token mass on terms the candidate lacks.

    .. math::
        OOV(P, Q) = \sum_{i : q_i = 0} p_i

    with ``p`` normalised. Asymmetric, in ``[0, 1]``: 0 when the candidate covers every target
    term, 1 when it covers none.

    Args:
        p: target term counts, shape ``(V,)``.
        q: candidate counts, shape ``(V,)`` or ``(m, V)``.

    Returns:
        ``float`` for 1-D ``q``, else an ``(m,)`` array.

    Raises:
        ValueError: on invalid counts.

    References:
        Dai et al. (2019), "Using Similarity Measures to Select Pretraining Data for NER", NAACL
        (target vocabulary covered rate).
    """
    P, Q, one_d = _counts(p, q)
    values = (Q == 0).astype(np.float64) @ P
    return _result(np.clip(values, 0.0, 1.0), one_d)
