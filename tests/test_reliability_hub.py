"""Issue 15, the Hub side: remote metric code needs consent, Hub ids are checked as the Hub does,
transient Hub failures are retried with backoff on every call kind, and a script-only repo is told
the truth. Everything runs against the real HTTP stand-in (tests/hubstandin.py), which injects
the faults; nothing of ours is mocked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hubstandin import RESET, write_model_repo

from hubselect.core.errors import HubselectError, TaskRejected
from hubselect.data import hub as hf

ROOT = Path(__file__).resolve().parents[1]
MARKER_METRIC = "acme/marker-metric"


@pytest.fixture()
def hub(hub_endpoint, monkeypatch):
    """The stand-in with no faults and an empty log; short retry waits (the budget stays 60 s)."""
    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BASE_S", "0.02")
    hub_endpoint.clear_faults()
    hub_endpoint.clear_log()
    yield hub_endpoint
    hub_endpoint.clear_faults()


def _child(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with its own Hugging Face caches under ``tmp_path``."""
    home = tmp_path / "hf-child"
    full = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
            "HF_XET_CACHE": str(home / "xet"), "HF_DATASETS_CACHE": str(home / "datasets"),
            "HF_UPDATE_DOWNLOAD_COUNTS": "0", **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


# --- remote metric code needs --trust-remote-code --------------------------------------------


