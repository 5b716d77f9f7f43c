"""Every command-line option, declared once: argument groups, the configs they build, MLproject.

Each option's default is read from the config dataclass that owns the setting (``FetchConfig``,
``ScoreConfig``, ``SelectionConfig``, ``FinetuneConfig``, ``TransferConfig``...), so a default
lives in one place. :func:`build_parser` turns the groups into the ``hubselect`` command line,
the ``*_config`` builders turn parsed arguments into those configs, and :func:`render_mlproject`
writes ``MLproject`` from the same parser (``python -m hubselect.options > MLproject``): the
project's entry points cannot drift from the CLI (tests/test_options.py checks both).
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from hubselect.benchmark import presets
from hubselect.core.errors import HubselectError

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


def boolean(text: str) -> bool:
    """Parse true/false strings (argparse ``type=bool`` would take any non-empty string as true)."""
    value = str(text).strip().lower()
    if value in TRUE | FALSE:
        return value in TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def default_of(cls: type, name: str) -> Any:
    """The default of dataclass ``cls``'s field ``name`` (``None`` shown as an empty string)."""
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
    return "" if value is None else value


@dataclass(frozen=True)
class Option:
    """One command-line option (``kind`` bool reads true/false and a bare flag means true)."""

    flag: str
    default: Any
    help: str
    kind: type = str
    choices: tuple[str, ...] = ()
    repeat: bool = False

    def add_to(self, group: Any) -> None:
        if self.kind is bool:
            group.add_argument(self.flag, type=boolean, nargs="?", const=True, default=self.default,
                               metavar="true|false", help=self.help)
        elif self.repeat:
            group.add_argument(self.flag, action="append", default=[], metavar="SPEC", help=self.help)
        else:
            # choices are shown, and checked by the config (one-line error naming the fix), not by argparse
            metavar = "{" + ",".join(self.choices) + "}" if self.choices else None
            group.add_argument(self.flag, type=self.kind, default=self.default, metavar=metavar, help=self.help)


TRUST_HELP = "allow code from the Hub to run here: script-based datasets and Hub --metrics (off by default)"


def fetch_options() -> list[Option]:
    from hubselect.data.catalog import FetchConfig
    from hubselect.data.columns import ColumnMapping

    f = lambda name: default_of(FetchConfig, name)  # noqa: E731
    return [
        Option("--target", f("target"), "target task: local path, 'demo:<domain>', or Hub id owner/name[:config][@rev]"),
        Option("--candidates", f("candidates"),
               "'demo', 'search:<query>' (Hub search), a catalog folder, or a comma-separated list"),
        Option("--sample-size", f("sample_size"), "examples sampled per candidate (stratified)", int),
        Option("--target-sample-size", f("target_sample_size"), "target texts sampled for scoring", int),
        Option("--eval-size", f("eval_size"), "labelled target examples kept for evaluation", int),
        Option("--seed", f("seed"), "sampling and training seed", int),
        Option("--target-split", f("target_split"), "target split for scoring (empty: unlabeled>train>test)"),
        Option("--eval-split", f("eval_split"), "target split for evaluation (empty: test>validation)"),
        Option("--text-column", "", "target text column(s), comma-separated (empty: detect)"),
        Option("--label-column", "", "target label column (empty: detect)"),
        Option("--label-names", "", "target label names in index order, comma-separated"),
        Option("--text-join", default_of(ColumnMapping, "join"), "separator joining several text columns"),
        Option("--columns", "", "a candidate's columns, e.g. 'reviews:text=body,label=stars' (repeat, or "
               "separate with ';')", repeat=True),
        Option("--language", f("language"), "Hub search: language filter (e.g. en)"),
        Option("--limit", f("limit"), "Hub search: most-downloaded N datasets", int),
        Option("--fetch-workers", f("fetch_workers"), "Hub candidates fetched at once (threads)", int),
        Option("--trust-remote-code", f("trust_remote_code"), TRUST_HELP, bool),
    ]


