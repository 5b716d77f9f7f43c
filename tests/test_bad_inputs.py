"""Bad inputs (issue 8, input half): each is one stderr line, exit code 2, no traceback, nothing
half-made; or, for a candidate, a visible rejection with its reason and fix. Real files in temp
folders, the real CLI and real MLflow (SQLite in a temp dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubselect.cli import main
from hubselect.core.errors import HubselectError
from hubselect.data.catalog import FetchConfig, expand_candidates, fetch

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("kettle", "blender", "toaster", "knife", "pan", "mixer", "grill", "oven", "fridge", "spoon")
FAST = ["--quiet", "--sample-size", "40", "--target-sample-size", "40", "--eval-size", "20"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(n: int, topic: str, labels=("negative", "positive"), start: int = 0) -> list[dict]:
    return [{"text": f"the {WORDS[i % 10]} {topic} number {i} was {'bad' if i % 2 else 'good'}",
             "label": labels[i % len(labels)]} for i in range(start, start + n)]


def task(folder: Path, topic: str, n: int = 60, labels=("negative", "positive")) -> Path:
    write_jsonl(folder / "train.jsonl", rows(n, topic, labels))
    write_jsonl(folder / "test.jsonl", rows(30, topic, labels, start=1000))
    return folder


def by_name(catalog):
    return {c.name: c for c in catalog.candidates}


def one_error_line(capsys, code: int) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hubselect: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def no_half_made(root: Path) -> None:
    litter = [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert not litter, litter


# --- 1. target identity -------------------------------------------------------------------------


def test_symlink_and_copies_of_the_target_are_rejected_with_a_reason(tmp_path):
    cat = tmp_path / "cat"
    target = task(cat / "books", "book")
    task(cat / "dvd", "film")
    (cat / "link_books").symlink_to(target, target_is_directory=True)
    (cat / "copy_books").mkdir()
    for f in target.iterdir():
        (cat / "copy_books" / f.name).write_bytes(f.read_bytes())
    write_jsonl(cat / "leak" / "train.jsonl", [])  # the target's test file offered as a train file
    (cat / "leak" / "train.jsonl").write_bytes((target / "test.jsonl").read_bytes())
    catalog = fetch(FetchConfig(target=str(target), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20), tmp_path / "out")
    cands = by_name(catalog)
    assert "books" not in cands  # the target itself, named as it is, is excluded as before
    assert cands["dvd"].status == "ok"
    assert cands["link_books"].status == "rejected" and "is the target itself" in cands["link_books"].reason
    assert "byte-identical copy of the target" in cands["copy_books"].reason
    assert "'train.jsonl' is byte-identical to the target's 'test.jsonl'" in cands["leak"].reason
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out" / "samples").rglob("*.parquet")) == [
        "samples/candidates/dvd.parquet", "samples/target/eval.parquet", "samples/target/score.parquet"]


def test_a_symlinked_target_is_recognised_in_its_own_catalog(tmp_path):
    cat = tmp_path / "cat"
    task(cat / "books", "book")
    task(cat / "dvd", "film")
    link = tmp_path / "my_books"
    link.symlink_to(cat / "books", target_is_directory=True)
    catalog = fetch(FetchConfig(target=str(link), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20), tmp_path / "out")
    assert by_name(catalog)["books"].status == "rejected"
    assert "is the target itself" in by_name(catalog)["books"].reason


def test_candidates_sharing_most_texts_with_the_target_are_rejected_with_the_share(tmp_path):
    cat = tmp_path / "cat"
    target = task(cat / "books", "book")
    # the target's test texts, re-formatted as CSV with other labels: no file is byte-identical
    import pandas as pd

    from hubselect.data.identity import OVERLAP_THRESHOLD

    leaked = [json.loads(line) for line in (target / "test.jsonl").read_text().splitlines()]
    (cat / "reformatted").mkdir()
    pd.DataFrame({"text": [r["text"].upper() for r in leaked], "label": ["a", "b"] * 15}).to_csv(
        cat / "reformatted" / "train.csv", index=False)
    half = rows(12, "book", start=1000) + rows(28, "magazine")  # 30% overlap: kept, with a warning
    write_jsonl(cat / "partly" / "train.jsonl", half)
    catalog = fetch(FetchConfig(target=str(target), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20), tmp_path / "out")
    cands = by_name(catalog)
    assert cands["reformatted"].status == "rejected"
    assert cands["reformatted"].target_overlap == 1.0
    assert "100% of its sampled texts (30 of 30) are also the target's texts" in cands["reformatted"].reason
    assert f"threshold {OVERLAP_THRESHOLD:.0%}" in cands["reformatted"].reason
    assert cands["partly"].status == "ok" and cands["partly"].target_overlap == 0.3


# --- 2. integer labels without names ----------------------------------------------------------


def test_target_with_bare_integer_labels_fails_before_any_work(tracking, tmp_path, capsys):
    target = task(tmp_path / "ints", "book", labels=(0, 1))
    task(tmp_path / "cat" / "dvd", "film")
    line = one_error_line(capsys, main(["fetch", "--target", str(target), "--candidates",
                                        str(tmp_path / "cat"), *FAST]))
    assert "integer labels (0, 1) without names" in line and "--label-names" in line
    assert main(["fetch", "--target", str(target), "--candidates", str(tmp_path / "cat"), *FAST,
                 "--label-names", "negative,positive"]) == 0


def test_integer_label_names_come_from_a_label_text_column_or_a_dataset_card(tmp_path):
    cat = tmp_path / "cat"
    target = task(cat / "books", "book")
    write_jsonl(cat / "named" / "train.jsonl", [{**r, "label": i % 2, "label_text": r["label"]}
                                                for i, r in enumerate(rows(40, "film"))])
    write_jsonl(cat / "carded" / "train.jsonl", [{**r, "label": i % 2} for i, r in enumerate(rows(40, "tv"))])
    (cat / "carded" / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: text\n    dtype: string\n  - name: label\n    dtype:\n"
        "      class_label:\n        names:\n          '0': negative\n          '1': positive\n---\n# carded\n")
    write_jsonl(cat / "bare" / "train.jsonl", [{**r, "label": i % 2} for i, r in enumerate(rows(40, "radio"))])
    catalog = fetch(FetchConfig(target=str(target), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20, columns="bare:names=negative|positive"), tmp_path / "out")
    cands = by_name(catalog)
    for name in ("named", "carded", "bare"):
        assert cands[name].status == "ok" and cands[name].label_names == ("negative", "positive"), name
    catalog = fetch(FetchConfig(target=str(target), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20), tmp_path / "out2")
    bare = by_name(catalog)["bare"]
    assert bare.status == "rejected" and "integer labels (0, 1) without names" in bare.reason
    assert "--columns 'bare:names=" in bare.reason and "--label-names" not in bare.reason


def test_bare_integer_label_names_are_never_aligned():
    from hubselect.models.zeroshot import choose_formulation

    assert choose_formulation(["0", "1"], ["0", "1"], "auto") == "description"
    assert choose_formulation(["negative", "positive"], ["Negative", "positive"], "auto") == "head"
    with pytest.raises(HubselectError, match="formulation=head needs"):
        choose_formulation([0, 1], ["0", "1"], "head")
    assert choose_formulation(["0", "1"], ["neg", "pos"], "head", {"neg": "0", "pos": "1"}) == "head"


# --- 5. visible rejections, formats, per-candidate columns ---------------------------------------


def _bad_inputs_module():
    """``scripts/bad_inputs.py``: the fixtures behind docs/reliability-inputs.md."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "scripts" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_bad_catalog_gives_one_reason_per_candidate(tmp_path):
    _bad_inputs_module().build(tmp_path)
    catalog = fetch(FetchConfig(target=str(tmp_path / "books"), candidates=str(tmp_path / "cat"), sample_size=40,
                                target_sample_size=40, eval_size=20), tmp_path / "out")
    cands = by_name(catalog)  # manifest.json beside the task folders is no candidate
    assert sorted(cands) == ["bare_ints", "copy_books", "dvd", "empty", "leak", "link_books", "malformed",
                             "numbers", "reviews", "reworded", "semicolon"]
    assert cands["dvd"].status == "ok"
    assert cands["semicolon"].status == "ok" and cands["semicolon"].sample.n == 30  # ';' sniffed
    expected = {"empty": "is empty (0 bytes)", "malformed": "line 3 is not valid JSON",
                "numbers": "no text column (columns: a, b): name it with --columns 'numbers:text=COLUMN'",
                "reviews": "no label column (columns: body, stars): name it with --columns 'reviews:label=COLUMN'",
                "reworded": "100% of its sampled texts", "bare_ints": "integer labels (0, 1) without names",
                "link_books": "is the target itself", "copy_books": "byte-identical copy", "leak": "byte-identical"}
    for name, reason in expected.items():
        assert cands[name].status == "rejected" and reason in cands[name].reason, (name, cands[name])
        assert "--text-column" not in cands[name].reason and "--label-column" not in cands[name].reason


