"""``main``: every step chained as nested runs, reusing finished ones."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hubselect.hub.catalog import FetchConfig
from hubselect.scoring import ScoreConfig
from hubselect.selection import SelectionConfig
from hubselect.steps.common import StepOutput, link_input, fetch_params, score_params, select_params
from hubselect.steps.domain import run_fetch, run_score, run_select
from hubselect.steps.transfer import run_evaluate, run_finetune, run_register

logger = logging.getLogger(__name__)


def _reuse(step: str, params: dict[str, Any]) -> StepOutput | None:
    """A finished run of ``step`` with the same params, its artifacts downloaded; else ``None``."""
    from hubselect.tracking import runs

    found = runs.find_finished(step, params)
    if found is None:
        return None
    logger.info("reusing finished %s run %s (same params)", step, found.info.run_id)
    return StepOutput(found.info.run_id, runs.download(found.info.run_id), reused=True)


def run_main(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, transfer_cfg: Any, *,
             quiet: bool = False) -> StepOutput:
    """Chain all steps as nested runs under one ``main`` run, reusing finished steps.

    Logs wall time per phase and ``runtime_saving``: one minus the end-to-end time of this job
    over the brute-force estimate (fetch, then tune and evaluate every usable candidate, at the
    mean tune + evaluate time measured for the selected ones).
    """
    from hubselect.tracking import runs
    from hubselect.transfer import runtime_accounting, transfer_params

    chain = [("fetch", fetch_params(fetch_cfg)), ("score", score_params(score_cfg)),
             ("select", select_params(select_cfg)), ("finetune", transfer_params(transfer_cfg)),
             ("evaluate", {}), ("register", {})]
    cumulative: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    for step, own in chain:
        params = {**params, **own}
        cumulative[step] = params
    runners = {
        "fetch": lambda prev: run_fetch(fetch_cfg, quiet=quiet),
        "score": lambda prev: run_score(fetch_cfg, score_cfg, fetch_dir=prev, quiet=quiet),
        "select": lambda prev: run_select(fetch_cfg, score_cfg, select_cfg, score_dir=prev, quiet=quiet),
        "finetune": lambda prev: run_finetune(fetch_cfg, score_cfg, select_cfg, transfer_cfg, select_dir=prev,
                                              quiet=quiet),
        "evaluate": lambda prev: run_evaluate(fetch_cfg, score_cfg, select_cfg, transfer_cfg, finetune_dir=prev,
                                              quiet=quiet),
    }
    upstream_link = {"score": "fetch", "select": "score", "finetune": "select", "evaluate": "finetune",
                     "register": "evaluate"}
    start = time.perf_counter()
    with runs.step_run("main", params) as run:
        phase: dict[str, float] = {}
        outputs: dict[str, StepOutput] = {}
        prev: Path | None = None
        for step, _ in chain:
            t = time.perf_counter()
            if step == "register":  # never reused: each job adds a version and moves the alias
                out = run_register(fetch_cfg, score_cfg, select_cfg, transfer_cfg, evaluate_dir=prev, quiet=quiet)
            else:
                out = _reuse(step, cumulative[step]) or runners[step](prev)
            if out.reused and step in upstream_link:
                link_input(out.path, upstream_link[step], prev)
            phase[step] = time.perf_counter() - t
            outputs[step], prev = out, out.path
        total = time.perf_counter() - start
        accounting = runtime_accounting(outputs["evaluate"].path, phase, total)
        runs.log_metrics({**{f"time_{k}_s": v for k, v in phase.items()}, "time_total_s": total, **accounting})
        runs.set_tags({f"hubselect.{k}_run": v.run_id for k, v in outputs.items()})
        return StepOutput(run.info.run_id, outputs["register"].path)
