"""The ``evaluate`` metric modules shipped in hubselect: package data, offline loading by local
path with no connection at all, agreement with scikit-learn, Hub metrics by name (from a local
HTTP server standing in for the Hub's Spaces), and one-line errors when the Hub cannot give one.

The offline checks run in a fresh interpreter: ``huggingface_hub`` and ``evaluate`` read
``HF_ENDPOINT`` when first imported, and the child guards ``socket.connect`` to record any try.
"""

from __future__ import annotations

import functools
import http.server
import importlib.resources
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from hubselect.core.errors import HubselectError
from hubselect.models.evaluation import (
    SHIPPED_METRICS,
    classification_metrics,
    compute_metrics,
    load_metric,
    resolve_metrics,
)

CLOSED_PORT = "http://127.0.0.1:9"

# Run in the child: block and record every connection, then compute on a fixed example for each
# metric list in argv[1] (JSON), recording what each one tried.
_CHILD = textwrap.dedent("""
    import json, socket, sys
    tried, allowed, connect = [], sys.argv[2], socket.socket.connect
    trust = sys.argv[3] == "trust"  # --trust-remote-code: Hub metrics may load
    def _refuse(self, address, *args):
        tried.append(repr(address))
        if repr(address) != allowed:
            raise OSError("hubselect test: no connection allowed")
        return connect(self, address, *args)
    socket.socket.connect = _refuse
    from hubselect.core.errors import HubselectError
    from hubselect.models.evaluation import classification_metrics, compute_metrics, resolve_metrics
    runs = []
    for metrics in json.loads(sys.argv[1]):
        out, before = {}, len(tried)
        try:
            names = resolve_metrics(metrics, trust_remote_code=trust)
            gold, pred = ["a", "a", "a", "b", "b", "c"], ["a", "a", "b", "b", "c", "c"]
            out["classification"] = list(classification_metrics(gold, pred, ["a", "b", "c"])[:2])
            out["metrics"] = compute_metrics(names, gold, pred, ["a", "b", "c"], trust_remote_code=trust)
        except HubselectError as err:
            out["error"] = str(err)
        out["tried"] = tried[before:]
        runs.append(out)
    print(json.dumps(runs))
""")


def _run_child(metrics: list[str], tmp_path: Path, allowed: str = "", trust: bool = True, **env: str) -> list[dict]:
    """Run :data:`_CHILD` with a fresh HF home and hubselect cache under ``tmp_path``; the child
    may connect only to ``allowed`` (the repr of an address tuple), and loads Hub metrics only
    with ``trust`` (``--trust-remote-code``; refusing them is tested in test_reliability_hub.py)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    full.update(HF_HOME=str(tmp_path / "hf-home"), HUBSELECT_CACHE_DIR=str(tmp_path / "cache"),
                HF_UPDATE_DOWNLOAD_COUNTS="0", **env)
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(metrics), allowed,
                           "trust" if trust else "no"], env=full,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_metric_modules_are_shipped_as_package_data():
    root = importlib.resources.files("hubselect.models") / "metric_modules"
    for name in SHIPPED_METRICS:
        script = root / name / f"{name}.py"
        assert script.is_file(), f"{name} is not shipped"
        assert "evaluate.Metric" in script.read_text()



def test_the_wheel_ships_the_metric_modules(tmp_path):
    """Build a wheel from a copy of the package (no network) and list what it holds."""
    import shutil
    import zipfile

    repo = Path(__file__).parents[1]
    src = tmp_path / "src"
    shutil.copytree(repo / "hubselect", src / "hubselect",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", str(src), "-w", str(tmp_path / "dist")], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("hubselect-*.whl")
    held = set(zipfile.ZipFile(wheel).namelist())
    assert {f"hubselect/models/metric_modules/{n}/{n}.py" for n in SHIPPED_METRICS} <= held


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": CLOSED_PORT},
                                 {"HF_ENDPOINT": CLOSED_PORT}], ids=["offline", "closed-port"])
def test_shipped_metrics_load_by_local_path_without_any_connection(tmp_path, env):
    shipped, unknown = _run_child(["accuracy,f1", "accuracy,bleu"], tmp_path, **env)
    assert shipped["tried"] == [] and "error" not in shipped
    assert shipped["classification"] == pytest.approx([4 / 6, (0.8 + 0.5 + 2 / 3) / 3])
    assert shipped["metrics"] == pytest.approx({"accuracy": 4 / 6, "f1": (0.8 + 0.5 + 2 / 3) / 3})
    # evaluate copied the modules into hubselect's cache, and wrote nothing to the HF home
    copies = _files(tmp_path / "cache" / "evaluate" / "modules")
    assert any(f.endswith("/accuracy.py") for f in copies)
    assert any(f.endswith("/f1.py") for f in copies)
    assert not (tmp_path / "hf-home").exists() or _files(tmp_path / "hf-home") == []
    # a metric that is not shipped: a one-line error naming it and the fix
    if "HF_HUB_OFFLINE" in env:
        assert unknown["tried"] == []
        assert unknown["error"] == (
            "metric 'bleu' is not shipped with hubselect and the Hub is off (HF_HUB_OFFLINE): "
            "use one of accuracy, f1, or connect and check the name")
    else:
        assert set(unknown["tried"]) == {"('127.0.0.1', 9)"}  # the Hub only, nothing else
        assert "\n" not in unknown["error"]
        assert unknown["error"].startswith("metric 'bleu' is not shipped with hubselect and the "
                                           "Hub is unreachable")


_PAIR_METRIC = textwrap.dedent('''
    import datasets
    import evaluate

    class Pair(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description="hits and misses", citation="", inputs_description="",
                features=datasets.Features({"predictions": datasets.Value("int32"),
                                            "references": datasets.Value("int32")}))

        def _compute(self, predictions, references):
            hits = sum(int(p == r) for p, r in zip(predictions, references))
            return {"hits": hits, "misses": len(predictions) - hits, "ids": list(predictions)}
''')


def test_a_hub_metric_loads_by_name_and_then_works_offline(tmp_path):
    """``pair`` comes from a local server standing in for the Hub's ``evaluate-metric`` Space;
    afterwards the copy in hubselect's cache serves it with the Hub off."""
    site = tmp_path / "site" / "spaces" / "evaluate-metric" / "pair" / "resolve"
    for revision in ("v0.4.6", "main"):
        (site / revision).mkdir(parents=True)
        (site / revision / "pair.py").write_text(_PAIR_METRIC)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "site"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        [online] = _run_child(["pair,accuracy"], tmp_path, repr(("127.0.0.1", port)),
                            HF_ENDPOINT=f"http://127.0.0.1:{port}")
    finally:
        server.shutdown()
    assert "error" not in online, online
    assert set(online["tried"]) == {repr(("127.0.0.1", port))}  # that server and nothing else
    assert online["metrics"] == {"pair.hits": 4.0, "pair.misses": 2.0, "accuracy": 4 / 6}
    assert not (tmp_path / "hf-home").exists() or _files(tmp_path / "hf-home") == []
    [offline] = _run_child(["pair"], tmp_path, HF_HUB_OFFLINE="1", HF_ENDPOINT=CLOSED_PORT)
    assert offline["tried"] == [] and offline["metrics"] == {"pair.hits": 4.0,
                                                             "pair.misses": 2.0}


