"""End to end on the user's own files: `dvc repro` over a small hand-made CRM export (tabular mode),
from a clean copy of the project, with only the `data:` section changed."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from tests.conftest import run
from tests.files_data import CRM_DATA, crm_export, write_export

pytestmark = pytest.mark.e2e

SMALL_TRAIN = {"lgbm": {"n_estimators": 300, "early_stopping_rounds": 30, "min_child_samples": 10,
                        "search": {"n_trials": 2}}}


def test_dvc_repro_on_a_crm_export(project_copy, tmp_path):
    export = write_export(crm_export(), tmp_path / "crm_export.csv")
    root = project_copy(data={**CRM_DATA, "leads": str(export)}, train=SMALL_TRAIN)
    first = run([sys.executable, "-m", "dvc", "repro"], root)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert "excluded 'call_minutes'" in out and "excluded 'contract_signed'" in out, out

    snapshots = pd.read_parquet(root / "data/snapshots.parquet")
    assert len(snapshots) == 600 and snapshots["lead_id"].is_unique
    assert {"call_minutes", "contract_signed", "contract_signed_days_before"}.isdisjoint(snapshots.columns)
    assert {"Industry", "Employees", "Newsletter", "Site visits"} <= set(snapshots.columns)
    assert snapshots["label"].sum() == (crm_export()["Won"] == "yes").sum()

    features = json.loads((root / "reports/features.json").read_text())
    assert features["split"] == "out_of_time"
    assert {s["column"] for s in features["suspects"]} == {"call_minutes", "contract_signed"}

    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["split"]["method"] == "out_of_time" and metrics["split"]["gap_days"] == 0
    assert metrics["split"]["test"]["start"] >= metrics["split"]["calibration"]["end"]
    assert 0.5 < metrics["test"]["lightgbm"]["roc_auc"] < 0.99, metrics["test"]["lightgbm"]

    page = (root / "reports/data_profile.html").read_text()
    assert "call_minutes" in page and "excluded from the features" in page
    profile = json.loads((root / "reports/data_profile.json").read_text())
    assert profile["rows"] == 600 and profile["over_time"]["unit"] == "month"

    logged = run([sys.executable, "-c", (
        "import json, mlflow; c = mlflow.MlflowClient('sqlite:///mlflow.db');"
        "r = json.load(open('reports/train_run.json'))['run_id'];"
        "print([a.path for a in c.list_artifacts(r, 'data_profile')])")], root)
    assert "data_profile/data_profile.html" in logged.stdout, logged.stderr

    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    assert len(scores) == 600 and scores["probability"].between(0, 1).all()
    assert set(scores["lead_id"]) == set(crm_export()["Record ID"])
    assert (scores["reason_1"].str.len() > 0).mean() > 0.5

    second = run([sys.executable, "-m", "dvc", "repro"], root)
    assert second.returncode == 0 and "Running stage" not in second.stdout + second.stderr


def test_undated_export_is_split_at_random_and_says_so(project_copy, tmp_path):
    export = write_export(crm_export(dated=False), tmp_path / "crm_export.csv")
    data = {**CRM_DATA, "leads": str(export), "mapping": {"lead_id": "Record ID", "outcome": "Won"}}
    root = project_copy(data=data, train=SMALL_TRAIN)
    done = run([sys.executable, "-m", "dvc", "repro", "train"], root)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((root / "reports/metrics.json").read_text())
    split = metrics["split"]
    assert split["method"] == "stratified_random"
    rates = [split[p]["positive_rate"] for p in ("train", "calibration", "test")]
    assert max(rates) - min(rates) < 0.01, rates
    assert json.loads((root / "reports/features.json").read_text())["split"] == "stratified_random"


def test_bad_export_stops_at_ingest_and_writes_nothing(project_copy, tmp_path):
    frame = crm_export()
    frame.loc[[3, 17], "Created"] = ["31/31/2024", "soon"]
    export = write_export(frame, tmp_path / "crm_export.csv")
    root = project_copy(data={**CRM_DATA, "leads": str(export)})
    done = run([sys.executable, "-m", "dvc", "repro"], root)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Created" in out and "row 4" in out and "'soon'" in out, out
    assert not (root / "data/raw/leads.parquet").exists() and not (root / "data/raw/events").exists()
    assert not (root / "reports/ingest.json").exists()


def _export_leads_and_events(tmp_path):
    """A small simulated base written out as a user's CRM would: CSV, own column names, naive times."""
    import pyarrow as pa

    from features.simulate import SimulateParams, simulate_chunks

    chunks = list(simulate_chunks(SimulateParams(leads=1500, chunk_leads=1500, workers=1, months=18, seed=5)))
    leads = pd.concat([c.leads for c in chunks], ignore_index=True)
    events = pa.concat_tables([c.events for c in chunks]).to_pandas()
    naive = {c: leads[c].dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S").where(leads[c].notna(), "")
             for c in ("created_at", "mql_at", "sql_at", "disqualified_at")}
    leads = leads.assign(**naive).rename(columns={"lead_id": "Contact ID", "created_at": "Created Date",
                                                  "mql_at": "MQL Date", "sql_at": "SQL Date"})
    events = events.assign(ts=events["ts"].dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S"))
    events = events.rename(columns={"lead_id": "contact", "ts": "timestamp", "event_type": "activity"})
    leads.to_csv(tmp_path / "crm_leads.csv", sep=";", index=False)
    events.to_csv(tmp_path / "crm_events.csv", index=False)
    return {
        "source": "files", "leads": str(tmp_path / "crm_leads.csv"), "events": str(tmp_path / "crm_events.csv"),
        "mapping": {"lead_id": "Contact ID", "created_at": "Created Date", "mql_at": "MQL Date", "sql_at": "SQL Date"},
        "event_mapping": {"lead_id": "contact", "ts": "timestamp", "event_type": "activity"},
    }, len(leads), len(events)


def test_dvc_repro_on_leads_and_events_files(project_copy, tmp_path):
    data, n_leads, n_events = _export_leads_and_events(tmp_path)
    root = project_copy(data=data, train=SMALL_TRAIN)
    done = run([sys.executable, "-m", "dvc", "repro"], root)
    assert done.returncode == 0, done.stdout + done.stderr
    ingest = json.loads((root / "reports/ingest.json").read_text())
    assert ingest["mode"] == "events" and ingest["rows"] == n_leads and ingest["events"] == n_events
    validation = json.loads((root / "reports/validation.json").read_text())
    assert validation["events"]["rows"] == n_events
    snapshots = pd.read_parquet(root / "data/snapshots.parquet")
    assert len(snapshots) > 0 and "page_view_pricing_count_30d" in snapshots.columns
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["split"]["method"] == "out_of_time" and "oracle" not in metrics["test"]
    assert 0.5 < metrics["test"]["lightgbm"]["roc_auc"] <= 1.0
    profile = json.loads((root / "reports/data_profile.json").read_text())
    assert profile["over_time"]["unit"] == "month"
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    assert len(scores) > 0 and scores["probability"].between(0, 1).all()
