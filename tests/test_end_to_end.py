"""One small end-to-end run: `dvc repro` from a clean copy produces every output, and a second
`dvc repro` has nothing to do."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from tests.conftest import run

pytestmark = pytest.mark.e2e

TINY = {"simulate": {"leads": 3000, "chunk_leads": 1500, "workers": 1}}


def test_dvc_repro_runs_all_stages_then_is_a_no_op(project_copy):
    root = project_copy(**TINY)
    first = run([sys.executable, "-m", "dvc", "repro"], root)
    assert first.returncode == 0, first.stdout + first.stderr

    snapshots = pd.read_parquet(root / "data/snapshots.parquet")
    assert list(snapshots.columns[:3]) == ["lead_id", "cutoff", "label"]
    assert len(snapshots) > 0 and snapshots["label"].isin([0, 1]).all()
    assert not snapshots.duplicated(["lead_id", "cutoff"]).any()

    report = json.loads((root / "reports/features.json").read_text())
    assert report["snapshots"] == len(snapshots)
    assert report["positives"] == int(snapshots["label"].sum())

    oracle = pd.read_parquet(root / "data/truth/oracle.parquet")
    joined = snapshots[["lead_id", "cutoff"]].merge(oracle, on=["lead_id", "cutoff"], how="left")
    assert joined["true_probability"].notna().all(), "every training snapshot has its oracle probability"
    assert (root / "reports/feature_catalog.md").read_text().count("\n") > 50

    second = run([sys.executable, "-m", "dvc", "repro"], root)
    assert second.returncode == 0, second.stderr
    assert "didn't change, skipping" in second.stdout + second.stderr
    assert "Running stage" not in second.stdout + second.stderr
