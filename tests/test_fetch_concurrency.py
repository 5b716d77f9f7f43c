"""Issue 17, part 1: candidates are fetched concurrently (threads), and the catalog is the one a
sequential fetch writes, order included; a 429 in the middle is retried in its own thread without
losing or duplicating a candidate. Against the real HTTP stand-in (tests/hubstandin.py), nothing of
ours mocked.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hubstandin import build_synthetic_repos

from hubselect.core.errors import HubselectError
from hubselect.data.catalog import FetchConfig, fetch

OWNER = "concurrent"
N_SYNTHETIC = 6
# Every English text-classification repo of the stand-in but the target: the 6 synthetic ones and the fixtures,
# three of which are rejected (no text column, a loading script, gated).
SETTINGS = dict(target="acme/sentiment", candidates="search:", language="en", limit=1000, sample_size=20,
                target_sample_size=20, eval_size=10)


@pytest.fixture(scope="module")
def synthetic_hub(hub_endpoint):
    """The stand-in with 6 more small repos (fewer downloads than the fixtures); removed afterwards."""
    build_synthetic_repos(hub_endpoint.root, N_SYNTHETIC, rows=40, owner=OWNER, downloads=40)
    hub_endpoint.reload()
    yield hub_endpoint
    shutil.rmtree(hub_endpoint.root / OWNER, ignore_errors=True)
    hub_endpoint.reload()


def _fetch(folder: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, workers: int, progress=None):
    """Fetch into ``folder`` with a cache of its own (so nothing is read back from another run's)."""
    monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(cache))
    return fetch(FetchConfig(**SETTINGS, fetch_workers=workers), folder, progress=progress)


