"""The non-divergence signals of the ``combined`` selection policy, gathered for one target.

* ``prior``: each candidate's mean gain on other targets in a benchmark
  (:mod:`hubselect.selection.prior`; ``--prior`` or the prior shipped with the package);
* ``label_distance`` / ``balance_distance``: the candidate's label space against the target's
  label *names* and its estimated class balance (:mod:`hubselect.scoring.represent.labels` embeds them,
  :mod:`hubselect.scoring.divergence.labels` measures them). The
  target's labelled examples are not read.

Besides the signals, two notes for the reader of the ranking (never weighed): ``prior_seen``
(whether the prior knows the candidate at its revision) and ``label_match`` (each target label
and the candidate's labels closest to it, ``negative/positive ↔ bad/good``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hubselect.core.errors import HubselectError
from hubselect.data.entries import Catalog, read_texts

logger = logging.getLogger(__name__)


#: The notes :func:`selection_signals` adds beside the signals (columns of the ranking, not weighed).
NOTES = ("prior_seen", "label_match")


def prior_signal(catalog: Catalog, ref: str | Path) -> dict[str, dict[str, Any]]:
    """``{"prior": {candidate: value}, "prior_seen": {candidate: known}}`` from the prior at ``ref``
    (a local file or folder; empty for the prior shipped with hubselect); unseen candidates get the
    prior's neutral value."""
    from hubselect.selection.prior import DEFAULT_PRIOR, load_prior, prior_values

    prior = load_prior(ref or DEFAULT_PRIOR)
    values = prior_values(prior, {c.name: c.revision for c in catalog.accepted()})
    known = [n for n, (_, k) in values.items() if k]
    logger.info("transfer prior knows %d of %d candidates%s", len(known), len(values),
                f" ({', '.join(known)})" if known else "; the others get its neutral value")
    return {"prior": {n: v for n, (v, _) in values.items()}, "prior_seen": {n: k for n, (_, k) in values.items()}}


def label_match(target_names: list[str], target_embeddings: Any, source_names: list[str],
                source_embeddings: Any) -> str:
    """``negative/positive ↔ bad/good``: after the arrow, the candidate's labels closest to each
    target label (``+`` joins several, ``-`` where none is closest)."""
    from hubselect.scoring.divergence.labels import nearest_label_map

    nearest = nearest_label_map(target_embeddings, source_embeddings)
    matched = ["+".join(s for s, t in zip(source_names, nearest) if t == i) or "-" for i in range(len(target_names))]
    return f"{'/'.join(target_names)} ↔ {'/'.join(matched)}"


def label_signals(catalog: Catalog, score_cfg: Any) -> dict[str, dict[str, Any]]:
    """``{"label_distance": {...}, "balance_distance": {...}, "label_match": {...}}`` for every
    usable candidate (:func:`label_match`).

    Raises:
        HubselectError: the target has no label names.
    """
    from hubselect.scoring.divergence.labels import label_space_distances
    from hubselect.scoring.represent.labels import label_spaces
    from hubselect.scoring.represent.store import Encoder, cached_embeddings

    target = catalog.target
    names = list(target.label_names or [])
    if not names:
        raise HubselectError(f"the combined policy compares label spaces, and target '{target.name}' has no label "
                             "names: pass --label-names a,b,c, or give labels and balance weight 0 in --weights")
    encoder = Encoder(score_cfg.embedding, score_cfg.device)
    texts = read_texts(catalog.path(target.score))
    emb, _ = cached_embeddings(texts, target.revision, encoder)
    counts = {c.name: c.label_counts_by_name() for c in catalog.accepted()}
    target_space, spaces = label_spaces(names, emb, counts, encoder)
    out: dict[str, dict[str, Any]] = dict(label_space_distances(target_space, spaces))
    out["label_match"] = {n: label_match(names, target_space[0], list(counts[n]), spaces[n][0]) for n in spaces}
    return out


def without_label_signals(cfg: Any, catalog: Catalog) -> Any:
    """``cfg`` with the label weights set to 0 when the target has no label names (with a warning).

    Selection can still run on divergence and the prior; classifying the target zero-shot later
    needs the names anyway, and that step says so.
    """
    from dataclasses import replace

    weights = cfg.weight_map() if cfg.policy == "combined" else {}
    if catalog.target.label_names or not (weights.get("labels") or weights.get("balance")):
        return cfg
    kept = {k: v for k, v in weights.items() if k not in ("labels", "balance") and v > 0}
    if not kept:
        raise HubselectError(f"--weights '{cfg.weights}' weighs only label signals, and target "
                             f"'{catalog.target.name}' has no label names: pass --label-names a,b,c")
    logger.warning("target '%s' has no label names: the label signals are left out of the combined policy "
                   "(pass --label-names a,b,c to use them)", catalog.target.name)
    return replace(cfg, weights=",".join(f"{k}={v:g}" for k, v in kept.items()))


def selection_signals(catalog: Catalog, score_cfg: Any, cfg: Any) -> dict[str, dict[str, Any]] | None:
    """Every signal ``cfg`` (a ``combined`` :class:`~hubselect.selection.policy.SelectionConfig`) weighs,
    with the :data:`NOTES` that explain them."""
    if cfg.policy != "combined":
        return None
    weights = cfg.weight_map()
    out: dict[str, dict[str, Any]] = {}
    if weights["prior"] > 0:
        out.update(prior_signal(catalog, cfg.prior))
    if weights["labels"] > 0 or weights["balance"] > 0:
        out.update(label_signals(catalog, score_cfg))
    return out


def learned_predictions(cfg: Any, catalog: Catalog, scores: Any, score_cfg: Any) -> Any:
    """Gains predicted by the learned policy at ``cfg.learned_model`` (a local path); a model with
    pair features gets the prior (``cfg.prior``) and the label signals it reads."""
    from hubselect.selection import learned

    model = learned.load(cfg.learned_model)
    signals = None
    if learned.uses_pair_features(model):
        signals = {**prior_signal(catalog, cfg.prior), **label_signals(catalog, score_cfg)}
    return learned.predict_from_catalog(model, scores, catalog, signals)


def rank(catalog: Catalog, scores: Any, cfg: Any, score_cfg: Any) -> Any:
    """The :class:`~hubselect.selection.policy.Selection` of ``cfg``'s policy for ``catalog``'s
    candidates, with the :data:`NOTES` as extra columns of its table.

    Args:
        catalog: The fetched target and candidates (label names and counts; no target labels).
        scores: Divergences, ``(candidates, measures)``, lower = closer.
        cfg: A :class:`~hubselect.selection.policy.SelectionConfig` whose ``prior`` and
            ``learned_model`` are local paths (or empty).
        score_cfg: The scoring settings (the encoder that embeds label names).
    """
    from hubselect.selection.policy import select

    sizes = {c.name: c.sample.n for c in catalog.accepted()}
    cfg = without_label_signals(cfg, catalog)
    predicted = learned_predictions(cfg, catalog, scores, score_cfg) if cfg.policy == "learned" else None
    signals = selection_signals(catalog, score_cfg, cfg)
    notes = {k: signals.pop(k) for k in NOTES if k in (signals or {})}
    selection = select(scores, sizes, cfg, predicted, signals)
    for column, values in notes.items():
        selection.table[column] = [values.get(c) for c in selection.table.index]
    return selection
