"""Divergences between two sets of text embeddings.

Every function takes ``x``, the target's embeddings with shape ``(n, d)``, and ``y``, one
candidate's embeddings with shape ``(m, d)`` (same ``d``, ``n, m >= 2``), and returns a Python
``float``. Every measure is oriented "lower = closer", is non-negative and is 0 (or, for the
classifier-based :func:`proxy_a_distance`, close to 0) for identical inputs. All are
deterministic: where sampling is involved it is seeded by an explicit ``seed`` argument.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import ArrayLike

from hubselect.scoring.divergence.terms import _as_float_array, _check_finite

__all__ = [
    "centroid_cosine_distance",
    "frechet_distance",
    "mmd_rbf",
    "coral_distance",
    "central_moment_discrepancy",
    "proxy_a_distance",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- validation


def _embeddings(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate two embedding matrices with the same number of columns and >= 2 rows each."""
    x = _as_float_array(x, "x")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x must be a 2-D array of embeddings with shape (n, d), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"x needs at least 2 rows (embeddings), got shape {x.shape}")
    d = x.shape[1]
    y = _as_float_array(y, "y")
    if y.ndim != 2 or y.shape[1] != d:
        raise ValueError(f"y must be 2-D with {d} columns like x, got shape {y.shape}")
    if y.shape[0] < 2:
        raise ValueError(f"y needs at least 2 rows (embeddings), got shape {y.shape}")
    _check_finite(x, "x")
    _check_finite(y, "y")
    return x, y


def _covariance(a: np.ndarray) -> np.ndarray:
    """Unbiased (``ddof=1``) covariance of the rows of ``a``, always ``(d, d)``."""
    centred = a - a.mean(axis=0)
    return centred.T @ centred / (a.shape[0] - 1)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; rounding negatives clipped to 0."""
    eigvals, eigvecs = np.linalg.eigh(0.5 * (s + s.T))
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances ``(len(a), len(b))``, clipped at 0."""
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(sq, 0.0)


# ----------------------------------------------------------------------------- measures


def centroid_cosine_distance(x: ArrayLike, y: ArrayLike) -> float:
    r"""Cosine distance between the mean embeddings (TextEmb).

    .. math::
        1 - \cos(\bar x, \bar y) = \tfrac12 \Big\| \frac{\bar x}{\|\bar x\|} - \frac{\bar y}{\|\bar y\|} \Big\|^2

    Symmetric, in ``[0, 2]``; exactly 0 for identical sets.

    Args:
        x: target embeddings, shape ``(n, d)``.
        y: candidate embeddings, shape ``(m, d)``.

    Returns:
        The distance as a ``float``.

    Raises:
        ValueError: on bad shapes or non-finite values, or when a mean embedding is the zero
            vector (the cosine is undefined).

    References:
        Vu et al. (2020), "Exploring and Predicting Transferability across NLP Tasks", EMNLP.
    """
    x, y = _embeddings(x, y)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    nx, ny = np.linalg.norm(mx), np.linalg.norm(my)
    for name, norm, a in (("x", nx, x), ("y", ny, y)):
        if not norm > 0:
            raise ValueError(f"{name} has a zero mean embedding (shape {a.shape}): the cosine is undefined")
    value = 0.5 * float(np.square(mx / nx - my / ny).sum())
    return float(np.clip(value, 0.0, 2.0))


def frechet_distance(x: ArrayLike, y: ArrayLike, eps: float = 1e-6) -> float:
    r"""Fréchet distance: squared 2-Wasserstein distance between Gaussians fitted to ``x`` and ``y``.

    .. math::
        W_2^2 = \|\mu_x - \mu_y\|^2 + \mathrm{Tr}\big(S_x + S_y - 2 (S_x^{1/2} S_y S_x^{1/2})^{1/2}\big)

    with unbiased sample covariances. The trace term uses the identity
    ``Tr (S_x^{1/2} S_y S_x^{1/2})^{1/2} = ||S_x^{1/2} S_y^{1/2}||_*`` (the nuclear norm, a sum of
    singular values) with symmetric PSD square roots from ``eigh``; unlike ``scipy.linalg.sqrtm``
    of the product, this never takes the square root of rounding noise, so ``x`` vs ``x`` is 0 up
    to ~1e-12 relative even for rank-deficient covariances (``n < d``). A ridge
    ``eps * mean variance`` (``eps * (Tr S_x + Tr S_y) / (2d)``, so scale-free) is added to both
    covariances. The result is clipped at 0. Symmetric; scales with the square of the
    embedding scale. Cost ``O(d^3)``.

    Args:
        x: target embeddings, shape ``(n, d)``.
        y: candidate embeddings, shape ``(m, d)``.
        eps: relative ridge, finite and ``>= 0``.

    Returns:
        The distance as a ``float``.

    Raises:
        ValueError: on bad shapes, non-finite values or ``eps``.

    References:
        Dowson & Landau (1982), "The Fréchet distance between multivariate normal
        distributions", J. Multivariate Anal.; Heusel et al. (2017), "GANs trained by a two
        time-scale update rule converge to a local Nash equilibrium", NeurIPS (FID).
    """
    eps = float(eps)
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    x, y = _embeddings(x, y)
    d = x.shape[1]
    sx, sy = _covariance(x), _covariance(y)
    ridge = eps * (np.trace(sx) + np.trace(sy)) / (2 * d)
    if ridge > 0:
        sx = sx + ridge * np.eye(d)
        sy = sy + ridge * np.eye(d)
    cross = np.linalg.svd(_psd_sqrt(sx) @ _psd_sqrt(sy), compute_uv=False).sum()
    mean_term = float(np.square(x.mean(axis=0) - y.mean(axis=0)).sum())
    value = mean_term + float(np.trace(sx) + np.trace(sy) - 2.0 * cross)
    return max(value, 0.0)


