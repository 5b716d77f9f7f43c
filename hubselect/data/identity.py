"""Is a candidate the target? By resolved location, by the bytes of its files, by shared texts.

The target's labels must never be trained on. A candidate is the target when it resolves to the
same place (a symlink, ``./x`` against ``x``, the same Hub id), when one of its data files is
byte-identical to one of the target's (a renamed copy, or the target's test file offered as a
candidate's train file), or when most of its sampled texts are the target's texts.

Texts are compared after lowercasing, ``n't`` -> `` not`` and keeping only runs of letters and
digits, so the raw and tokenised forms of one review (``don't`` / ``do n't``) count as the same
text. The overlap share is the fraction of the candidate's sampled texts found among the
target's texts; at :data:`OVERLAP_THRESHOLD` or above the candidate is rejected, since its
held-out scores would not be honest.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable

from hubselect.data import demo, local
from hubselect.data.refs import TaskRef

#: Share of a candidate's sampled texts that are also target texts at which it is rejected.
OVERLAP_THRESHOLD = 0.5
#: Share above which an overlap is reported as a warning (the candidate is kept).
OVERLAP_WARN = 0.05
_TOKEN = re.compile(r"[^\W_]+")


def location_key(ref: TaskRef) -> tuple[str, str, str | None]:
    """Where ``ref`` really lives: the resolved path (symlinks followed) or the Hub id and config."""
    if ref.kind == "hub":
        return ("hub", ref.location.lower(), ref.config)
    path = demo.ensure_demo_catalog() / ref.location if ref.kind == "demo" else Path(ref.location)
    return ("local", os.path.realpath(path), None)


def _local_path(ref: TaskRef) -> Path | None:
    if ref.kind == "hub":
        return None
    path = demo.ensure_demo_catalog() / ref.location if ref.kind == "demo" else Path(ref.location)
    return path if path.exists() else None


class TargetIdentity:
    """What identifies the target: its resolved location, its data files and its texts.

    Args:
        ref: The target's reference.
    """

    def __init__(self, ref: TaskRef):
        self.ref = ref
        self.location = location_key(ref)
        self.path = _local_path(ref)
        self.sizes = local.data_file_sizes(self.path) if self.path is not None else {}
        self._digests: dict[str, str] = {}
        self.text_keys: set[bytes] = set()

    def _digest(self, name: str) -> str:
        if name not in self._digests:
            file = self.path if self.path.is_file() else self.path / name
            self._digests[name] = local.file_digest(file)
        return self._digests[name]

    def reason(self, ref: TaskRef) -> str | None:
        """Why candidate ``ref`` is the target (``None`` when it is not), as a rejection reason."""
        if location_key(ref) == self.location:
            return (f"is the target itself ('{ref}' resolves to '{self.location[1]}'), and training on it would "
                    "use the target's own labels: remove it from --candidates")
        path = _local_path(ref)
        if path is None or not self.sizes:
            return None
        by_size: dict[int, list[str]] = {}
        for name, size in self.sizes.items():
            by_size.setdefault(size, []).append(name)
        cand = local.data_file_sizes(path)
        same = []
        for name, size in cand.items():
            if size not in by_size:
                continue
            digest = local.file_digest(path if path.is_file() else path / name)
            same += [(name, t) for t in by_size[size] if self._digest(t) == digest]
        if not same:
            return None
        if len(same) >= len(cand) and {t for _, t in same} == set(self.sizes):
            return ("is a byte-identical copy of the target, and training on it would use the target's own "
                    "labels: remove it from --candidates")
        name, theirs = same[0]
        return (f"its file '{name}' is byte-identical to the target's '{theirs}', so training on it would use "
                "the target's own labels: remove that file or the candidate")

    def add_texts(self, texts: Iterable[str]) -> None:
        """Remember ``texts`` as the target's (for :meth:`overlap`)."""
        self.text_keys.update(k for k in map(text_key, texts) if k)

    def overlap(self, texts: list[str]) -> float:
        """Share of ``texts`` (a candidate's sample) that are also target texts, in [0, 1]."""
        keys = [text_key(t) for t in texts]
        keys = [k for k in keys if k]
        return sum(k in self.text_keys for k in keys) / len(keys) if keys else 0.0


def text_key(text: str) -> bytes:
    """A short digest of ``text``'s comparable form (``b""`` for a text without letters or digits)."""
    tokens = _TOKEN.findall(str(text).lower().replace("n't", " not"))
    return hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=10).digest() if tokens else b""


def overlap_reason(share: float, shared: int, n: int) -> str:
    """The rejection reason for a candidate sharing ``share`` of its ``n`` sampled texts with the target."""
    return (f"{share:.0%} of its sampled texts ({shared} of {n}) are also the target's texts (threshold "
            f"{OVERLAP_THRESHOLD:.0%}), so held-out scores would not be honest: de-duplicate it against the "
            "target or remove it from --candidates")
