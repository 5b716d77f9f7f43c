"""Why each candidate was kept or pruned, in words, read from ``selection.json`` alone.

The one home of the wording the console, ``--json`` and the ``main`` run's story use. For the
``combined`` policy, each signal's contribution to the combined score is computed again with
:func:`hubselect.selection.policy.combined_score` given that signal's weight alone (the contributions
add up to the score), and the reason names the signals in the order they helped, e.g.
``closest in vocabulary, 2nd closest in sentence embeddings; labels match by meaning:
negative/positive ↔ bad/good``. Other policies give the divergence closeness and, where the
decision is not a plain rank, the policy's own reason.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

#: What each measure group compares, in words.
GROUP_WORDS = {"terms": "vocabulary", "embeddings": "sentence embeddings"}
#: The ranking column of each non-divergence signal of the ``combined`` policy.
SIGNAL_COLUMNS = {"prior": "prior", "labels": "label_distance", "balance": "balance_distance"}
ARROW = " ↔ "
#: A contribution smaller than this (in z-score units) did not weigh in the decision and is not named.
NEGLIGIBLE = 0.005


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ..., ``11th``, ``21st``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def measure_groups(measures: Iterable[str]) -> dict[str, list[str]]:
    """``{group: [measure, ...]}`` of the (canonical) ``measures``, groups in :data:`GROUP_WORDS` order."""
    from hubselect.scoring.divergence import resolve_measures

    names = [str(m) for m in measures]
    specs = resolve_measures(",".join(names)) if names else ()
    groups = {g: [s.name for s in specs if s.kind == g and s.name in names] for g in GROUP_WORDS}
    return {g: columns for g, columns in groups.items() if columns}


def group_mean_ranks(frame: Any, measures: Iterable[str]) -> dict[str, Any]:
    """``{group: Series}``: each candidate's mean rank (1 = closest) over the group's measures.

    Args:
        frame: Candidates (index) by measures (columns, lower = closer), e.g. ``scores.csv``.
        measures: The measures to use (canonical names); those missing from ``frame`` are skipped.
    """
    groups = measure_groups(m for m in measures if m in frame.columns)
    return {g: frame[columns].astype(float).rank(method="average").mean(axis=1) for g, columns in groups.items()}


def contributions(selection: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{candidate: {signal: contribution}}`` of each weighted signal (``combined`` policy only,
    else empty); a candidate's contributions add up to its ``combined_score``."""
    import numpy as np

    from hubselect.selection.policy import combined_score, parse_weights

    summary, rows = selection["summary"], selection["ranking"]
    if summary.get("policy") != "combined" or not rows:
        return {}
    mean_rank = np.array([r["mean_rank"] for r in rows], dtype=float)
    out: dict[str, dict[str, float]] = {r["candidate"]: {} for r in rows}
    for signal, weight in parse_weights(summary["weights"]).items():
        column = SIGNAL_COLUMNS.get(signal)
        values = None if column is None else [r.get(column) for r in rows]
        if weight == 0 or (values is not None and any(v is None for v in values)):
            continue
        part = combined_score(mean_rank, {signal: weight}, **({column: values} if column else {}))
        for row, value in zip(rows, part):
            out[row["candidate"]][signal] = float(value)
    return out


def _closeness(rank: int, n: int, words: str) -> str:
    if rank == 1:
        return f"closest in {words}"
    if rank <= max(3, n // 3):
        return f"{ordinal(rank)} closest in {words}"
    return f"{'far' if rank > n / 2 else 'middling'} in {words} ({ordinal(rank)} of {n})"


def _signal_phrase(signal: str, row: Mapping[str, Any], helped: bool) -> str:
    """The words for one non-divergence signal of ``row``."""
    if signal == "prior":
        if row.get("prior_seen") is False:
            return "unseen by the transfer prior (neutral value)"
        return f"gained {100 * row['prior']:+.1f} points on other targets (transfer prior)"
    if signal == "labels":
        match = row.get("label_match")
        if not match:
            return f"label names {'close' if helped else 'far'} (distance {row['label_distance']:.2f})"
        left, _, right = match.partition(ARROW)
        if left == right:
            return f"same labels ({left})"
        return f"labels match by meaning: {match}" if helped else f"labels differ: {match}"
    return f"class balance {'close' if helped else 'far'} (distance {row['balance_distance']:.2f})"


def _why(row: Mapping[str, Any], closeness: str, parts: Mapping[str, float], policy: str) -> str:
    """The reason of one row: its signals by how much they helped, or closeness and the policy's reason."""
    if policy != "combined":
        return closeness if policy in ("topk", "rank") else f"{closeness}; {row.get('reason', '')}"
    phrases = [(value, closeness if signal == "divergence" else _signal_phrase(signal, row, value >= 0))
               for signal, value in parts.items() if abs(value) >= NEGLIGIBLE]
    return "; ".join(text for _, text in sorted(phrases, key=lambda p: -p[0]) if text) or closeness


def explain(selection: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every candidate of ``selection.json`` in rank order, with its reason in words.

    Returns:
        One dict per candidate: ``rank``, ``candidate``, ``decision`` (``selected``/``pruned``),
        ``combined_score`` and ``mean_rank`` (``None`` where the policy has none), ``contributions``
        (``{signal: value}``, empty for policies other than ``combined``), ``why`` (words),
        ``policy_reason`` (the policy's own reason), ``prior_seen`` and ``label_match`` (or ``None``).
    """
    import pandas as pd

    rows = sorted(selection["ranking"], key=lambda r: r["rank"])
    if not rows:
        return []
    policy = selection["summary"].get("policy", "")
    frame = pd.DataFrame(rows).set_index("candidate")
    ranks = {g: s.rank(method="min").astype(int)
             for g, s in group_mean_ranks(frame, selection["summary"].get("measures", [])).items()}
    parts = contributions(selection)
    out = []
    for row in rows:
        name = row["candidate"]
        closeness = ", ".join(_closeness(int(r[name]), len(rows), GROUP_WORDS[g]) for g, r in ranks.items())
        out.append({"rank": int(row["rank"]), "candidate": name, "decision": row.get("decision", ""),
                    "combined_score": row.get("combined_score"), "mean_rank": row.get("mean_rank"),
                    "contributions": parts.get(name, {}),
                    "why": _why(row, closeness, parts.get(name, {}), policy),
                    "policy_reason": row.get("reason", ""), "prior_seen": row.get("prior_seen"),
                    "label_match": row.get("label_match")})
    return out


def chosen_lines(selection: Mapping[str, Any]) -> list[str]:
    """One line per selected source: ``1. dvd: closest in vocabulary; same labels (negative/positive)``."""
    return [f"{r['rank']}. {r['candidate']}: {r['why']}" for r in explain(selection) if r["decision"] == "selected"]
