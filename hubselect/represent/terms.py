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
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_NT = re.compile(r"n't\b")
_TOKEN = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")


def normalise(text: str) -> str:
    """Apply steps 1, 2 and 4 of the module's normalisation to ``text``."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    return _DIGITS.sub("0", _NT.sub(" not", _BREAK.sub(" ", text)))


def tokenize(text: str) -> list[str]:
    """Normalise ``text`` and split it into tokens."""
    return _TOKEN.findall(normalise(text))


def term_counts(texts: Iterable[str], *, bigrams: bool = False) -> Counter:
    """Count unigrams (and adjacent bigrams when ``bigrams``) over ``texts``."""
    counts: Counter = Counter()
    for text in texts:
        tokens = tokenize(text)
        counts.update(tokens)
        if bigrams:
            counts.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:]))
    return counts


def count_matrix(counts: Sequence[Mapping[str, int]]) -> tuple[list[str], np.ndarray]:
    """Stack term counts on one shared vocabulary.

    Args:
        counts: One mapping term → count per domain.

    Returns:
        ``(vocabulary, matrix)`` with ``matrix`` of shape (len(counts), len(vocabulary)), float64.
    """
    vocab = sorted(set().union(*counts)) if counts else []
    index = {term: i for i, term in enumerate(vocab)}
    matrix = np.zeros((len(counts), len(vocab)), dtype=np.float64)
    for row, mapping in enumerate(counts):
        cols = np.fromiter((index[t] for t in mapping), dtype=np.int64, count=len(mapping))
        matrix[row, cols] = np.fromiter(mapping.values(), dtype=np.float64, count=len(mapping))
    return vocab, matrix
