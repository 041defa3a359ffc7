"""Stage `report`: the RevOps report (`reports/explanations.html`) for the exported scorer on the same
out-of-time test part the model was measured on, written atomically and logged to the MLflow run
that trained the model.

The test part is recovered from the snapshots with the train stage's split rule and parameters
(``models.split`` is deterministic), so the tier table's observed rates are those of the rows in
``reports/metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from features.builder import FeaturesParams
from features.errors import DataContractError
from features.io import write_text_atomic
from models.report import ModelInfo, ReportParams, explanations_html
from models.split import split_out_of_time
from models.train import TrainParams
from pipelines.config import load_section
from pipelines.console import console
from pipelines.stages.export import EXPORT_INFO
from pipelines.stages.score import load_scorer
from pipelines.tracking import check_tracking, mlflow_errors

ARTIFACT_DIR = "reports"
"""Where the report goes among the run's artifacts."""


def main(params_path: Path, scorer_location: str, snapshots_in: Path, run_in: Path, out: Path) -> None:
    params = load_section(params_path, "report", ReportParams)
    split = load_section(params_path, "train", TrainParams).split
    horizon = load_section(params_path, "features", FeaturesParams).horizon_days
    run = _read_json(Path(run_in))
    scorer = load_scorer(str(scorer_location))
    run_id = _model_run(scorer_location, run)
    snapshots = pd.read_parquet(snapshots_in)
    try:
        test = split_out_of_time(snapshots, split, horizon).test
    except ValueError as exc:
        raise DataContractError(str(snapshots_in), f"no out-of-time test part can be taken ({exc})",
                                expected="snapshots spanning enough time for train.split") from None
    if len(test) == 0:
        raise DataContractError(str(snapshots_in), "the out-of-time test part has no rows, so there is nothing "
                                "to report on", expected="snapshots spanning enough time for train.split")
    info = ModelInfo(scorer.model_name, scorer.model_version or "unregistered", run_id)
    page = explanations_html(scorer, test, params, horizon_days=horizon, model=info,
                             generated_at=pd.Timestamp.now(tz="UTC"))
    write_text_atomic(page, out)
    uri = run["tracking_uri"]
    check_tracking(uri)
    with mlflow_errors(uri):
        _log(uri, run_id, Path(out))
    console.print(f"RevOps report -> {out} (and MLflow run {run_id}, {ARTIFACT_DIR}/{Path(out).name})",
                  highlight=False)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataContractError(str(path), "the train stage's run file is missing",
                                expected="reports/train_run.json written by `leadlift train`") from None
    except json.JSONDecodeError as exc:
        raise DataContractError(str(path), f"not valid JSON ({exc.msg} at line {exc.lineno})",
                                expected="the JSON run file written by `leadlift train`") from None


def _model_run(scorer_location: str, run: dict) -> str:
    """The run that trained the exported model (its export note), else the train stage's run."""
    note = Path(scorer_location) / EXPORT_INFO
    if note.exists():
        run_id = json.loads(note.read_text()).get("run_id")
        if run_id:
            return str(run_id)
    if not run.get("run_id"):
        raise DataContractError("train_run.json", "has no run_id", expected="the run file of `leadlift train`")
    return str(run["run_id"])


def _log(uri: str, run_id: str, path: Path) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).log_artifact(run_id, str(path), artifact_path=ARTIFACT_DIR)
