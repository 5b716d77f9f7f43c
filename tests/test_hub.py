"""hubselect.data.hub against the local Hub stand-in, over real HTTP (nothing of ours is mocked).

Cases that need a different ``HF_ENDPOINT`` or ``HF_HUB_OFFLINE`` run in a subprocess, since
huggingface_hub and datasets read those variables once, at import.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hubselect.core.errors import HubselectError, TaskRejected
from hubselect.data import hub as hf

ROOT = Path(__file__).resolve().parents[1]

EN_TEXT_CLASSIFICATION = [  # by downloads, descending; qa-pairs and french-sentiment excluded
    "acme/sentiment",
    "acme/news-topics",
    "acme/big-reviews",
    "acme/legacy-script",
    "acme/numbers-only",
    "acme/gated-sentiment",
    "acme/moving",
]


def _run_python(code: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> dict:
    """Run ``code`` in a fresh interpreter (its own HF_* import-time settings); return its JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- search ----------------------------------------------------------------------------------


def test_search_filters_by_task_and_language_sorted_by_downloads(hub_endpoint):
    hub_endpoint.clear_log()
    assert hf.search_datasets(language="en", limit=50) == EN_TEXT_CLASSIFICATION
    (call,) = hub_endpoint.requests_for("/api/datasets", "GET")
    assert sorted(call.query["filter"]) == ["language:en", "task_categories:text-classification"]
    assert call.query["sort"] == ["downloads"]


def test_search_query_language_task_and_limit(hub_endpoint):
    assert hf.search_datasets("sentiment") == [
        "acme/sentiment", "acme/french-sentiment", "acme/gated-sentiment"]
    assert hf.search_datasets("SENTIMENT", language="fr") == ["acme/french-sentiment"]
    assert hf.search_datasets(language="en", limit=2) == EN_TEXT_CLASSIFICATION[:2]
    assert hf.search_datasets(task="question-answering") == ["acme/qa-pairs"]
    assert hf.search_datasets("no-such-thing") == []


# --- pinning ---------------------------------------------------------------------------------


def test_pin_records_sha_and_rerun_reuses_it_after_main_moves(hub_endpoint, tmp_path):
    pins = tmp_path / "pins.json"
    repo = hub_endpoint.repos["acme/moving"]
    sha_a, sha_b = repo.sha_of("a"), repo.sha_of("b")

    first = hf.pin_revision("acme/moving", None, pins_path=pins)
    assert first.sha == sha_a
    assert json.loads(pins.read_text()) == {"acme/moving": sha_a}
    assert first.tags[0] == "task_categories:text-classification"
    assert first.siblings == ("README.md", "data/train.parquet") and not first.script_based

    hub_endpoint.set_ref("acme/moving", "main", "b")  # a new commit lands on main
    try:
        hub_endpoint.clear_log()
        again = hf.pin_revision("acme/moving", None, pins_path=pins)
        assert again == first
        assert hub_endpoint.requests_for("acme/moving") == []  # pinned info comes from the cache
        rows = list(hf.open_hub_split(again, config=None, split="train"))
        assert len(rows) == 10 and rows[0]["text"].startswith("a review")  # commit a's data
        assert all(sha_a in r.path for r in hub_endpoint.requests_for("/resolve/"))

        moved = hf.pin_revision("acme/moving", "main", pins_path=pins)  # explicit: re-resolve
        assert moved.sha == sha_b
        assert json.loads(pins.read_text()) == {"acme/moving": sha_b}
    finally:
        hub_endpoint.set_ref("acme/moving", "main", "a")


def test_explicit_tag_and_sha_resolve_to_the_commit(hub_endpoint, tmp_path):
    pins = tmp_path / "pins.json"
    repo = hub_endpoint.repos["acme/sentiment"]
    old = hf.pin_revision("acme/sentiment", "v1.0", pins_path=pins)
    assert old.sha == repo.sha_of("v1") != repo.refs["main"]
    assert json.loads(pins.read_text()) == {"acme/sentiment": old.sha}
    assert hf.hub_split_names(old) == ["train", "test"]

    by_sha = hf.pin_revision("acme/sentiment", repo.refs["main"], pins_path=pins)
    assert by_sha.sha == repo.refs["main"]
    assert hf.hub_split_names(by_sha) == ["train", "test", "unsupervised"]
    assert json.loads(pins.read_text()) == {"acme/sentiment": repo.refs["main"]}


