"""``hubselect`` command line: ``hubselect <step> ...`` for every step and ``main`` (each with ``--help``).

Every error a user can cause is one line on stderr (``hubselect: error: ...``) and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from hubselect.errors import HubselectError

logger = logging.getLogger(__name__)

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


def boolean(text: str) -> bool:
    """Parse true/false strings (argparse ``type=bool`` would take any non-empty string as true)."""
    value = str(text).strip().lower()
    if value in TRUE | FALSE:
        return value in TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _flag(group: argparse._ArgumentGroup, name: str, help: str) -> None:
    group.add_argument(name, type=boolean, nargs="?", const=True, default=False, metavar="true|false", help=help)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings and errors only")
    p.add_argument("--experiment", default=None, help="MLflow experiment name (default: hubselect)")


def _fetch_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tasks (fetch)")
    g.add_argument("--target", default="demo:kitchen",
                   help="target task: local path, 'demo:<domain>', or Hub id owner/name[:config][@revision]")
    g.add_argument("--candidates", default="demo",
                   help="'demo', 'search:<query>' (Hub search), a catalog folder, or a comma-separated list")
    g.add_argument("--sample-size", type=int, default=1000, help="examples sampled per candidate (stratified)")
    g.add_argument("--target-sample-size", type=int, default=1000, help="target texts sampled for scoring")
    g.add_argument("--eval-size", type=int, default=400, help="labelled target examples kept for evaluation")
    g.add_argument("--seed", type=int, default=0, help="sampling and training seed")
    g.add_argument("--target-split", default="", help="target split for scoring (default unlabeled>train>test)")
    g.add_argument("--eval-split", default="", help="target split for evaluation (default test>validation)")
    g.add_argument("--text-column", default="", help="target text column(s), comma-separated (default: detect)")
    g.add_argument("--label-column", default="", help="target label column (default: detect)")
    g.add_argument("--label-names", default="", help="target label names in index order, comma-separated")
    g.add_argument("--text-join", default=" ", help="separator joining several text columns")
    g.add_argument("--columns", action="append", default=[], metavar="NAME:text=COL,label=COL,names=A|B",
                   help="a candidate's columns, e.g. 'reviews:text=body,label=stars' (repeat, or separate with ';')")
    g.add_argument("--language", default="", help="Hub search: language filter (e.g. en)")
    g.add_argument("--limit", type=int, default=20, help="Hub search: most-downloaded N datasets")
    _flag(g, "--trust-remote-code", "allow script-based Hub datasets (runs their code; off by default)")


def _score_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("divergence (score)")
    g.add_argument("--measures", default="all", help="measures or groups (all, terms, embeddings), comma-separated")
    _flag(g, "--bigrams", "add bigrams to the term distributions")
    g.add_argument("--embedding-model", default="all-MiniLM-L6-v2", help="encoder: bundled name, folder or Hub id")
    g.add_argument("--embedding-revision", default=None, help="encoder revision (Hub models)")
    g.add_argument("--max-length", type=int, default=128, help="encoder max tokens per text")
    g.add_argument("--embed-examples", type=int, default=500, help="texts embedded per domain")
    g.add_argument("--device", default=None, help="cuda or cpu (default: GPU when present)")


def _select_args(p: argparse.ArgumentParser) -> None:
    from hubselect.selection import DEFAULT_MEASURES, DEFAULT_WEIGHTS, POLICIES, SelectionConfig

    g = p.add_argument_group("selection (select)")
    g.add_argument("--policy", default=SelectionConfig.policy, help=f"one of {', '.join(POLICIES)}")
    g.add_argument("--k", type=int, default=3, help="sources to keep (topk, rank)")
    g.add_argument("--select-measures", default=DEFAULT_MEASURES, help="measures the policy ranks by")
    g.add_argument("--quantile", type=float, default=0.25, help="quantile policy: keep mean rank <= this quantile")
    g.add_argument("--budget-examples", type=int, default=0, help="budget policy: total training examples")
    g.add_argument("--weights", default=DEFAULT_WEIGHTS,
                   help="combined policy: weight of each signal (divergence, prior, labels, balance)")
    g.add_argument("--prior", default="", help="combined policy: transfer_prior.json of a benchmark, its folder, "
                   "or runs:/<benchmark run id> (default: the prior shipped with hubselect)")
    g.add_argument("--learned-model", default="", help="learned policy: learned_policy.json of a benchmark run, "
                   "its folder, or runs:/<benchmark run id>")


def _transfer_args(p: argparse.ArgumentParser) -> None:
    from hubselect.transfer import CHAMPION_POLICIES

    g = p.add_argument_group("fine-tuning, evaluation and registry (finetune, evaluate, register)")
    g.add_argument("--model", default="all-MiniLM-L6-v2", help="encoder to tune: bundled name, folder or Hub id")
    g.add_argument("--model-revision", default=None, help="model revision (Hub models)")
    g.add_argument("--epochs", type=int, default=1, help="passes over each source")
    g.add_argument("--learning-rate", type=float, default=5e-5, help="peak AdamW learning rate")
    g.add_argument("--batch-size", type=int, default=16, help="examples per step (halved on GPU out-of-memory)")
    g.add_argument("--train-max-length", type=int, default=128, help="max tokens per text when tuning/evaluating")
    g.add_argument("--max-train-examples", type=int, default=1000, help="training examples per source at most")
    g.add_argument("--holdout-fraction", type=float, default=0.1, help="source share held out for early stopping")
    g.add_argument("--formulation", default="auto", help="auto, description (label-description matching) or head")
    g.add_argument("--label-map", default="", help="target:source label pairs for a head, e.g. pos:positive,neg:negative")
    g.add_argument("--label-template", default="", help="label description template, e.g. 'This text is about {label}.'")
    g.add_argument("--champion", default="auto", help=f"one of {', '.join(CHAMPION_POLICIES)}")
    g.add_argument("--registered-model-name", default="", help="registry name (default hubselect-<target>)")
    _flag(g, "--require-eval", "fail when the target has no labelled evaluation split")


def transfer_config(a: argparse.Namespace):
    from hubselect.training import FinetuneConfig
    from hubselect.transfer import TransferConfig, parse_label_map

    ft = FinetuneConfig(model=a.model, model_revision=a.model_revision or None, epochs=a.epochs,
                        learning_rate=a.learning_rate, batch_size=a.batch_size, max_length=a.train_max_length,
                        max_train_examples=a.max_train_examples, holdout_fraction=a.holdout_fraction, seed=a.seed,
                        device=a.device, formulation=a.formulation)
    return TransferConfig(ft, parse_label_map(a.label_map), a.label_template, a.champion,
                          a.registered_model_name, a.require_eval)


def fetch_config(a: argparse.Namespace):
    from hubselect.hub.catalog import FetchConfig
    from hubselect.hub.columns import ColumnMapping

    return FetchConfig(target=a.target, candidates=a.candidates, sample_size=a.sample_size,
                       target_sample_size=a.target_sample_size, eval_size=a.eval_size, seed=a.seed,
                       target_split=a.target_split, eval_split=a.eval_split,
                       mapping=ColumnMapping.from_strings(a.text_column, a.label_column, a.label_names, a.text_join),
                       language=a.language, limit=a.limit, trust_remote_code=a.trust_remote_code,
                       columns=";".join(a.columns))


def score_config(a: argparse.Namespace):
    from hubselect.divergence import resolve_measures
    from hubselect.represent.store import EmbeddingSettings
    from hubselect.scoring import ScoreConfig

    resolve_measures(a.measures)  # fail before any work on an unknown name
    if a.max_length < 8 or a.embed_examples < 2:
        raise HubselectError("--max-length must be >= 8 and --embed-examples >= 2")
    return ScoreConfig(a.measures, a.bigrams, EmbeddingSettings(a.embedding_model, a.embedding_revision or None,
                                                                a.max_length, 64, a.embed_examples), a.device)


def select_config(a: argparse.Namespace):
    from dataclasses import replace

    from hubselect.selection import SelectionConfig

    from hubselect.divergence import resolve_measures

    from hubselect.divergence import GROUPS

    cfg = SelectionConfig(a.policy, a.k, a.select_measures, a.quantile, a.budget_examples, a.learned_model,
                          a.weights, a.prior)
    scored = [spec.name for spec in resolve_measures(a.measures)]
    if all(t.strip() in GROUPS for t in a.select_measures.split(",") if t.strip()):
        # a group ("all", "terms", "embeddings") means its measures that the score step computes
        within = [name for name in cfg.measure_names() if name in scored]
        if within:
            return replace(cfg, measures=",".join(within))
    missing = [name for name in cfg.measure_names() if name not in scored]
    if missing:
        raise HubselectError(f"--select-measures names '{missing[0]}', which --measures does not compute "
                             f"(computed: {', '.join(scored)}): add it to --measures or choose computed ones")
    return cfg


def _engine_args(p: argparse.ArgumentParser) -> None:
    from hubselect.executor import add_engine_args

    add_engine_args(p)


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    from hubselect.benchmark.run import add_benchmark_args

    add_benchmark_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubselect", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    specs = {
        "fetch": ("find, pin and sample the target and candidate tasks; writes catalog.json", [_fetch_args]),
        "score": ("divergence of every candidate from the target; writes scores.csv",
                  [_fetch_args, _score_args, _engine_args]),
        "select": ("choose the sources worth tuning; writes selection.json",
                   [_fetch_args, _score_args, _select_args, _engine_args]),
        "finetune": ("fine-tune on each selected source (cached); writes tuned.json",
                     [_fetch_args, _score_args, _select_args, _transfer_args, _engine_args]),
        "evaluate": ("zero-shot accuracy on the target, tuned vs untuned; writes evaluation.json",
                     [_fetch_args, _score_args, _select_args, _transfer_args, _engine_args]),
        "register": ("log and register the best model with the alias 'champion'",
                     [_fetch_args, _score_args, _select_args, _transfer_args, _engine_args]),
        "main": ("the whole job, reusing finished steps",
                 [_fetch_args, _score_args, _select_args, _transfer_args, _engine_args]),
        "benchmark": ("selection against brute force: transfer matrix, ranking metrics, learned policy, report",
                      [_benchmark_args]),
    }
    for name, (help_text, adders) in specs.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        for add in adders:
            add(p)
        _common(p)
    return parser


def run(args: argparse.Namespace) -> None:
    from hubselect import steps
    from hubselect.executor import LocalExecutor, executor_from_args, use
    from hubselect.tracking import runs

    if args.command == "benchmark":
        from hubselect.benchmark.run import run_from_args

        out = run_from_args(args)
        logger.info("benchmark finished: run %s, report under %s", out.run_id, out.path)
        return
    fetch_cfg = fetch_config(args)
    configs = [fetch_cfg]
    if args.command != "fetch":
        configs.append(score_config(args))
    if args.command not in ("fetch", "score"):
        configs.append(select_config(args))
    if args.command not in ("fetch", "score", "select"):
        configs.append(transfer_config(args))
    executor = executor_from_args(args) if hasattr(args, "engine") else LocalExecutor()  # fails before any run
    runs.configure(args.experiment)
    runner = {"fetch": steps.run_fetch, "score": steps.run_score, "select": steps.run_select,
              "finetune": steps.run_finetune, "evaluate": steps.run_evaluate, "register": steps.run_register,
              "main": steps.run_main}[args.command]
    with use(executor):
        out = runner(*configs, quiet=args.quiet)
    logger.info("%s finished: run %s (artifacts: mlflow artifacts download -r %s)", args.command, out.run_id,
                out.run_id)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # keep MLflow's INFO chatter off stderr
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # load reports of new heads are expected
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub", "alembic", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.quiet:
        from transformers.utils import logging as hf_logging

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        hf_logging.disable_progress_bar()
    try:
        run(args)
    except HubselectError as exc:
        print(f"hubselect: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the runs are already marked KILLED
        print("hubselect: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
