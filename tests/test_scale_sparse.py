"""Scoring at scale (issue 17, part 2): sparse term rows, streamed candidates, dataset inputs from the catalog.

* Every term measure gives on a ``scipy.sparse`` ``q`` the values of its dense code path (the one
  every measure had before), on random counts and on real texts, and never makes the rows dense.
* ``hubselect score`` (candidates read, tokenised and scored a chunk at a time into a sparse
  matrix) writes the ``scores.csv`` of the all-at-once dense computation.
* Dataset inputs logged from what the catalog records equal those of the read samples, with the
  samples gone.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import FAST, artifacts, runs_of

from hubselect.cli import main
from hubselect.data.entries import Catalog
from hubselect.scoring.divergence import MEASURES, get_measure
from hubselect.scoring.represent.terms import SparseCounts, count_matrix, term_counts
from hubselect.scoring.scores import ScoreConfig, score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TERM_SPECS = [s for s in MEASURES if s.kind == "terms"]
#: Every term measure, and the parameterised variants whose parameters enter the sparse derivation.
VARIANTS = TERM_SPECS + [get_measure(n) for n in ("renyi:alpha=0.5", "renyi:alpha=2", "renyi:alpha=0.99:epsilon=1e-3",
                                                  "kl:epsilon=1e-2", "js:base=2.718281828459045")]
ids = lambda s: s.name  # noqa: E731


def random_counts(seed: int, vocab: int = 400, m: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Integer counts with the cases the sparse split handles apart: a row equal to the target, a row
    disjoint from it, a row covering all of it, rows with terms the target lacks, and terms no one uses."""
    rng = np.random.default_rng(seed)
    p = rng.poisson(0.4, vocab).astype(float)
    p[vocab - 50:] = 0  # terms only the candidates use
    p[0] += 1
    q = rng.poisson(rng.uniform(0.02, 1.5, (m, 1)), (m, vocab)).astype(float)
    q[:, 1] += 1
    q[:, vocab - 10:] = 0  # terms nobody uses: they only widen V (the smoothing of KL and Renyi)
    q[2] = p
    q[3] = 0
    q[3, vocab - 20] = 7  # disjoint from the target
    q[4] = p + rng.poisson(2.0, vocab) * (p > 0)
    q[5] = 3 * p  # proportional
    return p, q


def close(a, b) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec", VARIANTS, ids=ids)
@pytest.mark.parametrize("seed", range(4))
def test_sparse_rows_give_the_dense_values(spec, seed):
    p, q = random_counts(seed)
    dense = spec(p, q)
    close(spec(p, sp.csr_array(q.astype(np.int32))), dense)
    close(spec(sp.coo_array(p), sp.csr_matrix(q)), dense)  # a sparse target, the matrix type
    close(spec(p, sp.csr_array(q[7])), spec(p, q[7]))  # one 1-D row gives a float, as dense
    assert isinstance(spec(p, sp.csr_array(q[7])), float)
    close(spec(p, messy_csr(q)), dense)


def messy_csr(q: np.ndarray) -> sp.csr_array:
    """``q`` as a CSR matrix not in canonical form: each row's entries unsorted, stored twice as halves,
    plus a stored 0 on a term the row lacks."""
    data, indices, indptr = [], [], [0]
    for row in q:
        cols = np.flatnonzero(row)[::-1]
        zero = np.flatnonzero(row == 0)[:1]
        indices += [cols, cols, zero]
        data += [row[cols] / 2, row[cols] / 2, np.zeros(zero.size)]
        indptr.append(indptr[-1] + 2 * cols.size + zero.size)
    matrix = sp.csr_array((np.concatenate(data), np.concatenate(indices), indptr), shape=q.shape)
    assert not matrix.has_canonical_format
    return matrix