def _content(folder: Path) -> tuple[dict, dict[str, bytes]]:
    """catalog.json without its timing, and every sample file's bytes."""
    catalog = json.loads((folder / "catalog.json").read_text())
    catalog.pop("seconds")
    return catalog, {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def sequential(synthetic_hub, tmp_path_factory):
    """The reference: the same fetch, one candidate at a time."""
    base = tmp_path_factory.mktemp("sequential")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUBSELECT_HUB_RETRY_BASE_S", "0.02")
        _fetch(base / "out", base / "cache", mp, workers=1)
    return _content(base / "out")


def test_concurrent_fetch_writes_the_sequential_catalog(synthetic_hub, sequential, tmp_path, monkeypatch):
    seen = []
    catalog = _fetch(tmp_path / "out", tmp_path / "cache", monkeypatch, workers=16,
                     progress=lambda name, done, total: seen.append((name, done, total)))
    assert _content(tmp_path / "out") == sequential  # order, rejections with their reasons, samples
    names = [c.name for c in catalog.candidates]
    assert len(names) == N_SYNTHETIC + 6
    assert [n for n in names if n.startswith(OWNER)] == [f"{OWNER}__set-{i:04d}" for i in range(N_SYNTHETIC)]
    rejected = {"acme__numbers-only", "acme__legacy-script", "acme__gated-sentiment"}
    assert {c.name for c in catalog.rejected()} == rejected
    assert all(c.reason for c in catalog.rejected())
    # progress: candidates done out of the total, each once, counted up in the calling thread
    assert [d for _, d, _ in seen] == list(range(1, len(names) + 1)) and {t for *_, t in seen} == {len(names)}
    assert sorted(n for n, *_ in seen) == sorted(names)
    # every thread's pin was kept (the pins file is read, changed and written by 16 threads at once)
    pins = json.loads((tmp_path / "cache" / "hub-pins.json").read_text())
    assert {r.replace("/", "__") for r in pins} == {*names, "acme__sentiment"}


def test_a_429_in_the_middle_of_a_concurrent_fetch_is_retried_once_per_candidate(synthetic_hub, sequential, tmp_path,
                                                                               monkeypatch):
    hub = synthetic_hub
    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BASE_S", "0.02")
    hub.clear_log()
    faults = {  # candidate: the call answered 429 then 503 before it gets its answer (the last item)
        "set-0003": (rf"^/api/datasets/{OWNER}/set-0003$", "GET", 200),  # info
        "set-0004": (rf"^/datasets/{OWNER}/set-0004/resolve/\w+/\.huggingface\.yaml$", "HEAD", 404),  # no such file
        "set-0005": (rf"^/datasets/{OWNER}/set-0005/resolve/\w+/data/train\.parquet$", "GET", 206),  # a ranged read
    }
    try:
        for pattern, method, _ in faults.values():
            hub.inject(pattern, [429, 503], method=method, retry_after=0)
        catalog = _fetch(tmp_path / "out", tmp_path / "cache", monkeypatch, workers=16)
    finally:
        hub.clear_faults()
    assert _content(tmp_path / "out") == sequential  # none lost, none twice, same samples
    names = [c.name for c in catalog.candidates]
    assert len(names) == len(set(names)) == len(sequential[0]["candidates"])
    for name, (pattern, method, answer) in faults.items():
        statuses = [r.status for r in hub.log if r.method == method and re.search(pattern, r.path)]
        assert statuses[:3] == [429, 503, answer], name
        assert catalog.candidates[names.index(f"{OWNER}__{name}")].usable, name


def test_a_hub_that_keeps_failing_one_candidate_stops_a_concurrent_fetch_in_one_line(synthetic_hub, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BASE_S", "0.02")
    monkeypatch.setenv("HUBSELECT_HUB_RETRY_BUDGET_S", "0.5")
    synthetic_hub.inject(rf"^/api/datasets/{OWNER}/set-0002$", [503], forever=True)
    try:
        with pytest.raises(HubselectError) as err:
            _fetch(tmp_path / "out", tmp_path / "cache", monkeypatch, workers=16)
    finally:
        synthetic_hub.clear_faults()
    assert re.fullmatch(rf"the Hub at http://[\d.:]+ answered HTTP 503 for dataset '{OWNER}/set-0002'; gave up "
                        r"after \d+ tries in \d+ s: retry later, or pass a local folder/file path", str(err.value))
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("workers", [0, -3, 2.5, "8", True])
def test_a_bad_worker_count_is_a_one_line_error(workers):
    with pytest.raises(HubselectError) as err:
        FetchConfig(fetch_workers=workers)
    assert str(err.value) == (f"fetch-workers must be a whole number of at least 1, got {workers!r}: pass "
                              "--fetch-workers 16 (the default), or 1 to fetch one candidate at a time")


def test_fetch_workers_is_a_param_but_not_a_catalog_setting(synthetic_hub, sequential):
    assert FetchConfig(fetch_workers=4).params()["fetch_workers"] == 4
    assert "fetch_workers" not in sequential[0]["settings"]


def test_local_and_demo_candidates_share_the_pool_and_the_sequential_result(tmp_path, monkeypatch):
    """No Hub at all: the demo catalog is first written by this fetch (the target is a local folder),
    once, before the threads that read it start."""
    target = tmp_path / "target"
    target.mkdir()
    rows = [{"text": f"a note {i} on the kettle", "label": ("good", "bad")[i % 2]} for i in range(40)]
    (target / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    folders = {}
    for workers in (1, 16):
        cache = tmp_path / f"cache-{workers}"
        monkeypatch.setenv("HUBSELECT_CACHE_DIR", str(cache))
        fetch(FetchConfig(target=str(target), candidates="demo", sample_size=30, target_sample_size=30, eval_size=0,
                          fetch_workers=workers), tmp_path / f"out-{workers}")
        folders[workers] = tmp_path / f"out-{workers}"
        catalog = folders[workers] / "catalog.json"  # the demo tasks live in each run's own cache
        catalog.write_text(catalog.read_text().replace(str(cache), "<cache>"))
    assert _content(folders[16]) == _content(folders[1])
    assert len(json.loads((folders[16] / "catalog.json").read_text())["candidates"]) > 1