def score_options() -> list[Option]:
    from hubselect.scoring.represent.store import EmbeddingSettings
    from hubselect.scoring.scores import ScoreConfig

    e = lambda name: default_of(EmbeddingSettings, name)  # noqa: E731
    return [
        Option("--measures", default_of(ScoreConfig, "measures"),
               "measures or groups (all, terms, embeddings), comma-separated"),
        Option("--bigrams", default_of(ScoreConfig, "bigrams"), "add bigrams to the term distributions", bool),
        Option("--embedding-model", e("model"), "encoder: bundled name, folder or Hub id"),
        Option("--embedding-revision", e("model_revision"), "encoder revision (Hub models)"),
        Option("--max-length", e("max_length"), "encoder max tokens per text", int),
        Option("--embed-examples", e("max_texts"), "texts embedded per domain", int),
        Option("--device", default_of(ScoreConfig, "device"), "cuda or cpu (empty: the GPU when present)"),
    ]


def select_options() -> list[Option]:
    from hubselect.selection.policy import POLICIES, SelectionConfig

    s = lambda name: default_of(SelectionConfig, name)  # noqa: E731
    return [
        Option("--policy", s("policy"), "how sources are chosen", choices=POLICIES),
        Option("--k", s("k"), "sources to keep (topk, rank, combined, learned)", int),
        Option("--select-measures", s("measures"), "measures the policy ranks by (names or groups)"),
        Option("--quantile", s("quantile"), "quantile policy: keep mean rank <= this quantile", float),
        Option("--budget-examples", s("budget_examples"), "budget policy: total training examples", int),
        Option("--weights", s("weights"), "combined policy: weight of each signal (divergence, prior, labels, balance)"),
        Option("--prior", s("prior"), "combined policy: transfer_prior.json of a benchmark, its folder, or "
               "runs:/<benchmark run id> (empty: the prior shipped with hubselect)"),
        Option("--learned-model", s("learned_model"), "learned policy: learned_policy.json of a benchmark run, "
               "its folder, or runs:/<benchmark run id>"),
    ]


def transfer_options() -> list[Option]:
    from hubselect.models.champion import CHAMPION_POLICIES
    from hubselect.models.training import FinetuneConfig
    from hubselect.models.transfer import TransferConfig
    from hubselect.models.zeroshot import REQUESTABLE

    t = lambda name: default_of(FinetuneConfig, name)  # noqa: E731
    c = lambda name: default_of(TransferConfig, name)  # noqa: E731
    return [
        Option("--model", t("model"), "encoder to tune: bundled name, folder or Hub id"),
        Option("--model-revision", t("model_revision"), "model revision (Hub models)"),
        Option("--epochs", t("epochs"), "passes over each source", int),
        Option("--learning-rate", t("learning_rate"), "peak AdamW learning rate", float),
        Option("--batch-size", t("batch_size"), "examples per step (halved on GPU out-of-memory)", int),
        Option("--train-max-length", t("max_length"), "max tokens per text when tuning/evaluating", int),
        Option("--max-train-examples", t("max_train_examples"), "training examples per source at most", int),
        Option("--holdout-fraction", t("holdout_fraction"), "source share held out for early stopping", float),
        Option("--formulation", t("formulation"), "label-description matching or a label-aligned head",
               choices=REQUESTABLE),
        Option("--label-map", "", "target:source label pairs for a head, e.g. pos:positive,neg:negative"),
        Option("--label-template", c("label_template"), "label description, e.g. 'This text is about {label}.'"),
        Option("--champion", c("champion"), "how the registered model is chosen", choices=CHAMPION_POLICIES),
        Option("--registered-model-name", c("registered_model_name"), "registry name (empty: hubselect-<target>)"),
        Option("--require-eval", c("require_eval"), "fail when the target has no labelled evaluation split", bool),
        Option("--metrics", "", "further evaluate metrics besides accuracy and macro-F1, e.g. f1,precision "
               "(shipped: accuracy, f1; others are Hub scripts: need --trust-remote-code true and the Hub once)"),
        Option("--trust-remote-code", c("trust_remote_code"), TRUST_HELP, bool),
    ]


