"""``train_all`` end to end on synthetic snapshots: shape of the outputs, guards, saved model."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from pydantic import ValidationError

from features.errors import DataContractError
from models.guards import DroppedFeatureWarning
from models.lgbm import LGBMParams, SearchParams
from models.train import TrainParams, train_all
from tests.model.synthetic import make_snapshots

HORIZON = 30
PARAMS = TrainParams(lgbm=LGBMParams(search=SearchParams(n_trials=3)))


@pytest.fixture(scope="module")
def data():
    return make_snapshots(6000, seed=11)


@pytest.fixture(scope="module")
def trained(data):
    snapshots, oracle = data
    trials = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = train_all(
            snapshots,
            PARAMS,
            horizon_days=HORIZON,
            oracle=oracle,
            on_trial=lambda p, m: trials.append((p, m)),
        )
    return result, trials


def test_metrics_have_the_documented_shape_and_are_json(trained):
    result, _ = trained
    m = json.loads(json.dumps(result.metrics))
    assert set(m["test"]) == {"lightgbm", "logreg", "points", "oracle"}
    for model in ("lightgbm", "logreg", "points"):
        for key in (
            "roc_auc",
            "pr_auc",
            "brier",
            "log_loss",
            "ece",
            "lift_at_5pct",
            "lift_at_10pct",
            "lift_at_20pct",
            "recall_at_10pct",
            "precision_at_threshold",
            "recall_at_threshold",
        ):
            assert m["test"][model][key] is not None, (model, key)
    assert 0.5 < m["test"]["oracle"]["roc_auc"] <= 1
    assert m["test"]["oracle"]["rows_matched"] == m["split"]["test"]["rows"]
    assert set(m["slices"]) == {"lead_source", "source_type", "employees_band"}
    assert set(m["slices"]["source_type"]) == {"inbound", "outbound"}
    assert set(m["slices"]["employees_band"]) >= {"1-49", "50-249", "250-999", "1000+"}
    assert m["calibration"]["method"] in ("sigmoid", "isotonic") and m["calibration"]["reason"]
    assert set(m["targets"]) >= {"lightgbm_ece_at_most_0.02", "lightgbm_beats_baselines_roc_auc"}


def test_split_is_written_down_and_parts_are_disjoint(trained, data):
    result, _ = trained
    split = result.metrics["split"]
    for part in ("train", "calibration", "test"):
        assert split[part]["rows"] > 0 and split[part]["positives"] > 0 and split[part]["start"]
    assert pd.Timestamp(split["train"]["end"]) + pd.Timedelta(days=HORIZON) < pd.Timestamp(
        split["calibration"]["start"]
    )
    assert pd.Timestamp(split["calibration"]["end"]) + pd.Timedelta(days=HORIZON) < pd.Timestamp(
        split["test"]["start"]
    )
    assert len(result.test_predictions) == split["test"]["rows"]


def test_every_search_trial_is_reported(trained):
    result, trials = trained
    assert len(trials) == len(result.trials) == 3
    assert result.metrics["search"]["best"]["number"] == result.best_trial.number


def test_lightgbm_learns_the_signal(trained):
    test = trained[0].metrics["test"]
    assert test["lightgbm"]["roc_auc"] >= 0.95 * test["oracle"]["roc_auc"]
    assert test["lightgbm"]["roc_auc"] > test["points"]["roc_auc"] - 0.01
    assert test["lightgbm"]["ece"] < 0.03
    assert test["lightgbm"]["mean_probability"] == pytest.approx(test["lightgbm"]["positive_rate"], rel=0.15)


def test_curves_and_figures(trained):
    result, _ = trained
    assert set(result.curves) == {"roc", "pr", "reliability", "gains"}
    for table in result.curves.values():
        assert set(table["model"]) == {"lightgbm", "logreg", "points"}
    assert all(isinstance(f, Figure) for f in result.figures.values())


def test_saved_models_score_a_snapshot_frame(trained, data, tmp_path):
    result, _ = trained
    frame = data[0].head(500)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(result.models))
    loaded = pickle.loads(path.read_bytes())
    for name, model in result.models.items():
        p = loaded[name].predict_proba(frame)[:, 1]
        np.testing.assert_allclose(p, model.predict_proba(frame)[:, 1])
        assert ((p >= 0) & (p <= 1)).all()
    features_only = frame.drop(columns=["lead_id", "cutoff", "label"])
    np.testing.assert_allclose(
        loaded["lightgbm"].predict_proba(features_only), result.calibrated.predict_proba(frame)
    )
    assert result.booster.num_trees() > 0 and len(result.spec.names) == len(frame.columns) - 3


def test_one_class_snapshots_are_refused(data):
    snapshots = data[0].assign(label=np.int8(0))
    with pytest.raises(DataContractError, match="0 positive"):
        train_all(snapshots, PARAMS, horizon_days=HORIZON)


def test_too_few_training_positives_says_found_and_needed(data):
    snapshots = data[0]
    rng = np.random.default_rng(0)
    keep_pos = (snapshots["label"] == 1) & (rng.random(len(snapshots)) < 0.03)
    thin = snapshots.loc[(snapshots["label"] == 0) | keep_pos].reset_index(drop=True)
    with pytest.raises(DataContractError, match=r"the train part has \d+ positive .* at least 40"):
        train_all(thin, PARAMS, horizon_days=HORIZON)


def test_entirely_null_feature_is_dropped_and_absent_slice_noted(data):
    snapshots = data[0].head(9000).assign(broken=np.nan)
    fast = TrainParams(lgbm=LGBMParams(search=SearchParams(n_trials=1)), slices=["source_type", "nope"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_all(snapshots, fast, horizon_days=HORIZON)
    dropped = [str(w.message) for w in caught if issubclass(w.category, DroppedFeatureWarning)]
    assert len(dropped) == 1 and "'broken'" in dropped[0]
    assert result.metrics["data"]["dropped_features"] == ["broken"]
    assert "broken" not in result.spec.names
    assert any("'broken'" in w for w in result.warnings)
    assert list(result.metrics["slices"]) == ["source_type"]
    assert any("slice column 'nope'" in w for w in result.warnings)


def test_params_refuse_unknown_keys_and_wrong_types():
    with pytest.raises(ValidationError):
        TrainParams.model_validate({"lgbm": {"num_leafs": 31}})
    with pytest.raises(ValidationError):
        TrainParams.model_validate({"min_class_rows": "many"})
    loaded = TrainParams.model_validate({"split": {"train": 0.7, "calibration": 0.15, "test": 0.15}})
    assert loaded.split.train == 0.7
    with pytest.raises(ValidationError):  # the flag policy lives in one place: scorer.flag
        TrainParams.model_validate({"flag": {"policy": "best_f1"}})
