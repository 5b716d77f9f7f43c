"""Divergences between term (unigram) distributions.

Every function takes ``p``, the target's term counts with shape ``(V,)``, and ``q``, one
candidate's counts with shape ``(V,)`` or ``m`` candidates' counts with shape ``(m, V)`` over the
same vocabulary axis. Counts are non-negative and need not sum to one: each function normalises
them itself, so every measure is invariant to rescaling ``p`` or any row of ``q``.

A 1-D ``q`` gives a Python ``float``; a 2-D ``q`` gives a float array of shape ``(m,)``, one value
per row. Every measure is oriented "lower = closer", is non-negative, and is 0 for identical
distributions. All are vectorised over the rows of ``q``.

``q`` may also be a ``scipy.sparse`` matrix or array (CSR is best), each row holding only its own
terms; it is then never made dense over the whole vocabulary. A row's sum over the ``V`` terms is
split in three exact parts: the target's support (a dense block of rows x ``|supp p|``), the row's
own terms outside it (its stored values, where ``p_i = 0``), and the terms neither uses, each
adding the measure's value at ``p_i = q_i = 0`` (0 for every measure but Rényi, whose smoothed
terms add ``epsilon / (1 + V epsilon)`` each). ``V`` is still the number of columns, so the
smoothing of KL and Rényi is the dense one, and the values equal the dense computation up to the
order of floating-point sums (``tests/test_scale_sparse.py``).

Background: Plank & van Noord (2011), "Effective Measures of Domain Similarity for Parsing", ACL;
Ruder & Plank (2017), "Learning to select data for transfer learning with Bayesian Optimization",
EMNLP; Pugantsov & McCreadie (2023), "Divergence-Based Domain Transferability for Zero-Shot
Classification", Findings of EACL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

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
    p, p_total = _target(p)
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
    _check_rows(q_totals, one_d, q.shape)
    return p / p_total, q2 / q_totals[:, None], one_d


def _check_rows(totals: np.ndarray, one_d: bool, shape: tuple[int, ...]) -> None:
    """``ValueError`` naming the candidates' rows whose counts sum to zero."""
    empty = np.flatnonzero(~(totals > 0))
    if empty.size:
        where = "q" if one_d else f"q row(s) {empty[:10].tolist()}"
        raise ValueError(f"{where} sum(s) to zero (no tokens), shape {shape}: "
                         "every candidate needs at least one counted term")


def _target(p: ArrayLike) -> tuple[np.ndarray, float]:
    """Validate the target's counts (dense or sparse); return them as ``(V,)`` float64 and their sum."""
    p = _as_float_array(p, "p")
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"p must be a non-empty 1-D array of term counts with shape (V,), got shape {p.shape}")
    _check_finite(p, "p")
    if p.min() < 0:
        raise ValueError(f"p contains negative counts (min {p.min():g}, shape {p.shape})")
    p_total = p.sum()
    if not p_total > 0:
        raise ValueError(f"p sums to zero (no tokens), shape {p.shape}: the target needs at least one counted term")
    return p, p_total


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


# ----------------------------------------------------------------------------- sparse rows

#: Dense cells per block of sparse rows (rows x the target's support): about 16 MB of float64.
SPARSE_BLOCK_CELLS = 2**21


