"""The Hub and serving cases of issue 15, for ``scripts/bad_inputs.py --only hub|serve``.

Hub cases run the real ``hubselect`` command against the HTTP Hub stand-in of
``tests/hubstandin.py`` (its fixture repos, faults injected before each case); serving cases
register a model with ``hubselect main`` (a tiny random BERT, so it is quick), serve it with
``mlflow models serve`` and post what it cannot read. Each returns records of the same form as
the other groups: the case, the command, its exit code (or HTTP status) and what it said, and
whether a traceback appeared (on the command's output or, for serving, in the server's log).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
HUB_FAST = "--quiet --sample-size 20 --target-sample-size 20 --eval-size 10"
INFO = r"^/api/datasets/acme/{}(/revision/[^/]+)?$"

# (what, command, faults [(pattern, answers, {inject options})], extra environment, check after)
HUB_CASES = [
    ("Hub metric without --trust-remote-code (the script writes a marker when imported)",
     "hubselect evaluate --target demo:kitchen --metrics acme/marker-metric", [], {}, "marker"),
    ("a canonical Hub metric without --trust-remote-code", "hubselect evaluate --target demo:kitchen --metrics bleu",
     [], {}, ""),
    ("an invalid Hub id", "hubselect fetch --target hf:acme/.. --candidates demo", [], {}, ""),
    ("info answers 429 (Retry-After 1) then 503, then 200",
     f"hubselect fetch --target acme/sentiment --candidates demo {HUB_FAST}",
     [(INFO.format("sentiment"), [429, 503], {"retry_after": 1})], {}, ""),
    ("search answers 429 then 503, then 200",
     f"hubselect fetch --target demo:kitchen --candidates search:sentiment --limit 2 {HUB_FAST}",
     [(r"^/api/datasets$", [429, 503], {})], {}, ""),
    ("a candidate's tree answers 503, its README a reset, its data file 429, then 200",
     f"hubselect fetch --target demo:kitchen --candidates acme/news-topics {HUB_FAST}",
     [(r"/tree/", [503], {}), (r"/resolve/.*README", ["reset"], {"method": "GET"}),
      (r"/resolve/.*\.parquet", [429], {"method": "GET"})], {}, ""),
    ("info answers 500 forever (retry budget 3 s)",
     f"hubselect fetch --target acme/sentiment --candidates demo {HUB_FAST}",
     [(INFO.format("sentiment"), [500], {"forever": True})], {"HUBSELECT_HUB_RETRY_BUDGET_S": "3"}, ""),
    ("info answers 429 with Retry-After 3600 (beyond the budget)",
     f"hubselect fetch --target acme/news-topics --candidates demo {HUB_FAST}",
     [(INFO.format("news-topics"), [429], {"retry_after": 3600, "forever": True})], {}, ""),
    ("a data file answers 503 forever (retry budget 1 s)",
     f"hubselect fetch --target acme/french-sentiment --candidates demo {HUB_FAST}",
     [(r"/resolve/.*\.parquet", [503], {"forever": True})], {"HUBSELECT_HUB_RETRY_BUDGET_S": "1"}, ""),
    ("a malformed retry setting", f"hubselect fetch --target acme/sentiment --candidates demo {HUB_FAST}", [],
     {"HUBSELECT_HUB_RETRY_BUDGET_S": "a minute"}, ""),
    ("a script-only repo, with --trust-remote-code true",
     f"hubselect fetch --target acme/legacy-script --candidates demo --trust-remote-code true {HUB_FAST}",
     [], {}, ""),
]


def _tests_on_path() -> None:
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))


def start_hub(root: Path):
    """The stand-in with its fixture repos, serving from ``root/repos``; stop it with ``.stop()``."""
    _tests_on_path()
    from hubstandin import HubStandIn, build_fixture_repos

    hub = HubStandIn(root / "repos")
    os.environ["HF_ENDPOINT"] = hub.url  # before datasets is imported by the fixture builder
    build_fixture_repos(hub.root)
    hub.reload()
    return hub.start()


def hub_env(hub, root: Path) -> dict[str, str]:
    """The environment of a Hub case: the stand-in, Hugging Face caches of its own, short retry waits."""
    home = root / "hf-home"
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
            "HF_DATASETS_CACHE": str(home / "datasets"), "HF_XET_CACHE": str(home / "xet"),
            "HF_UPDATE_DOWNLOAD_COUNTS": "0", "HUBSELECT_HUB_RETRY_BASE_S": "0.05",
            "HUBSELECT_TEST_MARKER": str(root / "marker")}


def run_hub(root: Path, hubselect: Callable, record: Callable) -> list[dict]:
    """Run :data:`HUB_CASES` against the stand-in; each on a fresh cache, the faults cleared after."""
    hub = start_hub(root)
    out = []
    try:
        for i, (what, command, faults, extra, check) in enumerate(HUB_CASES):
            for pattern, answers, options in faults:
                hub.inject(pattern, answers, **options)  # "reset": the stand-in drops the connection
            hub.clear_log()
            env = {**hub_env(hub, root), "HUBSELECT_CACHE_DIR": str(root / f"hub-cache-{i}"), **extra}
            out.append(record(what, command, hubselect(root, command, env)))
            out[-1]["stderr"].append("Hub answers: " + " ".join(str(r.status) for r in hub.log[:40]))
            if check == "marker":
                out[-1]["stderr"].append(f"marker written: {'yes' if (root / 'marker').exists() else 'no'}")
            hub.clear_faults()
    finally:
        hub.stop()
    return out


# --- serving ----------------------------------------------------------------------------------

SERVE_CASES = [  # (what, request body)
    ("columns id,review (no text column)",
     {"dataframe_split": {"columns": ["id", "review"], "data": [["1", "great"], ["2", "awful"]]}}),
    ("columns title,review", {"dataframe_split": {"columns": ["title", "review"], "data": [["t", "great"]]}}),
    ("a number as the text", {"inputs": [42]}),
    ("a null as the text", {"inputs": [None]}),
    ("a text, then a null", {"inputs": ["great", None]}),
    ("a text, then a number", {"inputs": ["great", 42]}),
    ("a text, then a number, as records", {"dataframe_records": [{"text": "fine"}, {"text": 42}]}),
    ("a null in records", {"dataframe_records": [{"text": "fine"}, {"text": None}]}),
    ("an empty list", {"inputs": []}),
    ("the text column read by name beside an id", {"dataframe_split": {"columns": ["id", "text"],
                                                                       "data": [[1, "great"], [2, "awful"]]}}),
    ("2,000 rows (batched)", {"inputs": ["the kettle was good"] * 2000}),
]


def register_tiny(root: Path, hubselect: Callable) -> str:
    """Register a model with ``hubselect main`` on the fixtures (a tiny random BERT); its ``models:/`` URI."""
    _tests_on_path()
    from modelkit import make_tiny_model

    tiny = make_tiny_model(root / "tiny-bert")
    flags = (f"--embedding-model {tiny} --model {tiny} --embed-examples 16 --max-length 32 --train-max-length 32 "
             "--max-train-examples 40 --k 1 --registered-model-name bad-inputs")
    done = hubselect(root, f"hubselect main --target books --candidates ok --quiet --sample-size 40 "
                           f"--target-sample-size 40 --eval-size 20 {flags}", {})
    if done.returncode:
        raise RuntimeError(f"hubselect main failed: {done.stderr[-2000:]}")
    return "models:/bad-inputs@champion"


def run_serve(root: Path, hubselect: Callable, record: Callable) -> list[dict]:
    """Serve the registered model and post each of :data:`SERVE_CASES`; one record each."""
    _tests_on_path()
    from helpers import invoke, model_server

    uri = register_tiny(root, hubselect)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    out = []
    with model_server(uri, os.environ["MLFLOW_TRACKING_URI"], root) as port:
        for what, body in SERVE_CASES:
            status, answer = invoke(port, body)
            said = " ".join((answer.get("message") or f"{len(answer.get('predictions', []))} predictions").split())
            out.append({"what": what, "command": f"POST /invocations {json.dumps(body)[:80]}", "rc": status,
                        "stderr": [said], "traceback": False})
    log = "".join(p.read_text(errors="replace") for p in root.glob("serve-*.log"))
    out.append({"what": "the server's log", "command": f"mlflow models serve -m {uri}", "rc": "-",
                "stderr": [f"{log.count('Traceback')} tracebacks in the server's log"],
                "traceback": "Traceback" in log})
    return out

