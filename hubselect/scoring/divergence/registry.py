"""Registry of divergence measures: canonical names, aliases, groups and parameterised variants.

Names are matched case-insensitively, with ``-``, ``_`` and spaces treated alike. A name may
carry keyword arguments after colons, ``name:key=value[:key=value...]`` (for example
``renyi:alpha=0.5`` or ``pad:folds=3:C=0.1``); the resulting :class:`MeasureSpec` has those
arguments in ``params`` and a canonical name such as ``renyi:alpha=0.5``. Values are parsed as
``int``, then ``float``, then ``none``/``true``/``false``; anything else stays a string. A
parameterised measure is called once on a tiny valid input when it is resolved, so a bad value
is a one-line error before any work.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping, Sequence

from hubselect.core.errors import HubselectError
from hubselect.scoring.divergence import embeddings as _emb
from hubselect.scoring.divergence import terms as _terms

__all__ = ["MeasureSpec", "MEASURES", "GROUPS", "DEFAULT_MEASURES", "get_measure", "resolve_measures", "list_measures"]

Kind = Literal["terms", "embeddings"]
KINDS: tuple[str, ...] = ("terms", "embeddings")
#: Group words accepted by :func:`resolve_measures`.
GROUPS: tuple[str, ...] = ("all",) + KINDS
#: The measures scored and ranked by when none are named (the score step's ``--measures`` and
#: the select step's ``--select-measures``).
DEFAULT_MEASURES = "all"


@dataclass(frozen=True)
class MeasureSpec:
    """One divergence measure.

    Attributes:
        name: canonical name (with ``:key=value`` suffixes for a parameterised variant).
        function: the pure function, ``f(p, q, **params)`` for ``kind="terms"`` or
            ``f(x, y, **params)`` for ``kind="embeddings"``.
        kind: ``"terms"`` (term-count vectors) or ``"embeddings"`` (embedding matrices).
        symmetric: whether ``f(a, b) == f(b, a)``.
        aliases: other accepted names.
        description: one line for listings.
        params: keyword arguments bound when the spec is called.
    """

    name: str
    function: Callable[..., Any]
    kind: Kind
    symmetric: bool
    aliases: tuple[str, ...] = ()
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __call__(self, a: Any, b: Any, **overrides: Any) -> Any:
        """Return ``function(a, b, **params, **overrides)``."""
        return self.function(a, b, **{**self.params, **overrides})


def _spec(name, function, kind, symmetric, aliases, description) -> MeasureSpec:
    return MeasureSpec(name, function, kind, symmetric, tuple(aliases), description)


#: Every measure, term measures first, in the order used by the group words.
MEASURES: tuple[MeasureSpec, ...] = (
    _spec("kl", _terms.kl_divergence, "terms", False,
          ("kullback_leibler", "kl_divergence"),
          "Kullback-Leibler divergence KL(target || candidate), additively smoothed"),
    _spec("js", _terms.jensen_shannon_divergence, "terms", True,
          ("jensen_shannon", "jsd", "js_divergence", "jensen_shannon_divergence"),
          "Jensen-Shannon divergence (base 2, in [0, 1])"),
    _spec("renyi", _terms.renyi_divergence, "terms", False,
          ("renyi_divergence",),
          "Renyi divergence of order alpha (default 0.99), additively smoothed"),
    _spec("bhattacharyya", _terms.bhattacharyya_distance, "terms", True,
          ("bhattacharyya_distance",),
          "Bhattacharyya distance -ln(sum sqrt(p q))"),
    _spec("hellinger", _terms.hellinger_distance, "terms", True,
          ("hellinger_distance",),
          "Hellinger distance sqrt(1 - BC), in [0, 1]"),
    _spec("cosine", _terms.cosine_distance, "terms", True,
          ("cosine_distance", "term_cosine"),
          "cosine distance between term-count vectors"),
    _spec("tv", _terms.total_variation_distance, "terms", True,
          ("total_variation", "total_variation_distance", "variational", "tvd"),
          "total variation distance 0.5 * sum |p - q|"),
    _spec("jaccard", _terms.jaccard_distance, "terms", True,
          ("vocab_overlap", "vocabulary_overlap", "jaccard_distance"),
          "1 - Jaccard overlap of the vocabularies"),
    _spec("oov", _terms.oov_rate, "terms", False,
          ("oov_rate", "out_of_vocabulary"),
          "share of target tokens whose term the candidate never uses"),
    _spec("centroid_cosine", _emb.centroid_cosine_distance, "embeddings", True,
          ("textemb", "centroid", "centroid_cosine_distance"),
          "cosine distance between mean embeddings (TextEmb)"),
    _spec("frechet", _emb.frechet_distance, "embeddings", True,
          ("wasserstein", "fid", "frechet_distance", "w2"),
          "Frechet distance (2-Wasserstein^2 between fitted Gaussians)"),
    _spec("mmd", _emb.mmd_rbf, "embeddings", True,
          ("mmd_rbf", "maximum_mean_discrepancy"),
          "squared MMD, RBF kernel, median-heuristic bandwidth"),
    _spec("coral", _emb.coral_distance, "embeddings", True,
          ("coral_distance",),
          "CORAL: ||C_x - C_y||_F^2 / (4 d^2)"),
    _spec("cmd", _emb.central_moment_discrepancy, "embeddings", True,
          ("central_moment_discrepancy",),
          "central moment discrepancy (5 moments)"),
    _spec("pad", _emb.proxy_a_distance, "embeddings", True,
          ("proxy_a_distance", "proxy_a", "a_distance"),
          "proxy A-distance from a cross-validated linear classifier (an estimate)"),
)


def _normalise(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", "_").split())


def _lookup() -> dict[str, MeasureSpec]:
    table: dict[str, MeasureSpec] = {}
    for spec in MEASURES:
        for key in (spec.name, *spec.aliases):
            table[_normalise(key)] = spec
    return table


def _choices() -> str:
    names = ", ".join(s.name for s in MEASURES)
    aliases = ", ".join(a for s in MEASURES for a in s.aliases)
    return f"choose from {names} (aliases: {aliases}; groups: {', '.join(GROUPS)})"


def _parse_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def get_measure(name: str) -> MeasureSpec:
    """Return the :class:`MeasureSpec` for a canonical name or alias, optionally with parameters.

    Args:
        name: e.g. ``"js"``, ``"Jensen-Shannon"``, ``"renyi:alpha=0.5"``.

    Returns:
        The spec; for ``name:key=value`` a copy with those ``params`` and a canonical name.

    Raises:
        HubselectError: unknown name, a parameter the function does not take, or a value it refuses.
    """
    if not isinstance(name, str):
        raise HubselectError(f"measure names must be strings, got {name!r}: {_choices()}")
    base, *assignments = name.split(":")
    spec = _lookup().get(_normalise(base))
    if spec is None:
        raise HubselectError(f"unknown measure {name.strip()!r}: {_choices()}")
    if not assignments:
        return spec
    accepted = list(inspect.signature(spec.function).parameters)[2:]
    by_lower = {p.lower(): p for p in accepted}
    params: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise HubselectError(
                f"bad parameter {assignment!r} in measure {name!r}: write {spec.name}:key=value"
            )
        real = by_lower.get(key.lower())
        if real is None:
            raise HubselectError(
                f"measure {spec.name!r} has no parameter {key!r} (in {name!r}): "
                f"choose from {', '.join(accepted) or 'none'}"
            )
        params[real] = _parse_value(value)
    suffix = "".join(f":{k}={v}" for k, v in params.items())
    variant = replace(spec, name=spec.name + suffix, params=MappingProxyType(params))
    _probe(variant, name)
    return variant


def _probe(spec: MeasureSpec, text: str) -> None:
    """Call a parameterised measure on a tiny valid input, so a bad value fails now, before any work.

    Raises:
        HubselectError: the function rejects a value (``renyi:alpha=-1``, ``renyi:alpha=foo``).
    """
    import numpy as np

    if spec.kind == "terms":
        a, b = np.array([3.0, 1.0, 0.0, 2.0]), np.array([1.0, 2.0, 2.0, 1.0])
    else:
        rng = np.random.default_rng(0)
        a, b = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)) + 0.5
    try:
        spec(a, b)
    except (ValueError, TypeError) as exc:
        defaults = {k: p.default for k, p in inspect.signature(spec.function).parameters.items()
                    if k in spec.params and p.default is not inspect.Parameter.empty}
        example = "".join(f":{k}={v}" for k, v in defaults.items())
        hint = f", e.g. {spec.name.split(':')[0]}{example}" if example else ""
        raise HubselectError(f"measure {text.strip()!r} has a bad parameter value ({exc}): give a valid one{hint}") from None


def list_measures(kind: str | None = None) -> tuple[MeasureSpec, ...]:
    """Return all measures, or those of one ``kind`` (``"terms"`` or ``"embeddings"``).

    Raises:
        HubselectError: unknown ``kind``.
    """
    if kind is None:
        return MEASURES
    key = _normalise(kind)
    if key not in KINDS:
        raise HubselectError(f"unknown measure kind {kind!r}: choose from {', '.join(KINDS)}")
    return tuple(s for s in MEASURES if s.kind == key)


def resolve_measures(spec: str | Sequence[str]) -> tuple[MeasureSpec, ...]:
    """Resolve a measure selection into specs, in order, without duplicates.

    Args:
        spec: comma-separated names (``"js,kl, textemb"``) or a sequence of such strings.
            The group words ``all``, ``terms`` and ``embeddings`` expand to the matching
            measures in registry order. Duplicates (after resolving aliases and parameters)
            keep their first position.

    Returns:
        A non-empty tuple of :class:`MeasureSpec`.

    Raises:
        HubselectError: an unknown name or an empty selection.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    tokens = [t.strip() for item in items for t in str(item).split(",") if t.strip()]
    if not tokens:
        raise HubselectError(f"no measure selected (got {spec!r}): {_choices()}")
    resolved: dict[str, MeasureSpec] = {}
    for token in tokens:
        key = _normalise(token)
        found = list_measures(None if key == "all" else key) if key in GROUPS else (get_measure(token),)
        for s in found:
            resolved.setdefault(s.name, s)
    return tuple(resolved.values())
