"""Task references: what the user types for ``--target`` and ``--candidates``.

Grammar (one reference)::

    demo:<domain>                       a task of the built-in synthetic demo catalog
    <path>                              a local folder or file (JSONL/CSV/Parquet, save_to_disk)
    [hf:]<owner>/<name>[:<config>][@<revision>]   a Hugging Face Hub dataset

A string is a local path when it exists on disk, starts with ``.``, ``/`` or ``~``, or ends with a
data-file suffix; ``hf:`` forces the Hub reading. A Hub id must also pass the Hub's own rules
(``huggingface_hub.utils.validate_repo_id``: no ``..`` or ``--``, no leading or trailing ``.`` or
``-``, no ``.git`` ending, at most 96 characters), checked here before any call.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from hubselect.core.errors import HubselectError

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_HUB_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<rev>[\w./-]+))?$")
_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TaskRef:
    """A parsed task reference.

    Attributes:
        kind: ``hub``, ``local`` or ``demo``.
        location: Hub repo id, absolute local path, or demo domain name.
        config: Hub dataset config (``None`` = default).
        revision: Hub branch, tag or commit asked for (``None`` = pinned or default branch).
    """

    kind: str
    location: str
    config: str | None = None
    revision: str | None = None

    @property
    def name(self) -> str:
        """Short display name, unique within a catalog in practice (``owner__name``, folder)."""
        if self.kind == "hub":
            base = self.location.replace("/", "__") + (f"__{self.config}" if self.config else "")
        elif self.kind == "local":
            stem = os.path.basename(os.path.normpath(self.location))
            base = stem.rsplit(".", 1)[0] if stem.endswith(DATA_SUFFIXES) else stem
        else:
            base = self.location
        return _NAME_RE.sub("_", base)

    def __str__(self) -> str:
        if self.kind == "hub":
            text = self.location + (f":{self.config}" if self.config else "")
            return text + (f"@{self.revision}" if self.revision else "")
        return f"demo:{self.location}" if self.kind == "demo" else self.location


def parse_ref(text: str) -> TaskRef:
    """Parse one task reference (see module docstring).

    Raises:
        HubselectError: empty text, or neither an existing path nor a Hub id.
    """
    text = (text or "").strip()
    if not text:
        raise HubselectError("empty task reference: name a local path, 'demo:<domain>' or a Hub id 'owner/name'")
    if text.startswith("demo:"):
        return TaskRef("demo", text[5:])
    forced_hub = text.startswith("hf:")
    body = text[3:] if forced_hub else text
    looks_local = body.startswith((".", "/", "~")) or body.lower().endswith(DATA_SUFFIXES)
    if not forced_hub and (os.path.exists(os.path.expanduser(body)) or looks_local):
        return TaskRef("local", os.path.abspath(os.path.expanduser(body)))
    match = _HUB_RE.match(body)
    if not match:
        raise HubselectError(
            f"task '{text}' is neither an existing local path nor a Hub dataset id: "
            "check the path, or write 'owner/name[:config][@revision]'"
        )
    check_hub_id(match["repo"], f"task '{text}'", "'owner/name[:config][@revision]'")
    return TaskRef("hub", match["repo"], match["config"], match["rev"])


def check_hub_id(repo_id: str, what: str, form: str) -> None:
    """Check ``repo_id`` as the Hub does (``huggingface_hub.utils.validate_repo_id``), with no call.

    Args:
        repo_id: ``owner/name``.
        what: how the message names the input, e.g. ``task 'hf:acme/..'``.
        form: the form to write instead, e.g. ``'owner/name'``.

    Raises:
        HubselectError: one line with the Hub's reason and the fix.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        reason = str(err).replace(f": '{repo_id}'", "").rstrip(". ")
        raise HubselectError(f"{what} is not a valid Hub id ({reason}): write {form}") from None
