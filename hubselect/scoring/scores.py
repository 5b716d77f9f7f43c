"""The score step's logic: represent target and candidates, compute every chosen measure.

Only the target's *scoring* sample (texts, no labels) is read here; candidates' labels are not
needed either. Candidates are read, tokenised and embedded a chunk at a time, so no more than a
window of chunks' texts is held at once. Term counts are kept as one sparse CSR matrix (each
candidate's row holds only its own terms) and the term measures run on blocks of its rows against
the target's distribution; embedding measures run per candidate on cached embeddings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from hubselect.core.errors import HubselectError
from hubselect.core.executor import current
from hubselect.data.entries import Catalog, read_texts
from hubselect.scoring.divergence.registry import DEFAULT_MEASURES
from hubselect.scoring.represent.store import EmbeddingSettings, Encoder, cached_embeddings, cached_term_counts
from hubselect.scoring.represent.terms import SparseCounts

logger = logging.getLogger(__name__)

#: Fewest texts per domain the embedding measures accept.
MIN_EMBEDDING_TEXTS = 2


@dataclass(frozen=True)
class ScoreConfig:
    """Settings of the score step.

    Attributes:
        measures: Comma-separated measure names or groups (``all``, ``terms``, ``embeddings``).
        bigrams: Add adjacent-token bigrams to the term distributions.
        embedding: Encoder settings for embedding measures.
        device: ``cuda``/``cpu``; ``None`` picks the GPU when present.
    """

    measures: str = DEFAULT_MEASURES
    bigrams: bool = False
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    device: str | None = None

    def params(self) -> dict[str, Any]:
        """The score step's MLflow params: what changes the scores (``device`` does not)."""
        return {"measures": self.measures, "bigrams": self.bigrams, "embedding_model": self.embedding.model,
                "embedding_revision": self.embedding.model_revision, "max_length": self.embedding.max_length,
                "embed_examples": self.embedding.max_texts}


@dataclass
class ScoreResult:
    """Scores (rows: candidates, columns: measures; lower = closer) and timings in seconds."""

    scores: Any  # pandas.DataFrame
    timings: dict[str, float]
    cached: dict[str, int]
    measures: list[str]


def check_sizes(target: str, target_texts: list[str], candidate_sizes: dict[str, int], specs: Any) -> None:
    """Fail before any work when a domain is too small for the chosen measures.

    Embedding measures need at least :data:`MIN_EMBEDDING_TEXTS` texts per domain (a mean and a
    spread); term measures need at least one word or number in the target.

    Raises:
        HubselectError: naming the domain, its size and the fix.
    """
    from hubselect.scoring.represent.terms import tokenize

    embedding = [s.name for s in specs if s.kind == "embeddings"]
    sizes = [("target", target, len(target_texts))] + [("candidate", n, k) for n, k in candidate_sizes.items()]
    for role, name, size in sizes if embedding else []:
        if size < MIN_EMBEDDING_TEXTS:
            raise HubselectError(
                f"the {role} '{name}' has {size} text(s) after dropping empty and duplicate ones, too few for the "
                f"embedding measures ({', '.join(embedding)}), which need at least {MIN_EMBEDDING_TEXTS}: add texts, "
                "or use --measures terms")
    if any(s.kind == "terms" for s in specs) and not any(tokenize(t) for t in target_texts):
        raise HubselectError(f"the target '{target}' has {len(target_texts)} text(s) but no word or number in them, "
                             "so term measures cannot be computed: check the text column (--text-column)")


