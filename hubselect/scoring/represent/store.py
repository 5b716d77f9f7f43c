"""Representations of a domain sample, cached on disk.

Keys combine the dataset revision, a hash of the exact sampled texts, and the representation
settings (n-grams; encoder name, revision and max length), so a rerun with the same inputs
recomputes nothing and any change recomputes exactly what it affects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from hubselect.core.cache import cache_dir, content_key, read_entry, write_entry
from hubselect.scoring.represent.terms import term_counts

logger = logging.getLogger(__name__)


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 of the texts in order (identifies a sample exactly)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def cached_term_counts(texts: Sequence[str], revision: str, *, bigrams: bool) -> tuple[Counter, bool]:
    """Term counts of ``texts``; returns ``(counts, from_cache)``."""
    key = content_key("terms-v2", revision, texts_digest(texts), bigrams)  # v2: tokens capped per text
    path = cache_dir() / "terms" / f"{key}.json"
    cached = read_entry(path, _parse_counts)
    if cached is not None:
        return cached, True
    counts = term_counts(texts, bigrams=bigrams)
    write_entry(path, json.dumps(counts, ensure_ascii=False).encode("utf-8"))
    return counts, False


def _parse_counts(data: bytes) -> Counter:
    counts = json.loads(data)
    if not isinstance(counts, dict):
        raise ValueError("not a JSON object of term counts")
    return Counter(counts)


def _parse_array(data: bytes) -> np.ndarray:
    import io

    return np.load(io.BytesIO(data), allow_pickle=False)


@dataclass(frozen=True)
class EmbeddingSettings:
    """Encoder settings; part of the cache key."""

    model: str = "all-MiniLM-L6-v2"
    model_revision: str | None = None
    max_length: int = 128
    batch_size: int = 64
    max_texts: int = 500


class Encoder:
    """Lazily loads the encoder once per scoring call (explicit object, no global cache)."""

    def __init__(self, settings: EmbeddingSettings, device: str | None = None):
        from hubselect.data.encoder import resolve_model

        self.settings = settings
        self.model = resolve_model(settings.model, settings.model_revision)
        self.device = device
        self._loaded: tuple[Any, Any] | None = None
        self.seconds = 0.0  # time spent inside the encoder

    def __call__(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        import time

        from hubselect.data.encoder import encode, load_encoder

        if self._loaded is None:
            self._loaded = load_encoder(self.model, self.device)
        start = time.perf_counter()
        out = encode(list(texts), *self._loaded, batch_size=self.settings.batch_size,
                     max_length=self.settings.max_length, progress=progress)
        self.seconds += time.perf_counter() - start
        return out


def cached_embeddings(texts: Sequence[str], revision: str, encoder: Encoder,
                      progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, bool]:
    """Embeddings of the first ``max_texts`` of ``texts``; returns ``(array, from_cache)``."""
    texts = list(texts[: encoder.settings.max_texts])
    s = encoder.settings
    key = content_key("emb-v1", revision, texts_digest(texts), encoder.model.name, encoder.model.revision,
                      s.max_length)
    path = cache_dir() / "embeddings" / f"{key}.npy"
    cached = read_entry(path, _parse_array)
    if cached is not None and cached.ndim == 2 and len(cached) == len(texts):
        return cached, True
    array = encoder(texts, progress)
    write_entry(path, _array_bytes(array))
    return array, False


def _array_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
