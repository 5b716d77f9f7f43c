"""Domain-divergence measures between a target and candidate source datasets.

Term measures (:mod:`hubselect.scoring.divergence.terms`) compare unigram count vectors; embedding
measures (:mod:`hubselect.scoring.divergence.embeddings`) compare sets of text embeddings; the registry
(:mod:`hubselect.scoring.divergence.registry`) names them for the command line. Every measure is a pure
function, oriented "lower = closer", non-negative and 0 for identical inputs.
"""

from hubselect.scoring.divergence.embeddings import (
    central_moment_discrepancy,
    centroid_cosine_distance,
    coral_distance,
    frechet_distance,
    mmd_rbf,
    proxy_a_distance,
)
from hubselect.scoring.divergence.registry import (
    DEFAULT_MEASURES,
    GROUPS,
    MEASURES,
    MeasureSpec,
    get_measure,
    list_measures,
    resolve_measures,
)
from hubselect.scoring.divergence.terms import (
    bhattacharyya_distance,
    cosine_distance,
    hellinger_distance,
    jaccard_distance,
    jensen_shannon_divergence,
    kl_divergence,
    oov_rate,
    renyi_divergence,
    total_variation_distance,
)

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
    "centroid_cosine_distance",
    "frechet_distance",
    "mmd_rbf",
    "coral_distance",
    "central_moment_discrepancy",
    "proxy_a_distance",
    "MeasureSpec",
    "MEASURES",
    "GROUPS",
    "DEFAULT_MEASURES",
    "get_measure",
    "resolve_measures",
    "list_measures",
]