def test_metrics_agree_with_scikit_learn_on_random_labels():
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    names = ["w", "x", "y", "z"]
    for trial in range(20):
        n = int(rng.integers(1, 60))
        gold = list(rng.choice(names, n))
        pred = list(rng.choice(names[:3], n))  # "z" is never predicted
        if trial % 4 == 0:
            gold = list(rng.choice(names[:2], n))  # and sometimes never present either
        scores = compute_metrics(("accuracy", "f1"), gold, pred, names)
        assert scores["accuracy"] == accuracy_score(gold, pred)
        assert scores["f1"] == pytest.approx(
            f1_score(gold, pred, labels=names, average="macro", zero_division=0), abs=1e-15)
        accuracy, macro_f1, per_class = classification_metrics(gold, pred, names)
        f1 = precision_recall_fscore_support(gold, pred, labels=names, average=None,
                                             zero_division=0)[2]
        assert accuracy == accuracy_score(gold, pred)
        assert macro_f1 == pytest.approx(float(np.mean(f1)), abs=1e-15)  # the former formula
        assert [row["f1"] for row in per_class.values()] == pytest.approx(list(f1))


def test_a_label_outside_the_target_names_never_matches():
    # "q" and "r" are unknown to the target: each gets its own id, so they do not agree
    assert compute_metrics(("accuracy",), ["q", "a"], ["r", "a"], ["a", "b"]) == {"accuracy": 0.5}


def test_metric_names_are_parsed_and_checked():
    assert resolve_metrics(" accuracy, f1 ,accuracy,") == ("accuracy", "f1")
    assert resolve_metrics("") == () and resolve_metrics(None) == ()
    assert resolve_metrics(["f1"]) == ("f1",)
    with pytest.raises(HubselectError, match=r"metric name 'acc uracy' is malformed: .*accuracy,f1"):
        resolve_metrics("acc uracy")
    with pytest.raises(HubselectError, match="metric name 'a/b/c' is malformed"):
        resolve_metrics("a/b/c")


def test_load_metric_gives_a_fresh_in_memory_module_from_the_package(monkeypatch, tmp_path):
    first, second = load_metric("f1"), load_metric("f1")
    assert first is not second and first.keep_in_memory
    assert type(first).__module__.startswith("hubselect_metrics_")
    copy = Path(sys.modules[type(first).__module__].__file__)
    shipped = importlib.resources.files("hubselect.models") / "metric_modules" / "f1" / "f1.py"
    assert copy.read_text() == shipped.read_text()
    assert copy.is_relative_to(Path(os.environ["HUBSELECT_CACHE_DIR"]))
    # another cache root gets its own importable copy
    monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(tmp_path / "other"))
    other = load_metric("f1")
    assert Path(sys.modules[type(other).__module__].__file__).is_relative_to(tmp_path / "other")
    assert other.compute(predictions=[0, 1], references=[0, 1], average="macro") == {"f1": 1.0}
