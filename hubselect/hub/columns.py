"""Column mapping: turn any dataset's columns into ``text`` and ``label`` (as in setfit).

Detection order, unless overridden: a text column among :data:`TEXT_COLUMNS` (else the only
string column); a label column that is a ``ClassLabel`` feature, else one among
:data:`LABEL_COLUMNS`. Label names come from the ``ClassLabel``, the string values, or
``label_names`` given by the user (for integer labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hubselect.errors import HubselectError, TaskRejected

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "body", "tweet", "question",
                "sms", "utterance", "comment", "review_body", "description", "sentence1", "title")
LABEL_COLUMNS = ("label", "labels", "target", "class", "category", "sentiment", "coarse_label",
                 "intent", "emotion", "topic", "y")


@dataclass(frozen=True)
class ColumnMapping:
    """User overrides for reading a task; ``None`` fields are detected.

    Attributes:
        text: Column(s) holding the text; several are joined with ``join`` (title + body).
        label: Column holding the label.
        label_names: Names for integer labels, in index order.
        join: Separator used to join several text columns.
    """

    text: tuple[str, ...] | None = None
    label: str | None = None
    label_names: tuple[str, ...] | None = None
    join: str = " "

    @classmethod
    def from_strings(cls, text: str = "", label: str = "", label_names: str = "", join: str = " ") -> "ColumnMapping":
        """Build from comma-separated CLI strings (empty = detect)."""
        split = lambda s: tuple(x.strip() for x in s.split(",") if x.strip()) or None  # noqa: E731
        return cls(split(text), label.strip() or None, split(label_names), join)


@dataclass(frozen=True)
class Columns:
    """Resolved columns of one split."""

    text: tuple[str, ...]
    label: str | None
    label_names: tuple[str, ...] | None  # from a ClassLabel or the user; None = from values


def _is_string(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string")


def _is_classlabel(feature: Any) -> bool:
    return type(feature).__name__ == "ClassLabel"


def resolve_columns(features: Mapping[str, Any], mapping: ColumnMapping, *, where: str,
                    need_label: bool) -> Columns:
    """Pick text and label columns from ``features`` (a ``datasets.Features`` mapping).

    Raises:
        HubselectError: a column named by the user is missing (names ``where`` and the columns).
        TaskRejected: no text column, or no label column when ``need_label``.
    """
    names = list(features)
    if mapping.text:
        missing = [c for c in mapping.text if c not in features]
        if missing:
            raise HubselectError(f"{where} has no column {missing[0]!r} (columns: {', '.join(names)}): "
                                 "fix --text-column")
        text = mapping.text
    else:
        found = [c for c in TEXT_COLUMNS if c in features and _is_string(features[c])]
        strings = [c for c in names if _is_string(features[c]) and c not in LABEL_COLUMNS and c != mapping.label]
        if found:
            text = (found[0],)
        elif len(strings) == 1:
            text = (strings[0],)
        else:
            raise TaskRejected(f"{where} has no text column (columns: {', '.join(names)}): "
                               "name it with --text-column")
    label = mapping.label
    if label and label not in features:
        raise HubselectError(f"{where} has no column {label!r} (columns: {', '.join(names)}): fix --label-column")
    if not label:
        classlabels = [c for c in names if _is_classlabel(features[c]) and c not in text]
        common = [c for c in LABEL_COLUMNS if c in features and c not in text]
        label = (classlabels or common or [None])[0]
    if label is None and need_label:
        raise TaskRejected(f"{where} has no label column (columns: {', '.join(names)}): name it with --label-column")
    label_names = tuple(features[label].names) if label and _is_classlabel(features[label]) else None
    return Columns(text, label, mapping.label_names or label_names)


def join_text(row: Mapping[str, Any], columns: Sequence[str], sep: str) -> str:
    """Join the text columns of one row, skipping missing values; stripped."""
    parts = [str(row[c]).strip() for c in columns if row.get(c) is not None]
    return sep.join(p for p in parts if p)


def label_name(value: Any, names: Sequence[str] | None) -> str:
    """Turn one raw label value into its name (index into ``names`` for integers)."""
    if isinstance(value, (int,)) and not isinstance(value, bool) and names is not None:
        if not 0 <= value < len(names):
            raise TaskRejected(f"label {value} is outside the {len(names)} label names {list(names)}")
        return names[value]
    return str(value).strip()
