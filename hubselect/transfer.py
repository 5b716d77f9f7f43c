"""The second half as MLflow runs: finetune → evaluate → register.

Artifacts:
    finetune: ``tuned.json`` (per selected source: formulation, cached model folder and key,
              train seconds, examples/s, held-out loss/accuracy, whether it came from the cache)
    evaluate: ``evaluation.json`` and ``evaluation.csv`` (the untuned baseline and every
              source → target pair: accuracy, macro-F1, gain, per-class report), one nested run
              per pair with the same param and metric names, ``plots/`` (accuracy per source)
    register: ``champion.json`` (registered name, version, alias, source, why it was chosen)
              and the logged model (``model/``)

Tuned models and pair evaluations are cached on disk (by source revision, sample, settings and
target sample), so a killed job rerun with the same command redoes no finished pair.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from hubselect.cache import atomic_write_json, cache_dir, content_key
from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

CHAMPION_POLICIES = ("auto", "metric", "rank")


@dataclass(frozen=True)
class TransferConfig:
    """How the selected sources are tuned, evaluated and the champion registered.

    Attributes:
        finetune: :class:`hubselect.training.FinetuneConfig`.
        label_map: ``{target_label: source_label}`` for label-aligned heads.
        label_template: Label description template, e.g. ``"This text is about {label}."``
            (empty = the default of :mod:`hubselect.zeroshot`).
        champion: ``metric`` (best target accuracy; needs an evaluation split), ``rank``
            (top-ranked selected source) or ``auto`` (metric when the target has an
            evaluation split, else rank).
        registered_model_name: Registry name (empty = ``hubselect-<target>``).
        require_eval: Fail when the target has no labelled evaluation split.
    """

    finetune: Any
    label_map: tuple[tuple[str, str], ...] = ()
    label_template: str = ""
    champion: str = "auto"
    registered_model_name: str = ""
    require_eval: bool = False

    def __post_init__(self) -> None:
        if self.champion not in CHAMPION_POLICIES:
            raise HubselectError(f"unknown champion policy '{self.champion}': choose from {', '.join(CHAMPION_POLICIES)}")
        if self.label_template and "{label}" not in self.label_template:
            raise HubselectError(f"label template '{self.label_template}' has no '{{label}}': "
                                 "write e.g. 'This text is about {label}.'")

    @property
    def mapping(self) -> dict[str, str] | None:
        return dict(self.label_map) or None

    @property
    def descriptions(self) -> str | None:
        return self.label_template or None


def transfer_params(cfg: TransferConfig) -> dict[str, Any]:
    """MLflow params of the finetune/evaluate/register settings."""
    ft = cfg.finetune
    return {"model": ft.model, "model_revision": ft.model_revision, "epochs": ft.epochs,
            "learning_rate": ft.learning_rate, "batch_size": ft.batch_size, "train_max_length": ft.max_length,
            "max_train_examples": ft.max_train_examples, "holdout_fraction": ft.holdout_fraction,
            "formulation": ft.formulation, "label_map": ",".join(f"{a}:{b}" for a, b in cfg.label_map),
            "label_template": cfg.label_template, "champion": cfg.champion,
            "registered_model_name": cfg.registered_model_name}


def parse_label_map(text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``"pos:positive,neg:negative"`` (target:source pairs)."""
    pairs = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item.count(":") != 1:
            raise HubselectError(f"label map entry '{item}' is not 'target_label:source_label'")
        a, b = (x.strip() for x in item.split(":"))
        pairs.append((a, b))
    return tuple(pairs)


def _read(path: Path, columns: list[str]) -> Any:
    import pandas as pd

    return pd.read_parquet(path, columns=columns)


def target_label_names(catalog: dict) -> list[str]:
    """The target's label names, or a one-line error asking for them."""
    from hubselect.zeroshot import require_label_names

    return require_label_names(catalog["target"].get("label_names"), role="target")


