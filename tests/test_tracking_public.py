"""The tracking layer on MLflow's public API only (issue 16, parts 5 and 7), on a real SQLite store.

- No private attribute of mlflow is used in the package (the issue's grep, and the imports and
  attribute chains read from the source).
- The experiment the steps search (:func:`current_experiment_id`) is the one MLflow logs to, in
  each case the CLI meets: an experiment set by ``configure``, ``mlflow run``'s environment, a name
  in ``MLFLOW_EXPERIMENT_NAME``, an active run, and the default.
- A step run ended by Ctrl-C is ``KILLED`` with the runs open inside it, and no run outside it.
- A champion registered inside a nested run (``register`` under ``main``) shows on the page of
  every run it is nested in: its logged model is an output of those runs, and MLflow's run page
  lists the versions of a run's output models under "Registered models".
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import hubselect
from hubselect.pipeline.tracking import runs

PACKAGE = Path(hubselect.__file__).parent
#: An MLflow model logged from code in a few lines (no weights, nothing pickled).
ECHO_MODEL = """
import mlflow
from mlflow.pyfunc import PythonModel


class Echo(PythonModel):
    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return model_input


mlflow.models.set_model(Echo())
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """One SQLite store for the module (a fresh one costs seconds of migrations); each test uses its
    own experiments."""
    import mlflow

    tmp = tmp_path_factory.mktemp("tracking-public")
    uri, previous = f"sqlite:///{tmp / 'mlflow.db'}", mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield tmp
    mlflow.set_tracking_uri(previous)


@pytest.fixture()
def tracking(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The module's store, no experiment or run in the environment; the working directory is a temp dir."""
    monkeypatch.chdir(tmp_path)
    for leaked in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(leaked, raising=False)  # mlflow.set_experiment exports the id
    return tmp_path


def _private_mlflow_uses(source: str) -> list[str]:
    """Private mlflow names a module's source uses: ``from mlflow.x._y import z``, ``import _z`` from
    mlflow, ``mlflow.a._b`` attribute chains, and the logging stream MLflow keeps to itself."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
            names = [*node.module.split("."), *(a.name for a in node.names)]
            found += [f"from {node.module} import {n}" for n in names if n.startswith("_")]
            found += [f"from {node.module} import {a.name}" for a in node.names if a.name == "MLFLOW_LOGGING_STREAM"]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "mlflow":
                found.append(ast.unparse(node))
    return found


def test_the_package_uses_no_private_mlflow_api():
    grep = re.compile(r"\._[a-z]")  # the check: grep -rn "\._[a-z]" hubselect/ | grep -i mlflow
    lines = [f"{path.relative_to(PACKAGE)}:{i}" for path in PACKAGE.rglob("*.py")
             for i, line in enumerate(path.read_text().splitlines(), 1)
             if grep.search(line) and "mlflow" in line.lower()]
    assert lines == []
    uses = {str(path.relative_to(PACKAGE)): found for path in PACKAGE.rglob("*.py")
            if (found := _private_mlflow_uses(path.read_text()))}
    assert uses == {}


def test_the_check_sees_a_private_use():
    assert _private_mlflow_uses("import mlflow\nx = mlflow.tracking.fluent._get_experiment_id()") == [
        "mlflow.tracking.fluent._get_experiment_id"]
    assert _private_mlflow_uses("from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM") != []
    assert _private_mlflow_uses("from mlflow.tracking._tracking_service import utils") != []


# ------------------------------------------------------------------ the experiment the steps search


def test_the_experiment_set_by_configure(tracking):
    import mlflow

    runs.configure("set-here")
    assert runs.current_experiment_id() == mlflow.get_experiment_by_name("set-here").experiment_id


#: What the entry point of ``mlflow run`` does, in a process of its own as there: configure, a step
#: run (which resumes the launcher's run), then look for it as ``main`` looks for a step to reuse.
LAUNCHED = """
import json
from hubselect.pipeline.tracking import runs

runs.configure()
seen = [runs.current_experiment_id()]
with runs.step_run("fetch", {"a": 1}) as run:
    seen += [run.info.run_id, runs.current_experiment_id()]
seen.append(runs.find_finished("fetch", {"a": 1}).info.run_id)
print(json.dumps(seen))
"""


def test_the_experiment_of_mlflow_run(tracking):
    """``mlflow run`` passes its experiment and run in the environment, and ``configure`` sets none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    launched = client.create_experiment("launched")
    run = client.create_run(launched)
    env = dict(os.environ, MLFLOW_EXPERIMENT_ID=launched, MLFLOW_RUN_ID=run.info.run_id)
    done = subprocess.run([sys.executable, "-c", LAUNCHED], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = run.info.run_id
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [launched, run_id, launched, run_id]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_the_experiment_named_in_the_environment(tracking, monkeypatch):
    import mlflow

    existing = mlflow.create_experiment("named")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "named")
    assert runs.current_experiment_id() == existing
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "named-new")
    created = runs.current_experiment_id()
    assert mlflow.get_experiment(created).name == "named-new"


