"""Term distributions over one shared tokenisation.

Normalisation (applied identically to every text, target and candidates):

1. Unicode NFKC, then lowercase; HTML line breaks (``<br />``) become spaces.
2. The contraction ``n't`` becomes `` not``, so raw ``don't`` and PTB-tokenised ``do n't`` both
   give ``do not``.
3. Tokens are maximal runs of letters or digits (``[^\\W_]+``); every other character (quotes,
   PTB's `` `` `` and ``''``, apostrophes, punctuation) separates tokens, so ``it's`` and
   ``it 's`` both give ``it s``.
4. Digit runs become ``0``.

This removes the form differences between FDU-MTL's raw unlabeled texts and its lowercased,
tokenised labelled texts (see ``docs/representations.md``). Optional bigrams are adjacent token
pairs joined by a space.

Each text counts with at most its first :data:`MAX_TOKENS_PER_TEXT` tokens (read from at most
its first :data:`MAX_CHARS_PER_TEXT` characters), as embeddings are truncated to ``max_length``:
one huge text cannot dominate a domain's distribution, nor the memory.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from itertools import islice
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_NT = re.compile(r"n't\b")
_TOKEN = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")
#: Tokens counted per text (FDU-MTL: 10 of 124,765 texts are longer). Changing it changes every
#: term count: bump the ``terms-v*`` cache key in :mod:`hubselect.scoring.represent.store` with it.
MAX_TOKENS_PER_TEXT = 2000
#: Characters read per text before tokenising (40 per counted token).
MAX_CHARS_PER_TEXT = 40 * MAX_TOKENS_PER_TEXT


def normalise(text: str) -> str:
    """Apply steps 1, 2 and 4 of the module's normalisation to ``text``."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    return _DIGITS.sub("0", _NT.sub(" not", _BREAK.sub(" ", text)))


def tokenize(text: str, max_tokens: int | None = None) -> list[str]:
    """Normalise ``text`` and split it into tokens; only the first ``max_tokens`` when given (then
    only the first ``40 * max_tokens`` characters are read)."""
    if max_tokens is None:
        return _TOKEN.findall(normalise(text))
    found = _TOKEN.finditer(normalise(text[: 40 * max_tokens]))
    return [m.group() for m in islice(found, max_tokens)]


def term_counts(texts: Iterable[str], *, bigrams: bool = False, max_tokens: int = MAX_TOKENS_PER_TEXT) -> Counter:
    """Count unigrams (and adjacent bigrams when ``bigrams``) over ``texts``, at most ``max_tokens``
    tokens per text."""
    counts: Counter = Counter()
    for text in texts:
        tokens = tokenize(text, max_tokens)
        counts.update(tokens)
        if bigrams:
            counts.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:]))
    return counts


def count_matrix(counts: Sequence[Mapping[str, int]],
                 vocabulary: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Stack term counts on one shared vocabulary.

    Args:
        counts: One mapping term → count per domain.
        vocabulary: The columns, sorted, covering every term of ``counts`` (default: their
            union), so that blocks of rows can be stacked on the vocabulary of all domains.

    Returns:
        ``(vocabulary, matrix)`` with ``matrix`` of shape (len(counts), len(vocabulary)), float64.
    """
    vocab = list(vocabulary) if vocabulary is not None else sorted(set().union(*counts)) if counts else []
    index = {term: i for i, term in enumerate(vocab)}
    matrix = np.zeros((len(counts), len(vocab)), dtype=np.float64)
    for row, mapping in enumerate(counts):
        cols = np.fromiter((index[t] for t in mapping), dtype=np.int64, count=len(mapping))
        matrix[row, cols] = np.fromiter(mapping.values(), dtype=np.float64, count=len(mapping))
    return vocab, matrix


class SparseCounts:
    """Term counts added a chunk of domains at a time, stacked as one CSR matrix on the union of their terms.

    Each row stores only its own terms, so memory grows with the distinct terms of each domain, not
    with (domains x vocabulary) as :func:`count_matrix` does. Columns are numbered in the order the
    terms are first seen; no term measure depends on that order, and the matrix's width is the number
    of distinct terms, as the sorted vocabulary of :func:`count_matrix` would give.
    """

    def __init__(self) -> None:
        self.columns: dict[str, int] = {}
        self._indices: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._lengths: list[int] = []

    def __len__(self) -> int:
        """Rows added so far."""
        return len(self._lengths)

    def add(self, counts: Iterable[Mapping[str, int]]) -> None:
        """Append one row per mapping term → count (the mappings are not kept)."""
        columns = self.columns
        for mapping in counts:
            cols = np.fromiter((columns.setdefault(t, len(columns)) for t in mapping), dtype=np.int64,
                               count=len(mapping))
            values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
            order = np.argsort(cols, kind="stable")  # sorted, duplicate-free rows: CSR's canonical form
            self._indices.append(cols[order].astype(np.int32))
            fits = values.size == 0 or values.max() <= np.iinfo(np.int32).max
            self._values.append(values[order].astype(np.int32) if fits else values[order])
            self._lengths.append(len(mapping))

    def matrix(self) -> Any:
        """The rows added so far as a ``scipy.sparse.csr_array`` of shape (rows, distinct terms), integer counts."""
        import scipy.sparse as sp

        nnz = sum(self._lengths)
        index_type = np.int32 if max(nnz, len(self.columns)) < np.iinfo(np.int32).max else np.int64
        indptr = np.zeros(len(self._lengths) + 1, dtype=index_type)
        np.cumsum(self._lengths, out=indptr[1:])
        values = np.concatenate(self._values) if self._values else np.zeros(0, dtype=np.int32)
        indices = np.concatenate(self._indices).astype(index_type, copy=False) if self._indices else \
            np.zeros(0, dtype=index_type)
        return sp.csr_array((values, indices, indptr), shape=(len(self._lengths), len(self.columns)))