def tune_selected(catalog: dict, fetch_dir: Path, selected: list[str], cfg: TransferConfig, *,
                  quiet: bool) -> list[dict]:
    """Fine-tune on each selected source (cached); returns one record per source."""
    from hubselect.training import finetune
    from hubselect.zeroshot import choose_formulation

    names = target_label_names(catalog)
    by_name = {c["name"]: c for c in catalog["candidates"]}
    records = []
    for source in selected:
        entry = by_name[source]
        frame = _read(fetch_dir / entry["sample"], ["text", "label"])
        source_labels = entry.get("label_names") or sorted(frame["label"].unique())
        formulation = choose_formulation(source_labels, names, cfg.finetune.formulation, cfg.mapping)
        tuned = finetune(source, entry["revision"], frame["text"].tolist(), frame["label"].tolist(),
                         source_labels, cfg.finetune, formulation=formulation,
                         descriptions=cfg.descriptions, progress=not quiet)
        records.append({"source": source, "source_revision": entry["revision"], "formulation": formulation,
                        "path": tuned.path, "key": tuned.key, "from_cache": tuned.from_cache,
                        "train_seconds": tuned.train_seconds, "examples_per_second": tuned.examples_per_second,
                        "best_holdout_loss": tuned.best_holdout_loss,
                        "best_holdout_accuracy": tuned.best_holdout_accuracy, "train_examples": len(frame)})
    return records


def _evaluation_cached(key_parts: tuple, compute: Any) -> tuple[dict, bool]:
    path = cache_dir() / "evals" / f"{content_key('eval-v1', *key_parts)}.json"
    if path.exists():
        return json.loads(path.read_text()), True
    result = compute().to_dict()
    atomic_write_json(path, result)
    return result, False


def evaluate_pairs(catalog: dict, fetch_dir: Path, tuned: list[dict], cfg: TransferConfig, *,
                   quiet: bool) -> dict:
    """Evaluate the untuned baseline and every tuned model on the target's evaluation sample."""
    from hubselect.evaluation import evaluate, evaluate_baseline
    from hubselect.modeling import resolve_model
    from hubselect.represent.store import texts_digest
    from hubselect.training import load_tuned

    target = catalog["target"]
    names = target_label_names(catalog)
    frame = _read(fetch_dir / target["eval"]["sample"], ["text", "label"])
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    digest = (target["revision"], texts_digest(texts), tuple(names), cfg.descriptions, cfg.finetune.max_length)
    base = resolve_model(cfg.finetune.model, cfg.finetune.model_revision)
    baseline, _ = _evaluation_cached(("baseline", base.name, base.revision, *digest), lambda: evaluate_baseline(
        texts, labels, names, model=cfg.finetune.model, revision=cfg.finetune.model_revision,
        descriptions=cfg.descriptions, max_length=cfg.finetune.max_length, progress=not quiet))
    pairs = []
    for record in tuned:
        result, hit = _evaluation_cached(("pair", record["key"], *digest), lambda: evaluate(
            load_tuned(record["path"]), texts, labels, names, descriptions=cfg.descriptions, mapping=cfg.mapping,
            max_length=cfg.finetune.max_length, progress=not quiet))
        pairs.append({**record, "accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
                      "per_class": result["per_class"], "eval_n": result["n"], "eval_seconds": result["seconds"],
                      "eval_examples_per_second": result["examples_per_second"],
                      "gain": result["accuracy"] - baseline["accuracy"], "eval_from_cache": hit})
    return {"target": target["name"], "baseline": baseline, "pairs": pairs}


BASELINE = "(untuned baseline)"


