"""The fetch and score steps on Hub datasets, against the local Hub stand-in over HTTP."""

from __future__ import annotations

import json

from helpers import FAST, FETCH_FAST, artifacts, runs_of

from hubselect.cli import main


def test_hub_search_candidates_are_pinned_sampled_or_rejected(hub_endpoint, tracking, _hubselect_cache):
    code = main(["score", "--target", "acme/sentiment", "--candidates", "search:", "--language", "en",
                 "--measures", "terms", *FAST])
    assert code == 0
    (run,) = runs_of("score")
    catalog = json.loads((artifacts(run) / "fetch" / "catalog.json").read_text())
    target = catalog["target"]
    assert target["revision"] == hub_endpoint.repos["acme/sentiment"].main.sha
    assert target["score_split"] == "unsupervised" and target["eval_split"] == "test"
    assert target["label_names"] == ["negative", "positive"]
    found = {c["name"]: c for c in catalog["candidates"]}
    assert "acme__sentiment" not in found  # the target is excluded
    assert "acme__qa-pairs" not in found and "acme__french-sentiment" not in found  # filtered by the search
    big = found["acme__big-reviews"]
    assert big["status"] == "ok" and big["revision"] == hub_endpoint.repos["acme/big-reviews"].main.sha
    assert big["n"] == 120 and big["rows_seen"] < 5000  # streamed, never read whole
    assert found["acme__numbers-only"]["status"] == "rejected"
    assert "no text column" in found["acme__numbers-only"]["reason"]
    assert found["acme__legacy-script"]["status"] == "rejected"
    pins = json.loads((_hubselect_cache / "hub-pins.json").read_text())
    assert pins["acme/big-reviews"] == big["revision"] and pins["acme/sentiment"] == target["revision"]


def test_unknown_hub_dataset_is_one_clear_line(hub_endpoint, tracking, capsys):
    assert main(["fetch", "--target", "acme/no-such-set", "--candidates", "demo", *FETCH_FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'acme/no-such-set' was not found on the Hub" in err[0]