def engine_options() -> list[Option]:
    from hubselect.core.executor import ENGINES, RAY_INSTALL

    return [
        Option("--engine", "local", f"local: one process; ray: Ray tasks on this machine or the RAY_ADDRESS "
               f"cluster (needs {RAY_INSTALL})", choices=ENGINES),
        Option("--gpus-per-job", 0.0, "engine=ray: GPUs per task (0.25 packs four)", float),
        Option("--cpus-per-job", 1.0, "engine=ray: CPUs (and torch threads) per task", float),
    ]


def benchmark_options() -> list[Option]:
    d = presets.DEFAULTS
    return [
        Option("--tasks", presets.DEFAULT_TASKS, "catalog folder(s), task paths, 'demo' or Hub ids, "
               "comma-separated (default: ../shared/data/fdu-mtl beside the checkout)"),
        Option("--only", "", "task names to keep, comma-separated (empty: all)"),
        Option("--output", "benchmark-output", "folder of the matrix and report (resumable)"),
        Option("--quick", False, f"smoke preset: {', '.join(presets.QUICK_TASKS)} of FDU-MTL, small samples "
               "(under 10 min on CPU)", bool),
        Option("--sample-size", d["sample_size"], "examples sampled per source", int),
        Option("--target-sample-size", d["target_sample_size"], "unlabelled target texts sampled for scoring", int),
        Option("--eval-size", d["eval_size"], "labelled target examples evaluated", int),
        Option("--seed", 0, "sampling and training seed", int),
        Option("--seeds", 1, "tuning seeds per source; the ground truth is their mean (2+: test-retest)", int),
        Option("--groups", "", "task,group,collection CSV (e.g. scripts/task_groups.csv): with --seeds 2+, the "
               "held-out trust report (dev = fdu-mtl and misc targets, test = the rest)"),
        Option("--shard", "0/1", "run share I of N of the matrix in this process (e.g. 0/2 and 1/2 side by "
               "side), then once without --shard to assemble"),
        Option("--ks", "1,3", "k values of the metrics, comma-separated"),
        Option("--learned-alpha", 1.0, "ridge penalty of the learned policy", float),
    ]


def cache_prune_options() -> list[Option]:
    return [
        Option("--older-than", "", "remove the entries written longer ago than this: days (30) or a number with a unit "
               "s, m, h, d or w (12h, 2w)"),
        Option("--max-size", "", "then remove the oldest entries until the cache holds at most this much "
               "(500MB, 5GB, 1.5TiB)"),
    ]


@dataclass(frozen=True)
class Command:
    """One subcommand: what it does, its option groups, worked examples, and the defaults it
    overrides in those groups (``dest: value``)."""

    help: str
    groups: tuple[str, ...]
    examples: tuple[str, ...]
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)