@pytest.mark.parametrize("spec", VARIANTS, ids=ids)
def test_sparse_rows_are_checked_like_dense_ones(spec):
    p, q = random_counts(0)
    for bad, words in ((sp.csr_array(-q), "negative"), (sp.csr_array(q[:, :-1]), "columns"),
                       (sp.csr_array(np.vstack([q[:2], np.zeros_like(q[:1])])), "row(s) [2]"),
                       (sp.csr_array(np.where(q > 0, np.nan, 0)), "NaN")):
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            spec(p, bad)


def real_domains() -> tuple[list[str], list[list[str]]]:
    """The target (300 FDU-MTL books reviews) and 12 candidates of 100 real texts from other tasks."""
    def texts(path: Path, start: int, n: int) -> list[str]:
        lines = [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()][start:start + n]
        return [json.loads(line)["text"] for line in lines]

    target = texts(DATA / "fdu-mtl" / "books" / "train.jsonl", 0, 300)
    files = sorted(p for p in DATA.glob("*/*/train.jsonl") if "books" not in p.parts)[:12]
    return target, [texts(f, 100, 100) for f in files]


@pytest.mark.skipif(not (DATA / "fdu-mtl").exists(), reason="../shared/data is absent beside the checkout")
@pytest.mark.parametrize("bigrams", [False, True])
def test_sparse_rows_of_real_texts_give_the_dense_values(bigrams):
    target, candidates = real_domains()
    counts = [term_counts(target, bigrams=bigrams)] + [term_counts(c, bigrams=bigrams) for c in candidates]
    _, dense = count_matrix(counts)  # the sorted vocabulary of all domains, dense: the old path
    built = SparseCounts()
    built.add(counts)
    matrix = built.matrix()
    assert matrix.shape == dense.shape and matrix.nnz == np.count_nonzero(dense)
    for spec in VARIANTS:
        close(spec(matrix[[0]].toarray()[0], matrix[1:]), spec(dense[0], dense[1:]))


def test_sparse_counts_are_count_matrix_with_columns_in_first_seen_order():
    counts = [{"b": 2, "a": 1}, {"c": 5, "a": 3}, {}, {"d": 1, "b": 4}]
    built = SparseCounts()
    built.add(counts[:2])
    built.add(iter(counts[2:]))  # a second chunk extends the same columns
    matrix = built.matrix()
    vocab, dense = count_matrix(counts)
    assert list(built.columns) == ["b", "a", "c", "d"] and len(built) == 4
    assert matrix.has_canonical_format and matrix.dtype == np.int32
    np.testing.assert_array_equal(matrix.toarray()[:, [built.columns[t] for t in vocab]], dense)


def test_sparse_measures_never_make_the_rows_dense():
    """64 rows on a vocabulary of a million terms: 512 MB as one dense block, a few MB as sparse rows."""
    rng = np.random.default_rng(0)
    vocab, m, per_row = 1_000_000, 64, 300
    p = np.zeros(vocab)
    p[rng.choice(vocab, 2000, replace=False)] = rng.integers(1, 9, 2000)
    cols = np.concatenate([np.sort(rng.choice(vocab, per_row, replace=False)) for _ in range(m)])
    q = sp.csr_array((rng.integers(1, 9, m * per_row), cols, np.arange(m + 1) * per_row), shape=(m, vocab))
    for spec in TERM_SPECS:
        tracemalloc.start()
        try:
            values = spec(p, q)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert values.shape == (m,) and np.isfinite(values).all()
        assert peak < 64 * 2**20, f"{spec.name} allocated {peak / 2**20:.0f} MB at its peak"


def sliced_catalog(folder: Path, n: int = 40, rows: int = 8) -> Path:
    """``n`` small local candidates cut from the demo tasks' training texts (two score chunks and more)."""
    from hubselect.data.demo import ensure_demo_catalog

    demo = ensure_demo_catalog()
    lines = [line for task in sorted(p.name for p in demo.iterdir()) if task != "kitchen"
             for line in (demo / task / "train.jsonl").read_text().splitlines()]
    for i in range(n):
        (folder / f"slice-{i:02d}").mkdir(parents=True)
        (folder / f"slice-{i:02d}" / "train.jsonl").write_text("\n".join(lines[i * 37:i * 37 + rows]) + "\n")
    return folder


