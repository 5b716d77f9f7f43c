"""One declaration per parameter: MLproject, the CLI and the config dataclasses agree."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from hubselect import options
from hubselect.options import CLI_ONLY, COMMANDS, MLPROJECT_DEFAULTS, build_parser, render_mlproject

ROOT = Path(__file__).resolve().parents[1]


def test_mlproject_is_generated_from_the_options():
    assert (ROOT / "MLproject").read_text(encoding="utf-8") == render_mlproject(), \
        "MLproject drifted from hubselect/options.py: run `python -m hubselect.options > MLproject`"


def _cli_dests(command: str) -> dict[str, object]:
    """Every option of ``hubselect <command>`` and its default (what a bare command parses to)."""
    args = vars(build_parser().parse_args([command]))
    return {k: v for k, v in args.items() if k not in (*CLI_ONLY, "command")}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_entry_point_takes_every_cli_option_with_the_cli_default(command):
    from mlflow.projects._project_spec import load_project

    entry = load_project(str(ROOT)).get_entry_point(command)
    cli = _cli_dests(command)
    assert set(entry.parameters) == set(cli), f"MLproject's {command} and `hubselect {command}` disagree"
    # what MLflow runs with the defaults parses, with the CLI's parser, to the CLI's defaults
    argv = shlex.split(entry.compute_command({}, None))
    assert argv[:3] == ["python", "-m", f"entrypoints.{command}"]
    parsed = vars(build_parser().parse_args([command, *argv[3:]]))
    for name, default in cli.items():
        expected = MLPROJECT_DEFAULTS.get((command, name), default)
        got = parsed[name]
        if name == "columns":  # append: MLproject passes one (empty) value
            got, expected = [c for c in got if c], expected
        assert got == expected or str(got) == str(expected), f"{command} --{name}: MLproject {got!r}, CLI {expected!r}"


def test_cli_defaults_are_the_config_defaults():
    """The configs built from a bare command equal the dataclasses' own defaults."""
    from hubselect.data.catalog import FetchConfig
    from hubselect.models.training import FinetuneConfig
    from hubselect.models.transfer import TransferConfig
    from hubselect.scoring.scores import ScoreConfig
    from hubselect.selection.policy import SelectionConfig

    args = build_parser().parse_args(["main"])
    fetch, score, select, transfer = options.configs_for("main", args)
    assert fetch == FetchConfig()
    assert score == ScoreConfig()
    defaults = SelectionConfig()
    for name in ("policy", "k", "quantile", "budget_examples", "learned_model", "weights", "prior"):
        assert getattr(select, name) == getattr(defaults, name), name
    assert transfer == TransferConfig(FinetuneConfig())


def test_budget_policy_runs_under_mlflow_run_parameters():
    """The drift the issue found: budget_examples and quantile were missing from MLproject."""
    from mlflow.projects._project_spec import load_project

    entry = load_project(str(ROOT)).get_entry_point("main")
    command = entry.compute_command({"policy": "budget", "budget_examples": "600", "quantile": "0.5"}, None)
    parsed = build_parser().parse_args(["main", *shlex.split(command)[3:]])
    assert (parsed.policy, parsed.budget_examples, parsed.quantile) == ("budget", 600, 0.5)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_defaults_and_a_worked_example(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and COMMANDS[command].examples[0] in text
    if command != "benchmark":
        assert "(default: demo:kitchen)" in text
