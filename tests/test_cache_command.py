"""Issue 16, part 4: ``hubselect cache info`` says where the cache is and what it holds, and ``hubselect
cache prune --older-than --max-size`` removes whole entries, oldest first, never one being written or
one whose key lock a running job holds.

Real entries written by the cache's own writers into a temp cache folder, the real CLI in process,
and a real second process holding a key lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hubselect
from hubselect.cli import main
from hubselect.core.cache import atomic_path, atomic_write_json, key_lock, process_tag, read_entry, write_entry

ROOT = Path(hubselect.__file__).resolve().parent.parent  # what child processes import
DAY = 86400.0


def age(paths: list[Path], days: float) -> None:
    """Date the files (and folders, with what is in them) as written ``days`` ago."""
    when = time.time() - days * DAY
    for path in paths:
        for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
            os.utime(item, (when, when))


@pytest.fixture()
def cache(_hubselect_cache: Path) -> dict[str, list[Path]]:
    """A cache with entries of four kinds and the Hub pins, written 90, 40, 10 and 1 day(s) ago."""
    root = _hubselect_cache
    old_emb = write_entry(root / "embeddings" / "e1.npy", b"e" * 4000)
    sample = [write_entry(root / "samples" / "s1.parquet", b"s" * 2000),
              write_entry(root / "samples" / "s1.json", b"{}")]  # one sample: its Parquet and its meta
    terms = write_entry(root / "terms" / "t1.json", b"t" * 1000)
    with key_lock(root / "models" / "m1"), atomic_path(root / "models" / "m1") as tmp:
        tmp.mkdir()
        (tmp / "model.safetensors").write_bytes(b"w" * 10_000)
    model = root / "models" / "m1"
    atomic_write_json(root / "hub-pins.json", {"acme/sentiment": "a" * 40})
    entries = {"embeddings": [old_emb, old_emb.with_name("e1.npy.sha256")],
               "samples": [*sample, *(p.with_name(p.name + ".sha256") for p in sample)],
               "terms": [terms, terms.with_name("t1.json.sha256")], "models": [model]}
    for kind, days in (("embeddings", 90), ("samples", 40), ("models", 10), ("terms", 1)):
        age(entries[kind], days)
    return entries


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_info_shows_the_location_size_and_entries_per_kind(cache, _hubselect_cache, capsys):
    code, out, _ = run_cli(["cache", "info"], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith(f"cache {_hubselect_cache}: 17.3 KB in 4 entries, written ")
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[2:7] if line.strip()}
    assert rows == {"kind": ["entries", "size"], "embeddings": ["1", "4.1"], "models": ["1", "10.0"],
                    "samples": ["1", "2.1"], "terms": ["1", "1.1"]}
    code, out, _ = run_cli(["cache", "info", "--json"], capsys)
    answer = json.loads(out)
    assert code == 0 and answer["location"] == str(_hubselect_cache) and answer["entries"] == 4
    assert answer["kinds"]["samples"]["entries"] == 1  # the Parquet and its meta are one entry
    assert answer["kinds"]["models"]["bytes"] == 10_000
    assert time.time() - answer["oldest"] == pytest.approx(90 * DAY, abs=600)
    assert time.time() - answer["newest"] == pytest.approx(1 * DAY, abs=600)


def test_prune_older_than_removes_whole_old_entries_and_keeps_the_rest(cache, _hubselect_cache, capsys):
    live = _hubselect_cache / "embeddings" / f".e2.npy.{process_tag()}-x.tmp"  # a write in progress (this process)
    live.write_bytes(b"partial")
    age([live], 100)
    code, out, _ = run_cli(["cache", "prune", "--older-than", "30d"], capsys)
    assert code == 0 and out.startswith("removed 2 entries (6.2 KB)\n"), out
    assert not any(p.exists() for p in cache["embeddings"] + cache["samples"])  # data and checksums
    assert live.exists() and (_hubselect_cache / "hub-pins.json").exists()
    assert read_entry(cache["terms"][0], bytes) == b"t" * 1000  # what is kept still reads back
    assert (cache["models"][0] / "model.safetensors").exists()
    code, out, _ = run_cli(["cache", "prune", "--older-than", "5", "--json"], capsys)  # a bare number: days
    answer = json.loads(out)
    assert code == 0 and answer["removed"] == 1 and not cache["models"][0].exists()
    assert list(answer["kinds"]) == ["terms"]


def test_prune_max_size_removes_the_oldest_entries_until_the_cache_fits(cache, capsys):
    code, out, _ = run_cli(["cache", "prune", "--max-size", "11.5kb", "--json"], capsys)
    answer = json.loads(out)
    assert code == 0 and answer["removed"] == 2 and answer["bytes"] == 11_070  # embeddings, then samples
    assert sorted(answer["kinds"]) == ["models", "terms"]
    assert not cache["embeddings"][0].exists() and not cache["samples"][0].exists()
    code, out, _ = run_cli(["cache", "prune", "--max-size", "0"], capsys)
    assert code == 0 and "in 0 entries" in out and not cache["terms"][0].exists()


HOLD = r"""
import sys
from hubselect.core.cache import key_lock

with key_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


def test_prune_keeps_an_entry_whose_key_lock_a_running_job_holds(cache, capsys):
    model = cache["models"][0]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(model)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, _ = run_cli(["cache", "prune", "--max-size", "0", "--json"], capsys)
        answer = json.loads(out)
        assert code == 0 and answer["removed"] == 3 and answer["kept_in_use"] == 1
        assert (model / "model.safetensors").exists() and list(answer["kinds"]) == ["models"]
    finally:
        holder.communicate(input="", timeout=60)
    code, out, _ = run_cli(["cache", "prune", "--max-size", "0", "--json"], capsys)  # the job is done
    assert code == 0 and json.loads(out)["removed"] == 1 and not model.exists()


def test_info_uses_the_platform_cache_folder_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HUBSELECT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    code, out, _ = run_cli(["cache", "info", "--json"], capsys)
    answer = json.loads(out)
    assert code == 0 and answer["location"] == str(tmp_path / "xdg" / "hubselect") and answer["entries"] == 0
    assert not (tmp_path / "xdg").exists()


@pytest.mark.parametrize("args, message", [
    (["--older-than", "3x"], "--older-than '3x' is not a duration: give days (30) or a number with a unit "
                             "s, m, h, d or w (12h, 2w)"),
    (["--max-size", "5XB"], "--max-size '5XB' is not a size: give bytes or a number with a unit KB, MB, GB, TB "
                            "or KiB, MiB, GiB, TiB (500MB, 5GB)"),
    (["--max-size=-1GB"], "--max-size '-1GB' is not a size"),
    ([], "hubselect cache prune needs a limit: give --older-than (e.g. 30d) and/or --max-size (e.g. 5GB)"),
])
def test_bad_prune_values_are_one_line_errors_that_remove_nothing(cache, args, message, capsys):
    code, out, err = run_cli(["cache", "prune", *args], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"hubselect: error: {message}"), err
    assert all(p.exists() for paths in cache.values() for p in paths)
