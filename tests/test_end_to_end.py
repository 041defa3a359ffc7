"""One small end-to-end run: `dvc repro` from a clean copy produces every output, and a second
`dvc repro` has nothing to do."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from tests.conftest import run

pytestmark = pytest.mark.e2e

TINY = {
    "simulate": {"leads": 3000, "chunk_leads": 1500, "workers": 1},
    "train": {"lgbm": {"n_estimators": 400, "early_stopping_rounds": 40, "search": {"n_trials": 2}}},
}


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
    page = (root / "reports/data_profile.html").read_text()
    assert "Recent periods look incomplete" in page, "recent MQL months have not had time to convert"

    metrics = json.loads((root / "reports/metrics.json").read_text())
    for model in ("lightgbm", "logreg", "points", "oracle"):
        assert 0.5 < metrics["test"][model]["roc_auc"] <= 1.0, (model, metrics["test"][model])
    train_run = json.loads((root / "reports/train_run.json").read_text())
    assert train_run["model_name"] == "lead-propensity" and train_run["model_version"] == "1"
    assert (root / "mlflow.db").exists() and (root / "reports/plots/roc/lightgbm.csv").exists()
    registered = run([sys.executable, "-c", (
        "import mlflow; c = mlflow.MlflowClient('sqlite:///mlflow.db', 'sqlite:///mlflow.db'); "
        "print(c.get_model_version_by_alias('lead-propensity', 'champion').version)")], root)
    assert registered.stdout.strip() == "1", registered.stderr

    export = json.loads((root / "reports/export.json").read_text())
    assert export["model_version"] == "1" and export["source"] == "champion"
    scores = pd.read_parquet(root / "data/scores/scores.parquet")
    assert list(scores.columns) == [
        "lead_id", "probability", "flag", "tier", "reason_1", "reason_2", "reason_3", "risk_1",
        "model_name", "model_version", "scored_at",
    ]
    assert len(scores) > 0 and scores["lead_id"].is_unique and scores["probability"].between(0, 1).all()
    assert set(scores["tier"]) <= {"hot", "warm", "cold"} and (scores["model_version"] == "1").all()
    assert (scores["reason_1"].str.len() > 0).mean() > 0.5, "most leads have a stated reason"
    assert len(pd.read_csv(root / "data/scores/scores.csv")) == len(scores)
    page = (root / "reports/explanations.html").read_text()
    assert page.count("<h2>") >= 7 and "data:image/png;base64," in page, "the RevOps report is written"

    broken = root / "broken_leads.parquet"  # a leads file handed to `leadlift score` without its id column
    pd.read_parquet(root / "data/validated/leads.parquet").drop(columns=["lead_id"]).to_parquet(broken)
    refused = run([sys.executable, "-m", "pipelines.cli", "score", "--scorer", "artifacts/scorer", "--leads",
                   str(broken), "--events", "data/validated/events", "--out", "data/rescored/scores.parquet"], root)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "broken_leads.parquet" in said and "'lead_id'" in said, said
    assert "Traceback" not in said and not (root / "data/rescored/scores.parquet").exists()
    broken.unlink()

    shown = run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], root)
    assert shown.returncode == 0 and "roc_auc" in shown.stdout, shown.stderr
    plots = run([sys.executable, "-m", "dvc", "plots", "show", "--json"], root)
    assert plots.returncode == 0 and "ROC" in plots.stdout, plots.stderr

    second = run([sys.executable, "-m", "dvc", "repro"], root)
    assert second.returncode == 0, second.stderr
    assert "didn't change, skipping" in second.stdout + second.stderr
    assert "Running stage" not in second.stdout + second.stderr


def test_dvc_experiment_retrains_only_what_changed_and_is_comparable(project_copy):
    """The data scientist's loop: commit a baseline, `dvc exp run -S` a train parameter, then
    `dvc exp show` and `dvc metrics diff` compare the two."""
    root = project_copy(**TINY)
    assert run([sys.executable, "-m", "dvc", "repro"], root).returncode == 0
    git = ["git", "-c", "user.name=leadlift", "-c", "user.email=leadlift@localhost"]
    for cmd in (["git", "add", "-A"], [*git, "commit", "-qm", "baseline"]):
        done = run(cmd, root)
        assert done.returncode == 0, done.stderr
    tracked = run(["git", "ls-files", "reports"], root).stdout.split()
    assert "reports/metrics.json" in tracked and "reports/plots/roc/lightgbm.csv" in tracked

    exp = run([sys.executable, "-m", "dvc", "exp", "run", "-S", "train.lgbm.early_stopping_rounds=25"], root)
    out = exp.stdout + exp.stderr
    assert exp.returncode == 0, out
    assert "Running stage 'train'" in out and "Running stage 'simulate'" not in out
    assert "Stage 'features' didn't change, skipping" in out

    shown = run([sys.executable, "-m", "dvc", "exp", "show", "--json"], root)
    assert shown.returncode == 0, shown.stderr
    revs = json.loads(shown.stdout)
    experiments = [e for r in revs for e in (r.get("experiments") or [])]
    assert experiments, "the experiment is listed"
    exp_data = experiments[0]["revs"][0]["data"]
    assert exp_data["params"]["params.yaml"]["data"]["train"]["lgbm"]["early_stopping_rounds"] == 25
    assert exp_data["metrics"]["reports/metrics.json"]["data"]["test"]["lightgbm"]["roc_auc"] > 0.5
    diff = run([sys.executable, "-m", "dvc", "metrics", "diff", "--json"], root)
    assert diff.returncode == 0 and "failed to load" not in diff.stderr, diff.stderr
    train_run = json.loads((root / "reports/train_run.json").read_text())
    assert train_run["model_version"] == "2" and "reason" in train_run["promotion"]
