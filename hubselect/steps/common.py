"""What every step shares: its output handle, its params, its work folder."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubselect.cache import scratch_dir
from hubselect.hub.catalog import FetchConfig
from hubselect.scoring import ScoreConfig
from hubselect.selection import SelectionConfig


@dataclass
class StepOutput:
    """What a step hands to the next: its run id and the local folder of its artifacts."""

    run_id: str
    path: Path
    reused: bool = False


def fetch_params(cfg: FetchConfig) -> dict[str, Any]:
    """MLflow params of the fetch step (flat)."""
    out = {k: v for k, v in asdict(cfg).items() if k != "mapping"}
    out.update({f"{k}_column" if k in ("text", "label") else k: v for k, v in asdict(cfg.mapping).items()})
    out = {k: (",".join(v) if isinstance(v, (tuple, list)) else v) for k, v in out.items()}
    return out


def score_params(cfg: ScoreConfig) -> dict[str, Any]:
    """MLflow params of the score step's own settings."""
    return {"measures": cfg.measures, "bigrams": cfg.bigrams, "embedding_model": cfg.embedding.model,
            "embedding_revision": cfg.embedding.model_revision, "max_length": cfg.embedding.max_length,
            "embed_examples": cfg.embedding.max_texts}


def select_params(cfg: SelectionConfig) -> dict[str, Any]:
    """MLflow params of the select step's own settings."""
    return {"policy": cfg.policy, "k": cfg.k, "select_measures": cfg.measures, "quantile": cfg.quantile,
            "budget_examples": cfg.budget_examples, "learned_model": cfg.learned_model, "weights": cfg.weights,
            "prior": cfg.prior}


def workdir(step: str) -> Path:
    """A new folder for one step's outputs (logged as artifacts when complete), in this process's
    scratch: removed when the process exits, swept by the next run if the process was killed."""
    return scratch_dir(f"{step}-")


def link_input(folder: Path, name: str, target: Path) -> None:
    """Link the input folder ``target`` as ``folder/name`` so later steps find it upstream."""
    link = folder / name
    if not link.exists():
        link.symlink_to(Path(target).resolve(), target_is_directory=True)
