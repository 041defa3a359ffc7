import numpy as np
import pandas as pd
import pytest

from models.train import FlagParams, TrainParams, flag_threshold, oracle_metrics, target_checks


class _Fixed:
    """A stand-in model returning given probabilities for the calibration frame."""

    def __init__(self, p: np.ndarray) -> None:
        self.p = p

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([1 - self.p, self.p])


def test_fixed_flag_threshold_is_the_param():
    assert flag_threshold(None, pd.DataFrame(), FlagParams(threshold=0.3)) == 0.3


def test_best_f1_threshold_separates_a_perfectly_ranked_part():
    y = np.r_[np.zeros(90), np.ones(10)].astype(int)
    p = np.r_[np.linspace(0.01, 0.2, 90), np.linspace(0.4, 0.9, 10)]
    threshold = flag_threshold(_Fixed(p), pd.DataFrame({"label": y}), FlagParams(policy="best_f1"))
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