def score(catalog: Catalog, cfg: ScoreConfig,
          progress: Callable[[str, int, int], None] | None = None, *, executor: Any = None) -> ScoreResult:
    """Compute every measure in ``cfg.measures`` between the target and each usable candidate.

    The measures are resolved once here and handed down: term measures to
    :func:`_score_terms`, embedding measures to :func:`_score_embeddings`.

    Args:
        catalog: Output of the fetch step (its folder holds the samples).
        progress: Optional ``callback(phase, done, total)`` (called as candidates are handed out).
        executor: Where candidates are represented (default :func:`hubselect.core.executor.current`):
            candidates are read here a chunk at a time and tokenised / embedded and scored per
            chunk, so neither every sample nor every embedding is held at once.

    Raises:
        HubselectError: no usable candidate, or an unknown measure.
    """
    import pandas as pd

    from hubselect.scoring.divergence import resolve_measures

    specs = resolve_measures(cfg.measures)
    candidates = catalog.accepted()
    if not candidates:
        raise HubselectError("every candidate was rejected (see catalog.json): add usable tasks to --candidates")
    target = (read_texts(catalog.path(catalog.target.score)), catalog.target.revision)
    paths = [(catalog.path(c), c.revision) for c in candidates]
    check_sizes(catalog.target.name, target[0], {c.name: c.sample.n for c in candidates}, specs)
    work = _Work(target, paths, cfg, executor or current(), progress)
    columns: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    cached = {"terms": 0, "embeddings": 0}
    for kind, run in (("terms", _score_terms), ("embeddings", _score_embeddings)):
        chosen = tuple(s for s in specs if s.kind == kind)
        if chosen:
            columns_of_kind, timings_of_kind, cached[kind] = run(work, chosen)
            columns.update(columns_of_kind)
            timings.update(timings_of_kind)
    index = pd.Index([c.name for c in candidates], name="candidate")
    frame = pd.DataFrame(columns, index=index)[[s.name for s in specs]]
    return ScoreResult(frame, timings, cached, [s.name for s in specs])


@dataclass(frozen=True)
class _Work:
    """What both blocks of :func:`score` read: the target ``(texts, revision)``, the candidates'
    ``(sample path, revision)``, the settings, the executor and the progress callback."""

    target: tuple[list[str], str]
    paths: list[tuple[Path, str]]
    cfg: ScoreConfig
    executor: Any
    progress: Callable[[str, int, int], None] | None

    def chunks(self, phase: str, max_texts: int | None = None) -> Iterator[list[tuple[list[str], str]]]:
        """The candidates' texts, a chunk at a time (see :func:`_chunks_of_texts`)."""
        size = _chunk_size(self.executor, len(self.paths))
        return _chunks_of_texts(self.paths, size, max_texts, self.progress, phase)

    def windows(self, phase: str) -> Iterator[list[list[tuple[list[str], str]]]]:
        """:meth:`chunks` in windows handed to the executor one at a time (one chunk in process; on Ray,
        enough to keep every worker busy), so only a window's texts and term counts are held at once."""
        size = 1 if self.executor.engine == "local" else 4 * self.executor.workers
        window: list[list[tuple[list[str], str]]] = []
        for chunk in self.chunks(phase):
            window.append(chunk)
            if len(window) == size:
                yield window
                window = []
        if window:
            yield window


Scored = tuple[dict[str, np.ndarray], dict[str, float], int]


