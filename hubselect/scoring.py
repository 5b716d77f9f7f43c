"""The score step's logic: represent target and candidates, compute every chosen measure.

Only the target's *scoring* sample (texts, no labels) is read here; candidates' labels are not
needed either. Term measures run vectorised over all candidates at once; embedding measures
run per candidate on cached embeddings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hubselect.errors import HubselectError
from hubselect.hub.catalog import accepted
from hubselect.represent.store import EmbeddingSettings, Encoder, cached_embeddings, cached_term_counts
from hubselect.represent.terms import count_matrix

logger = logging.getLogger(__name__)

DEFAULT_MEASURES = "all"
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


@dataclass
class ScoreResult:
    """Scores (rows: candidates, columns: measures; lower = closer) and timings in seconds."""

    scores: Any  # pandas.DataFrame
    timings: dict[str, float]
    cached: dict[str, int]
    measures: list[str]


def read_texts(path: Path) -> list[str]:
    """The ``text`` column of a sample Parquet file (no other column is read)."""
    import pandas as pd

    return pd.read_parquet(path, columns=["text"])["text"].tolist()


def check_sizes(target: str, target_texts: list[str], candidate_sizes: dict[str, int], specs: Any) -> None:
    """Fail before any work when a domain is too small for the chosen measures.

    Embedding measures need at least :data:`MIN_EMBEDDING_TEXTS` texts per domain (a mean and a
    spread); term measures need at least one word or number in the target.

    Raises:
        HubselectError: naming the domain, its size and the fix.
    """
    from hubselect.represent.terms import tokenize

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


def score(catalog: dict, fetch_dir: str | Path, cfg: ScoreConfig,
          progress: Callable[[str, int, int], None] | None = None) -> ScoreResult:
    """Compute every measure in ``cfg.measures`` between the target and each usable candidate.

    Args:
        catalog: Output of the fetch step.
        fetch_dir: Folder with the fetch step's ``samples/``.
        progress: Optional ``callback(phase, done, total)``.

    Raises:
        HubselectError: no usable candidate, or an unknown measure.
    """
    import pandas as pd

    from hubselect.divergence import resolve_measures

    specs = resolve_measures(cfg.measures)
    candidates = accepted(catalog)
    if not candidates:
        raise HubselectError("every candidate was rejected (see catalog.json): add usable tasks to --candidates")
    fetch_dir = Path(fetch_dir)
    names = [c["name"] for c in candidates]
    revisions = [catalog["target"]["revision"]] + [c["revision"] for c in candidates]
    texts = [read_texts(fetch_dir / catalog["target"]["score"]["sample"])]
    texts += [read_texts(fetch_dir / c["sample"]) for c in candidates]
    check_sizes(catalog["target"]["name"], texts[0], {c["name"]: c.get("n", 2) for c in candidates}, specs)
    timings: dict[str, float] = {}
    cached = {"terms": 0, "embeddings": 0}
    columns: dict[str, np.ndarray] = {}

    term_specs = [s for s in specs if s.kind == "terms"]
    if term_specs:
        start = time.perf_counter()
        counts = []
        for i, (t, rev) in enumerate(zip(texts, revisions)):
            c, hit = cached_term_counts(t, rev, bigrams=cfg.bigrams)
            counts.append(c)
            cached["terms"] += hit
            if progress:
                progress("terms", i + 1, len(texts))
        _, matrix = count_matrix(counts)
        timings["tokenise"] = time.perf_counter() - start
        start_all = time.perf_counter()
        for spec in term_specs:
            start = time.perf_counter()
            columns[spec.name] = np.asarray(spec.function(matrix[0], matrix[1:], **dict(spec.params)), dtype=float)
            timings[f"measure_{spec.name}"] = time.perf_counter() - start
        timings["term_measures"] = time.perf_counter() - start_all

    emb_specs = [s for s in specs if s.kind == "embeddings"]
    if emb_specs:
        encoder = Encoder(cfg.embedding, cfg.device)
        start = time.perf_counter()
        embeddings = []
        for i, (t, rev) in enumerate(zip(texts, revisions)):
            e, hit = cached_embeddings(t, rev, encoder)
            embeddings.append(e)
            cached["embeddings"] += hit
            if progress:
                progress("embeddings", i + 1, len(texts))
        timings["embed"] = time.perf_counter() - start
        timings["encoder"] = encoder.seconds
        start_all = time.perf_counter()
        # One BLAS thread: the small eigh/svd of these measures run 5-20x slower with two
        # threads on a busy 2-core machine (docs/benchmarks/scoring.md, runs A/B against C).
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            for spec in emb_specs:
                start = time.perf_counter()
                columns[spec.name] = np.array([spec.function(embeddings[0], e, **dict(spec.params))
                                               for e in embeddings[1:]], dtype=float)
                timings[f"measure_{spec.name}"] = time.perf_counter() - start
        timings["embedding_measures"] = time.perf_counter() - start_all

    frame = pd.DataFrame(columns, index=pd.Index(names, name="candidate"))[[s.name for s in specs]]
    return ScoreResult(frame, timings, cached, [s.name for s in specs])
