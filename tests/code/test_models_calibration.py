import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from models.calibration import CalibrationParams, calibrate, choose_method
from models.lgbm import LGBMParams, SearchParams, fit_lgbm
from models.metrics import ece


def test_small_calibration_part_gets_sigmoid_with_the_counts_in_the_reason():
    rng = np.random.default_rng(0)
    score = rng.normal(size=3000)
    y = (rng.random(3000) < 0.1).astype(int)
    choice = choose_method(score, y, CalibrationParams())
    assert choice.method == "sigmoid"
    assert "3000 calibration rows" in choice.reason and str(int(y.sum())) in choice.reason


def test_fixed_method_is_used_as_is():
    choice = choose_method(np.zeros(10), np.array([0, 1] * 5), CalibrationParams(method="isotonic"))
    assert choice.method == "isotonic" and "params" in choice.reason


def test_auto_picks_isotonic_when_the_score_to_probability_map_is_not_logistic():
    rng = np.random.default_rng(1)
    score = rng.uniform(-3, 3, 20000)
    p = np.where(score > 1, 0.6, 0.05)  # a step: no sigmoid fits it
    y = (rng.random(20000) < p).astype(int)
    choice = choose_method(score, y, CalibrationParams(min_isotonic_rows=5000, min_isotonic_positives=500))
    assert choice.method == "isotonic"
    assert choice.cv_brier["isotonic"] < choice.cv_brier["sigmoid"]


def test_auto_keeps_sigmoid_when_it_fits_the_data():
    rng = np.random.default_rng(2)
    score = rng.normal(size=20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(2 * score - 2)))).astype(int)
    choice = choose_method(score, y, CalibrationParams())
    assert choice.method == "sigmoid" and choice.cv_brier is not None


def _frame(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "lead_id": np.arange(n),
            "label": (rng.random(n) < 1 / (1 + np.exp(-(2 * x - 3 + shift)))).astype("int8"),
            "x": x,
        }
    )


def test_calibrate_fixes_a_shifted_rate_without_refitting_the_booster():
    params = LGBMParams(n_estimators=100, early_stopping_rounds=10, search=SearchParams(n_trials=1))
    scorer = fit_lgbm(_frame(5000, 0, shift=0.0), params, features=["x"])
    cal, test = _frame(4000, 1, shift=1.0), _frame(4000, 2, shift=1.0)  # the rate moved up after training
    raw_before = scorer.decision_function(test)
    model, choice = calibrate(scorer, cal, CalibrationParams())
    assert isinstance(model, CalibratedClassifierCV) and isinstance(model.estimator, FrozenEstimator)
    np.testing.assert_array_equal(scorer.decision_function(test), raw_before)
    p = model.predict_proba(test)[:, 1]
    assert ece(test["label"], p) < ece(test["label"], scorer.predict_proba(test)[:, 1])
    assert p.mean() == pytest.approx(test["label"].mean(), rel=0.1)
    assert choice.method == "sigmoid"
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.predict_proba(test)[:, 1], p)


def test_single_class_calibration_part_is_refused():
    params = LGBMParams(n_estimators=20, early_stopping_rounds=5)
    scorer = fit_lgbm(_frame(2000, 0, 0.0), params, features=["x"])
    with pytest.raises(ValueError, match="single class"):
        calibrate(scorer, _frame(100, 1, 0.0).assign(label=0), CalibrationParams())
