"""Column mapping: turn any dataset's columns into ``text`` and ``label`` (as in setfit).

Detection order, unless overridden: a text column among :data:`TEXT_COLUMNS` (else the only
string column); a label column that is a ``ClassLabel`` feature, else one among
:data:`LABEL_COLUMNS`. Label names come from the ``ClassLabel``, the string values, a names
column beside integer labels (:data:`NAME_COLUMN_PATTERNS`), a dataset card, or
``label_names`` given by the user. Bare integers are never taken as label names.

Candidates are mapped one by one with ``--columns``; see :func:`parse_column_specs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hubselect.core.errors import HubselectError, TaskRejected

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "body", "tweet", "question",
                "sms", "utterance", "comment", "review_body", "description", "sentence1", "title")
LABEL_COLUMNS = ("label", "labels", "target", "class", "category", "sentiment", "coarse_label",
                 "intent", "emotion", "topic", "y")
#: Columns that name integer labels, ``{label}`` being the label column (``label_text``, ...).
NAME_COLUMN_PATTERNS = ("{label}_text", "{label}_name", "label_text", "label_name")
_INTEGER_RE = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_COLUMN_KEYS = ("text", "label", "names")


def bare_integer_names(names: Sequence[Any] | None) -> bool:
    """True when every label name is a bare integer (``0``, ``1``, ``"2"``, ``"3.0"``): no real names."""
    names = list(names or [])
    return bool(names) and all(_INTEGER_RE.match(str(n).strip()) for n in names)


@dataclass(frozen=True)
class Hints:
    """How the user fixes a task's columns: the target's flags, or ``--columns`` for a candidate."""

    text: str = "--text-column"
    label: str = "--label-column"
    names: str = "pass --label-names in label-id order (e.g. --label-names negative,positive)"

    @classmethod
    def candidate(cls, name: str) -> "Hints":
        """Hints for candidate ``name`` (``--text-column`` and friends apply to the target only)."""
        return cls(f"--columns '{name}:text=COLUMN'", f"--columns '{name}:label=COLUMN'",
                   f"add a label_text column or a dataset card, or pass --columns '{name}:names=NAME0|NAME1|...'")


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
    names_column: str | None = None  # a column naming integer labels (label_text)


def parse_column_specs(spec: str) -> dict[str, ColumnMapping]:
    """Parse ``--columns``: per-candidate column mappings.

    Grammar: entries separated by ``;`` (or given as repeated ``--columns``), each
    ``<candidate>:key=value[,key=value]`` with keys ``text`` (several joined: ``title|body``),
    ``label`` and ``names`` (integer label names in id order: ``neg|pos``). Example:
    ``reviews:text=body,label=stars,names=bad|ok|good;news:text=title|lead``.

    Raises:
        HubselectError: an entry without a name or ``key=value``, an unknown key, a repeated name.
    """
    out: dict[str, ColumnMapping] = {}
    for entry in (e.strip() for e in (spec or "").split(";")):
        if not entry:
            continue
        name, sep, body = entry.partition(":")
        name = name.strip()
        if not sep or not name or not body.strip():
            raise HubselectError(f"--columns entry {entry!r} is not '<candidate>:key=value,...': write e.g. "
                                 "--columns 'reviews:text=body,label=stars'")
        if name in out:
            raise HubselectError(f"--columns names candidate {name!r} twice: give one entry per candidate")
        fields: dict[str, str] = {}
        for item in (i.strip() for i in body.split(",")):
            key, eq, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not eq or key not in _COLUMN_KEYS or not value:
                raise HubselectError(f"--columns entry {entry!r} has a bad part {item!r}: use "
                                     f"{', '.join(k + '=...' for k in _COLUMN_KEYS)} (lists joined by '|')")
            fields[key] = value
        split = lambda s: tuple(x.strip() for x in s.split("|") if x.strip()) or None  # noqa: E731
        out[name] = ColumnMapping(split(fields.get("text", "")), fields.get("label") or None,
                                  split(fields.get("names", "")))
    return out


def _is_string(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string")


def _is_classlabel(feature: Any) -> bool:
    return type(feature).__name__ == "ClassLabel"


def resolve_columns(features: Mapping[str, Any], mapping: ColumnMapping, *, where: str,
                    need_label: bool, hints: Hints = Hints()) -> Columns:
    """Pick text and label columns from ``features`` (a ``datasets.Features`` mapping).

    ``hints`` say how to name a column (the target's flags, or ``--columns`` for a candidate).

    Raises:
        HubselectError: a column named by the user is missing (names ``where`` and the columns).
        TaskRejected: no text column, or no label column when ``need_label``.
    """
    names = list(features)
    if mapping.text:
        missing = [c for c in mapping.text if c not in features]
        if missing:
            raise HubselectError(f"{where} has no column {missing[0]!r} (columns: {', '.join(names)}): "
                                 f"fix {hints.text}")
        text = mapping.text
    else:
        found = [c for c in TEXT_COLUMNS if c in features and _is_string(features[c])]
        strings = [c for c in names if _is_string(features[c]) and c not in LABEL_COLUMNS and c != mapping.label]
        if found:
            text = (found[0],)
        elif len(strings) == 1:
            text = (strings[0],)
        else:
            raise TaskRejected(f"{where} has no text column (columns: {', '.join(names) or 'none'}): "
                               f"name it with {hints.text}")
    label = mapping.label
    if label and label not in features:
        raise HubselectError(f"{where} has no column {label!r} (columns: {', '.join(names)}): "
                             f"fix {hints.label}")
    if not label:
        classlabels = [c for c in names if _is_classlabel(features[c]) and c not in text]
        common = [c for c in LABEL_COLUMNS if c in features and c not in text]
        label = (classlabels or common or [None])[0]
    if label is None and need_label:
        raise TaskRejected(f"{where} has no label column (columns: {', '.join(names)}): "
                           f"name it with {hints.label}")
    label_names = tuple(features[label].names) if label and _is_classlabel(features[label]) else None
    names_column = None
    if label and not (mapping.label_names or label_names):
        names_column = next((c for c in (p.format(label=label) for p in NAME_COLUMN_PATTERNS)
                             if c in features and c != label and c not in text and _is_string(features[c])), None)
    return Columns(text, label, mapping.label_names or label_names, names_column)


def join_text(row: Mapping[str, Any], columns: Sequence[str], sep: str) -> str:
    """Join the text columns of one row, skipping missing values; stripped."""
    parts = [str(row[c]).strip() for c in columns if row.get(c) is not None]
    return sep.join(p for p in parts if p)


def label_name(value: Any, names: Sequence[str] | None) -> str:
    """Turn one raw label value into its name (index into ``names`` for integers, also for integers
    read as text from a CSV, unless the text is itself one of ``names``)."""
    if isinstance(value, str) and names is not None and value.strip() not in names and \
            _INTEGER_RE.match(value.strip()) and "." not in value:
        value = int(value.strip())
    if isinstance(value, (int,)) and not isinstance(value, bool) and names is not None:
        if not 0 <= value < len(names):
            raise TaskRejected(f"label {value} is outside the {len(names)} label names {list(names)}")
        return names[value]
    return str(value).strip()
