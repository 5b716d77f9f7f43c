"""Label names as text: the comparable key of a name and readable words for label codes.

One home for label-name handling, below every layer that needs it (hub, selection, training,
evaluation). Pure string functions; no imports from the rest of the package.
"""

from __future__ import annotations

import numbers
import re
from typing import Any, Mapping, Sequence

_SPACE_RE = re.compile(r"\s+")


def normalize_label(name: Any) -> str:
    """Return the comparable form of a label name: lowercase, stripped, ``_``/``-`` as spaces.

    Example: ``"Sci_Tech"`` and ``"sci-tech "`` both become ``"sci tech"``.
    """
    text = str(name).strip().lower().replace("_", " ").replace("-", " ")
    return _SPACE_RE.sub(" ", text).strip()


def label_lookup(names: Sequence[Any]) -> dict[str, int]:
    """``{normalize_label(name): position}`` over ``names``: find a label by its comparable form."""
    return {normalize_label(n): i for i, n in enumerate(names)}


def is_label_id(label: Any) -> bool:
    """Whether ``label`` is a label id (an ``int`` or numpy integer, not a ``bool``) rather than a name."""
    return isinstance(label, numbers.Integral) and not isinstance(label, bool)


def label_position(label: Any, names: Sequence[Any], lookup: Mapping[str, int] | None = None) -> int | None:
    """Where ``label`` sits in ``names``, or ``None`` when it is not there.

    A label id (:func:`is_label_id`) is valid in ``range(len(names))``; anything else is a name,
    found by :func:`normalize_label` (``"Sci_Tech"`` finds ``"sci-tech"``).

    Args:
        label: A label id or name.
        names: The label names, in id order.
        lookup: :func:`label_lookup` of ``names``, to reuse over many labels.
    """
    if is_label_id(label):
        return int(label) if 0 <= int(label) < len(names) else None
    return (label_lookup(names) if lookup is None else lookup).get(normalize_label(label))


def label_maps(names: Sequence[Any]) -> tuple[dict[int, str], dict[str, int]]:
    """``(id2label, label2id)`` of label names in id order, as a transformers model config holds them.

    Example: ``["neg", "pos"]`` gives ``({0: "neg", 1: "pos"}, {"neg": 0, "pos": 1})``.
    """
    id2label = {i: str(n) for i, n in enumerate(names)}
    return id2label, {n: i for i, n in id2label.items()}


#: Generic abbreviations seen in label codes across domains (not per dataset): expanded when a
#: label token equals one of them.
ABBREVIATIONS = {"sci": "science", "tech": "technology", "misc": "miscellaneous", "comp": "computers",
                 "rec": "recreation", "soc": "society", "alt": "alternative", "fx": "foreign exchange",
                 "acq": "acquisitions", "pto": "paid time off", "iot": "smart home devices", "qa": "question",
                 "os": "operating system", "ms": "microsoft", "sys": "system", "min": "minimum",
                 "info": "information", "num": "number", "abbr": "abbreviation", "desc": "description",
                 "loc": "location", "hum": "human", "enty": "entity", "neg": "negative", "pos": "positive",
                 "neu": "neutral", "obj": "objective", "subj": "subjective", "non": "not", "med": "medicine",
                 "crypt": "cryptography", "elec": "electronics", "mideast": "middle east"}
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT_RE = re.compile(r"[\s_\-.+/:]+")


def _label_tokens(name: Any) -> list[str]:
    return [t for t in _SPLIT_RE.split(_CAMEL_RE.sub(" ", str(name).strip()).lower()) if t]


def humanize_labels(label_names: Sequence[Any]) -> dict[str, str]:
    """Readable text for label codes, for label descriptions: ``{name: words}``.

    Generic rules, no per-dataset table: camelCase and ``_ - . + / :`` split into words
    (``AddToPlaylist`` -> ``add to playlist``, ``pants-fire`` -> ``pants fire``); a first word
    shared by *every* label is dropped when something is left (``atis_flight``, ``atis_airfare`` ->
    ``flight``, ``airfare``); common abbreviations are expanded (:data:`ABBREVIATIONS`:
    ``sci_tech`` -> ``science technology``, ``money-fx`` -> ``money foreign exchange``).
    """
    tokens = {str(n): _label_tokens(n) for n in label_names}
    firsts = {t[0] for t in tokens.values() if t}
    if len(tokens) > 1 and len(firsts) == 1 and all(len(t) > 1 for t in tokens.values()):
        tokens = {n: t[1:] for n, t in tokens.items()}
    out = {}
    for name, toks in tokens.items():
        words = " ".join(ABBREVIATIONS.get(t, t) for t in toks)
        out[name] = words or normalize_label(name)
    return out
