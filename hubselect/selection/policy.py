"""Selection policies: which candidates to fine-tune on, which to prune. Pure, no I/O.

Every measure is oriented "lower = closer". Policies:

- ``topk``: the ``k`` candidates closest by the first measure in ``measures``.
- ``rank``: rank candidates by each measure in ``measures`` (1 = closest, ties averaged), order
  by the mean rank (Borda aggregation), keep the first ``k``.
- ``quantile``: keep the candidates whose mean rank is at or below the ``quantile`` of all mean
  ranks (the prune step of Pugantsov & McCreadie 2023); ``k`` is ignored.
- ``budget``: walk the mean-rank order and keep candidates while the total tuning examples stay
  within ``budget_examples``.
- ``learned``: the ``k`` candidates with the highest gain predicted by a model trained on
  benchmark results (``hubselect benchmark`` writes ``learned_policy.json``); the caller loads
  the model and passes the predictions (this module does no I/O).
- ``combined``: the ``k`` best by :func:`combined_score`, a weighted sum of z-scores of the mean
  divergence rank, the transfer prior and the label-space distances.

The default (:class:`SelectionConfig` with no arguments) is :data:`DEFAULT_POLICY`, ``combined``,
over every measure (``all``) with :data:`DEFAULT_WEIGHTS` (``divergence=1, prior=1, labels=2,
balance=0``) and ``k=3``: chosen on the 14 dev targets of the 40-task benchmark by the rule fixed
in advance (lowest Regret@3) and reported on the 26 held-out targets in
docs/results/collection/trust.md. The benchmark's trust analysis names this configuration
``combined:all:p1:l2:b0`` (:func:`hubselect.benchmark.trust.default_ranker`). The benchmark's
``rank:default`` row is not it: that is ``rank`` over js, centroid_cosine and mmd, the default
before ``combined`` (:data:`hubselect.benchmark.metrics.REFERENCE_RANK_MEASURES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from hubselect.core.errors import HubselectError
from hubselect.scoring.divergence.registry import DEFAULT_MEASURES

#: Signals the ``combined`` policy weighs; each is z-scored among the candidates of one target.
SIGNALS = ("divergence", "prior", "labels", "balance")
#: The policy the select step uses when none is named (see the module docstring for its settings).
DEFAULT_POLICY = "combined"
#: The ``combined`` policy's signal weights when none are given.
DEFAULT_WEIGHTS = "divergence=1,prior=1,labels=2,balance=0"


@dataclass(frozen=True)
class SelectionConfig:
    """A validated selection policy.

    Attributes:
        policy: One of :data:`POLICIES` (the names of :data:`POLICY_FUNCTIONS`); :data:`DEFAULT_POLICY`
            when not given.
        k: Number of sources to keep (``topk``, ``rank``).
        measures: Comma-separated measure names to rank by (canonical names or aliases).
        quantile: Fraction in (0, 1] for ``quantile``.
        budget_examples: Total training examples allowed for ``budget``.
        learned_model: For ``learned``: a ``learned_policy.json``, a folder holding one, or
            ``runs:/<benchmark run id>``.
        weights: For ``combined``: ``signal=weight`` pairs over :data:`SIGNALS`.
        prior: For ``combined``: a ``transfer_prior.json``, its folder or ``runs:/<benchmark run
            id>``; empty for the prior shipped with the package.
    """

    policy: str = DEFAULT_POLICY
    k: int = 3
    measures: str = DEFAULT_MEASURES
    quantile: float = 0.25
    budget_examples: int = 0
    learned_model: str = ""
    weights: str = DEFAULT_WEIGHTS
    prior: str = ""

    def __post_init__(self) -> None:
        self.weight_map()  # validates
        if self.policy not in POLICIES:
            raise HubselectError(f"unknown policy '{self.policy}': choose from {', '.join(POLICIES)}")
        if self.k < 1:
            raise HubselectError(f"k must be at least 1, got {self.k}")
        if not 0 < self.quantile <= 1:
            raise HubselectError(f"quantile must be in (0, 1], got {self.quantile}")
        if self.policy == "budget" and self.budget_examples < 1:
            raise HubselectError("policy 'budget' needs --budget-examples > 0 (total training examples allowed)")
        if self.policy == "learned" and not self.learned_model:
            raise HubselectError("policy 'learned' needs --learned-model: the learned_policy.json of a benchmark run "
                                 "(or runs:/<benchmark run id>)")

    def params(self) -> dict[str, Any]:
        """The select step's MLflow params (``measures`` as ``select_measures``)."""
        return {"policy": self.policy, "k": self.k, "select_measures": self.measures, "quantile": self.quantile,
                "budget_examples": self.budget_examples, "learned_model": self.learned_model, "weights": self.weights,
                "prior": self.prior}

    def weight_map(self) -> dict[str, float]:
        """``weights`` parsed: ``{signal: weight}`` for every signal (missing ones are 0)."""
        return parse_weights(self.weights)

    def measure_names(self) -> list[str]:
        """Canonical names of ``measures`` (aliases resolved)."""
        from hubselect.scoring.divergence import resolve_measures

        return [spec.name for spec in resolve_measures(self.measures)]