def test_rejections_are_printed_as_a_table_at_the_end_of_fetch(tmp_path, caplog):
    cat = tmp_path / "cat"
    target = task(cat / "books", "book")
    write_jsonl(cat / "unlabelled" / "train.jsonl", [{"text": r["text"]} for r in rows(20, "film")])
    with caplog.at_level("WARNING", logger="hubselect.data.catalog"):
        fetch(FetchConfig(target=str(target), candidates=str(cat), sample_size=40, target_sample_size=40,
                          eval_size=20), tmp_path / "out")
    (record,) = [r for r in caplog.records if "candidates rejected" in r.getMessage()]
    table = record.getMessage().splitlines()
    assert table[0] == "1 of 1 candidates rejected (details in catalog.json):"
    assert table[1].split() == ["name", "reason", "fix"]
    assert table[2].split()[0] == "unlabelled" and "name it with --columns 'unlabelled:label=COLUMN'" in table[2]


def test_columns_map_each_candidate(tmp_path):
    cat = tmp_path / "cat"
    target = task(cat / "books", "book")
    write_jsonl(cat / "reviews" / "train.jsonl", [{"title": f"t{i}", "body": r["text"], "stars": r["label"]}
                                                  for i, r in enumerate(rows(40, "film"))])
    catalog = fetch(FetchConfig(target=str(target), candidates=str(cat), sample_size=40, target_sample_size=40,
                                eval_size=20, columns="reviews:text=title|body,label=stars"), tmp_path / "out")
    reviews = by_name(catalog)["reviews"]
    assert reviews.status == "ok" and reviews.sample.text_columns == ("title", "body")
    assert reviews.sample.label_column == "stars"


