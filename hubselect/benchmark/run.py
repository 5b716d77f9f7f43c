"""``hubselect benchmark``: the transfer benchmark as one MLflow run with a nested run per pair.

Builds (or resumes) the matrix (:mod:`hubselect.benchmark.matrix`), scores every policy
(:mod:`hubselect.benchmark.metrics`), fits the learned policy with leave-one-target-out
evaluation (:mod:`hubselect.benchmark.learned`) and writes the report
(:mod:`hubselect.benchmark.report`) into ``<output>/report``; everything is also logged as
the run's artifacts, with ``learned_policy.json`` at the top for ``policy=learned``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def cpu_model(default: str = "unknown") -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or ``default`` where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def hardware() -> dict[str, Any]:
    """CPU, cores, torch threads, GPU and the load average, for the report."""
    import torch

    cpu = cpu_model(platform.processor() or platform.machine())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()), "python": platform.python_version(),
            "torch": torch.__version__}


def _log_target(record: dict, resumed: bool, cfg: Any) -> None:
    """One nested MLflow run per source of a finished target (mean over seeds; same names)."""
    from collections import defaultdict

    from hubselect.pipeline.tracking import runs

    if not record["scored"]:
        return
    common = cfg.transfer.pair_params()
    by_source: dict[str, list[dict]] = defaultdict(list)
    for p in record["pairs"]:
        by_source[p["source"]].append(p)
    for source, seeds in by_source.items():
        first = seeds[0]
        params = {"source": source, "source_revision": first["source_revision"], "target": record["target"],
                  "target_revision": record["target_revision"], "formulation": first["formulation"],
                  "seeds": len(seeds), **common}
        with runs.step_run("pair", params, run_name=f"{source} -> {record['target']}"):
            mean = {k: sum(p[k] for p in seeds) / len(seeds) for k in ("accuracy", "macro_f1", "gain",
                                                                         "train_seconds", "eval_seconds")}
            metrics = {**mean, "baseline_accuracy": record["baseline"]["accuracy"],
                       **{f"accuracy_seed{p['seed']}": p["accuracy"] for p in seeds}}
            metrics.update({f"divergence_{m}": float(v) for m, v in record["scores"].get(source, {}).items()})
            runs.log_metrics(metrics)
            runs.set_tags({"hubselect.resumed": resumed})


def _rank_policies(measures: list[str], kinds: dict[str, str]) -> dict[str, list[str]]:
    """The mean-rank policies over every measure, each kind, and ``rank:default``, the reference set
    (:data:`~hubselect.benchmark.metrics.REFERENCE_RANK_MEASURES`, when scored)."""
    from hubselect.benchmark.metrics import REFERENCE_RANK_MEASURES

    policies = {"rank:all": measures, "rank:terms": [m for m in measures if kinds[m] == "terms"],
                "rank:embeddings": [m for m in measures if kinds[m] == "embeddings"]}
    if set(REFERENCE_RANK_MEASURES) <= set(measures):
        policies["rank:default"] = list(REFERENCE_RANK_MEASURES)
    return {k: v for k, v in policies.items() if v}


def _learned(pairs: Any, measures: list[str], out_dir: Path, matrix: dict, alpha: float) -> dict[str, Any]:
    """The learned policy with and without source features: leave-one-target-out predictions
    aligned with ``pairs`` and the fitted tables."""
    import pandas as pd

    from hubselect.benchmark import learned
    from hubselect.benchmark.matrix import source_features_frame

    tables = {"learned": learned.training_table(pairs, measures, source_features_frame(out_dir)),
              "learned:divergence-only": learned.training_table(pairs, measures, None)}
    index = pd.MultiIndex.from_frame(pairs[["target", "source"]])
    series, trained_on = {}, {}
    for name, table in tables.items():
        pred, folds = learned.loto_predictions(table, alpha=alpha)
        key = pd.MultiIndex.from_frame(table[["target", "source"]])
        series[name] = pd.Series(pred.values, index=key).reindex(index).set_axis(pairs.index)
        trained_on = trained_on or folds
    return {"series": series, "tables": tables, "trained_on": trained_on}


def _policy_order(summary: Any, rank_policies: dict[str, list[str]]) -> list[str]:
    """Report order: ``rank:default``, the learned policies, the rank policies, the rest by Regret@3."""
    order = (["rank:default", "learned", "learned:divergence-only"] + [p for p in rank_policies if p != "rank:default"]
             + list(summary.drop(index=["random", "oracle"], errors="ignore").sort_values("regret@3").index))
    return list(dict.fromkeys(order + ["random", "oracle"]))


def _save_learned(out: Path, fitted: dict[str, Any], alpha: float) -> Any:
    """``learned_policy.json`` (with source features), the divergence-only one, and the LOTO folds."""
    from hubselect.benchmark import learned

    model = learned.fit_all(fitted["tables"]["learned"], alpha=alpha)
    learned.save(model, out / "learned_policy.json")
    learned.save(learned.fit_all(fitted["tables"]["learned:divergence-only"], alpha=alpha),
                 out / "learned_policy_divergence_only.json")
    (out / "loto_folds.json").write_text(json.dumps(fitted["trained_on"], indent=1), encoding="utf-8")
    return model


def _ci_note(examples_ci: Any, pairs: Any) -> str:
    n_eval = int(pairs.groupby("target")["eval_n"].first().median()) if "eval_n" in pairs else 0
    return (f"CI over targets *and* examples (each pair's accuracy redrawn as Binomial(n, acc)/n, n about {n_eval}; "
            "see ci_targets_and_examples.csv): " + "; ".join(
                f"{p}: Regret@3 [{r['regret@3_lo']:.2f}, {r['regret@3_hi']:.2f}], Spearman [{r['spearman_lo']:.2f}, "
                f"{r['spearman_hi']:.2f}]" for p, r in examples_ci.iterrows()))


def analyse(matrix: dict, out_dir: Path, *, ks: tuple[int, ...] = (1, 3), alpha: float = 1.0,
            context: dict[str, Any] | None = None, title: str = "hubselect transfer benchmark",
            seconds_per_text: float | None = None) -> dict[str, Any]:
    """Metrics of every policy, the learned policy (LOTO), and the report under ``out_dir/report``."""
    import pandas as pd

    from hubselect.benchmark import metrics, report
    from hubselect.benchmark.costs import normalised_costs, score_seconds
    from hubselect.benchmark.matrix import pairs_frame, seed_mean, unusable_tasks
    from hubselect.scoring.divergence import resolve_measures

    pairs = seed_mean(pairs_frame(matrix))
    pairs["cost_seconds"] = normalised_costs(pairs)
    measures = [c[2:] for c in pairs.columns if c.startswith("d_")]
    kinds = {s.name: s.kind for s in resolve_measures(measures)}
    rank_policies = _rank_policies(measures, kinds)
    fitted = _learned(pairs, measures, out_dir, matrix, alpha)
    policy_measures = {**{m: [m] for m in measures}, **rank_policies, **{name: measures for name in fitted["series"]}}
    secs = score_seconds(matrix, policy_measures, kinds, seconds_per_text)
    per_target = metrics.evaluate_policies(pairs, secs, measures, rank_policies, fitted["series"], ks)
    summary = metrics.summarise(per_target)
    order = _policy_order(summary, rank_policies)
    closeness = {name: pd.Series(close, index=pairs.index)
                 for name, close in _all_closeness(pairs, measures, rank_policies).items()}
    closeness.update(fitted["series"])
    closeness["oracle"] = pairs["accuracy"]
    examples_ci = _examples_ci(pairs, closeness, matrix, [p for p in order if p in closeness][:6])
    out = Path(out_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    model = _save_learned(out, fitted, alpha)
    examples_ci.to_csv(out / "ci_targets_and_examples.csv", float_format="%.4f")
    path = report.write_report(out, title=title, context=context or {}, pairs=pairs,
                               baselines=pairs.groupby("target")["baseline_accuracy"].first(), per_target=per_target,
                               summary=summary, curve=metrics.regret_curve(pairs, closeness, secs), measures=measures,
                               order=order, unusable=unusable_tasks(matrix), notes=[_ci_note(examples_ci, pairs)])
    return {"report": path, "summary": summary, "order": order, "per_target": per_target, "model": model,
            "trained_on": fitted["trained_on"], "pairs": pairs}


def _all_closeness(pairs: Any, measures: list[str], rank_policies: dict) -> dict[str, Any]:
    import numpy as np

    from hubselect.benchmark.metrics import policy_closeness

    out: dict[str, Any] = {}
    for _, group in pairs.groupby("target", sort=True):
        for name, close in policy_closeness(group, measures, rank_policies).items():
            out.setdefault(name, np.full(len(pairs), np.nan))
            out[name][pairs.index.get_indexer(group.index)] = close
    return out


def _examples_ci(pairs: Any, closeness: dict[str, Any], matrix: dict, policies: list[str]) -> Any:
    import pandas as pd

    from hubselect.benchmark import metrics

    n_eval = {r["target"]: r["eval_n"] for r in matrix["targets"] if r["scored"]}
    groups = list(pairs.groupby("target", sort=True))
    rows = {}
    for name in policies:
        accs = [g["accuracy"].to_numpy() for _, g in groups]
        close = [closeness[name].loc[g.index].to_numpy() for _, g in groups]
        ns = [n_eval[t] for t, _ in groups]
        row = {}
        for col, fn in (("spearman", metrics.spearman), ("regret@1", lambda c, a: metrics.regret_at_k(c, a, 1)),
                        ("regret@3", lambda c, a: metrics.regret_at_k(c, a, 3))):
            row[f"{col}_lo"], row[f"{col}_hi"] = metrics.accuracy_resample_ci(accs, ns, close, fn, n_boot=300)
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("policy")


def benchmark_params(cfg: Any) -> dict[str, Any]:
    """MLflow params of the benchmark run."""
    from hubselect.benchmark.matrix import settings_of

    return {k: v for k, v in settings_of(cfg, []).items() if k != "task_names"} | {"only": ",".join(cfg.only)}


def _policy_notes() -> dict[str, str]:
    """The report's words for the select step's default policy and for the ``rank:default`` row."""
    from hubselect.benchmark.metrics import REFERENCE_RANK_MEASURES
    from hubselect.benchmark.trust import default_ranker
    from hubselect.selection.policy import SelectionConfig

    cfg = SelectionConfig()
    return {"select step's default policy": f"{cfg.policy} over {cfg.measures} measures, weights {cfg.weights}, "
                                            f"k={cfg.k}: `{default_ranker()}` in trust/ (with --groups and 2+ seeds)",
            "rank:default": f"rank over {','.join(REFERENCE_RANK_MEASURES)}, the select step's default before "
                            f"{cfg.policy}: a fixed reference row, not the default policy"}


def _trust(cfg: Any, matrix: dict, out_dir: Path, groups: str, report_dir: Path) -> dict[str, float]:
    """The held-out trust analysis (:mod:`hubselect.benchmark.verdict`) when groups and 2+ seeds are given."""
    if not groups or cfg.seeds < 2:
        if groups:
            logger.warning("--groups needs --seeds 2 or more (test-retest reliability): trust analysis skipped")
        return {}
    from hubselect.benchmark.verdict import analyse_collection

    res = analyse_collection(matrix, out_dir, groups, report_dir)
    row = res["headline"].loc["nested default"]
    return {"heldout_default_spearman": float(row["spearman"]), "heldout_default_regret_at_1": float(row["regret@1"]),
            "heldout_default_regret_at_3": float(row["regret@3"]), "heldout_default_ndcg_at_3": float(row["ndcg@3"]),
            "heldout_champion_regret": float(res["champion_held"]["regret"].mean()),
            "default_saving_at_3": float(res["saving"].mean())}


def run_benchmark(cfg: Any, out_dir: str | Path, *, ks: tuple[int, ...] = (1, 3), alpha: float = 1.0,
                  quiet: bool = True, command: str = "", groups: str = "") -> Any:
    """The benchmark as an MLflow run (configure tracking first); returns a StepOutput."""
    from hubselect.benchmark.costs import seconds_per_text
    from hubselect.benchmark.matrix import ShardDone, build_matrix
    from hubselect.pipeline.tracking import runs
    from hubselect.pipeline.tracking.runs import StepOutput

    out_dir = Path(out_dir).resolve()
    start = time.perf_counter()
    with runs.step_run("benchmark", benchmark_params(cfg)) as run:
        try:
            matrix = build_matrix(cfg, out_dir, quiet=quiet,
                                  on_target=lambda rec, resumed: _log_target(rec, resumed, cfg))
        except ShardDone as done:
            logger.warning("%s", done)
            return StepOutput(run.info.run_id, out_dir)
        recs = [r for r in matrix["targets"] if r["scored"]]
        tune = {p["source"]: p["train_seconds"] for r in recs for p in r["pairs"]}
        context = {"command": f"`{command}`" if command else "(API)", "hardware": hardware(),
                   "settings": {k: v for k, v in matrix["settings"].items() if k != "task_names"},
                   "tasks": f"{len(matrix['tasks'])} ({', '.join(t['name'] for t in matrix['tasks'])})",
                   "pairs": sum(len(r["pairs"]) for r in recs),
                   "time": f"tuning {sum(tune.values()) / 60:.1f} min ({len(tune)} sources, once each), evaluation "
                           f"{sum(p['eval_seconds'] for r in recs for p in r['pairs']) / 60:.1f} min, "
                           f"baselines {sum(r.get('baseline_seconds') or 0 for r in recs) / 60:.1f} min "
                           f"(as first computed; cached reruns are free)", **_policy_notes()}
        result = analyse(matrix, out_dir, ks=ks, alpha=alpha, context=context,
                         seconds_per_text=seconds_per_text(cfg, matrix, out_dir))
        summary = result["summary"]
        headline = {f"{p.replace(':', '_').replace('-', '_')}_{m}": float(summary.loc[p, m])
                    for p in ("rank:default", "rank:terms", "learned") if p in summary.index
                    for m in ("spearman", "regret@1", "regret@3", "saving@3")}
        trusted = _trust(cfg, matrix, out_dir, groups, result["report"].parent / "trust")
        runs.log_metrics({**headline, **trusted, "pairs": context["pairs"],
                          "time_wall_total_s": time.perf_counter() - start})
        runs.log_dir(result["report"].parent, "report")
        top = out_dir / "artifacts-top"
        top.mkdir(exist_ok=True)
        tops = [("learned_policy.json", result["report"].parent / "learned_policy.json"),
                ("benchmark.json", out_dir / "benchmark.json")]
        if trusted:
            tops.append(("transfer_prior.json", result["report"].parent / "trust" / "transfer_prior.json"))
        for name, src in tops:
            (top / name).write_bytes(src.read_bytes())
        runs.log_dir(top, None)
        return StepOutput(run.info.run_id, result["report"].parent)
