"""The transfer prior: how much each source has helped *other* targets in past benchmarks.

``hubselect benchmark`` writes it (``transfer_prior.json``): per source, keyed by name and
revision, its mean gain in accuracy over the untuned baseline across the benchmark's targets.
``select --prior`` reads one; a prior built from the committed benchmark ships with the package
(:data:`DEFAULT_PRIOR`). A source the prior has never seen (another name, or the same name at
another revision) gets the neutral value: the mean over the sources it knows, so it is neither
favoured nor penalised. The prior never reads the user's target.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from hubselect.core.errors import HubselectError

logger = logging.getLogger(__name__)

FORMAT = "hubselect-transfer-prior"
VERSION = 1
DEFAULT_PRIOR = Path(__file__).resolve().parent / "transfer_prior.json"


def build_prior(pairs: Any, revisions: Mapping[str, str | None], *, exclude_targets: Iterable[str] = (),
                description: str = "") -> dict:
    """A prior from benchmark pairs (columns ``target``, ``source``, ``gain``; one row per pair).

    Args:
        pairs: Pair results, already averaged over seeds.
        revisions: Revision of each source.
        exclude_targets: Targets whose columns are left out (leave-one-target-out evaluation).
        description: What the prior was built from (kept in the file).
    """
    excluded = set(exclude_targets)
    kept = pairs[~pairs["target"].isin(excluded)]
    grouped = kept.groupby("source")["gain"]
    sources = {str(s): {"revision": revisions.get(s), "mean_gain": float(g.mean()), "targets": int(g.size)}
               for s, g in grouped}
    neutral = sum(v["mean_gain"] for v in sources.values()) / len(sources) if sources else 0.0
    return {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "description": description, "neutral": neutral, "sources": sources}


def save_prior(prior: dict, path: str | os.PathLike) -> Path:
    """Write a prior as JSON (atomically)."""
    from hubselect.core.cache import atomic_write_json

    return atomic_write_json(path, prior)


def load_prior(path: str | os.PathLike) -> dict:
    """Read a prior: a ``transfer_prior.json`` or a folder holding one.

    Raises:
        HubselectError: a missing or unreadable file, or one that is not a transfer prior.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "transfer_prior.json"
    try:
        prior = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HubselectError(f"prior '{path}' was not found: pass the transfer_prior.json of a benchmark run, "
                             "its folder, or runs:/<benchmark run id>") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HubselectError(f"prior '{p}' is not readable JSON ({exc}): rerun the benchmark or pass another "
                             "--prior") from None
    if not isinstance(prior, dict) or prior.get("format") != FORMAT or not isinstance(prior.get("sources"), dict):
        raise HubselectError(f"'{p}' is not a hubselect transfer prior: pass the transfer_prior.json a "
                             "benchmark run wrote")
    return prior


def prior_values(prior: dict, revisions: Mapping[str, str | None]) -> dict[str, tuple[float, bool]]:
    """``{candidate: (value, known)}``: the prior's mean gain when name *and* revision match,
    else the neutral value with ``known`` False."""
    out = {}
    for name, revision in revisions.items():
        entry = prior["sources"].get(name)
        known = entry is not None and (entry.get("revision") in (None, revision) or revision is None)
        out[name] = (float(entry["mean_gain"]), True) if known else (float(prior["neutral"]), False)
    return out