def test_a_stray_manifest_beside_task_folders_is_ignored(tmp_path):
    cat = tmp_path / "cat"
    task(cat / "a", "book")
    task(cat / "b", "film")
    (cat / "manifest.json").write_text(json.dumps({"tasks": ["a", "b"]}))
    (cat / "README.md").write_text("# my catalog\n")
    assert [r.name for r in expand_candidates(str(cat))] == ["a", "b"]


# --- 6. every parameter checked before any work; one line each ---------------------------------


@pytest.mark.parametrize("extra, message", [
    (["--measures", "renyi:alpha=-1"], "measure 'renyi:alpha=-1' has a bad parameter value (alpha must be"),
    (["--measures", "renyi:alpha=foo"], "measure 'renyi:alpha=foo' has a bad parameter value"),
    (["--measures", "terms", "--select-measures", "mmd"], "--select-measures names 'mmd', which --measures does not"),
    (["--columns", "reviews"], "--columns entry 'reviews' is not '<candidate>:key=value,...'"),
    (["--columns", "reviews:txt=body"], "has a bad part 'txt=body'"),
    (["--columns", "nosuch:text=body"], "--columns names 'nosuch', which is not a candidate"),
])
def test_bad_parameters_are_one_line_before_any_work(tracking, tmp_path, capsys, extra, message):
    target = task(tmp_path / "books", "book")
    task(tmp_path / "cat" / "dvd", "film")
    line = one_error_line(capsys, main(["select", "--target", str(target), "--candidates", str(tmp_path / "cat"),
                                        *FAST, *extra]))
    assert message in line, line
    if "nosuch" not in message:  # refused while parsing: not even a run was started
        assert not (tracking / "mlflow.db").exists() or _runs() == []
    no_half_made(tmp_path)