GROUPS: dict[str, tuple[str, Callable[[], list[Option]]]] = {
    "fetch": ("tasks (fetch)", fetch_options),
    "score": ("divergence (score)", score_options),
    "select": ("selection (select)", select_options),
    "transfer": ("fine-tuning, evaluation and registry (finetune, evaluate, register)", transfer_options),
    "engine": ("scale out (engine)", engine_options),
    "benchmark": ("benchmark", benchmark_options),
}
_PIPELINE = ("fetch", "score", "select", "transfer", "engine")
COMMANDS: dict[str, Command] = {
    "fetch": Command("find, pin and sample the target and candidate tasks; writes catalog.json", ("fetch",),
                     ("hubselect fetch --target demo:kitchen --candidates demo",
                      "hubselect fetch --target ../shared/data/fdu-mtl/books --candidates ../shared/data/fdu-mtl")),
    "score": Command("divergence of every candidate from the target; writes scores.csv",
                     ("fetch", "score", "engine"), ("hubselect score --target demo:kitchen --measures js,mmd",)),
    "select": Command("choose the sources worth tuning; writes selection.json", _PIPELINE[:3] + ("engine",),
                      ("hubselect select --policy topk --k 2 --select-measures js",)),
    "finetune": Command("fine-tune on each selected source (cached); writes tuned.json", _PIPELINE,
                        ("hubselect finetune --k 2 --max-train-examples 200",)),
    "evaluate": Command("zero-shot accuracy on the target, tuned vs untuned; writes evaluation.json", _PIPELINE,
                        ("hubselect evaluate --k 2 --eval-size 200",)),
    "register": Command("log and register the best model with the alias 'champion'", _PIPELINE,
                        ("hubselect register --registered-model-name kitchen-demo",)),
    "main": Command("the whole job, reusing finished steps", _PIPELINE,
                    ("hubselect main", "hubselect main --target ../shared/data/fdu-mtl/books "
                     "--candidates ../shared/data/fdu-mtl --k 3",
                     "mlflow run . --env-manager local --experiment-name hubselect -P k=2")),
    "benchmark": Command("selection against brute force: transfer matrix, ranking metrics, learned policy, report",
                         ("benchmark", "score", "transfer"),
                         ("hubselect benchmark --quick", "hubselect benchmark --tasks ../shared/data/fdu-mtl "
                          "--seeds 2 --output bench-out"), presets.PIPELINE_OVERRIDES),
}
#: Options of the CLI itself, not of the job (left out of MLproject: ``mlflow run`` has its own).
CLI_ONLY = ("quiet", "experiment", "json")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings and errors only")
    p.add_argument("--experiment", default=None, help="MLflow experiment name (default: hubselect)")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object on stdout (schema: "
                   "docs/console.md) instead of tables; progress and logs stay on stderr")


def _subparser(sub: Any, name: str, command: Command) -> argparse.ArgumentParser:
    examples = "examples:\n" + "\n".join(f"  {line}" for line in command.examples)
    p = sub.add_parser(name, help=command.help, description=command.help, epilog=examples,
                       formatter_class=_HelpFormatter)
    seen: set[str] = set()
    for key in command.groups:
        title, options = GROUPS[key]
        group = p.add_argument_group(title)
        for option in options():
            if option.flag not in seen:  # the benchmark's --seed etc. shadow the pipeline's
                seen.add(option.flag)
                option.add_to(group)
    p.set_defaults(**command.defaults)
    _common(p)
    return p


#: ``hubselect cache``: not a step of the job, so not in MLproject.
CACHE_HELP = "show what the hubselect cache holds, or prune it"
CACHE_ACTIONS = {
    "info": ("where the cache is, its size, and its entries per kind with the oldest and newest",
             (), ("hubselect cache info", "hubselect cache info --json")),
    "prune": ("remove whole entries, oldest first (never one being written or locked by a running job)",
              (cache_prune_options,), ("hubselect cache prune --older-than 30d",
                                       "hubselect cache prune --max-size 5GB", "hubselect cache prune --older-than "
                                       "2w --max-size 500MB")),
}


