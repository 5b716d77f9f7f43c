"""What every step shares: its work folder, its params, and the artifact layout.

A step's output folder links the output folder of the step before it under that step's name
(``register/evaluate/finetune/select/score/fetch``), so any later step finds everything upstream
from the one folder it is handed (:func:`upstream_dir`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hubselect.core.cache import scratch_dir
from hubselect.data.entries import Catalog

#: The step whose output folder each step's folder links, under that step's name.
UPSTREAM = {"score": "fetch", "select": "score", "finetune": "select", "evaluate": "finetune", "register": "evaluate"}
#: The main artifact file of each step (the fetch step's is ``catalog.json``, see hub.catalog).
SCORES, SELECTION, TUNED, EVALUATION, CHAMPION = ("scores.csv", "selection.json", "tuned.json",
                                                  "evaluation.json", "champion.json")


def params_of(*configs: Any) -> dict[str, Any]:
    """The MLflow params of a step: the ``params()`` of its config and of every upstream config."""
    out: dict[str, Any] = {}
    for cfg in configs:
        out.update(cfg.params())
    return out


def workdir(step: str) -> Path:
    """A new folder for one step's outputs (logged as artifacts when complete), in this process's
    scratch: removed when the process exits, swept by the next run if the process was killed."""
    return scratch_dir(f"{step}-")


def link_input(folder: Path, name: str, target: Path) -> None:
    """Link the input folder ``target`` as ``folder/name`` so later steps find it upstream."""
    link = folder / name
    if not link.exists():
        link.symlink_to(Path(target).resolve(), target_is_directory=True)


def upstream_dir(folder: Path, step: str, wanted: str) -> Path:
    """The output folder of step ``wanted`` as seen from ``folder``, the output folder of ``step``."""
    folder = Path(folder)
    while step != wanted:
        step = UPSTREAM[step]
        folder = folder / step
    return folder


def read_json(folder: Path, name: str) -> Any:
    """A step's JSON artifact ``name`` from its output folder."""
    return json.loads((Path(folder) / name).read_text(encoding="utf-8"))


def upstream(select_dir: Path) -> tuple[Catalog, Any, dict]:
    """``(catalog, scores frame, selection)`` from the select step's folder."""
    import pandas as pd

    scores = pd.read_csv(upstream_dir(select_dir, "select", "score") / SCORES, index_col="candidate")
    return Catalog.load(upstream_dir(select_dir, "select", "fetch")), scores, read_json(select_dir, SELECTION)