def test_unreadable_pins_file_is_one_line_error(tmp_path):
    pins = tmp_path / "pins.json"
    pins.write_text("[1, 2]")
    with pytest.raises(HubselectError, match="is not a JSON object of dataset id -> commit sha"):
        hf.pin_revision("acme/sentiment", None, pins_path=pins)


# --- loading ---------------------------------------------------------------------------------


def test_streaming_load_keeps_classlabel_names(hub_endpoint, tmp_path):
    info = hf.pin_revision("acme/sentiment", None, pins_path=tmp_path / "pins.json")
    train = hf.open_hub_split(info, config=None, split="train")
    assert type(train).__name__ == "IterableDataset"
    assert train.features["label"].names == ["negative", "positive"]
    rows = list(train)
    assert len(rows) == 60 and {r["label"] for r in rows} == {0, 1}
    unlabelled = list(hf.open_hub_split(info, config=None, split="unsupervised"))
    assert len(unlabelled) == 30 and {r["label"] for r in unlabelled} == {-1}
    with pytest.raises(TaskRejected, match=r"has no split 'validation' \(splits: train, test, "
                                           r"unsupervised\)"):
        hf.open_hub_split(info, config=None, split="validation")


def test_splits_from_file_names_and_string_labels(hub_endpoint, tmp_path):
    info = hf.pin_revision("acme/news-topics", None, pins_path=tmp_path / "pins.json")
    assert "configs" not in info.card_data
    assert hf.hub_split_names(info) == ["train", "test"]
    test = hf.open_hub_split(info, config=None, split="test")
    assert set(test.features) == {"title", "body", "label"}
    assert test.features["label"].dtype == "string"
    assert len(list(test)) == 20


def test_streaming_a_few_rows_reads_part_of_a_large_file(hub_endpoint, tmp_path):
    info = hf.pin_revision("acme/big-reviews", None, pins_path=tmp_path / "pins.json")
    size = len(hub_endpoint.repos["acme/big-reviews"].main.files["data/train.parquet"])
    hub_endpoint.clear_log()
    rows = list(hf.open_hub_split(info, config=None, split="train").take(10))
    assert [r["text"].split(":")[0] for r in rows] == [f"big review {i}" for i in range(10)]
    served = hub_endpoint.bytes_served("acme/big-reviews/resolve/")
    # Footer reads plus ~one row group (~200 KB) plus 1 MiB read-ahead: well under the ~10 MB.
    assert 0 < served < size / 3, (served, size)
    assert all(r.status == 206 for r in hub_endpoint.requests_for("train.parquet", "GET"))


def test_script_based_repo_is_refused_and_its_script_never_fetched(hub_endpoint, tmp_path):
    info = hf.pin_revision("acme/legacy-script", None, pins_path=tmp_path / "pins.json")
    assert info.script_based and "legacy-script.py" in info.siblings
    hub_endpoint.clear_log()
    with pytest.raises(TaskRejected, match="is script-based: its loading code would run on your "
                                           "machine; pass --trust-remote-code only if you trust"):
        hf.open_hub_split(info, config=None, split="train")
    with pytest.raises(TaskRejected, match="no longer runs loading scripts"):
        hf.open_hub_split(info, config=None, split="train", trust_remote_code=True)
    with pytest.raises(TaskRejected, match="is script-based"):
        hf.hub_split_names(info)
    assert hub_endpoint.requests_for("legacy-script.py") == []


def test_gated_repo_is_a_rejected_candidate(hub_endpoint, tmp_path):
    info = hf.pin_revision("acme/gated-sentiment", None, pins_path=tmp_path / "pins.json")
    with pytest.raises(TaskRejected, match=r"^dataset 'acme/gated-sentiment' is gated on the Hub"):
        hf.open_hub_split(info, config=None, split="train")


# --- errors ----------------------------------------------------------------------------------


