"""MLflow plumbing: where runs go, clear errors for unusable backends, flat keys, provenance."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipelines.tracking import TrackingError, check_tracking, dvc_hashes, flat_metrics, flat_params, tracking_uri


def test_embedded_sqlite_by_default_and_env_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5999"


def test_sqlite_in_a_writable_folder_passes(tmp_path):
    check_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_sqlite_where_no_folder_can_be_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backend's folder should be")
    with pytest.raises(TrackingError, match="not-a-folder is not a folder"):
        check_tracking(f"sqlite:///{blocker / 'mlflow.db'}")


def test_server_that_does_not_answer_is_a_clear_error_fast():
    with socket.socket() as s:  # a free loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TrackingError, match=r"does not answer.*unset MLFLOW_TRACKING_URI"):
        check_tracking(f"http://127.0.0.1:{port}", timeout_s=2)


def test_flat_metrics_keeps_numbers_and_sanitises_keys():
    flat = flat_metrics({"test": {"lightgbm": {"roc_auc": 0.9, "note": "x", "ok": True, "none": None}},
                         "slices": {"employees_band": {"1000+": {"rows": 12}}}})
    assert flat == {"test.lightgbm.roc_auc": 0.9, "slices.employees_band.1000_.rows": 12.0}


def test_flat_params_flattens_nested_sections():
    assert flat_params({"train": {"lgbm": {"num_leaves": 31}, "exclude": []}}) == {
        "train.lgbm.num_leaves": "31",
        "train.exclude": "[]",
    }


def test_dvc_hashes_prefer_dvc_lock_and_fall_back_to_file_md5(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "snap.parquet").write_bytes(b"abc")
    (data / "truth").mkdir()
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  simulate:\n    outs:\n    - path: data/truth\n      md5: feed.dir\n"
    )
    hashes = dvc_hashes(tmp_path, [data / "snap.parquet", data / "truth"])
    assert hashes == {"data/snap.parquet": "900150983cd24fb0d6963f7d28e17f72", "data/truth": "feed.dir"}
