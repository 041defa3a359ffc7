import numpy as np
import pandas as pd
import pytest

from models.scorer import FlagParams
from models.train import TrainParams, best_f1_threshold, flag_threshold, oracle_metrics, target_checks


class _Fixed:
    """A stand-in model returning given probabilities for the calibration frame."""

    def __init__(self, p: np.ndarray) -> None:
        self.p = p

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([1 - self.p, self.p])


def test_evaluation_threshold_follows_the_scorer_flag_policy():
    p = np.array([0.05, 0.9, 0.3, 0.6, 0.1])
    assert flag_threshold(FlagParams(policy="fixed", threshold=0.3), 0.7, p) == 0.3
    assert flag_threshold(FlagParams(policy="best_f1"), 0.7, p) == 0.7
    capacity = flag_threshold(FlagParams(policy="capacity", capacity=2), 0.7, p)
    assert list(p >= capacity) == [False, True, False, True, False]  # exactly the top two
    assert flag_threshold(FlagParams(policy="capacity", capacity=10), 0.7, p) == 0.05  # fewer rows: all
    assert flag_threshold(FlagParams(policy="capacity", capacity=2), 0.7, np.array([])) == 1.0


def test_best_f1_threshold_separates_a_perfectly_ranked_part():
    y = np.r_[np.zeros(90), np.ones(10)].astype(int)
    p = np.r_[np.linspace(0.01, 0.2, 90), np.linspace(0.4, 0.9, 10)]
    threshold = best_f1_threshold(_Fixed(p), pd.DataFrame({"label": y}))
    assert 0.2 < threshold <= 0.4
    assert ((p >= threshold) == (y == 1)).all()


def test_oracle_metrics_join_on_key_whatever_the_time_unit():
    cutoff = pd.date_range("2025-01-01", periods=4, freq="D", tz="UTC", unit="us")
    test = pd.DataFrame({"lead_id": [1, 2, 3, 4], "cutoff": cutoff, "label": np.array([0, 1, 0, 1], "int8")})
    oracle = pd.DataFrame(
        {
            "lead_id": np.array([4, 3, 2, 1, 99], dtype="int32"),
            "cutoff": pd.DatetimeIndex([*cutoff[::-1], cutoff[0]]).as_unit("ns"),
            "true_probability": [0.9, 0.2, 0.8, 0.1, 0.5],
        }
    )
    m = oracle_metrics(test, oracle)
    assert m["rows_matched"] == 4 and m["rows_unmatched"] == 0
    assert m["roc_auc"] == 1.0
    assert m["brier"] == pytest.approx(np.mean([0.1**2, 0.2**2, 0.2**2, 0.1**2]))


def test_target_checks():
    test = {
        "lightgbm": {
            "roc_auc": 0.83,
            "pr_auc": 0.40,
            "ece": 0.01,
            "positive_rate": 0.10,
            "mean_probability": 0.105,
        },
        "logreg": {"roc_auc": 0.80, "pr_auc": 0.41},
        "points": {"roc_auc": 0.70, "pr_auc": 0.30},
        "oracle": {"roc_auc": 0.85},
    }
    checks = target_checks(test)
    assert checks["lightgbm_beats_baselines_roc_auc"] is True
    assert checks["lightgbm_beats_baselines_pr_auc"] is False
    assert checks["lightgbm_roc_auc_at_least_97pct_of_oracle"] is True  # 0.83 >= 0.8245
    assert checks["lightgbm_ece_at_most_0.02"] is True
    assert checks["lightgbm_mean_probability_within_10pct_of_rate"] is True
    del test["oracle"]
    assert target_checks(test)["lightgbm_roc_auc_at_least_97pct_of_oracle"] is None


def test_train_params_defaults_match_the_issue():
    p = TrainParams()
    assert (p.split.train, p.split.calibration, p.split.test, p.split.gap_days) == (0.6, 0.2, 0.2, None)
    assert (p.min_class_rows, p.warn_class_rows) == (40, 200)
    assert p.calibration.method == "auto" and p.calibration.min_isotonic_rows == 5000
    assert p.lgbm.num_leaves == 31 and p.lgbm.n_estimators == 2000 and p.lgbm.early_stopping_rounds == 100
    assert p.slice_bands["employees"] == [1, 50, 250, 1000]


def test_train_params_round_trip_through_yaml():
    import yaml

    text = yaml.safe_dump({"train": TrainParams().model_dump(mode="json")}, sort_keys=False)
    assert TrainParams.model_validate(yaml.safe_load(text)["train"]) == TrainParams()