def dense_scores(fetch: Path) -> pd.DataFrame:
    """Every term measure of the fetched samples, all read at once onto one dense sorted-vocabulary matrix."""
    catalog = json.loads((fetch / "catalog.json").read_text())
    read = lambda file: pd.read_parquet(fetch / file)["text"].tolist()  # noqa: E731
    accepted = [c for c in catalog["candidates"] if c["status"] == "ok"]
    samples = [catalog["target"]["score"]["sample"]] + [c["sample"] for c in accepted]
    counts = [term_counts(read(sample)) for sample in samples]
    _, dense = count_matrix(counts)
    frame = pd.DataFrame({s.name: s(dense[0], dense[1:]) for s in TERM_SPECS},
                         index=pd.Index([c["name"] for c in accepted], name="candidate"))
    return frame


def test_streamed_score_writes_the_scores_of_the_dense_all_at_once_path(tracking):
    catalog = sliced_catalog(tracking / "slices")
    assert main(["score", "--target", "demo:kitchen", "--candidates", str(catalog), "--measures", "terms", *FAST]) == 0
    out = artifacts(runs_of("score")[0])
    written = pd.read_csv(out / "scores.csv", index_col="candidate")
    expected = dense_scores(out / "fetch")
    assert written.shape == (40, len(TERM_SPECS)) and list(written.index) == list(expected.index)
    assert (out / "scores.csv").read_text() == expected.to_csv(float_format="%.6g")  # 6 significant digits
    again = score(Catalog.load(out / "fetch"), ScoreConfig(measures="terms")).scores  # full precision
    assert list(again.index) == list(expected.index)
    close(again.to_numpy(), expected.to_numpy())


def _log_frames(items) -> None:
    """The reference: each sample read as a pandas frame and logged as MLflow builds it from the frame."""
    import warnings

    import mlflow

    with warnings.catch_warnings():  # a file:// source matches two equivalent resolvers
        warnings.simplefilter("ignore", UserWarning)
        datasets = [mlflow.data.from_pandas(f, source=src, name=n, digest=d) for f, n, src, _, d in items]
    mlflow.log_inputs(datasets=datasets, contexts=[i[3] for i in items], tags_list=[None] * len(datasets))


def test_dataset_inputs_come_from_the_catalog_without_reading_a_sample(tracking):
    import mlflow

    from hubselect.data.catalog import FetchConfig, fetch
    from hubselect.pipeline.tracking import runs

    fetched = fetch(FetchConfig(target="demo:kitchen", candidates="demo", sample_size=40, target_sample_size=30,
                                eval_size=10), tracking / "fetch")
    target, accepted = fetched.target, fetched.accepted()
    read = [(pd.read_parquet(fetched.path(target.score)), target.name, target.uri, "target", target.revision[-16:])]
    read += [(pd.read_parquet(fetched.path(c)), c.name, c.uri, "candidate", str(c.revision)[-16:]) for c in accepted]
    records = [(target.name, target.uri, "target", target.revision[-16:], ("text",), target.score.n)]
    records += [(c.name, c.uri, "candidate", str(c.revision)[-16:], ("text", "label"), c.sample.n) for c in accepted]
    shutil.rmtree(tracking / "fetch" / "samples")  # nothing left to read
    logged, _ = {}, mlflow.set_experiment("inputs")
    for how, log, items in (("frames", _log_frames, read), ("records", runs.log_dataset_records, records)):
        with mlflow.start_run() as run:
            log(items)
        inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
        logged[how] = [(i.tags[0].value, i.dataset.name, i.dataset.digest, i.dataset.source_type, i.dataset.source,
                        i.dataset.schema, i.dataset.profile) for i in inputs]
    assert len(logged["records"]) == 1 + len(accepted) >= 4
    assert sorted(logged["records"]) == sorted(logged["frames"])
    assert {json.loads(x[-1])["num_rows"] for x in logged["records"]} == {30, 40}