def mmd_rbf(
    x: ArrayLike,
    y: ArrayLike,
    bandwidth: float | None = None,
    max_points: int = 1000,
    seed: int = 0,
) -> float:
    r"""Squared maximum mean discrepancy with a Gaussian (RBF) kernel, biased (V-statistic) estimator.

    .. math::
        \mathrm{MMD}^2 = \frac{1}{n^2}\sum_{i,j} k(x_i, x_j) + \frac{1}{m^2}\sum_{i,j} k(y_i, y_j)
                         - \frac{2}{nm}\sum_{i,j} k(x_i, y_j), \qquad
        k(a, b) = \exp\!\Big(-\frac{\|a - b\|^2}{2\sigma^2}\Big).

    The biased estimator is a squared RKHS norm, so it is non-negative (rounding negatives are
    clipped to 0) and exactly 0 for identical sets. With ``bandwidth=None`` the median heuristic
    sets ``sigma`` to the median pairwise Euclidean distance in the pooled sample (the mean
    positive distance if that median is 0, and 1 if all points coincide). A side with more than
    ``max_points`` rows is subsampled without replacement by ``numpy.random.default_rng(seed)``,
    a fresh generator per side, so the subsample of a set depends only on its size and ``seed``
    (``x`` vs ``x`` stays exactly 0). Symmetric. Cost ``O((n + m)^2 d)`` after subsampling.

    Args:
        x: target embeddings, shape ``(n, d)``.
        y: candidate embeddings, shape ``(m, d)``.
        bandwidth: kernel width ``sigma`` (finite, > 0), or ``None`` for the median heuristic.
        max_points: largest number of rows used per side, ``>= 2``.
        seed: seed of the subsampling.

    Returns:
        ``MMD^2`` as a ``float`` in ``[0, 2]``.

    Raises:
        ValueError: on bad shapes, non-finite values, ``bandwidth`` or ``max_points``.

    References:
        Gretton et al. (2012), "A Kernel Two-Sample Test", JMLR 13.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {max_points!r}")
    if bandwidth is not None:
        bandwidth = float(bandwidth)
        if not (np.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be a finite number > 0 or None, got {bandwidth!r}")
    x, y = _embeddings(x, y)

    def subsample(a: np.ndarray) -> np.ndarray:
        if a.shape[0] <= max_points:
            return a
        idx = np.sort(np.random.default_rng(seed).choice(a.shape[0], size=max_points, replace=False))
        return a[idx]

    x, y = subsample(x), subsample(y)
    dxx, dyy, dxy = _squared_distances(x, x), _squared_distances(y, y), _squared_distances(x, y)
    if bandwidth is None:
        n, m = x.shape[0], y.shape[0]
        pooled = np.concatenate(
            [dxx[np.triu_indices(n, k=1)], dyy[np.triu_indices(m, k=1)], dxy.ravel()]
        )
        dists = np.sqrt(pooled)
        bandwidth = float(np.median(dists))
        if not bandwidth > 0:
            positive = dists[dists > 0]
            bandwidth = float(positive.mean()) if positive.size else 1.0
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    value = np.exp(-gamma * dxx).mean() + np.exp(-gamma * dyy).mean() - 2.0 * np.exp(-gamma * dxy).mean()
    return float(max(value, 0.0))


def coral_distance(x: ArrayLike, y: ArrayLike) -> float:
    r"""CORAL distance: scaled squared Frobenius distance between the covariance matrices.

    .. math::
        \ell_{CORAL} = \frac{1}{4 d^2} \| C_x - C_y \|_F^2

    with unbiased sample covariances. Ignores the means. Symmetric; exactly 0 for identical
    sets.

    Args:
        x: target embeddings, shape ``(n, d)``.
        y: candidate embeddings, shape ``(m, d)``.

    Returns:
        The distance as a ``float``.

    Raises:
        ValueError: on bad shapes or non-finite values.

    References:
        Sun & Saenko (2016), "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
        ECCV Workshops.
    """
    x, y = _embeddings(x, y)
    d = x.shape[1]
    diff = _covariance(x) - _covariance(y)
    return float(np.square(diff).sum() / (4.0 * d * d))


def central_moment_discrepancy(
    x: ArrayLike,
    y: ArrayLike,
    n_moments: int = 5,
    bounds: tuple[float, float] | None = None,
) -> float:
    r"""Central moment discrepancy (CMD) of order ``K = n_moments``.

    .. math::
        CMD_K = \frac{1}{|b-a|} \|E(x) - E(y)\|_2 + \sum_{k=2}^{K} \frac{1}{|b-a|^k} \|c_k(x) - c_k(y)\|_2,
        \qquad c_k(x) = E\big((x - E(x))^k\big)

    with moments taken per dimension and ``[a, b]`` the interval bounding the data. By default
    ``(a, b)`` is the pooled minimum and maximum of ``x`` and ``y`` over all dimensions, which
    makes the measure invariant to an affine rescaling of the embeddings. If all values are
    equal the result is 0. Symmetric; exactly 0 for identical sets.

    Args:
        x: target embeddings, shape ``(n, d)``.
        y: candidate embeddings, shape ``(m, d)``.
        n_moments: highest moment order ``K``, an integer ``>= 1``.
        bounds: ``(a, b)`` with ``a < b``, or ``None`` for the pooled data range.

    Returns:
        The discrepancy as a ``float``.

    Raises:
        ValueError: on bad shapes, non-finite values, ``n_moments`` or ``bounds``.

    References:
        Zellinger et al. (2017), "Central Moment Discrepancy (CMD) for Domain-Invariant
        Representation Learning", ICLR.
    """
    if isinstance(n_moments, bool) or not isinstance(n_moments, (int, np.integer)) or n_moments < 1:
        raise ValueError(f"n_moments must be an integer >= 1, got {n_moments!r}")
    x, y = _embeddings(x, y)
    if bounds is None:
        a, b = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        if b == a:
            return 0.0
    else:
        try:
            a, b = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise ValueError(f"bounds must be a pair (a, b) of numbers, got {bounds!r}") from None
        if not (np.isfinite(a) and np.isfinite(b) and a < b):
            raise ValueError(f"bounds must be finite with a < b, got {bounds!r}")
    span = b - a
    mx, my = x.mean(axis=0), y.mean(axis=0)
    value = np.linalg.norm(mx - my) / span
    cx, cy = x - mx, y - my
    px, py = cx.copy(), cy.copy()
    for k in range(2, n_moments + 1):
        px *= cx
        py *= cy
        value += np.linalg.norm(px.mean(axis=0) - py.mean(axis=0)) / span**k
    return float(value)


def proxy_a_distance(
    x: ArrayLike,
    y: ArrayLike,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
) -> float:
    r"""Proxy A-distance: how well a linear classifier tells target from candidate embeddings.

    A logistic regression (on standardised features, ``class_weight="balanced"``) is trained to
    separate ``x`` (label 0) from ``y`` (label 1). Its balanced error ``err`` (the mean of the
    two per-class error rates, so unequal set sizes do not matter) is estimated by K-fold
    cross-validation, and

    .. math::
        PAD = 2 (1 - 2\,\mathrm{err}),

    clipped to ``[0, 2]``: an error above chance (possible on small or identical sets) means
    "indistinguishable" and gives 0. Folds are stratified and seeded: each side's rows are
    assigned to folds by ``numpy.random.default_rng(seed).permutation`` of its own rows, so
    swapping ``x`` and ``y`` gives the same folds. ``folds`` is lowered to the size of the
    smaller set if needed. This is a statistical estimate: for identical or same-distribution
    sets it is near 0, not exactly 0.

    Args:
        x: target embeddings, shape ``(n, d)``.
        y: candidate embeddings, shape ``(m, d)``.
        folds: number of cross-validation folds, an integer ``>= 2``.
        seed: seed of the fold assignment.
        C: inverse L2 regularisation strength of the logistic regression, finite, > 0.

    Returns:
        PAD as a ``float`` in ``[0, 2]``.

    Raises:
        ValueError: on bad shapes, non-finite values, ``folds`` or ``C``.

    References:
        Ben-David et al. (2007), "Analysis of Representations for Domain Adaptation", NeurIPS;
        Ben-David et al. (2010), "A theory of learning from different domains", Mach. Learn.
    """
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    C = float(C)
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"C must be a finite number > 0, got {C!r}")
    x, y = _embeddings(x, y)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n, m = x.shape[0], y.shape[0]
    k = int(min(folds, n, m))
    if k < folds:
        logger.debug("proxy_a_distance: %d folds lowered to %d (sets of %d and %d rows)", folds, k, n, m)
    fold_x = np.random.default_rng(seed).permutation(n) % k
    fold_y = np.random.default_rng(seed).permutation(m) % k
    data = np.concatenate([x, y])
    labels = np.concatenate([np.zeros(n, dtype=int), np.ones(m, dtype=int)])
    fold_of = np.concatenate([fold_x, fold_y])
    predicted = np.empty(n + m, dtype=int)
    for f in range(k):
        test = fold_of == f
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
        )
        model.fit(data[~test], labels[~test])
        predicted[test] = model.predict(data[test])
    err = 0.5 * (np.mean(predicted[:n] != 0) + np.mean(predicted[n:] != 1))
    return float(np.clip(2.0 * (1.0 - 2.0 * err), 0.0, 2.0))
