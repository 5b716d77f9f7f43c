"""Hub search at scale: ``search:`` with ``--limit 1000`` pages through ``list_datasets`` (Link
header paging, as the Hub answers) and every candidate found is pinned; against the local stand-in."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import FETCH_FAST, artifacts, runs_of
from hubstandin import _card, _write_repo

from hubselect.cli import main

N_REPOS = 1050


@pytest.fixture()
def paged_hub(hub_endpoint):
    """The stand-in answering searches 100 results a page; extra repos removed afterwards."""
    hub_endpoint.search_page_size = 100
    added = hub_endpoint.root / "scale"
    yield hub_endpoint, added
    hub_endpoint.search_page_size = None
    if added.exists():
        shutil.rmtree(added)
        hub_endpoint.reload()


def test_search_with_limit_1000_pages_through_list_datasets(paged_hub):
    from hubselect.data import hub as hf

    hub, added = paged_hub
    card = _card("# scale\n\nA card and nothing else.", task_categories=["text-classification"], language=["en"])
    for i in range(N_REPOS):
        _write_repo(hub.root, f"scale/set-{i:04d}", {"v1": {"README.md": card}}, {"main": "v1"}, downloads=10_000 + i)
    hub.reload()
    hub.clear_log()
    found = hf.search_datasets(limit=1000)
    expected = [f"scale/set-{i:04d}" for i in range(N_REPOS - 1, N_REPOS - 1001, -1)]  # most downloaded first
    assert found == expected
    pages = hub.requests_for("/api/datasets", "GET")
    pages = [r for r in pages if r.path.rstrip("/") == "/api/datasets"]
    assert len(pages) == 10 and [r.query.get("cursor", ["0"])[0] for r in pages] == [str(100 * i) for i in range(10)]


def test_paged_search_candidates_are_each_pinned(paged_hub, tracking, _hubselect_cache):
    hub, _ = paged_hub
    hub.search_page_size = 2  # the 6 English text-classification repos come in 3+ pages
    assert main(["fetch", "--target", "acme/sentiment", "--candidates", "search:", "--language", "en",
                 "--limit", "1000", *FETCH_FAST]) == 0
    catalog = json.loads((artifacts(runs_of("fetch")[0]) / "catalog.json").read_text())
    names = {c["name"] for c in catalog["candidates"]}
    assert {"acme__big-reviews", "acme__news-topics", "acme__numbers-only"} <= names
    pins = json.loads((_hubselect_cache / "hub-pins.json").read_text())
    for cand in catalog["candidates"]:
        repo_id = cand["name"].replace("__", "/")
        if cand["status"] == "ok":
            assert cand["revision"] == hub.repos[repo_id].main.sha == pins[repo_id]
    assert len([r for r in hub.requests_for("/api/datasets", "GET") if r.path.rstrip("/") == "/api/datasets"]) >= 3