def test_the_active_run_s_experiment_then_the_default(tracking):
    import mlflow

    other = mlflow.create_experiment("other")
    with mlflow.start_run(experiment_id=other):
        assert runs.current_experiment_id() == other
    assert runs.current_experiment_id() == "0"  # no experiment set: MLflow's default
    assert mlflow.get_experiment("0").name == "Default"


def test_stale_runs_are_closed_in_the_launcher_s_experiment(tracking, monkeypatch):
    """Under ``mlflow run`` (nothing set with ``mlflow.set_experiment``), a run of a killed job on
    this host in the launcher's experiment is closed as KILLED."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    launched = client.create_experiment("launched-stale")
    dead = f"{socket.gethostname()}:{os.getpid()}-1"  # this pid with another start time: gone
    stale = client.create_run(launched, tags={runs.PROCESS_TAG: dead, runs.STEP_TAG: "score"})
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", launched)
    assert runs.close_stale_runs() == 1
    assert client.get_run(stale.info.run_id).info.status == "KILLED"


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_kills_the_step_and_the_runs_inside_it_but_no_run_outside(tracking):
    import mlflow
    from mlflow.tracking import MlflowClient

    runs.configure("killed")
    seen = {}
    with pytest.raises(KeyboardInterrupt):
        with mlflow.start_run(run_name="outside") as outside:  # a caller's run, not a step's
            seen["outside"] = outside.info.run_id
            with runs.step_run("main", {}) as main, runs.step_run("score", {}) as score:
                seen["main"], seen["score"] = main.info.run_id, score.info.run_id
                inner = mlflow.start_run(run_name="inside", nested=True)  # left open, as a library might
                seen["inside"] = inner.info.run_id
                raise KeyboardInterrupt
    status = {name: MlflowClient().get_run(run_id).info.status for name, run_id in seen.items()}
    assert status == {"outside": "FAILED", "main": "KILLED", "score": "KILLED", "inside": "KILLED"}
    assert mlflow.active_run() is None


# ------------------------------------------------------------------ the registered version on main


def _log_echo(tmp_path: Path):
    import mlflow

    code = tmp_path / "echo_model.py"
    code.write_text(ECHO_MODEL)
    return mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=["mlflow"])


def test_a_champion_registered_in_a_nested_run_shows_on_the_runs_around_it(tracking, capsys):
    import mlflow
    from mlflow.tracking import MlflowClient

    from hubselect.pipeline.tracking.models import register_champion

    runs.configure("registered")
    client = MlflowClient()
    with runs.step_run("main", {}) as main:
        with runs.step_run("register", {}) as register:
            info = _log_echo(tracking)
            assert register_champion(info, "toy-champion", target="toy") == 1
            assert register_champion(info, "toy-champion", target="toy") == 2  # linked once
    assert "Registered model" not in capsys.readouterr().err  # MLflow's prints stay off
    for run in (main, register):  # the run page lists the versions of the run's output models
        outputs = client.get_run(run.info.run_id).outputs.model_outputs
        assert [m.model_id for m in outputs] == [info.model_id]
    versions = json.loads(mlflow.get_logged_model(info.model_id).tags["mlflow.modelVersions"])
    assert versions == [{"name": "toy-champion", "version": 1}, {"name": "toy-champion", "version": 2}]
    # the version still belongs to the run that logged it
    assert {v.run_id for v in client.search_model_versions("name = 'toy-champion'")} == {register.info.run_id}


def test_a_top_level_registration_links_no_other_run_and_a_path_version_cannot_be_linked(tracking):
    import mlflow
    from mlflow.tracking import MlflowClient

    from hubselect.pipeline.tracking.models import link_version, register_champion

    runs.configure("registered-alone")
    client = MlflowClient()
    with runs.step_run("register", {}) as register:
        info = _log_echo(tracking)
        register_champion(info, "toy-alone", target="toy")
        assert runs.enclosing_run_ids() == []
    others = [r for r in mlflow.search_runs([runs.current_experiment_id()], output_format="list") if r.info.run_id != register.info.run_id]
    assert [r for r in others if r.outputs and r.outputs.model_outputs] == []
    client.create_registered_model("from-a-path")
    version = client.create_model_version("from-a-path", source=str(tracking / "a-model-folder"))
    assert link_version("from-a-path", version.version, register.info.run_id) is False