def _cache_subparser(sub: Any) -> argparse.ArgumentParser:
    """``hubselect cache info|prune`` (the location: ``$HUBSELECT_CACHE_DIR`` or the user cache folder)."""
    p = sub.add_parser("cache", help=CACHE_HELP, description=f"{CACHE_HELP}; it lives in $HUBSELECT_CACHE_DIR, "
                       "else the user cache folder (~/.cache/hubselect on Linux)")
    actions = p.add_subparsers(dest="cache_action", required=True, metavar="{info,prune}")
    for name, (text, groups, examples) in CACHE_ACTIONS.items():
        action = actions.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter,
                                    epilog="examples:\n" + "\n".join(f"  {line}" for line in examples))
        for options in groups:
            group = action.add_argument_group("limits (one or both)")
            for option in options():
                option.add_to(group)
        action.add_argument("--json", action="store_true", help="print the answer as one JSON object on stdout")
        action.set_defaults(quiet=False, experiment=None)
    return p


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option (except empty ones); the examples epilog kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in ("", None, [], False) and action.const is not True:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``hubselect`` parser: one subcommand per :data:`COMMANDS` entry."""
    parser = argparse.ArgumentParser(prog="hubselect", description="pick the labelled datasets worth fine-tuning "
                                     "on for an unlabelled text-classification target")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        _subparser(sub, name, command)
    _cache_subparser(sub)
    return parser


def fetch_config(a: argparse.Namespace):
    from hubselect.data.catalog import FetchConfig
    from hubselect.data.columns import ColumnMapping

    return FetchConfig(target=a.target, candidates=a.candidates, sample_size=a.sample_size,
                       target_sample_size=a.target_sample_size, eval_size=a.eval_size, seed=a.seed,
                       target_split=a.target_split, eval_split=a.eval_split,
                       mapping=ColumnMapping.from_strings(a.text_column, a.label_column, a.label_names, a.text_join),
                       language=a.language, limit=a.limit, fetch_workers=a.fetch_workers,
                       trust_remote_code=a.trust_remote_code,
                       columns=";".join(c for c in a.columns if c))


def score_config(a: argparse.Namespace):
    from hubselect.scoring.divergence import resolve_measures
    from hubselect.scoring.represent.store import EmbeddingSettings
    from hubselect.scoring.scores import ScoreConfig

    resolve_measures(a.measures)  # fail before any work on an unknown name
    if a.max_length < 8 or a.embed_examples < 2:
        raise HubselectError("--max-length must be >= 8 and --embed-examples >= 2")
    embedding = EmbeddingSettings(a.embedding_model, a.embedding_revision or None, a.max_length,
                                  max_texts=a.embed_examples)
    return ScoreConfig(a.measures, a.bigrams, embedding, a.device or None)


def select_config(a: argparse.Namespace):
    from hubselect.scoring.divergence import GROUPS as MEASURE_GROUPS
    from hubselect.scoring.divergence import resolve_measures
    from hubselect.selection.policy import SelectionConfig

    cfg = SelectionConfig(a.policy, a.k, a.select_measures, a.quantile, a.budget_examples, a.learned_model,
                          a.weights, a.prior)
    scored = [spec.name for spec in resolve_measures(a.measures)]
    if all(t.strip() in MEASURE_GROUPS for t in a.select_measures.split(",") if t.strip()):
        # a group ("all", "terms", "embeddings") means its measures that the score step computes
        within = [name for name in cfg.measure_names() if name in scored]
        if within:
            return dataclasses.replace(cfg, measures=",".join(within))
    missing = [name for name in cfg.measure_names() if name not in scored]
    if missing:
        raise HubselectError(f"--select-measures names '{missing[0]}', which --measures does not compute "
                             f"(computed: {', '.join(scored)}): add it to --measures or choose computed ones")
    return cfg


def transfer_config(a: argparse.Namespace):
    from hubselect.models.training import FinetuneConfig
    from hubselect.models.transfer import TransferConfig, parse_label_map

    ft = FinetuneConfig(model=a.model, model_revision=a.model_revision or None, epochs=a.epochs,
                        learning_rate=a.learning_rate, batch_size=a.batch_size, max_length=a.train_max_length,
                        max_train_examples=a.max_train_examples, holdout_fraction=a.holdout_fraction, seed=a.seed,
                        device=a.device or None, formulation=a.formulation)
    from hubselect.models.evaluation import resolve_metrics

    return TransferConfig(ft, parse_label_map(a.label_map), a.label_template, a.champion,
                          a.registered_model_name, a.require_eval,
                          resolve_metrics(a.metrics, trust_remote_code=a.trust_remote_code), a.trust_remote_code)


def benchmark_config(a: argparse.Namespace):
    """The :class:`~hubselect.benchmark.matrix.BenchmarkConfig` of parsed ``benchmark`` arguments."""
    from hubselect.benchmark.matrix import BenchmarkConfig

    presets.apply_quick(a)
    only = tuple(s.strip() for s in a.only.split(",") if s.strip())
    return BenchmarkConfig(tasks=a.tasks, score=score_config(a), transfer=transfer_config(a),
                           sample_size=a.sample_size, target_sample_size=a.target_sample_size, eval_size=a.eval_size,
                           seed=a.seed, seeds=a.seeds, only=only, shard=presets.parse_shard(a.shard))


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_AGE_UNITS = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _amount(flag: str, text: str, units: Mapping[str, int], fix: str) -> float:
    """``text`` as a number times its unit (one of ``units``, case-insensitive)."""
    import math
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if match is None or match[2] not in units or not math.isfinite(float(match[1])):
        raise HubselectError(f"{flag} {text!r} is not {fix}")
    return float(match[1]) * units[match[2]]


def cache_prune_limits(a: argparse.Namespace) -> tuple[float | None, int | None]:
    """The seconds of ``--older-than`` and the bytes of ``--max-size`` (``None`` where not given).

    Raises:
        HubselectError: a value that is not a duration or a size, or neither option given.
    """
    older = _amount("--older-than", a.older_than, _AGE_UNITS, "a duration: give days (30) or a number with a "
                    "unit s, m, h, d or w (12h, 2w)") if a.older_than.strip() else None
    size = _amount("--max-size", a.max_size, _SIZE_UNITS, "a size: give bytes or a number with a unit KB, MB, GB, "
                   "TB or KiB, MiB, GiB, TiB (500MB, 5GB)") if a.max_size.strip() else None
    if older is None and size is None:
        raise HubselectError("hubselect cache prune needs a limit: give --older-than (e.g. 30d) and/or --max-size "
                             "(e.g. 5GB)")
    return older, None if size is None else int(size)


def configs_for(command: str, a: argparse.Namespace) -> list[Any]:
    """The configs a pipeline command runs with, in step order (validated before any run starts)."""
    builders = [fetch_config, score_config, select_config, transfer_config]
    count = {"fetch": 1, "score": 2, "select": 3}.get(command, 4)
    return [build(a) for build in builders[:count]]


#: MLproject defaults that differ from the CLI's (the CLI resolves them beside the checkout).
MLPROJECT_DEFAULTS = {("benchmark", "tasks"): "../shared/data/fdu-mtl"}


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return '"true"' if value else '"false"'
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str("" if value is None else value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _project_params(name: str, parser: argparse.ArgumentParser) -> list[tuple[str, str, str, str]]:
    """``(param, type, default, flag)`` of each option of one subcommand, in --help order."""
    rows = []
    for action in parser._actions:
        if not action.option_strings or action.dest in CLI_ONLY or action.dest == "help":
            continue
        kind = "float" if action.type in (int, float) else "string"
        default = MLPROJECT_DEFAULTS.get((name, action.dest), action.default)
        default = "" if default == [] else default
        rows.append((action.dest, kind, _yaml_scalar(default), action.option_strings[0]))
    return rows


def render_mlproject() -> str:
    """The text of ``MLproject``: one entry point per subcommand, with every option as a param."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    lines = ["# Generated from hubselect/options.py by `python -m hubselect.options > MLproject`: do not edit.",
             "# Every entry point takes the options of `hubselect <entry point> --help`, with the same defaults.",
             "name: hubselect", "", "# `mlflow run . --env-manager local` uses the active Python environment "
             "(pip install -e .);", "# without it MLflow builds one from conda.yaml (same pins as pyproject.toml).",
             "conda_env: conda.yaml", "", "entry_points:"]
    for name, sub in subparsers.items():
        if name not in COMMANDS:  # `hubselect cache` is no step of the job
            continue
        params = _project_params(name, sub)
        lines += [f"  {name}:", "    parameters:"]
        lines += [f"      {p}: {{type: {kind}, default: {default}}}" for p, kind, default, _ in params]
        command = f"python -m entrypoints.{name} " + " ".join(f"{flag} {{{p}}}" for p, _, _, flag in params)
        lines += ["    command: >-", *textwrap.wrap(command, 100, initial_indent="      ",
                                                    subsequent_indent="      ", break_on_hyphens=False), ""]
    return "\n".join(lines[:-1]) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render_mlproject())
