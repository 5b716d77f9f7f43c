"""The real ``score`` and ``select`` entry points on FDU-MTL and a mixed catalog with misc/.

Reads ``../shared/data`` beside the checkout; skipped with a reason where it is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATA / "fdu-mtl").exists(), reason="../shared/data is absent beside the checkout")]
SMALL = ["--sample-size", "200", "--target-sample-size", "200", "--embed-examples", "32", "--max-length", "64",
         "--eval-size", "0", "--quiet"]


def entry_point(step: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    return subprocess.run([sys.executable, "-m", f"entrypoints.{step}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def latest_artifacts(cwd: Path, step: str) -> Path:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{cwd / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.`hubselect.step` = '{step}'",
                              order_by=["attributes.start_time DESC"], output_format="list")
    return Path(mlflow.artifacts.download_artifacts(run_id=runs[0].info.run_id, dst_path=str(cwd / step)))


def test_score_books_against_the_other_15_domains(tmp_path):
    done = entry_point("score", "--target", str(DATA / "fdu-mtl" / "books"), "--candidates", str(DATA / "fdu-mtl"),
                       *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = latest_artifacts(tmp_path, "score")
    scores = pd.read_csv(out / "scores.csv", index_col="candidate")
    assert len(scores) == 15 and "books" not in scores.index and scores.notna().all().all()
    catalog = json.loads((out / "fetch" / "catalog.json").read_text())
    assert catalog["target"]["score_split"] == "unlabeled"
    # books reviews are closer to the other media (dvd, music, video, magazines, imdb)
    # than to baby or apparel, by the term and the embedding measures alike
    for measure in ("js", "centroid_cosine"):
        ranked = list(scores[measure].sort_values().index)
        assert ranked.index("dvd") < ranked.index("baby") and ranked.index("magazines") < ranked.index("apparel")


def test_select_on_a_mixed_catalog_prunes_other_label_spaces(tmp_path):
    done = entry_point("select", "--target", str(DATA / "fdu-mtl" / "electronics"),
                       "--candidates", f"{DATA / 'fdu-mtl'},{DATA / 'misc'}", "--k", "3", *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    selection = json.loads((latest_artifacts(tmp_path, "select") / "selection.json").read_text())
    ranking = [row["candidate"] for row in selection["ranking"]]
    assert len(ranking) == 22 and selection["summary"]["selected"] == 3
    assert set(ranking[:3]) <= {"camera_photo", "kitchen_housewares", "software", "health_personal_care",
                                "sports_outdoors", "toys_games", "baby", "apparel", "cr"}
    assert set(ranking[-3:]) & {"ag_news", "trec", "emotion", "sms_spam"}