def test_a_hub_metric_is_refused_without_trust_before_any_call(hub, tmp_path, monkeypatch):
    from hubselect.models.evaluation import compute_metrics, load_metric, resolve_metrics
    from hubselect.options import build_parser, configs_for

    marker = tmp_path / "marker"
    monkeypatch.setenv("HUBSELECT_TEST_MARKER", str(marker))
    args = build_parser().parse_args(["evaluate", "--target", "demo:kitchen", "--metrics", f"f1,{MARKER_METRIC}"])
    calls = {
        "options": lambda: configs_for("evaluate", args),
        "resolve": lambda: resolve_metrics(f"accuracy,{MARKER_METRIC}"),
        "load": lambda: load_metric(MARKER_METRIC),
        "compute": lambda: compute_metrics([MARKER_METRIC], ["a"], ["a"], ["a", "b"]),
        "canonical": lambda: resolve_metrics("bleu"),
    }
    for name, call in calls.items():
        with pytest.raises(HubselectError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message, name
        assert "is not shipped with hubselect: it is a script on the Hub that would run on your machine; pass " \
               "--trust-remote-code true only if you trust it, or use one of accuracy, f1" in message, name
    assert not marker.exists()
    assert hub.requests_for("/spaces/") == []  # refused before any network call


def test_with_trust_remote_code_the_options_load_the_hub_metric(hub, tmp_path):
    """The positive control: the stand-in's metric script does run (writes the marker) once trusted."""
    marker = tmp_path / "marker"
    done = _child(f"""
        import json
        from hubselect.models.evaluation import compute_metrics
        from hubselect.options import build_parser, configs_for
        args = build_parser().parse_args(["evaluate", "--target", "demo:kitchen", "--metrics", "{MARKER_METRIC}",
                                          "--trust-remote-code", "true"])
        transfer = configs_for("evaluate", args)[-1]
        scores = compute_metrics(transfer.metrics, ["a", "b"], ["a", "a"], ["a", "b"], trust_remote_code=True)
        print(json.dumps([transfer.trust_remote_code, list(transfer.metrics), scores]))
    """, tmp_path, HUBSELECT_TEST_MARKER=str(marker))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [True, [MARKER_METRIC], {MARKER_METRIC: 0.5}]
    assert marker.read_text() == "imported"
    assert [r.status for r in hub.requests_for(f"/spaces/{MARKER_METRIC}/resolve/main/")] == [200, 200]


# --- Hub ids are checked as the Hub checks them ---------------------------------------------


@pytest.mark.parametrize("text", ["hf:acme/..", "acme/x--y", "hf:acme/sentiment.git", "hf:acme/-x@main",
                                  "hf:acme/" + "x" * 97, "hf:acme/.hidden:default"])
def test_an_invalid_hub_id_is_a_one_line_error_before_any_call(hub, text):
    from hubselect.data.refs import parse_ref

    with pytest.raises(HubselectError) as err:
        parse_ref(text)
    assert re.fullmatch(rf"task '{re.escape(text)}' is not a valid Hub id \([^\n]+\): write "
                        r"'owner/name\[:config\]\[@revision\]'", str(err.value))
    assert hub.log == []


def test_an_invalid_target_id_is_one_stderr_line_before_any_progress_bar(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = subprocess.run([sys.executable, "-m", "hubselect", "fetch", "--target", "hf:acme/..", "--candidates", "demo"],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("hubselect: error: task 'hf:acme/..' is not a valid Hub id") \
        and done.stderr.count("\n") == 1, done.stderr
    assert hub.log == [] and not (tmp_path / "mlflow.db").exists()  # no run was started either


def test_pinning_an_invalid_id_is_a_one_line_error(hub, tmp_path):
    with pytest.raises(HubselectError, match=r"^dataset 'acme/\.\.' is not a valid Hub id \(.+\): write 'owner/name'$"):
        hf.pin_revision("acme/..", None, pins_path=tmp_path / "pins.json")
    assert hub.log == []


# --- transient Hub failures are retried ------------------------------------------------------

_EVERY_CALL_KIND = """
    import json, logging
    from pathlib import Path
    logging.basicConfig(level=logging.WARNING)  # what hubselect --quiet shows
    from huggingface_hub import HfApi
    from hubselect.data import hub as hf
    pins = Path("pins.json")
    found = hf.search_datasets("sentiment")                                     # search
    info = hf.pin_revision("acme/sentiment", None, pins_path=pins)               # info
    topics = hf.pin_revision("acme/news-topics", None, pins_path=pins)
    splits = hf.hub_split_names(topics)                                           # tree
    rows = len(list(hf.open_hub_split(info, config=None, split="train")))        # resolve: HEAD, ranged GETs
    paths = HfApi().get_paths_info("acme/sentiment", ["data/train.parquet"],     # paths-info
                                   repo_type="dataset", revision=info.sha)
    print(json.dumps([found, splits, rows, [p.path for p in paths]]))
"""

_KINDS = {  # call kind: (path pattern, method, injected answers, what the client sees in the end)
    "search": (r"^/api/datasets$", "GET", [429, 503], 200),
    "info": (r"^/api/datasets/acme/sentiment$", "GET", [429, 503], 200),
    "tree": (r"^/api/datasets/acme/news-topics/tree/", "GET", [429, 503], 200),
    "resolve HEAD": (r"^/datasets/acme/sentiment/resolve/\w+/README\.md$", "HEAD", [429, 503], 200),
    "resolve GET (whole file)": (r"^/datasets/acme/news-topics/resolve/\w+/README\.md$", "GET", [429, 503], 200),
    "resolve GET (streamed range)": (r"^/datasets/acme/sentiment/resolve/\w+/data/train\.parquet$", "GET",
                                     [429, RESET, 503], 206),
    "paths-info": (r"^/api/datasets/acme/sentiment/paths-info/", "POST", [429, RESET, 503], 200),
}


def test_every_call_kind_survives_429_then_503_without_warnings(hub, tmp_path):
    for pattern, method, answers, _ in _KINDS.values():
        hub.inject(pattern, answers, method=method, retry_after=1)
    done = _child(_EVERY_CALL_KIND, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    found, splits, rows, paths = json.loads(done.stdout.splitlines()[-1])
    assert found[0] == "acme/sentiment" and splits == ["train", "test"] and rows == 60
    assert paths == ["data/train.parquet"]
    for kind, (pattern, method, answers, ok) in _KINDS.items():
        seen = [r for r in hub.log if r.method == method and re.search(pattern, r.path)]
        assert [r.status for r in seen[:len(answers) + 1]] == [0 if a == RESET else a for a in answers] + [ok], kind
        assert seen[1].at - seen[0].at >= 1.0, kind  # Retry-After: 1 was honoured
    # huggingface_hub's own retry warnings (doubled, under --quiet) no longer appear
    assert not re.search(r"(?i)retry|thrown while requesting", done.stderr), done.stderr[-2000:]


def test_an_endless_500_fails_in_one_line_with_the_try_count(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BUDGET_S", "2")
    hub.inject(r"^/api/datasets/acme/news-topics$", [500], forever=True)
    started = time.monotonic()
    with pytest.raises(HubselectError) as err:
        hf.pin_revision("acme/news-topics", None, pins_path=tmp_path / "pins.json")
    assert time.monotonic() - started < 10
    match = re.fullmatch(rf"the Hub at {re.escape(hub.url)} answered HTTP 500 for dataset 'acme/news-topics'; "
                         r"gave up after (\d+) tries in \d+ s: retry later, or pass a local folder/file path",
                         str(err.value))
    assert match, str(err.value)
    deadline = time.monotonic() + 5  # the stand-in logs a request after answering it: let the last one land
    while len(hub.requests_for("/api/datasets/acme/news-topics")) < int(match[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(match[1]) == len(hub.requests_for("/api/datasets/acme/news-topics")) >= 3


def test_a_retry_after_beyond_the_budget_gives_up_at_once(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BUDGET_S", "5")
    hub.inject(r"^/api/datasets/acme/news-topics$", [429], retry_after=3600, forever=True)
    started = time.monotonic()
    with pytest.raises(HubselectError, match=r"answered HTTP 429 \(Retry-After 3600 s\) for dataset "
                                             r"'acme/news-topics'; gave up after 1 try in 0 s: retry later"):
        hf.pin_revision("acme/news-topics", None, pins_path=tmp_path / "pins.json")
    assert time.monotonic() - started < 4


def test_a_stream_whose_reads_keep_failing_ends_in_one_line(hub, tmp_path, monkeypatch):
    info = hf.pin_revision("acme/french-sentiment", None, pins_path=tmp_path / "pins.json")
    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BUDGET_S", "1")
    hub.inject(r"^/datasets/acme/french-sentiment/resolve/\w+/data/train\.parquet$", [503], method="GET",
               forever=True)
    with pytest.raises(HubselectError) as err:
        list(hf.open_hub_split(info, config=None, split="train"))
    assert re.search(r"answered HTTP 503 .*gave up after \d+ tries in \d+ s: retry later", str(err.value))
    assert "\n" not in str(err.value)


def test_threads_pinning_at_once_each_retry_their_own_failures(hub, tmp_path):
    repos = ["acme/sentiment", "acme/news-topics", "acme/numbers-only", "acme/qa-pairs", "acme/french-sentiment",
             "acme/big-reviews"]
    for repo in repos:
        hub.inject(rf"^/api/datasets/{repo}$", [503, 429], retry_after=0)
    with ThreadPoolExecutor(len(repos)) as pool:
        pinned = list(pool.map(lambda r: hf.pin_revision(r, None, pins_path=tmp_path / f"{r[5:]}.json"), repos))
    assert [p.sha for p in pinned] == [hub.repos[r].refs["main"] for r in repos]
    for repo in repos:
        assert [r.status for r in hub.requests_for(f"/api/datasets/{repo}") if r.path.endswith(repo)] == [503, 429, 200]


# --- an encoder downloaded from the Hub gets the same retries ----------------------------------

TINY_MODEL = "acme/tiny-encoder"


@pytest.fixture()
def model_repo(hub, tmp_path):
    """A tiny random BERT served as the model repo :data:`TINY_MODEL`."""
    from modelkit import make_tiny_model

    if TINY_MODEL not in hub.models:
        write_model_repo(hub.root, TINY_MODEL, make_tiny_model(tmp_path / "tiny"))
        hub.reload()
    return hub


def _resolve_in_child(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``resolve_model(TINY_MODEL)`` in a fresh interpreter (no Hub call made before it, so nothing else
    installed the retries) with empty Hugging Face caches."""
    return _child(f"""
        from hubselect.core.errors import HubselectError
        from hubselect.data.encoder import resolve_model
        try:
            print("resolved", resolve_model("{TINY_MODEL}").revision)
        except HubselectError as exc:
            print("error:", exc)
    """, tmp_path, HUBSELECT_HUB_RETRY_BASE_S="0.02", **env)


def test_a_hub_model_download_survives_429_then_503(model_repo, tmp_path):
    info = rf"^/api/models/{TINY_MODEL}(/revision/[^/]+)?$"
    model_repo.inject(info, [429, 503], retry_after=1)
    model_repo.inject(rf"^/{TINY_MODEL}/resolve/[^/]+/config\.json$", [503, RESET], method="GET")
    done = _resolve_in_child(tmp_path)
    assert done.stdout.startswith("resolved "), done.stdout + done.stderr[-2000:]
    assert [r.status for r in model_repo.requests_for(f"/api/models/{TINY_MODEL}")][:3] == [429, 503, 200]
    # the stand-in logs a request once answered, so a reset may be logged after the next try
    statuses = [r.status for r in model_repo.requests_for("config.json", "GET")]
    assert {0, 503} <= set(statuses) and 200 in statuses, statuses


def test_a_hub_model_that_keeps_failing_is_one_line_with_the_try_count(model_repo, tmp_path):
    model_repo.inject(rf"^/api/models/{TINY_MODEL}(/revision/[^/]+)?$", [500], forever=True)
    done = _resolve_in_child(tmp_path, HUBSELECT_HUB_RETRY_BUDGET_S="1")
    assert re.fullmatch(rf"error: model '{TINY_MODEL}' cannot be loaded: the Hub at {re.escape(model_repo.url)} "
                        rf"\(GET /api/models/{TINY_MODEL}/revision/main\): gave up after \d+ tries in \d+ s "
                        r"\(last: HTTP 500\): retry later, or pass a local folder/file path\n", done.stdout), \
        done.stdout + done.stderr[-2000:]


def test_a_malformed_retry_setting_is_a_one_line_error(monkeypatch):
    from hubselect.data.retry import RetryPolicy

    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BUDGET_S", "a minute")
    with pytest.raises(HubselectError, match=r"^HUBSELECT_HUB_RETRY_BUDGET_S='a minute' is not a number of "
                                             r"seconds >= 0: fix or unset it$"):
        RetryPolicy.from_env()


# --- smaller ---------------------------------------------------------------------------------


def test_a_trusted_script_only_repo_is_told_that_datasets_cannot_run_scripts(hub):
    from hubselect.data.refs import parse_ref
    from hubselect.data.tasks import open_task

    with pytest.raises(TaskRejected) as err:
        open_task(parse_ref("acme/legacy-script"), trust_remote_code=True)
    message = str(err.value)
    assert message.startswith("dataset 'acme/legacy-script' is script-based, and datasets ")
    assert "no longer runs loading scripts at all, even with --trust-remote-code: use a repo that holds data " \
           "files (the Hub's Parquet conversion, owner/name@refs/convert/parquet, where it made one)" in message
    assert "pass --trust-remote-code only" not in message
    assert hub.requests_for("legacy-script.py") == []


def test_the_stand_in_names_its_notes_by_a_path_relative_to_the_repository():
    text = (ROOT / "tests" / "hubstandin.py").read_text()
    assert "``../shared/notes/hub-stand-in.md`` from the repository root" in text.split('"""')[1]
    assert "/work/" not in text
