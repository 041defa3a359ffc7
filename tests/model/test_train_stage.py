"""The train stage against a real embedded MLflow (SQLite): metrics file, curve tables, registered
model with a signature, the challenger/champion aliases and the promotion decision."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from pipelines.stages import train as stage
from pipelines.tracking import TrackingError
from tests.model.synthetic import make_snapshots

FAST = {
    "lgbm": {"n_estimators": 300, "early_stopping_rounds": 30, "search": {"n_trials": 2}},
    "calibration": {"min_isotonic_rows": 100000},
}


def _project(tmp_path: Path, seed: int = 0, **train_overrides) -> Path:
    snapshots, oracle = make_snapshots(3000, seed=seed)
    snapshots.to_parquet(tmp_path / "snapshots.parquet", index=False)
    attributes = ["lead_source", "source_type", "email_domain_type", "seniority", "industry", "employees",
                  "crm_compatible"]
    snapshots.drop_duplicates("lead_id")[["lead_id", *attributes]].to_parquet(tmp_path / "leads.parquet")
    oracle.to_parquet(tmp_path / "oracle.parquet", index=False)
    params = {"features": {"horizon_days": 30}, "train": {**FAST, **train_overrides}, "registry": {}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _run(root: Path) -> dict:
    stage.main(
        root / "params.yaml", root / "snapshots.parquet", root / "leads.parquet", root / "oracle.parquet",
        root / "reports/metrics.json", root / "reports/plots", root / "reports/train_run.json", root=root,
    )
    return json.loads((root / "reports/train_run.json").read_text())


@pytest.fixture
def embedded(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow.set_tracking_uri(None)


def test_train_stage_tracks_registers_and_promotes(tmp_path, embedded):
    root = _project(tmp_path)
    first = _run(root)

    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert set(metrics["split"]) >= {"train", "calibration", "test"}
    for model in ("lightgbm", "logreg", "points", "oracle"):
        assert metrics["test"][model]["roc_auc"] is not None
    for kind in ("roc", "pr", "reliability", "gains"):
        assert {p.name for p in (root / "reports/plots" / kind).iterdir()} == {"lightgbm.csv", "logreg.csv", "points.csv"}

    assert (root / "mlflow.db").exists(), "the embedded backend lives in the project root"
    client = MlflowClient(tracking_uri=first["tracking_uri"], registry_uri=first["tracking_uri"])
    run = client.get_run(first["run_id"])
    assert run.data.metrics["test.lightgbm.roc_auc"] == pytest.approx(metrics["test"]["lightgbm"]["roc_auc"])
    assert "train.lgbm.num_leaves" in run.data.params
    assert run.data.tags["dvc.md5.snapshots.parquet"] and run.data.tags["promotion.promoted"] == "true"
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "plots")}
    assert {"plots/roc.png", "plots/reliability.png"} <= artifacts
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first['run_id']}'"
    )
    assert len(children) == 2, "each search trial is a child run"

    assert first["model_version"] == "1" and first["promotion"]["promote"]
    assert str(client.get_model_version_by_alias("lead-propensity", "champion").version) == "1"
    loaded = mlflow.pyfunc.load_model("models:/lead-propensity@champion")
    info = mlflow.models.get_model_info("models:/lead-propensity@champion")
    assert info.signature is not None and "demo_request_count_90d" in info.signature.inputs.input_names()
    fresh = make_snapshots(50, seed=9)[0].astype({"industry": str})  # the builder writes text, not categories
    out = loaded.predict(fresh[info.signature.inputs.input_names()])
    assert list(out.columns[:4]) == ["lead_id", "probability", "flag", "tier"]
    assert out["probability"].between(0, 1).all() and len(out) == len(fresh)
    assert out["reason_1"].str.len().gt(0).any(), "reasons are written"

    # A second run on the same data is as good: it is compared on the same test rows and promoted.
    second = _run(root)
    assert second["model_version"] == "2"
    assert second["promotion"]["champion"] is not None, "the champion was scored on the same test rows"
    assert second["promotion"]["promote"]
    assert str(client.get_model_version_by_alias("lead-propensity", "challenger").version) == "2"


def test_a_worse_challenger_is_not_promoted(tmp_path, embedded):
    root = _project(tmp_path)
    _run(root)
    # Starve the challenger: a handful of tiny trees learns far less than the first model.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["lgbm"] = {"n_estimators": 2, "num_leaves": 2, "early_stopping_rounds": 1,
                               "learning_rate": 0.01, "search": {"n_trials": 1}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    second = _run(root)
    assert not second["promotion"]["promote"], second["promotion"]["reason"]
    client = MlflowClient(tracking_uri=second["tracking_uri"], registry_uri=second["tracking_uri"])
    assert str(client.get_model_version_by_alias("lead-propensity", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("lead-propensity", "challenger").version) == "2"


def test_unreachable_server_stops_before_training(tmp_path, monkeypatch):
    root = _project(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nobody answers
    with pytest.raises(TrackingError, match="does not answer"):
        _run(root)
    assert not (root / "reports/metrics.json").exists(), "nothing written when tracking is unusable"
