"""register as an MLflow run: log the champion (a pyfunc model from code) and register it.

Artifacts: ``champion.json`` (registered name, version, alias, URI, source, policy and why it
was chosen, accuracy and gain when the target has labels) and the logged model (``model/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubselect.core.cache import atomic_write_json
from hubselect.data.catalog import FetchConfig
from hubselect.data.entries import Catalog, read_texts
from hubselect.models.champion import pick_champion
from hubselect.models.transfer import TransferConfig, target_label_names
from hubselect.pipeline.steps.answers import register_answer
from hubselect.pipeline.steps.common import (
    CHAMPION,
    EVALUATION,
    TUNED,
    link_input,
    params_of,
    read_json,
    upstream,
    upstream_dir,
    workdir,
)
from hubselect.pipeline.steps.evaluate import run_evaluate
from hubselect.pipeline.tracking.runs import StepOutput
from hubselect.scoring.scores import ScoreConfig
from hubselect.selection.policy import SelectionConfig


def _log_champion(champion: dict, catalog: Catalog, cfg: TransferConfig) -> Any:
    """Log the champion's model (the untuned encoder when the baseline won); returns the model info."""
    from hubselect.data.encoder import resolve_model
    from hubselect.pipeline.tracking import models

    target = catalog.target
    model = champion["path"] or resolve_model(cfg.finetune.model, cfg.finetune.model_revision)
    return models.log_model(model, target_label_names(catalog), descriptions=cfg.descriptions, mapping=cfg.mapping,
                            max_length=cfg.finetune.max_length,
                            input_example=read_texts(catalog.path(target.score))[:3],
                            text_column=(target.score.text_columns[0] if len(target.score.text_columns) == 1
                                         else "text"),
                            metadata={"hubselect.target": target.name,
                                      "hubselect.source_revision": champion["source_revision"]})


def _register(info: Any, champion: dict, policy: str, reason: str, evaluation: dict | None, catalog: Catalog,
              selection: dict, cfg: TransferConfig) -> dict:
    """Register the logged model under the alias ``champion``; returns the ``champion.json`` record."""
    from hubselect.pipeline.tracking import models

    target = catalog.target
    metrics = {k: champion[k] for k in ("accuracy", "macro_f1") if k in champion}
    if evaluation:
        metrics["baseline_accuracy"] = evaluation["baseline"]["accuracy"]
    version = models.register_champion(
        info, cfg.registered_model_name or None, target=target.name,
        source=None if champion["path"] is None else champion["source"], metrics=metrics, gain=champion.get("gain"),
        policy=f"{policy}: {reason}", tags={"hubselect.measures": ",".join(selection["summary"]["measures"]),
                                           "hubselect.target_revision": target.revision})
    name = (models.sanitize_model_name(cfg.registered_model_name) if cfg.registered_model_name
            else models.default_model_name(target.name))
    return {"registered_model": name, "version": version, "alias": "champion", "uri": f"models:/{name}@champion",
            "source": champion["source"], "policy": policy, "reason": reason, **metrics, "gain": champion.get("gain")}


def run_register(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, cfg: TransferConfig, *,
                 evaluate_dir: Path | None = None, quiet: bool = False) -> StepOutput:
    """Log the champion with its MLflow flavour and register it with the alias ``champion``."""
    from hubselect.pipeline.tracking import runs

    with runs.step_run("register", params_of(fetch_cfg, score_cfg, select_cfg, cfg)) as run:
        if evaluate_dir is None:
            evaluate_dir = run_evaluate(fetch_cfg, score_cfg, select_cfg, cfg, quiet=quiet).path
        finetune_dir = upstream_dir(evaluate_dir, "evaluate", "finetune")
        catalog, _, selection = upstream(upstream_dir(finetune_dir, "finetune", "select"))
        evaluation = read_json(evaluate_dir, EVALUATION)
        evaluation = evaluation if evaluation.get("pairs") else None
        tuned = read_json(finetune_dir, TUNED)["tuned"]
        champion, reason, policy = pick_champion(evaluation, tuned, cfg, catalog)
        info = _log_champion(champion, catalog, cfg)
        record = _register(info, champion, policy, reason, evaluation, catalog, selection, cfg)
        out = workdir("register") / "register"
        atomic_write_json(out / CHAMPION, record)
        runs.log_dir(out)
        runs.log_metrics({"registered_version": record["version"],
                          **{f"champion_{k}": record[k] for k in ("accuracy", "macro_f1", "baseline_accuracy")
                             if k in record}})
        runs.set_tags({"hubselect.models.champion": champion["source"],
                       "hubselect.registered_model": f"{record['registered_model']}/{record['version']}"})
        link_input(out, "evaluate", evaluate_dir)
        return StepOutput(run.info.run_id, out, answer=register_answer(run, out))