def test_missing_repo_is_one_line_error(hub_endpoint, tmp_path):
    pins = tmp_path / "pins.json"
    with pytest.raises(HubselectError) as err:
        hf.pin_revision("acme/no-such-dataset", None, pins_path=pins)
    assert str(err.value) == (
        f"dataset 'acme/no-such-dataset' was not found on the Hub at {hub_endpoint.url}: check "
        "the name, or pass a local folder/file path")
    assert not isinstance(err.value, TaskRejected) and not pins.exists()


def test_bad_revision_is_one_line_error(hub_endpoint, tmp_path):
    pins = tmp_path / "pins.json"
    with pytest.raises(HubselectError) as err:
        hf.pin_revision("acme/sentiment", "no-such-branch", pins_path=pins)
    assert str(err.value) == (
        f"revision 'no-such-branch' of dataset 'acme/sentiment' was not found on the Hub at "
        f"{hub_endpoint.url}: check the branch, tag or commit sha")
    assert not pins.exists()


def test_unreachable_endpoint_fails_fast_with_one_line_error(tmp_path):
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _run_python("""
        import json, time
        from pathlib import Path
        from hubselect.core.errors import HubselectError
        from hubselect.data import hub as hf
        info = hf.HubDatasetInfo("acme/sentiment", "0" * 40)
        calls = {
            "search": lambda: hf.search_datasets("x"),
            "pin": lambda: hf.pin_revision("acme/sentiment", None, pins_path=Path("pins.json")),
            "open": lambda: hf.open_hub_split(info, config=None, split="train"),
        }
        out = {}
        for name, call in calls.items():
            start = time.monotonic()
            try:
                call()
                out[name] = ["no error", 0]
            except HubselectError as exc:
                out[name] = [str(exc), time.monotonic() - start]
        print(json.dumps(out))
    """, env={"HF_ENDPOINT": f"http://127.0.0.1:{port}"}, cwd=tmp_path)
    for name, (message, seconds) in result.items():
        prefix = f"cannot reach the Hugging Face Hub at http://127.0.0.1:{port} ("
        assert message.startswith(prefix), name
        assert message.endswith("or rerun with HF_HUB_OFFLINE=1 to read pinned datasets from "
                                "the cache"), name
        assert seconds < 5, (name, seconds)  # huggingface_hub's own retries take ~23 s


