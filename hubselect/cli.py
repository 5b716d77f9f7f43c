"""``hubselect`` command line: ``hubselect <step> ...`` for every step and ``main`` (each with ``--help``),
and ``hubselect cache info|prune``.

The options are declared in :mod:`hubselect.options`. Every error a user can cause is one line
on stderr (``hubselect: error: ...``) and exit code 2, a disk that refuses a write (full,
read-only) included. A finished command ends with its answer on stdout
(:mod:`hubselect.pipeline.steps.answers`): tables for a person (:mod:`hubselect.pipeline.steps.console`, at the
terminal's width, 100 columns when stdout is not a terminal), or with ``--json`` one JSON object and
nothing else; whatever a library prints while the command runs goes to stderr with the progress.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any, Sequence

from hubselect.core.errors import HubselectError
from hubselect.options import build_parser

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the parsed command; returns its answer (:mod:`hubselect.pipeline.steps.answers`)."""
    from hubselect.core.cache import check_cache_dir
    from hubselect.core.executor import executor_from_args, use
    from hubselect.options import configs_for
    from hubselect.pipeline import steps
    from hubselect.pipeline.tracking import runs

    check_cache_dir()
    if args.command == "cache":
        from hubselect.options import cache_prune_limits
        from hubselect.pipeline.steps.answers import cache_answer

        limits = cache_prune_limits(args) if args.cache_action == "prune" else (None, None)
        return cache_answer(args.cache_action, *limits)
    if args.command == "benchmark":
        from hubselect.pipeline.steps.answers import benchmark_answer

        out = run_benchmark(args)
        return benchmark_answer(out.run_id, out.path)
    configs = configs_for(args.command, args)  # validated before any run starts
    executor = executor_from_args(args) if hasattr(args, "engine") else None
    runs.configure(args.experiment)
    runner = {"fetch": steps.run_fetch, "score": steps.run_score, "select": steps.run_select,
              "finetune": steps.run_finetune, "evaluate": steps.run_evaluate, "register": steps.run_register,
              "main": steps.run_main}[args.command]
    with use(executor) if executor is not None else contextlib.nullcontext():
        out = runner(*configs, quiet=args.quiet)
    return dict(out.answer or {})


def run_benchmark(args: argparse.Namespace) -> Any:
    """``hubselect benchmark`` (parsed arguments); returns the benchmark's StepOutput."""
    import shlex

    from hubselect.benchmark.matrix import list_tasks
    from hubselect.benchmark.presets import parse_ks
    from hubselect.benchmark.run import run_benchmark as run
    from hubselect.options import benchmark_config
    from hubselect.pipeline.tracking import runs

    cfg = benchmark_config(args)
    ks = parse_ks(args.ks)
    list_tasks(cfg)  # refuse fewer than three tasks before any run or folder is created
    runs.configure(getattr(args, "experiment", None))
    command = "hubselect " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    return run(cfg, args.output, ks=ks, alpha=args.learned_alpha, quiet=getattr(args, "quiet", True),
               command=command, groups=args.groups)


def console_width() -> int:
    """The terminal's width ($COLUMNS first); when stdout is not a terminal, $COLUMNS or 100."""
    import shutil

    if sys.stdout.isatty():
        return max(shutil.get_terminal_size((100, 24)).columns, 60)
    columns = os.environ.get("COLUMNS", "")
    return max(int(columns), 60) if columns.isdigit() else 100


def show(answer: dict[str, Any], as_json: bool) -> str:
    """The text a finished command writes on stdout: the answer as JSON or as tables."""
    from hubselect.pipeline.steps.answers import to_json
    from hubselect.pipeline.steps.console import render

    if as_json:
        return to_json(answer) + "\n"
    return render(answer, width=console_width(), color=sys.stdout.isatty())


def _quiet_libraries(quiet: bool) -> None:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # keep MLflow's INFO chatter off stderr
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # load reports of new heads are expected
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per logged model is noise
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub", "alembic", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights", "Writing model shards": ours say what runs


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "cache":  # no library runs: their settings are not needed
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    else:
        _quiet_libraries(args.quiet)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout holds the answer alone
            answer = run(args)
    except HubselectError as exc:
        sys.stderr.write(f"hubselect: error: {exc}\n")
        return 2
    except OSError as exc:  # a write refused where no step caught it: full disk, read-only filesystem
        from hubselect.core.cache import scratch_root, storage_error

        # a write that names no file is a step's output (pandas, matplotlib) in its scratch folder
        error = storage_error(exc, None if exc.filename or exc.filename2 else scratch_root())
        if error is None:
            raise
        sys.stderr.write(f"hubselect: error: {error}\n")
        return 2
    except KeyboardInterrupt:  # the runs are already marked KILLED
        sys.stderr.write("hubselect: interrupted\n")
        return 130
    sys.stdout.write(show(answer, args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