def _score_terms(work: _Work, specs: tuple) -> Scored:
    """Term measures: count every domain's terms (cached) a window of chunks at a time into one sparse
    matrix (row 0 the target), then score its rows a block at a time.

    Returns:
        ``({measure: scores}, timings, representations from the cache)``.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    target_counts, hit = cached_term_counts(work.target[0], work.target[1], bigrams=work.cfg.bigrams)
    rows, hits = SparseCounts(), int(hit)
    rows.add([target_counts])
    del target_counts
    for window in work.windows("terms"):
        for chunk in work.executor.map(_term_counts_task, window, work.cfg.bigrams):
            rows.add(c for c, _ in chunk)
            hits += sum(h for _, h in chunk)
    matrix = rows.matrix()
    del rows
    timings["tokenise"] = time.perf_counter() - start
    start = time.perf_counter()
    columns = _term_scores(matrix, list(specs), timings)
    timings["term_measures"] = time.perf_counter() - start
    return columns, timings, hits


def _score_embeddings(work: _Work, specs: tuple) -> Scored:
    """Embedding measures: embed the target once, then embed and score the candidates per chunk.

    Returns:
        ``({measure: scores}, timings, representations from the cache)``.
    """
    cfg, executor = work.cfg, work.executor
    start = time.perf_counter()
    # In process, one encoder serves every chunk; a Ray task loads its own.
    encoder = Encoder(cfg.embedding, cfg.device) if executor.engine == "local" else None
    first = _embedding_task([work.target], cfg, None, specs, encoder)
    reference = executor.put(first["embeddings"][0])  # the target's embeddings, once
    parts = executor.map(_embedding_task, work.chunks("embeddings", cfg.embedding.max_texts), cfg, reference, specs,
                         encoder)
    timings = {"embed": time.perf_counter() - start - sum(p["measure_seconds"] for p in parts),
               "encoder": first["encoder_seconds"] + sum(p["encoder_seconds"] for p in parts)}
    columns = {}
    for spec in specs:
        columns[spec.name] = np.concatenate([p["scores"][spec.name] for p in parts])
        timings[f"measure_{spec.name}"] = sum(p["timings"][spec.name] for p in parts)
    timings["embedding_measures"] = sum(p["measure_seconds"] for p in parts)
    return columns, timings, first["cached"] + sum(p["cached"] for p in parts)


#: Candidates per representation task (large enough that loading the encoder once per chunk is noise).
CHUNK = 32
#: Candidate rows of the sparse term matrix per call of a term measure (bounds the measures' working memory).
TERM_BLOCK = 1024


def _term_scores(matrix: Any, specs: list, timings: dict[str, float]) -> dict[str, np.ndarray]:
    """Every term measure of row 0 (the target) against each other row of the sparse ``matrix``,
    :data:`TERM_BLOCK` rows at a time.

    Every row lies on the vocabulary of all domains (the matrix's width, the ``V`` of the smoothing of
    KL and Rényi), as one dense matrix would, so the values are the dense ones; the measures never make
    the rows dense over ``V`` (see :mod:`hubselect.scoring.divergence.terms`).
    """
    target = matrix[[0]].toarray()[0]
    parts: dict[str, list[np.ndarray]] = {spec.name: [] for spec in specs}
    for start in range(1, matrix.shape[0], TERM_BLOCK):
        block = matrix[start:start + TERM_BLOCK]
        for spec in specs:
            began = time.perf_counter()
            parts[spec.name].append(np.asarray(spec.function(target, block, **dict(spec.params)), dtype=float))
            timings[f"measure_{spec.name}"] = timings.get(f"measure_{spec.name}", 0.0) + time.perf_counter() - began
    return {name: np.concatenate(values) for name, values in parts.items()}


def _chunk_size(executor: Any, n: int) -> int:
    """Candidates per task: :data:`CHUNK` in process; on Ray, small enough to keep every worker busy."""
    if executor.engine == "local":
        return CHUNK
    return max(1, min(CHUNK, -(-n // (2 * executor.workers))))


def _chunks_of_texts(paths: list[tuple[Path, str]], size: int, max_texts: int | None,
                     progress: Callable[[str, int, int], None] | None, phase: str) -> Iterator[list[tuple[list[str], str]]]:
    """Read the candidates' samples a chunk at a time: ``[(texts, revision), ...]`` per chunk."""
    for start in range(0, len(paths), size):
        chunk = [(read_texts(path)[:max_texts], rev) for path, rev in paths[start:start + size]]
        if progress:
            progress(phase, start + len(chunk), len(paths))
        yield chunk


def _term_counts_task(chunk: list[tuple[list[str], str]], bigrams: bool) -> list[tuple[Any, bool]]:
    """Term counts of a chunk of candidates (cached), one ``(counts, from_cache)`` each."""
    return [cached_term_counts(texts, rev, bigrams=bigrams) for texts, rev in chunk]


def _embedding_task(chunk: list[tuple[list[str], str]], cfg: ScoreConfig, reference: np.ndarray | None,
                    specs: tuple, encoder: Encoder | None = None) -> dict[str, Any]:
    """Embed a chunk of candidates (cached) and, given the target's ``reference``, score them by ``specs``
    (the resolved embedding measures, handed over as they are: a Ray task does not resolve them again).

    Returns the chunk's ``scores`` per measure (or its ``embeddings`` when ``reference`` is
    None), the time in the encoder and in each measure, and how many came from the cache.
    """
    from threadpoolctl import threadpool_limits

    encoder = encoder or Encoder(cfg.embedding, cfg.device)
    seconds = encoder.seconds
    embeddings, hits = [], 0
    for texts, rev in chunk:
        array, hit = cached_embeddings(texts, rev, encoder)
        embeddings.append(array)
        hits += hit
    out: dict[str, Any] = {"encoder_seconds": encoder.seconds - seconds, "cached": hits, "scores": {}, "timings": {},
                           "measure_seconds": 0.0}
    if reference is None:
        out["embeddings"] = embeddings
        return out
    start_all = time.perf_counter()
    # One BLAS thread: the small eigh/svd of these measures run 5-20x slower with two threads on a
    # busy 2-core machine (docs/benchmarks/scoring.md, runs A/B against C).
    with threadpool_limits(1, user_api="blas"):
        for spec in specs:
            start = time.perf_counter()
            out["scores"][spec.name] = np.array([spec.function(reference, e, **dict(spec.params))
                                                 for e in embeddings], dtype=float)
            out["timings"][spec.name] = time.perf_counter() - start
    out["measure_seconds"] = time.perf_counter() - start_all
    return out