def test_offline_rerun_reads_the_pinned_commit_from_the_cache(hub_endpoint, tmp_path):
    pins = tmp_path / "pins.json"
    main = hf.pin_revision("acme/sentiment", None, pins_path=pins)
    assert len(hf.open_hub_split(main, config=None, split="test", streaming=False)) == 20
    offline = """
        import json
        from pathlib import Path
        from hubselect.core.errors import HubselectError
        from hubselect.data import hub as hf
        out = {}
        pins = Path("pins.json")
        info = hf.pin_revision("acme/sentiment", None, pins_path=pins)
        out["sha"], out["tags"] = info.sha, list(info.tags)
        for streaming in (False, True):
            try:
                rows = list(hf.open_hub_split(info, config=None, split="test", streaming=streaming))
                out[f"rows streaming={streaming}"] = [len(rows), rows[0]["text"]]
            except HubselectError as exc:
                out[f"rows streaming={streaming}"] = str(exc)
        for name, call in {
            "unpinned": lambda: hf.pin_revision("acme/news-topics", None, pins_path=pins),
            "search": lambda: hf.search_datasets("x"),
        }.items():
            try:
                call()
                out[name] = "no error"
            except HubselectError as exc:
                out[name] = str(exc)
        print(json.dumps(out))
    """
    hub_endpoint.clear_log()
    result = _run_python(offline, env={"HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert hub_endpoint.log == []  # not one request
    assert result["sha"] == main.sha and result["tags"] == list(main.tags)
    first_text = "review 0: " + "the film was"
    assert result["rows streaming=False"][0] == 20
    assert result["rows streaming=False"][1].startswith(first_text)
    assert result["rows streaming=True"][0] == 20
    assert result["unpinned"].startswith("HF_HUB_OFFLINE=1 is set and dataset 'acme/news-topics' "
                                         "has no pinned commit")
    assert result["search"].startswith("HF_HUB_OFFLINE=1 is set, so the Hugging Face Hub at")

    # Offline, datasets takes the most recently cached commit whatever the revision: once
    # another commit of the repo was cached later, the pinned one must be refused, not swapped.
    old = hf.pin_revision("acme/sentiment", "v1.0", pins_path=tmp_path / "other-pins.json")
    assert len(hf.open_hub_split(old, config=None, split="test", streaming=False)) == 20
    result = _run_python(offline, env={"HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert result["sha"] == main.sha
    assert result["rows streaming=False"] == (
        "HF_HUB_OFFLINE=1 is set and the datasets cache has no copy of dataset 'acme/sentiment' "
        f"at commit {main.sha[:12]} (only splits loaded once online with streaming off are "
        "cached): unset HF_HUB_OFFLINE, or use a local path")


def _hub_exception(cls: type, status: int) -> BaseException:
    import httpx2

    return cls("boom", response=httpx2.Response(status, request=httpx2.Request("GET", "http://hub.invalid")))


def _caused_by(cause: BaseException) -> BaseException:
    try:
        raise RuntimeError("wrapper") from cause
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("name, make, kind, message", [
    ("gated", lambda e: _hub_exception(e.GatedRepoError, 401), TaskRejected, "is gated on the Hub at"),
    ("revision", lambda e: _hub_exception(e.RevisionNotFoundError, 404), HubselectError, "revision 'v9' of"),
    ("missing", lambda e: _hub_exception(e.RepositoryNotFoundError, 404), HubselectError, "was not found on the Hub"),
    ("disabled", lambda e: _hub_exception(e.DisabledRepoError, 403), TaskRejected, "is disabled on the Hub"),
    ("refused", lambda e: _hub_exception(e.HfHubHTTPError, 403), TaskRejected,
     "refused access to dataset 'acme/x' (HTTP 403)"),
    ("server", lambda e: _hub_exception(e.HfHubHTTPError, 500), HubselectError, "answered HTTP 500 for dataset"),
    ("split", lambda e: ValueError("Bad split: nope"), TaskRejected, "dataset 'acme/x': Bad split: nope"),
    ("script", lambda e: RuntimeError("Dataset scripts are no longer supported"), TaskRejected, "script"),
])
def test_translate_hub_error_maps_each_kind_through_the_cause_chain(name, make, kind, message):
    from huggingface_hub import errors

    out = hf.translate_hub_error(_caused_by(make(errors)), "acme/x", "v9")
    assert type(out) is kind, name
    assert message in str(out) and "\n" not in str(out), name


def test_translate_hub_error_leaves_other_errors_alone():
    assert hf.translate_hub_error(_caused_by(KeyError("label"))) is None


# --- files without a schema ------------------------------------------------------------------

def test_a_csv_repo_is_sampled_with_the_types_of_its_first_rows(hub_endpoint, monkeypatch, tmp_path):
    """A streamed CSV split declares no features; its column types come from its first rows (public
    ``datasets`` API), so its texts and string labels are read like a Parquet repo's."""
    from hubstandin import _write_repo

    from hubselect.data.columns import ColumnMapping
    from hubselect.data.refs import parse_ref
    from hubselect.data.tasks import open_task, read_sample

    monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(tmp_path / "cache"))
    rows = "".join(f"the {'good' if i % 2 else 'bad'} review {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40))
    _write_repo(hub_endpoint.root, "acme/csv-reviews", {"r1": {"README.md": "# CSV reviews\n",
                                                               "data/train.csv": "text,label\n" + rows,
                                                               "data/test.csv": "text,label\n"}},
                refs={"main": "r1"}, downloads=1)
    hub_endpoint.reload()
    task = open_task(parse_ref("acme/csv-reviews"))
    assert task.streaming and set(task.splits) == {"train", "test"}
    sample = read_sample(task, "train", ColumnMapping(), n=20, seed=0, with_labels=True)
    assert len(sample.texts) == 20 and sample.label_names == ("neg", "pos")
    assert all(t.startswith(("the good review", "the bad review")) for t in sample.texts)
    assert all((lab == "pos") == ("good" in t) for t, lab in zip(sample.texts, sample.labels))
    with pytest.raises(TaskRejected, match=r"split .test. has no rows: choose another split or dataset"):
        read_sample(task, "test", ColumnMapping(), n=20, seed=0, with_labels=True)
