"""Task references, local formats, column mapping and sampling, on real files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from hubselect.core.errors import HubselectError, TaskRejected
from hubselect.data.catalog import expand_candidates
from hubselect.data.columns import ColumnMapping
from hubselect.data.refs import TaskRef, parse_ref
from hubselect.data.tasks import open_task, read_sample


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(n: int, labels=("neg", "pos"), key="text") -> list[dict]:
    return [{key: f"example number {i} about things", "label": labels[i % len(labels)]} for i in range(n)]


def test_parse_ref_kinds(tmp_path):
    (tmp_path / "task").mkdir()
    assert parse_ref(str(tmp_path / "task")) == TaskRef("local", str(tmp_path / "task"))
    assert parse_ref("owner/name:cfg@v1.0") == TaskRef("hub", "owner/name", "cfg", "v1.0")
    assert parse_ref("hf:owner/name").kind == "hub"
    assert parse_ref("demo:books") == TaskRef("demo", "books")
    assert parse_ref("./missing.jsonl").kind == "local"
    assert parse_ref("owner/name@abc").name == "owner__name"
    with pytest.raises(HubselectError, match="neither an existing local path nor a Hub dataset id"):
        parse_ref("not a ref")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "saved"])
def test_local_formats_load_with_labels(tmp_path, fmt):
    import datasets

    data = rows(40)
    folder = tmp_path / "task"
    folder.mkdir()
    ds = datasets.Dataset.from_list(data)
    if fmt == "jsonl":
        write_jsonl(folder / "train.jsonl", data)
    elif fmt == "csv":
        ds.to_pandas().to_csv(folder / "train.csv", index=False)
    elif fmt == "parquet":  # ClassLabel survives in parquet written by datasets
        ds.cast_column("label", datasets.ClassLabel(names=["neg", "pos"])).to_parquet(folder / "train.parquet")
    else:
        folder.rmdir()
        datasets.DatasetDict({"train": ds}).save_to_disk(str(folder))
    task = open_task(parse_ref(str(folder)))
    assert task.splits == ["train"] and task.revision.startswith("sha256:")
    sample = read_sample(task, "train", ColumnMapping(), n=10, seed=0, with_labels=True)
    assert len(sample.texts) == 10 and Counter(sample.labels) == {"neg": 5, "pos": 5}
    assert sample.label_names == ("neg", "pos")


def test_sampling_is_seeded_stratified_and_deduplicated(tmp_path):
    data = [{"text": f"text {i}", "label": "a" if i < 75 else "b"} for i in range(100)]
    data += [{"text": "text 1", "label": "a"}, {"text": "   ", "label": "b"}]  # duplicate, empty
    task = open_task(parse_ref(str(write_jsonl(tmp_path / "t" / "train.jsonl", data).parent)))
    one = read_sample(task, "train", ColumnMapping(), n=20, seed=3, with_labels=True)
    two = read_sample(task, "train", ColumnMapping(), n=20, seed=3, with_labels=True)
    other = read_sample(task, "train", ColumnMapping(), n=20, seed=4, with_labels=True)
    assert one.texts == two.texts and one.texts != other.texts
    assert Counter(one.labels) == {"a": 15, "b": 5}
    everything = read_sample(task, "train", ColumnMapping(), n=1000, seed=0, with_labels=True)
    assert len(everything.texts) == 100 and len(set(everything.texts)) == 100


def test_text_columns_are_joined_and_overridable(tmp_path):
    data = [{"title": f"Title {i}", "body": f"body {i}", "category": ["x", "y"][i % 2]} for i in range(10)]
    task = open_task(parse_ref(str(write_jsonl(tmp_path / "t" / "train.jsonl", data))))
    mapping = ColumnMapping.from_strings(text="title,body", label="category", join=" | ")
    sample = read_sample(task, "train", mapping, n=10, seed=0, with_labels=True)
    assert all(t.startswith("Title ") and " | body " in t for t in sample.texts)
    detected = read_sample(task, "train", ColumnMapping(), n=10, seed=0, with_labels=True)
    assert detected.columns.text == ("body",) and detected.columns.label == "category"
    with pytest.raises(HubselectError, match="has no column 'headline'.*--text-column"):
        read_sample(task, "train", ColumnMapping(text=("headline",)), n=5, seed=0, with_labels=False)


def test_integer_labels_take_user_names(tmp_path):
    data = [{"text": f"t{i}", "label": i % 3} for i in range(30)]
    task = open_task(parse_ref(str(write_jsonl(tmp_path / "t" / "train.jsonl", data))))
    sample = read_sample(task, "train", ColumnMapping(label_names=("a", "b", "c")), n=9, seed=0, with_labels=True)
    assert sorted(set(sample.labels)) == ["a", "b", "c"]
    with pytest.raises(TaskRejected, match="outside the 2 label names"):
        read_sample(task, "train", ColumnMapping(label_names=("a", "b")), n=9, seed=0, with_labels=True)


def test_unusable_files_are_rejected_with_a_reason(tmp_path):
    bad = tmp_path / "cp1252" / "train.jsonl"
    bad.parent.mkdir()
    bad.write_bytes(json.dumps({"text": "caf\u00e9", "label": "x"}, ensure_ascii=False).encode("cp1252") + b"\n")
    task = open_task(parse_ref(str(bad.parent)))
    with pytest.raises(TaskRejected, match="is not UTF-8.*iconv"):
        read_sample(task, "train", ColumnMapping(), n=5, seed=0, with_labels=True)
    numbers = write_jsonl(tmp_path / "nums" / "train.jsonl", [{"a": 1, "b": 2}] * 3)
    with pytest.raises(TaskRejected, match="no text column"):
        read_sample(open_task(parse_ref(str(numbers.parent))), "train", ColumnMapping(), n=5, seed=0, with_labels=True)
    one_label = write_jsonl(tmp_path / "one" / "train.jsonl", [{"text": f"t{i}", "label": "x"} for i in range(5)])
    with pytest.raises(TaskRejected, match="fewer than two distinct labels"):
        read_sample(open_task(parse_ref(str(one_label.parent))), "train", ColumnMapping(), n=5, seed=0,
                    with_labels=True)


def test_catalog_folders_expand_and_duplicates_are_refused(tmp_path):
    for name in ("a", "b"):
        write_jsonl(tmp_path / "cat1" / name / "train.jsonl", rows(4))
    write_jsonl(tmp_path / "cat2" / "a" / "train.jsonl", rows(4))
    refs = expand_candidates(str(tmp_path / "cat1"))
    assert [r.name for r in refs] == ["a", "b"]
    with pytest.raises(HubselectError, match="duplicate candidate name 'a'"):
        expand_candidates(f"{tmp_path / 'cat1'},{tmp_path / 'cat2'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubselectError, match="holds no task"):
        expand_candidates(str(tmp_path / "empty"))
