"""Real-time serving for speed-to-lead: the scorer folder served by `mlflow models serve` on loopback
answers one lead's JSON with the same probability, tier and reasons as the in-process scorer."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature, infer_signature

from features.contract import LEAD_ID
from models.pyfunc import LeadScorerModel
from pipelines.stages.train import _requirements, input_schema

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"  # loopback only
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _save_scorer(scorer, snapshots: pd.DataFrame, path: Path) -> None:
    """The scorer as an MLflow pyfunc folder, saved the way the train stage logs it."""
    features = scorer.features
    example = snapshots[[LEAD_ID, *features]].head(5)
    model = LeadScorerModel(scorer)
    signature = ModelSignature(
        inputs=input_schema(snapshots, features), outputs=infer_signature(model.predict(None, example)).inputs
    )
    mlflow.pyfunc.save_model(
        path=str(path), python_model=model, signature=signature, pip_requirements=_requirements(),
        code_paths=[str(ROOT / "models"), str(ROOT / "features")],
    )


def _record(row: pd.Series) -> dict:
    """One lead's features as plain JSON values (NaN and missing as null)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            value = None
        out[str(key)] = value
    return out


def _wait_for_ping(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow models serve did not answer /ping within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and the workers it started (its own process group), never anything else."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_served_scorer_answers_one_lead_like_the_in_process_scorer(trained_scorer, simulated_snapshots, tmp_path):
    scorer, _ = trained_scorer
    snapshots = simulated_snapshots[2]
    folder = tmp_path / "scorer"
    _save_scorer(scorer, snapshots, folder)

    recent = snapshots.sort_values("cutoff").tail(2000)
    local_all = scorer.score(recent)
    lead = local_all["probability"].idxmax()  # a lead with reasons to give
    row = recent.loc[[lead], [LEAD_ID, *scorer.features]]
    expected = scorer.score(row).iloc[0]
    assert expected["reason_1"], "the chosen lead has a reason to compare"

    port = _free_port()
    log = tmp_path / "serve.log"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow_cli), "models", "serve", "-m", str(folder), "--env-manager", "local",
           "-h", HOST, "-p", str(port), "-w", "1"]
    # mlflow starts `uvicorn` by name: the venv's bin folder must be on PATH (as with an activated venv)
    env = {**os.environ, "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                start_new_session=True)
    try:
        _wait_for_ping(proc, port, log)
        record = _record(row.iloc[0])
        assert any(v is None for v in record.values()), "nulls (never happened) travel as JSON null"
        body = json.dumps({"dataframe_records": [record]}).encode()
        request = urllib.request.Request(f"http://{HOST}:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.loads(r.read())
    finally:
        _stop(proc)
    assert proc.poll() is not None, "the server is stopped"

    (served,) = answer["predictions"]
    assert served[LEAD_ID] == int(row.iloc[0][LEAD_ID])
    assert served["probability"] == pytest.approx(expected["probability"], abs=1e-9)
    assert served["tier"] == expected["tier"]
    assert served["flag"] == bool(expected["flag"])
    for column in ("reason_1", "reason_2", "reason_3", "risk_1"):
        assert served[column] == expected[column], column
        assert served[f"{column}_shap"] == pytest.approx(expected[f"{column}_shap"], abs=1e-9)
