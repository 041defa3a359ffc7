"""Choosing the main model among families on the calibration part, and the cross-fitted refit."""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.calibration import CalibratedClassifierCV

from models.calibration import CrossFitCalibrated, base_model, cross_fit_blocks
from models.lgbm import LGBMParams, LGBMScorer, SearchParams
from models.nbayes import NaiveBayesParams, NaiveBayesScorer
from models.split import SplitParams
from models.train import TrainParams, train_all

FAST = LGBMParams(n_estimators=60, early_stopping_rounds=10, num_leaves=7, search=SearchParams(n_trials=1))


def _snapshots(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """One dated row per lead; a categorical and a numeric feature drive the label."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["web", "phone", "event"], size=n, p=[0.5, 0.3, 0.2])
    age = rng.normal(40, 10, size=n)
    logit = -2.0 + 1.5 * (channel == "event") + 0.05 * (age - 40)
    return pd.DataFrame({
        "lead_id": np.arange(1, n + 1),
        "cutoff": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="D"),
        "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8),
        "channel": pd.Series(channel, dtype="category"),
        "age": age,
    })


def _params(**kw) -> TrainParams:
    split = SplitParams(train=0.6, calibration=0.15, test=0.25, gap_days=0)
    return TrainParams(split=split, lgbm=FAST, slices=[], **kw)


def test_defaults_keep_lightgbm_trained_on_the_train_part():
    p = TrainParams()
    assert p.candidates == ["lightgbm"] and p.final_refit is False
    result = train_all(_snapshots(), _params(), horizon_days=0)
    assert result.main == "lightgbm" and isinstance(result.calibrated, CalibratedClassifierCV)
    assert result.metrics["model"] == {"main": "lightgbm", "candidates": ["lightgbm"],
                                       "calibration_roc_auc": None, "final_refit": None,
                                       "column_selection": None}
    assert set(result.metrics["test"]) == {"lightgbm", "logreg", "points"}


def test_the_candidate_with_the_best_calibration_auc_becomes_the_main_model():
    result = train_all(_snapshots(), _params(candidates=["lightgbm", "naive_bayes"]), horizon_days=0)
    aucs = result.metrics["model"]["calibration_roc_auc"]
    assert set(aucs) == {"lightgbm", "naive_bayes"}
    assert result.main == max(aucs, key=aucs.get)
    assert set(result.metrics["test"]) == {result.main, "logreg", "points"}
    assert f"{result.main}_beats_baselines_roc_auc" in result.metrics["targets"]
    assert result.metrics["search"]["trials"] and result.best_trial is not None  # the search is reported either way


def test_final_refit_fits_on_train_and_calibration_with_out_of_fold_calibration():
    snaps = _snapshots()
    result = train_all(snaps, _params(candidates=["naive_bayes"], final_refit=True, refit_folds=3), horizon_days=0)
    train, calibration = (result.split[k]["rows"] for k in ("train", "calibration"))
    refit = result.metrics["model"]["final_refit"]
    assert refit["fit_rows"] == train + calibration
    assert [f["fit_rows"] for f in refit["folds"]] == [train, train + refit["folds"][0]["rows"],
                                                      train + refit["folds"][0]["rows"] + refit["folds"][1]["rows"]]
    assert sum(f["rows"] for f in refit["folds"]) == calibration
    assert isinstance(result.calibrated, CrossFitCalibrated) and isinstance(result.scorer, NaiveBayesScorer)
    # the refit model's prior is that of every pre-test row, not of the train part alone
    pre_test = snaps["label"].iloc[: train + calibration]
    assert result.scorer.base_value_ == pytest.approx(np.log(pre_test.mean() / (1 - pre_test.mean())))
    p = result.calibrated.predict_proba(snaps)[:, 1]
    assert ((p >= 0) & (p <= 1)).all() and 0.5 < result.metrics["test"]["naive_bayes"]["roc_auc"] <= 1


def test_final_refit_works_for_lightgbm_with_the_searched_settings():
    result = train_all(_snapshots(), _params(final_refit=True, refit_folds=2), horizon_days=0)
    assert result.main == "lightgbm" and isinstance(base_model(result.calibrated), LGBMScorer)
    assert len(result.metrics["model"]["final_refit"]["folds"]) == 2
    assert result.metrics["search"]["trees"] == result.scorer.booster_.num_trees()


def test_cross_fit_blocks_are_consecutive_in_time_and_keep_the_gap():
    cal = _snapshots(100).sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows out of order
    blocks = cross_fit_blocks(cal, 3, gap_days=5)
    assert sorted(np.concatenate([rows for rows, _ in blocks]).tolist()) == list(range(100))
    starts = [cal["cutoff"].iloc[rows].min() for rows, _ in blocks]
    ends = [cal["cutoff"].iloc[rows].max() for rows, _ in blocks]
    assert all(ends[i] < starts[i + 1] for i in range(2))
    assert [end for _, end in blocks] == [s - pd.Timedelta(days=5) for s in starts]


class _Score:
    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["s"].to_numpy(dtype=float)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_cross_fit_calibrated_maps_the_refit_models_score(method):
    rng = np.random.default_rng(1)
    score = rng.normal(size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-2 * score))).astype(int)
    model = CrossFitCalibrated(_Score(), method).fit(score, y)
    grid = np.linspace(-3, 3, 50)
    p = model.predict_proba(pd.DataFrame({"s": grid}))[:, 1]
    assert np.allclose(p, model.probability(grid)) and np.all(np.diff(p) >= 0)
    assert p[0] < 0.1 and p[-1] > 0.9
    with pytest.raises(ValueError, match="single class"):
        CrossFitCalibrated(_Score(), method).fit(score, np.zeros(3000))


def test_candidates_must_be_known_distinct_families():
    for bad in ([], ["lightgbm", "lightgbm"], ["xgboost"]):
        with pytest.raises(ValidationError):
            TrainParams(candidates=bad)


def _drifting(n: int = 4000, seed: int = 2) -> pd.DataFrame:
    """``_snapshots`` plus ``promo``, whose effect on the label flips after the first 60 % of rows."""
    rng = np.random.default_rng(seed + 1000)  # not the stream that drew the other columns
    frame = _snapshots(n, seed)
    promo = rng.random(n) < 0.3
    late = np.arange(n) >= int(0.6 * n)
    logit = -2.0 + 1.5 * (frame["channel"] == "event").to_numpy() + 0.05 * (frame["age"].to_numpy() - 40)
    logit = logit + np.where(late, -2.0, 2.0) * promo
    return frame.assign(promo=pd.Series(np.where(promo, "yes", "no"), dtype="category"),
                        label=(rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8))


def test_naive_bayes_columns_chosen_on_the_calibration_part_carry_into_the_comparison_and_the_refit():
    snaps = _drifting()
    nb = NaiveBayesParams(select="backward")
    result = train_all(snaps, _params(candidates=["lightgbm", "naive_bayes"], naive_bayes=nb, final_refit=True),
                       horizon_days=0)
    columns = result.metrics["model"]["column_selection"]
    assert columns["family"] == "naive_bayes" and columns["dropped"] == ["promo"]
    assert columns["kept"] == ["channel", "age"] and columns["roc_auc"] > columns["start_roc_auc"]
    assert result.metrics["model"]["calibration_roc_auc"]["naive_bayes"] == pytest.approx(columns["roc_auc"])
    if result.main == "naive_bayes":  # refit on the kept columns only
        assert sorted(result.scorer.spec_.names) == ["age", "channel"]
    # logreg and LightGBM keep every column
    assert "promo" in result.models["logreg"].feature_names_in_
    plain = train_all(snaps, _params(candidates=["naive_bayes"], final_refit=True), horizon_days=0)
    assert plain.metrics["model"]["column_selection"] is None and "promo" in plain.scorer.spec_.names