def parse_weights(text: str) -> dict[str, float]:
    """Parse ``"divergence=1,prior=1,labels=1,balance=0"`` (signals left out weigh 0).

    Raises:
        HubselectError: an unknown signal, a malformed entry or a negative or non-numeric weight.
    """
    out = dict.fromkeys(SIGNALS, 0.0)
    for item in (x.strip() for x in str(text).split(",") if x.strip()):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in SIGNALS:
            raise HubselectError(f"weight '{item}' is not signal=number with a signal among {', '.join(SIGNALS)}: "
                                 f"write e.g. --weights {DEFAULT_WEIGHTS}")
        try:
            out[name] = float(value)
        except ValueError:
            raise HubselectError(f"weight '{item}' is not a number: write e.g. {name}=1") from None
        if not out[name] >= 0:
            raise HubselectError(f"weight '{item}' must be a number >= 0")
    if not any(out.values()):
        raise HubselectError(f"--weights '{text}' gives every signal weight 0: give at least one a positive weight")
    return out


def _z(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


def combined_score(mean_rank: Any, weights: Mapping[str, float], *, prior: Any = None,
                   label_distance: Any = None, balance_distance: Any = None) -> np.ndarray:
    """Higher = better: a weighted sum of z-scores among one target's candidates.

    .. math:: s = -w_d z(\bar r) + w_p z(\text{prior}) - w_l z(d_{labels}) - w_b z(d_{balance})

    where :math:`\bar r` is the mean divergence rank (1 = closest), the prior is a source's mean
    gain on other targets (:mod:`hubselect.selection.prior`), and the label distances come from
    :mod:`hubselect.scoring.divergence.labels`. A signal with weight 0 may be ``None``.

    Raises:
        HubselectError: a signal with a positive weight was not given.
    """
    parts = {"divergence": (mean_rank, -1.0), "prior": (prior, 1.0), "labels": (label_distance, -1.0),
             "balance": (balance_distance, -1.0)}
    total = np.zeros(len(mean_rank), dtype=float)
    for name, (values, sign) in parts.items():
        w = float(weights.get(name, 0.0))
        if w == 0:
            continue
        if values is None:
            raise HubselectError(f"the combined policy weighs '{name}' but it was not computed: give it weight 0 in "
                                 "--weights or provide it (prior: --prior; labels/balance: target label names)")
        total += sign * w * _z(values)
    return total


@dataclass
class Selection:
    """The ranked table (every candidate, every measure, decision, reason) and a summary."""

    table: Any  # pandas.DataFrame indexed by candidate, ordered by final rank
    summary: dict[str, Any]

    @property
    def selected(self) -> list[str]:
        return [str(c) for c in self.table.index[self.table["decision"] == "selected"]]


def select(scores: Any, tuning_examples: Mapping[str, int], cfg: SelectionConfig,
           predicted_gain: Any = None, features: Mapping[str, Mapping[str, float]] | None = None) -> Selection:
    """Apply ``cfg`` to ``scores``: the policy's function in :data:`POLICY_FUNCTIONS` orders and decides.

    Args:
        scores: DataFrame, rows = candidates, columns = measures (lower = closer).
        tuning_examples: Training examples fine-tuning would use per candidate (cost proxy).
        cfg: The policy.
        predicted_gain: For ``learned``: a Series of predicted gains indexed like ``scores``.
        features: For ``combined``: ``{"prior" | "label_distance" | "balance_distance":
            {candidate: value}}`` (see :func:`combined_score`).

    Raises:
        HubselectError: a ranking measure was not scored, or ``k`` exceeds the candidates.
    """
    names = cfg.measure_names()
    missing = [m for m in names if m not in scores.columns]
    if missing:
        raise HubselectError(f"selection measure '{missing[0]}' was not scored (scored: {', '.join(scores.columns)}): "
                             "add it to the score step's --measures or choose scored ones")
    decision = POLICY_FUNCTIONS[cfg.policy](Request(scores, tuning_examples, cfg, names, predicted_gain, features))
    table, keep, n = decision.table, decision.keep, len(decision.table)
    table["decision"] = np.where(keep, "selected", "pruned")
    table["reason"] = decision.reasons
    total = int(table["tuning_examples"].sum())
    chosen = int(table.loc[keep.values, "tuning_examples"].sum())
    summary = {"policy": cfg.policy, "k": cfg.k, "measures": decision.used, "candidates": n,
               "weights": cfg.weights if cfg.policy == "combined" else "",
               "selected": int(keep.sum()), "pruned": int(n - keep.sum()),
               "pruned_fraction": float((n - keep.sum()) / n),
               "selected_sources": [str(c) for c in table.index[keep.values]],
               "tuning_examples_selected": chosen, "tuning_examples_all": total,
               "estimated_tuning_saving": float(1 - chosen / total) if total else 0.0}
    return Selection(table, summary)


@dataclass(frozen=True)
class Request:
    """What a policy reads: the scores, the cost per candidate, the config, the (scored, canonical)
    ranking measures and the policy-specific inputs of :func:`select`."""

    scores: Any
    tuning_examples: Mapping[str, int]
    cfg: SelectionConfig
    measures: list[str]
    predicted_gain: Any = None
    features: Mapping[str, Mapping[str, float]] | None = None

    def table(self, used: list[str]) -> Any:
        """The scores with ``mean_rank`` over ``used`` (1 = closest, ties averaged) and ``tuning_examples``."""
        table = self.scores.copy()
        table["mean_rank"] = self.scores[used].rank(method="average", ascending=True).mean(axis=1)
        table["tuning_examples"] = [int(self.tuning_examples.get(c, 0)) for c in table.index]
        return table

    def check_k(self) -> None:
        """Refuse a ``k`` above the number of candidates (for the policies that keep ``k``)."""
        if self.cfg.k > len(self.scores):
            raise HubselectError(f"k={self.cfg.k} is larger than the {len(self.scores)} usable candidates: lower --k")


@dataclass
class Decision:
    """A policy's answer: the table in its final order (with ``rank``), which rows are kept, why,
    and the measures it ranked by."""

    table: Any
    keep: Any  # boolean Series aligned with table
    reasons: list[str]
    used: list[str]


def _ordered(table: Any, by: list[str], ascending: list[bool] | bool = True) -> Any:
    """``table`` sorted stably by ``by``, with ``rank`` (1, 2, ...) as its first column."""
    table = table.sort_values(by, ascending=ascending, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def _top_k(table: Any, k: int, used: list[str], orders: list[str]) -> Decision:
    """Keep the first ``k`` rows; ``orders[i]`` says what row ``i`` was ranked by."""
    n = len(table)
    keep = table["rank"] <= k
    reasons = [f"rank {r} of {n} by {o}: " + ("within" if kept else "outside") + f" top {k}"
               for r, o, kept in zip(table["rank"], orders, keep)]
    return Decision(table, keep, reasons, used)


def _order_description(used: list[str]) -> str:
    return f"mean rank over {', '.join(used)}" if len(used) > 1 else f"{used[0]}"


def _by_mean_rank(request: Request, used: list[str]) -> Any:
    return _ordered(request.table(used), ["mean_rank", *used])


def _topk_policy(request: Request) -> Decision:
    """``topk``: the ``k`` closest by the first measure."""
    request.check_k()
    used = request.measures[:1]
    table = _by_mean_rank(request, used)
    return _top_k(table, request.cfg.k, used, [_order_description(used)] * len(table))


def _rank_policy(request: Request) -> Decision:
    """``rank``: the ``k`` best by mean rank over every measure (Borda)."""
    request.check_k()
    used = request.measures
    table = _by_mean_rank(request, used)
    return _top_k(table, request.cfg.k, used, [_order_description(used)] * len(table))


def _quantile_policy(request: Request) -> Decision:
    """``quantile``: those whose mean rank is at or below the ``quantile`` of all mean ranks."""
    used, q = request.measures, request.cfg.quantile
    table = _by_mean_rank(request, used)
    cut = float(np.quantile(table["mean_rank"], q))
    keep = table["mean_rank"] <= cut
    reasons = [f"{_order_description(used)} {v:.2f} {'<=' if kept else '>'} {q:g}-quantile {cut:.2f}"
               for v, kept in zip(table["mean_rank"], keep)]
    return Decision(table, keep, reasons, used)


def _budget_policy(request: Request) -> Decision:
    """``budget``: walk the mean-rank order while the total tuning examples stay within the budget."""
    used, budget = request.measures, request.cfg.budget_examples
    table = _by_mean_rank(request, used)
    cumulative = table["tuning_examples"].cumsum()
    keep = cumulative <= budget
    if not keep.any():
        raise HubselectError(f"budget of {budget} examples is below the closest candidate's "
                             f"{int(cumulative.iloc[0])}: raise --budget-examples")
    keep = keep & (keep.cumprod() == 1)
    reasons = [f"rank {r}, cumulative {c} examples {'within' if kept else 'over'} budget {budget}"
               for r, c, kept in zip(table["rank"], cumulative, keep)]
    return Decision(table, keep, reasons, used)


def _learned_policy(request: Request) -> Decision:
    """``learned``: the ``k`` with the highest predicted gain (ties: mean rank)."""
    request.check_k()
    if request.predicted_gain is None:
        raise HubselectError("policy 'learned' was given no predictions: load the model with --learned-model")
    table = request.table(request.measures)
    table["predicted_gain"] = [float(request.predicted_gain[c]) for c in table.index]
    table = _ordered(table, ["predicted_gain", "mean_rank"], [False, True])
    return _top_k(table, request.cfg.k, request.measures,
                  [f"predicted gain {g:+.4f}" for g in table["predicted_gain"]])


def _combined_policy(request: Request) -> Decision:
    """``combined``: the ``k`` best by :func:`combined_score` (ties: mean rank)."""
    request.check_k()
    cfg, extra = request.cfg, request.features if request.features is not None else {}
    table = request.table(request.measures)
    signals = {k: (table.index.map(extra[k]).to_numpy(dtype=float) if k in extra else None)
               for k in ("prior", "label_distance", "balance_distance")}
    table["combined_score"] = combined_score(table["mean_rank"].to_numpy(), cfg.weight_map(), **signals)
    for k, values in signals.items():
        if values is not None:
            table[k] = values
    table = _ordered(table, ["combined_score", "mean_rank"], [False, True])
    return _top_k(table, cfg.k, request.measures,
                  [f"combined score {c:+.2f} ({cfg.weights})" for c in table["combined_score"]])


#: Every policy by name: each takes a :class:`Request` and returns a :class:`Decision`.
POLICY_FUNCTIONS: dict[str, Callable[[Request], Decision]] = {
    "topk": _topk_policy, "rank": _rank_policy, "quantile": _quantile_policy, "budget": _budget_policy,
    "learned": _learned_policy, "combined": _combined_policy,
}
POLICIES = tuple(POLICY_FUNCTIONS)