def choose_champion(evaluation: dict | None, tuned: list[dict], policy: str) -> tuple[dict, str]:
    """The model to register and why.

    ``metric``: the best target accuracy (macro-F1 breaks ties) among the tuned sources *and*
    the untuned baseline, so a job whose tuning hurt registers the untuned model rather than a
    worse one (its record has ``source`` :data:`BASELINE` and ``path`` ``None``).
    ``rank``: the top-ranked selected source; the target's labels play no part.
    """
    if policy == "metric":
        if evaluation is None:
            raise HubselectError("champion=metric needs a labelled evaluation split of the target: "
                                 "pass --eval-split, or use --champion rank")
        base = evaluation["baseline"]
        baseline = {"source": BASELINE, "source_revision": None, "path": None, "accuracy": base["accuracy"],
                    "macro_f1": base["macro_f1"], "gain": 0.0}
        best = max([*evaluation["pairs"], baseline], key=lambda p: (p["accuracy"], p["macro_f1"]))
        return best, (f"best target accuracy {best['accuracy']:.4f} among {len(evaluation['pairs'])} tuned sources "
                      f"and the untuned baseline ({base['accuracy']:.4f})")
    return tuned[0], "top-ranked selected source (rank 1 of the selection); target labels not used"


def log_pair_runs(evaluation: dict, scores: Any, ranking: Mapping[str, int], cfg: TransferConfig,
                  target: dict) -> None:
    """One nested run per source → target pair, with the same param and metric names."""
    from hubselect.tracking import runs

    for pair in evaluation["pairs"]:
        params = {"source": pair["source"], "source_revision": pair["source_revision"], "target": target["name"],
                  "target_revision": target["revision"], "formulation": pair["formulation"],
                  **{k: v for k, v in transfer_params(cfg).items() if k not in ("champion", "registered_model_name")}}
        with runs.step_run("pair", params, run_name=f"{pair['source']} -> {target['name']}"):
            metrics = {"accuracy": pair["accuracy"], "macro_f1": pair["macro_f1"], "gain": pair["gain"],
                       "baseline_accuracy": evaluation["baseline"]["accuracy"], "train_seconds": pair["train_seconds"],
                       "examples_per_second": pair["examples_per_second"],
                       "eval_examples_per_second": pair["eval_examples_per_second"],
                       "selection_rank": ranking.get(pair["source"], 0)}
            if scores is not None and pair["source"] in scores.index:
                metrics.update({f"divergence_{m}": float(v) for m, v in scores.loc[pair["source"]].items()})
            runs.log_metrics(metrics)


def runtime_accounting(evaluate_dir: Path, phase: Mapping[str, float], total: float) -> dict[str, float]:
    """End-to-end time of the job against the brute-force estimate.

    Per-pair cost is the measured tune + evaluate time of each selected source (the original
    training time when the model came from the cache, so reruns don't flatter the saving).
    Ours = fetch + score + select + the selected pairs; brute force = fetch + every usable
    candidate at the mean pair cost. Register and the baseline are common to both and left out.
    """
    evaluation = json.loads((Path(evaluate_dir) / "evaluation.json").read_text())
    catalog = json.loads((Path(evaluate_dir) / "finetune" / "select" / "score" / "fetch" / "catalog.json").read_text())
    tuned = json.loads((Path(evaluate_dir) / "finetune" / "tuned.json").read_text())["tuned"]
    eval_seconds = {p["source"]: p["eval_seconds"] for p in evaluation.get("pairs", [])}
    costs = [t["train_seconds"] + eval_seconds.get(t["source"], 0.0) for t in tuned]
    usable = sum(c["status"] == "ok" for c in catalog["candidates"])
    ours = phase.get("fetch", 0.0) + phase.get("score", 0.0) + phase.get("select", 0.0) + sum(costs)
    brute = phase.get("fetch", 0.0) + usable * (sum(costs) / max(len(costs), 1))
    return {"end_to_end_estimate_s": ours, "brute_force_estimate_s": brute,
            "runtime_saving": 1.0 - ours / brute if brute > 0 else 0.0, "pair_cost_mean_s": sum(costs) / max(len(costs), 1),
            "time_wall_total_s": total}
