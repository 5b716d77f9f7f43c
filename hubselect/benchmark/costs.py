"""What the benchmark's pairs and scoring cost, in seconds on a steady machine.

Used by the benchmark report (:mod:`hubselect.benchmark.run`), the trust analysis
(:mod:`hubselect.benchmark.trust`) and the two-stage pick (:mod:`hubselect.benchmark.twostage`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hubselect.core.errors import HubselectError


def score_seconds(matrix: dict, policy_measures: dict[str, list[str]], kinds: dict[str, str],
                  seconds_per_text: float | None = None) -> dict[str, dict[str, float]]:
    """Cold scoring time per policy and target: the policy's own measures as timed, plus the
    representations they need (term counts, embeddings) for the target and every candidate at
    the cost of one actually computed (cached ones would flatter the saving).

    The cost of one embedded set is the benchmark's own encoder time per computed set when it
    computed any, else ``seconds_per_text`` x the texts embedded per set (see
    :func:`embedding_seconds_per_text`).
    """
    recs = [r for r in matrix["targets"] if r["scored"]]
    enc = sum(r["score_timings"].get("encoder", 0.0) for r in recs)
    computed = sum(r["embed_sets"] - r["score_cached"].get("embeddings", 0) for r in recs)
    tok = sum(r["score_timings"].get("tokenise", 0.0) for r in recs)
    tok_computed = sum(r["embed_sets"] - r["score_cached"].get("terms", 0) for r in recs)
    max_texts = int(matrix["settings"].get("embed_examples") or 0)
    per_embed = enc / computed if computed else (seconds_per_text or 0.0) * max_texts
    per_terms = tok / tok_computed if tok_computed else (seconds_per_text or 0.0) * max_texts / 50
    out: dict[str, dict[str, float]] = {}
    for policy, used in policy_measures.items():
        need = {kinds[m] for m in used}
        out[policy] = {r["target"]: r["embed_sets"] * (per_embed * ("embeddings" in need) + per_terms * ("terms" in need))
                       + sum(r["score_timings"].get(f"measure_{m}", 0.0) for m in used) for r in recs}
    return out


def embedding_seconds_per_text(score_cfg: Any, texts: list[str]) -> float:
    """Time the encoder on ``texts`` now (no cache), for when every embedding was cached."""
    from hubselect.scoring.represent.store import Encoder

    encoder = Encoder(score_cfg.embedding, score_cfg.device)
    encoder(texts[:8])  # load and warm up
    encoder.seconds = 0.0
    encoder(texts)
    return encoder.seconds / max(len(texts), 1)


def normalised_parts(pairs: Any) -> tuple[Any, Any]:
    """``(tune seconds, evaluate seconds)`` of each pair at the benchmark's median throughput.

    On a shared machine one source's training can run 10x slower than another's because of
    other jobs; the median examples/s of training and of evaluation over all pairs turns each
    pair's work (its training and evaluation examples) into seconds on a steady machine.
    """
    train_rate = (pairs["train_seconds"] / pairs["train_examples"].clip(lower=1)).median()
    eval_rate = (pairs["eval_seconds"] / pairs["eval_n"].clip(lower=1)).median()
    return pairs["train_examples"] * train_rate, pairs["eval_n"] * eval_rate


def normalised_costs(pairs: Any) -> Any:
    """Tune + evaluate cost of each pair at the benchmark's median throughput (:func:`normalised_parts`)."""
    tune, evaluate = normalised_parts(pairs)
    return tune + evaluate


def two_stage_seconds(score: float, tune: Sequence[float], evaluate: Sequence[float], probes: Sequence[int],
                      kept: Sequence[int], fraction: float) -> float:
    """End-to-end seconds of a two-stage pick on one target.

    ``score`` (every candidate scored) + for each of the ``probes`` a probe tune of ``fraction`` of the
    full tuning work and one prediction pass over the target's texts (priced as the pair's
    evaluation) + for each of the ``kept`` a full tune and an evaluation. At ``fraction >= 1`` the
    probes *are* full tunes, so the kept models (chosen among them) are not tuned again, only
    evaluated. ``tune``/``evaluate`` hold every candidate's seconds (:func:`normalised_parts`);
    ``probes``/``kept`` index into them.
    """
    t, e = np.asarray(tune, dtype=float), np.asarray(evaluate, dtype=float)
    p, k = np.asarray(probes, dtype=int), np.asarray(kept, dtype=int)
    if not 0 < fraction <= 1 or not set(k.tolist()) <= set(p.tolist()):
        raise HubselectError(f"a probe fraction is in (0, 1] and the kept models are probes (got {fraction}, "
                             f"kept {k.tolist()} of probes {p.tolist()})")
    retune = 0.0 if fraction >= 1 else float(t[k].sum())
    return float(score + fraction * t[p].sum() + e[p].sum() + retune + e[k].sum())


def seconds_per_text(cfg: Any, matrix: dict, out_dir: Path) -> float | None:
    """Encoder seconds per text, timed now only when the benchmark computed no embedding."""
    recs = [r for r in matrix["targets"] if r["scored"]]
    if any(r["embed_sets"] > r["score_cached"].get("embeddings", 0) for r in recs):
        return None
    from hubselect.benchmark.matrix import target_catalog_dir
    from hubselect.data.entries import Catalog, read_texts

    catalog = Catalog.load(target_catalog_dir(out_dir, recs[0]["target"]))
    texts = read_texts(catalog.path(catalog.target.score))
    return embedding_seconds_per_text(cfg.score, texts[:64])
