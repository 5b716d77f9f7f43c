"""The benchmark's own defaults and presets, and its small argument parsers.

The benchmark's defaults differ from the pipeline's: they are sized so the 16 FDU-MTL domains
(16 tunings, 240 pair evaluations) take about two hours on 2 busy CPU cores, where MiniLM
tunes at ~14 examples/s (1 thread, max_length 64). ``description``: at max_length 64 the
label-aligned head learns little in one short epoch (held-out accuracy 0.48-0.60 on baby and
apparel), the label-description formulation 0.68-0.88.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hubselect.core.errors import HubselectError

DEFAULT_TASKS = str(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fdu-mtl")
QUICK_TASKS = ("books", "dvd", "electronics", "kitchen_housewares")
#: Defaults of ``hubselect benchmark`` that differ from the pipeline's.
DEFAULTS = {"sample_size": 400, "target_sample_size": 500, "eval_size": 400, "embed_examples": 200,
            "train_max_length": 64, "max_train_examples": 400, "formulation": "description"}
#: The pipeline options whose default the benchmark overrides (from :data:`DEFAULTS`).
PIPELINE_OVERRIDES = {k: DEFAULTS[k] for k in ("embed_examples", "train_max_length", "max_train_examples",
                                               "formulation")}
#: The ``--quick`` preset: applied to every option still at its default.
QUICK = {"sample_size": 200, "target_sample_size": 200, "eval_size": 200, "embed_examples": 100,
         "train_max_length": 64, "max_train_examples": 200}


def apply_quick(args: Any) -> None:
    """Apply :data:`QUICK` to parsed arguments (``--quick``): options at their default, and the
    four :data:`QUICK_TASKS` when the tasks are the default FDU-MTL folder."""
    if not args.quick:
        return
    for key, value in QUICK.items():
        if getattr(args, key) == DEFAULTS[key]:
            setattr(args, key, value)
    if is_default_tasks(args.tasks) and not args.only:
        args.only = ",".join(QUICK_TASKS)


def is_default_tasks(tasks: str) -> bool:
    """Whether ``tasks`` names the FDU-MTL folder beside the checkout (however spelt)."""
    return os.path.realpath(os.path.expanduser(tasks.strip())) == os.path.realpath(DEFAULT_TASKS)


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/2"`` -> ``(1, 2)``."""
    i, sep, n = str(text).partition("/")
    if not sep or not i.strip().isdigit() or not n.strip().isdigit() or int(n) < 1:
        raise HubselectError(f"--shard '{text}' is not I/N with whole numbers, e.g. 0/2")
    return int(i), int(n)


def parse_ks(text: str) -> tuple[int, ...]:
    """``"1,3"`` -> ``(1, 3)``; 1 and 3 are always included (the headline needs them)."""
    try:
        ks = {int(s) for s in text.split(",") if s.strip()}
    except ValueError:
        raise HubselectError(f"--ks '{text}' is not a comma-separated list of integers") from None
    if any(k < 1 for k in ks):
        raise HubselectError(f"--ks values must be at least 1, got '{text}'")
    return tuple(sorted(ks | {1, 3}))
