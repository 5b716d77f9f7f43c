"""``main``: every step chained as nested runs under one ``main`` run, reusing finished ones.

The ``main`` run tells the story on its first page: headline metrics (champion accuracy, the
untuned baseline, the gain, the runtime saved against brute force), the selection and
evaluation tables (``tables/*.json``, shown by the MLflow UI), the target and candidate samples
as dataset inputs, and a description with the registered model version. The console ends with
the same answer (:meth:`Story.text`; ``--json``: :func:`hubselect.pipeline.steps.answers.main_answer`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hubselect.data.catalog import FetchConfig
from hubselect.data.entries import Catalog
from hubselect.models.champion import BASELINE
from hubselect.models.transfer import TransferConfig
from hubselect.pipeline.steps.answers import main_answer
from hubselect.pipeline.steps.common import (
    CHAMPION,
    EVALUATION,
    SELECTION,
    TUNED,
    UPSTREAM,
    link_input,
    params_of,
    read_json,
    upstream_dir,
)
from hubselect.pipeline.steps.evaluate import evaluation_frame, run_evaluate
from hubselect.pipeline.steps.fetch import log_inputs, run_fetch
from hubselect.pipeline.steps.finetune import run_finetune
from hubselect.pipeline.steps.reasons import chosen_lines
from hubselect.pipeline.steps.register import run_register
from hubselect.pipeline.steps.score import run_score
from hubselect.pipeline.steps.select import run_select
from hubselect.pipeline.tracking.runs import StepOutput
from hubselect.scoring.scores import ScoreConfig
from hubselect.selection.policy import SelectionConfig

logger = logging.getLogger(__name__)
STEPS = ("fetch", "score", "select", "finetune", "evaluate", "register")


def _reuse(step: str, params: dict[str, Any]) -> StepOutput | None:
    """A finished run of ``step`` with the same params, its artifacts downloaded; else ``None``."""
    from hubselect.pipeline.tracking import runs

    found = runs.find_finished(step, params)
    if found is None:
        return None
    logger.info("reusing the finished %s run %s (same params)", step, found.info.run_id)
    return StepOutput(found.info.run_id, runs.download(found.info.run_id), reused=True)


def runtime_accounting(evaluate_dir: Path, phase: Mapping[str, float], total: float) -> dict[str, float]:
    """End-to-end time of the job against the brute-force estimate.

    Per-pair cost is the measured tune + evaluate time of each selected source (the original
    training time when the model came from the cache, so reruns don't flatter the saving).
    Ours = fetch + score + select + the selected pairs; brute force = fetch + every usable
    candidate at the mean pair cost. Register and the baseline are common to both and left out.
    """
    evaluation = read_json(evaluate_dir, EVALUATION)
    catalog = Catalog.load(upstream_dir(evaluate_dir, "evaluate", "fetch"))
    tuned = read_json(upstream_dir(evaluate_dir, "evaluate", "finetune"), TUNED)["tuned"]
    eval_seconds = {p["source"]: p["eval_seconds"] for p in evaluation.get("pairs", [])}
    costs = [t["train_seconds"] + eval_seconds.get(t["source"], 0.0) for t in tuned]
    mean_cost = sum(costs) / max(len(costs), 1)
    ours = phase.get("fetch", 0.0) + phase.get("score", 0.0) + phase.get("select", 0.0) + sum(costs)
    brute = phase.get("fetch", 0.0) + len(catalog.accepted()) * mean_cost
    return {"end_to_end_estimate_s": ours, "brute_force_estimate_s": brute,
            "runtime_saving": 1.0 - ours / brute if brute > 0 else 0.0, "pair_cost_mean_s": mean_cost,
            "time_wall_total_s": total}


def _chain(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig, transfer_cfg: TransferConfig,
           quiet: bool) -> tuple[dict[str, StepOutput], dict[str, float]]:
    """Run (or reuse) every step in order; returns their outputs and wall seconds per step."""
    configs = {"fetch": (fetch_cfg,), "score": (fetch_cfg, score_cfg), "select": (fetch_cfg, score_cfg, select_cfg)}
    runners = {"fetch": lambda prev: run_fetch(fetch_cfg, quiet=quiet),
               "score": lambda prev: run_score(fetch_cfg, score_cfg, fetch_dir=prev, quiet=quiet),
               "select": lambda prev: run_select(fetch_cfg, score_cfg, select_cfg, score_dir=prev, quiet=quiet),
               "finetune": lambda prev: run_finetune(fetch_cfg, score_cfg, select_cfg, transfer_cfg, select_dir=prev,
                                                     quiet=quiet),
               "evaluate": lambda prev: run_evaluate(fetch_cfg, score_cfg, select_cfg, transfer_cfg,
                                                     finetune_dir=prev, quiet=quiet),
               "register": lambda prev: run_register(fetch_cfg, score_cfg, select_cfg, transfer_cfg,
                                                     evaluate_dir=prev, quiet=quiet)}
    outputs: dict[str, StepOutput] = {}
    phase: dict[str, float] = {}
    prev: Path | None = None
    for step in STEPS:
        t = time.perf_counter()
        params = params_of(*configs.get(step, (fetch_cfg, score_cfg, select_cfg, transfer_cfg)))
        # register is never reused: each job adds a version and moves the alias
        out = (None if step == "register" else _reuse(step, params)) or runners[step](prev)
        if out.reused and step in UPSTREAM:
            link_input(out.path, UPSTREAM[step], prev)
        phase[step] = time.perf_counter() - t
        outputs[step], prev = out, out.path
    return outputs, phase


def run_main(fetch_cfg: FetchConfig, score_cfg: ScoreConfig, select_cfg: SelectionConfig,
             transfer_cfg: TransferConfig, *, quiet: bool = False) -> StepOutput:
    """Chain all steps as nested runs under one ``main`` run, reusing finished steps.

    Logs wall time per phase and ``runtime_saving``: one minus the end-to-end time of this job
    over the brute-force estimate (fetch, then tune and evaluate every usable candidate, at the
    mean tune + evaluate time measured for the selected ones).
    """
    from hubselect.pipeline.tracking import runs

    start = time.perf_counter()
    with runs.step_run("main", params_of(fetch_cfg, score_cfg, select_cfg, transfer_cfg)) as run:
        outputs, phase = _chain(fetch_cfg, score_cfg, select_cfg, transfer_cfg, quiet)
        accounting = runtime_accounting(outputs["evaluate"].path, phase, time.perf_counter() - start)
        story = Story.read(outputs["register"].path, accounting["runtime_saving"])
        story.log()  # the answer first: the UI lists metrics in the order they were logged
        runs.log_metrics({**{f"time_{k}_s": v for k, v in phase.items()},
                          "time_total_s": accounting["time_wall_total_s"], **accounting})
        runs.set_tags({f"hubselect.{k}_run": v.run_id for k, v in outputs.items()})
        return StepOutput(run.info.run_id, outputs["register"].path, summary=story.text(run.info.run_id),
                          answer=main_answer(run, story))


@dataclass(frozen=True)
class Story:
    """What the job found, read from the register step's folder: for the main run and the console."""

    catalog: Catalog
    selection: dict
    evaluation: dict
    champion: dict
    saving: float

    @classmethod
    def read(cls, register_dir: Path, saving: float) -> "Story":
        """The story of the job whose register step wrote ``register_dir``."""
        return cls(Catalog.load(upstream_dir(register_dir, "register", "fetch")),
                   read_json(upstream_dir(register_dir, "register", "select"), SELECTION),
                   read_json(upstream_dir(register_dir, "register", "evaluate"), EVALUATION),
                   read_json(register_dir, CHAMPION), saving)

    def headline(self) -> dict[str, float]:
        """Champion accuracy, baseline, gain (when the target has labels) and the runtime saved."""
        c = self.champion
        out = {"runtime_saving": self.saving, "registered_version": float(c["version"])}
        if c.get("accuracy") is not None and c.get("baseline_accuracy") is not None:
            out.update({"champion_accuracy": c["accuracy"], "baseline_accuracy": c["baseline_accuracy"],
                        "champion_gain": c["accuracy"] - c["baseline_accuracy"]})
        return out

    def log(self) -> None:
        """Headline metrics, tables, dataset inputs and the description on the active (main) run."""
        import pandas as pd

        from hubselect.pipeline.tracking import runs

        runs.log_metrics(self.headline())
        runs.log_table(pd.DataFrame(self.selection["ranking"]), "tables/selection.json")
        if self.evaluation.get("pairs"):
            runs.log_table(evaluation_frame(self.evaluation), "tables/evaluation.json")
        log_inputs(self.catalog)
        runs.set_description(self.markdown())
        runs.set_tags({"hubselect.registered_model_uri": self.model_uri()})

    def model_uri(self) -> str:
        c = self.champion
        return f"models:/{c['registered_model']}/{c['version']}"

    def model_link(self) -> str:
        """The registered version's page in the MLflow UI (relative, so it works on any server)."""
        c = self.champion
        return f"#/models/{c['registered_model']}/versions/{c['version']}"

    def chosen_lines(self) -> list[str]:
        """One line per selected source: its rank and why, in words (:mod:`hubselect.pipeline.steps.reasons`)."""
        return chosen_lines(self.selection)

    def champion_line(self) -> str:
        c = self.champion
        if c.get("accuracy") is None or c.get("baseline_accuracy") is None:
            return f"{c['source']} ({c['policy']}: {c['reason']})"
        if c["source"] == BASELINE:
            best = max(self.evaluation["pairs"], key=lambda p: p["accuracy"])
            return (f"the untuned model (accuracy {c['accuracy']:.3f}): no tuned source beat it (best: "
                    f"{best['source']} {best['accuracy']:.3f}); chosen by {c['policy']}")
        gain = c["accuracy"] - c["baseline_accuracy"]
        return (f"{c['source']}: accuracy {c['accuracy']:.3f} against the untuned baseline's "
                f"{c['baseline_accuracy']:.3f} (gain {gain:+.3f}); chosen by {c['policy']}")

    def markdown(self) -> str:
        """The main run's description: the answer first, then how it was reached."""
        s = self.selection["summary"]
        chosen = "\n".join(f"- {line}" for line in self.chosen_lines())
        return (f"### {self.catalog.target.name}: {self.champion_line()}\n\n"
                f"Registered as [`{self.model_uri()}`]({self.model_link()}) (alias `@champion`). Runtime saved "
                f"against tuning every usable candidate: {self.saving:.0%} (estimate).\n\n"
                f"**Chosen**: {s['selected']} of {s['candidates']} candidates by the `{s['policy']}` policy.\n"
                f"{chosen}\n\nTables: `tables/selection.json` and `tables/evaluation.json` (*Artifacts*); "
                "the samples scored are the *Datasets* used.")

    def text(self, run_id: str) -> str:
        """The console summary a finished job ends with."""
        from hubselect.pipeline.tracking.runs import ui_command

        s = self.selection["summary"]
        lines = [f"hubselect: {self.catalog.target.name}: {s['selected']} of {s['candidates']} candidates "
                 f"chosen ({s['policy']} policy)", *(f"  {line}" for line in self.chosen_lines()),
                 f"champion: {self.champion_line()}", f"registered: {self.model_uri()} (alias "
                 f"models:/{self.champion['registered_model']}@champion)",
                 f"runtime saved against tuning every candidate: {self.saving:.0%} (estimate)",
                 f"look further: {ui_command()}  (main run {run_id})"]
        return "\n".join(lines) + "\n"