def _runs() -> list:
    import mlflow

    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_a_one_text_target_gets_its_size_not_a_traceback(tracking, tmp_path, capsys):
    write_jsonl(tmp_path / "one" / "unlabeled.jsonl", [{"text": "a single review of a kettle"}])
    task(tmp_path / "cat" / "dvd", "film")
    line = one_error_line(capsys, main(["score", "--target", str(tmp_path / "one"), "--candidates",
                                        str(tmp_path / "cat"), *FAST, "--measures", "js,mmd"]))
    assert "the target 'one' has 1 text(s)" in line and "need at least 2" in line and "--measures terms" in line
    no_half_made(tmp_path)


def test_the_real_process_prints_one_line_and_no_traceback(tmp_path):
    target = task(tmp_path / "books", "book", labels=(0, 1))
    task(tmp_path / "cat" / "dvd", "film")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID",
                                                              "MLFLOW_EXPERIMENT_NAME")}  # leaked by other tests
    env.update(PYTHONPATH=str(ROOT), HUBSELECT_CACHE_DIR=str(tmp_path / "cache"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for extra, message in ((["--measures", "renyi:alpha=foo"], "bad parameter value"),
                           ([], "integer labels (0, 1) without names")):
        proc = subprocess.run([sys.executable, "-m", "hubselect", "score", "--target", str(target), "--candidates",
                               str(tmp_path / "cat"), *FAST, *extra], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("hubselect: error: ") and "Traceback" not in proc.stderr, lines
        assert message in lines[0], lines
    no_half_made(tmp_path)


# --- 8. one huge text ----------------------------------------------------------------------------


def test_one_huge_text_no_longer_dominates_the_term_distribution():
    from hubselect.scoring.represent.terms import MAX_TOKENS_PER_TEXT, term_counts

    texts = [f"the {WORDS[i % 10]} works well number {i}" for i in range(1000)]
    huge = "spam " * 1_000_000  # 5,000,000 characters
    counts = term_counts([*texts, huge])
    assert counts["spam"] == MAX_TOKENS_PER_TEXT
    assert counts["spam"] / sum(counts.values()) < 0.5  # was 1,000,000 of 1,006,000 tokens (99%)
    assert term_counts(texts) == term_counts(texts, max_tokens=10**9)  # ordinary texts are untouched


def test_csv_integer_labels_are_bare_too_and_user_names_are_kept(tmp_path):
    from hubselect.core.errors import TaskRejected
    from hubselect.data.columns import ColumnMapping
    from hubselect.data.refs import parse_ref
    from hubselect.data.tasks import open_task, read_sample

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "train.csv").write_text("text,label\n" + "".join(f"text {i},{i % 3}\n" for i in range(30)))
    handle = open_task(parse_ref(str(tmp_path / "t")))
    with pytest.raises(TaskRejected, match=r"integer labels \(0, 1, 2\) without names.*--label-names"):
        read_sample(handle, "train", ColumnMapping(), n=9, seed=0, with_labels=True)
    named = read_sample(handle, "train", ColumnMapping(label_names=("neg", "neu", "pos")), n=30, seed=0,
                        with_labels=True)
    assert named.label_names == ("neg", "neu", "pos") and sorted(set(named.labels)) == ["neg", "neu", "pos"]
    assert named.labels[named.texts.index("text 4")] == "neu"  # "1" read as text is index 1


def test_column_specs_parse_and_refuse_with_one_line():
    from hubselect.data.columns import ColumnMapping, parse_column_specs

    specs = parse_column_specs(" a:text=title|body,label=stars ; b:names=neg|pos;")
    assert specs == {"a": ColumnMapping(("title", "body"), "stars"), "b": ColumnMapping(label_names=("neg", "pos"))}
    for bad, message in (("a", "is not '<candidate>:key=value"), ("a:text", "bad part 'text'"),
                         ("a:text=x;a:label=y", "names candidate 'a' twice"), ("a:stars=x", "bad part 'stars=x'")):
        with pytest.raises(HubselectError, match=message):
            parse_column_specs(bad)


def test_a_folder_with_split_files_stays_a_task_even_beside_sub_folders(tmp_path):
    from hubselect.data.local import is_catalog, split_files

    task(tmp_path / "t", "book")
    task(tmp_path / "t" / "extra", "film")
    (tmp_path / "t" / "dataset_info.json").write_text("{}")
    assert not is_catalog(tmp_path / "t")
    assert sorted(split_files(tmp_path / "t")) == ["test", "train"]  # metadata JSON is not a split