@dataclass(frozen=True)
class _Block:
    """Some rows of a sparse ``q`` against the target, each row's ``V`` terms split in three parts.

    Attributes:
        P: The target's probabilities on its support, shape ``(k,)``.
        Q: The rows' probabilities on the target's support, shape ``(m, k)`` (dense).
        extra: The rows' stored probabilities on terms outside the target's support (``p_i = 0``).
        rows: The row of each ``extra`` value.
        absent: Per row, the number of terms where both ``p_i`` and ``q_i`` are 0.
        vocab: ``V``, the number of columns.
    """

    P: np.ndarray
    Q: np.ndarray
    extra: np.ndarray
    rows: np.ndarray
    absent: np.ndarray
    vocab: int

    def _parts(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
        m = self.Q.shape[0]
        index, zeros = np.arange(m), np.zeros(m)
        return ((self.P[None, :], self.Q, index[:, None]), (np.zeros(self.extra.size), self.extra, self.rows),
                (zeros, zeros, index))

    def total(self, g: Callable[..., np.ndarray]) -> np.ndarray:
        """Per row, ``sum_i g(p_i, q_i, row)`` over all ``V`` terms; ``g`` is elementwise."""
        (pd, qd, rd), (pe, qe, re), (p0, q0, r0) = self._parts()
        out = np.broadcast_to(g(pd, qd, rd), self.Q.shape).sum(axis=1)
        out += np.bincount(self.rows, weights=np.broadcast_to(g(pe, qe, re), qe.shape), minlength=len(out))
        return out + self.absent * g(p0, q0, r0)

    def maximum(self, g: Callable[..., np.ndarray]) -> np.ndarray:
        """Per row, ``max_i g(p_i, q_i, row)`` over all ``V`` terms."""
        (pd, qd, rd), (pe, qe, re), (p0, q0, r0) = self._parts()
        out = g(pd, qd, rd).max(axis=1, initial=-np.inf)
        np.maximum.at(out, self.rows, g(pe, qe, re))
        return np.where(self.absent > 0, np.maximum(out, g(p0, q0, r0)), out)


def _sparse_blocks(p: ArrayLike, q: Any) -> tuple[Iterator[_Block], bool]:
    """Validate a dense or sparse ``p`` and a sparse ``q``; return their blocks and whether ``q`` was 1-D."""
    import scipy.sparse as sp

    p, p_total = _target(p)
    vocab = p.shape[0]
    one_d = q.ndim == 1
    q = sp.csr_array(q.reshape((1, q.shape[0])) if one_d else q)
    if q.dtype.kind not in "biuf":
        raise ValueError(f"q must be a real numeric array, got dtype {q.dtype} with shape {q.shape}")
    if q.shape[1] != vocab or q.shape[0] == 0:
        raise ValueError(f"q must be 1-D or 2-D with {vocab} columns like p, got shape {q.shape}")
    if not q.has_canonical_format:
        q = q.copy()
        q.sum_duplicates()
    data = q.data.astype(np.float64, copy=False)
    _check_finite(data, "q")
    if data.size and data.min() < 0:
        raise ValueError(f"q contains negative counts (min {data.min():g}, shape {q.shape})")
    totals, stored = np.zeros(q.shape[0]), np.diff(q.indptr) > 0
    if stored.any():
        totals[stored] = np.add.reduceat(data, q.indptr[:-1][stored])
    _check_rows(totals, one_d, (q.shape[1],) if one_d else q.shape)
    return _blocks(p / p_total, q, data, totals), one_d


def _blocks(P: np.ndarray, q: Any, data: np.ndarray, totals: np.ndarray) -> Iterator[_Block]:
    """The rows of ``q`` (CSR), :data:`SPARSE_BLOCK_CELLS` dense cells at a time."""
    support = np.flatnonzero(P > 0)
    position = np.full(P.shape[0], -1, dtype=np.int64)
    position[support] = np.arange(support.size)
    step = max(1, SPARSE_BLOCK_CELLS // max(support.size, 1))
    for start in range(0, q.shape[0], step):
        stop = min(start + step, q.shape[0])
        lo, hi = q.indptr[start], q.indptr[stop]
        rows = np.repeat(np.arange(stop - start), np.diff(q.indptr[start:stop + 1]))
        values = data[lo:hi] / totals[start:stop][rows]
        column = position[q.indices[lo:hi]]
        inside = column >= 0
        dense = np.zeros((stop - start, support.size))
        dense[rows[inside], column[inside]] = values[inside]
        outside = rows[~inside]
        absent = P.shape[0] - support.size - np.bincount(outside, minlength=stop - start)
        yield _Block(P[support], dense, values[~inside], outside, absent, P.shape[0])


def _on_sparse(p: ArrayLike, q: Any, kernel: Callable[[_Block], np.ndarray]) -> float | np.ndarray:
    """``kernel`` on every block of a sparse ``q``, joined as one result."""
    blocks, one_d = _sparse_blocks(p, q)
    return _result(np.concatenate([kernel(block) for block in blocks]), one_d)


def _is_sparse(q: Any) -> bool:
    """Whether ``q`` is a ``scipy.sparse`` matrix or array (without importing scipy)."""
    return hasattr(q, "tocsr") and hasattr(q, "nnz")


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
    if _is_sparse(q):
        return _on_sparse(p, q, lambda block: _kl_block(block, epsilon))
    P, Q, one_d = _counts(p, q)
    Ps, Qs = _smooth(P, epsilon), _smooth(Q, epsilon)
    values = (np.log(Ps) - np.log(Qs)) @ Ps
    return _result(np.maximum(values, 0.0), one_d)


def _kl_block(block: _Block, epsilon: float) -> np.ndarray:
    """:func:`kl_divergence` of sparse rows: terms where both are 0 add ``p' ln(p'/q') = 0``."""
    scale = 1.0 + block.vocab * epsilon
    return np.maximum(block.total(lambda p, q, r: ((p + epsilon) / scale) * (
        np.log((p + epsilon) / scale) - np.log((q + epsilon) / scale))), 0.0)


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
    if _is_sparse(q):
        return _on_sparse(p, q, lambda block: np.maximum(block.total(_js_terms) / np.log(base), 0.0))
    P, Q, one_d = _counts(p, q)
    M = 0.5 * (P + Q)
    # JS = H(M) - (H(P) + H(Q)) / 2 with H(A) = -sum_i a_i ln a_i (0 ln 0 = 0); every row sum
    # goes through the same kernel, so identical inputs give exactly 0
    p_term = _row_dot(P[None, :], _safe_log(P)[None, :])
    values = (0.5 * (p_term + _row_dot(Q, _safe_log(Q))) - _row_dot(M, _safe_log(M))) / np.log(base)
    return _result(np.maximum(values, 0.0), one_d)


def _js_terms(p: np.ndarray, q: np.ndarray, _: np.ndarray) -> np.ndarray:
    """One term's ``(p ln p + q ln q) / 2 - m ln m`` (0 where both are 0)."""
    m = 0.5 * (p + q)
    return 0.5 * (p * _safe_log(p) + q * _safe_log(q)) - m * _safe_log(m)


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
    if _is_sparse(q):
        return _on_sparse(p, q, lambda block: _renyi_block(block, alpha, epsilon))
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


def _renyi_block(block: _Block, alpha: float, epsilon: float) -> np.ndarray:
    """:func:`renyi_divergence` of sparse rows, as :func:`_log_mean_exp` does it on dense ones.

    The terms where both are 0 have weight ``epsilon / (1 + V epsilon)`` and exponent 0; the row's
    shift and the choice between ``expm1``/``log1p`` and ``exp``/``log`` are the dense ones.
    """
    scale = 1.0 + block.vocab * epsilon

    def exponent(p: np.ndarray, q: np.ndarray, _: np.ndarray) -> np.ndarray:
        return (1.0 - alpha) * (np.log((q + epsilon) / scale) - np.log((p + epsilon) / scale))

    shift = block.maximum(exponent)
    near = shift < 1.0

    def weighted(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        moved = exponent(p, q, r) - shift[r]
        return ((p + epsilon) / scale) * np.where(near[r], np.expm1(moved), np.exp(moved))

    total = block.total(lambda p, q, r: (p + epsilon) / scale + 0.0 * q)
    mean = block.total(weighted) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(near, np.log1p(mean), np.log(mean)) + shift
    return np.maximum(values / (alpha - 1.0), 0.0)


def _hellinger_squared(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    return _hellinger_terms(P, Q, None).sum(axis=1)


def _hellinger_terms(p: np.ndarray, q: np.ndarray, _: np.ndarray | None) -> np.ndarray:
    return 0.5 * np.square(np.sqrt(q) - np.sqrt(p))


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
    if _is_sparse(q):
        return _on_sparse(p, q, lambda block: _bhattacharyya_of(
            block.total(lambda a, b, _: np.sqrt(b) * np.sqrt(a)), block.total(_hellinger_terms)))
    P, Q, one_d = _counts(p, q)
    return _result(_bhattacharyya_of(np.sqrt(Q) @ np.sqrt(P), _hellinger_squared(P, Q)), one_d)


def _bhattacharyya_of(bc_direct: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """The distance from ``BC`` summed directly and from the squared Hellinger distance."""
    h2 = np.clip(h2, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        near = -np.log1p(-h2)
    far = -np.log(np.maximum(bc_direct, BHATTACHARYYA_COEFFICIENT_FLOOR))
    values = np.where(bc_direct < 0.5, far, near)
    return np.clip(values, 0.0, -np.log(BHATTACHARYYA_COEFFICIENT_FLOOR))


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
    if _is_sparse(q):
        return _on_sparse(p, q, lambda block: np.sqrt(np.clip(block.total(_hellinger_terms), 0.0, 1.0)))
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
    if _is_sparse(q):
        return _on_sparse(p, q, _cosine_block)
    P, Q, one_d = _counts(p, q)
    u = P / np.linalg.norm(P[None, :], axis=1)  # same code path as the rows of Q
    w = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    values = 0.5 * np.square(w - u).sum(axis=1)
    return _result(np.clip(values, 0.0, 1.0), one_d)


def _cosine_block(block: _Block) -> np.ndarray:
    """:func:`cosine_distance` of sparse rows (terms where both are 0 add nothing)."""
    p_norm = np.sqrt(np.square(block.P[None, :]).sum(axis=1))
    q_norm = np.sqrt(block.total(lambda p, q, _: np.square(q)))
    values = 0.5 * block.total(lambda p, q, r: np.square(q / q_norm[r] - p / p_norm))
    return np.clip(values, 0.0, 1.0)


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
    if _is_sparse(q):
        return _on_sparse(p, q, lambda block: np.clip(0.5 * block.total(lambda a, b, _: np.abs(b - a)), 0.0, 1.0))
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
    if _is_sparse(q):
        return _on_sparse(p, q, _jaccard_block)
    P, Q, one_d = _counts(p, q)
    in_p = P > 0
    in_q = Q > 0
    inter = np.count_nonzero(in_q & in_p, axis=1)
    union = np.count_nonzero(in_p) + np.count_nonzero(in_q, axis=1) - inter
    return _result(1.0 - inter / union, one_d)


def _jaccard_block(block: _Block) -> np.ndarray:
    """:func:`jaccard_distance` of sparse rows: the union is the target's support plus the row's own terms."""
    inter = block.total(lambda p, q, _: ((p > 0) & (q > 0)).astype(np.float64))
    union = np.count_nonzero(block.P) + block.total(lambda p, q, _: (q > 0).astype(np.float64)) - inter
    return 1.0 - inter / union


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
    if _is_sparse(q):
        return _on_sparse(p, q, lambda block: np.clip(block.total(lambda a, b, _: a * (b == 0)), 0.0, 1.0))
    P, Q, one_d = _counts(p, q)
    values = (Q == 0).astype(np.float64) @ P
    return _result(np.clip(values, 0.0, 1.0), one_d)
