"""The exported scorer when the main model is the additive naive Bayes (a refit, cross-fitted one):
exact contributions, reasons from them, pickling as MLflow stores it, pyfunc output."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.catalog import build_catalog, discover_attributes
from models.calibration import CrossFitCalibrated
from models.nbayes import NaiveBayesParams, NaiveBayesScorer
from models.pyfunc import LeadScorerModel
from models.reasons import ReasonBook
from models.scorer import LeadScorer, ScorerParams, output_columns, with_learned_effects
from models.split import SplitParams
from models.lgbm import LGBMParams, SearchParams
from models.train import TrainParams, train_all


@pytest.fixture(scope="module")
def nb_scorer():
    rng = np.random.default_rng(3)
    n = 5000
    job = rng.choice(["admin", "retired", "student", "services"], size=n)
    calls = rng.poisson(2.0, size=n).astype(float)
    logit = -2.2 + 1.4 * (job == "retired") + 1.0 * (job == "student") - 0.3 * calls
    snaps = pd.DataFrame({
        "lead_id": np.arange(1, n + 1),
        "cutoff": pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="D"),
        "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8),
        "job": pd.Series(job, dtype="category"),
        "calls": calls,
    })
    params = TrainParams(split=SplitParams(train=0.6, calibration=0.15, test=0.25, gap_days=0), slices=[],
                         candidates=["naive_bayes"], final_refit=True,
                         lgbm=LGBMParams(n_estimators=20, search=SearchParams(n_trials=1)))
    result = train_all(snaps, params, horizon_days=0)
    catalog = build_catalog([7, 30, 90], discover_attributes(snaps.drop(columns=["cutoff", "label"])))
    scorer = LeadScorer(result.calibrated, ReasonBook.from_catalog(catalog, result.spec.names), ScorerParams(),
                        best_f1_threshold=result.best_f1_threshold)
    return with_learned_effects(scorer, snaps), snaps, result


def test_the_scorer_holds_the_refit_additive_model(nb_scorer):
    scorer, _, result = nb_scorer
    assert isinstance(scorer.calibrated, CrossFitCalibrated) and isinstance(scorer.lgbm, NaiveBayesScorer)
    assert scorer.features == ["calls", "job"] and result.main == "naive_bayes"


def test_contributions_are_the_models_terms_and_sum_to_its_raw_score(nb_scorer):
    scorer, snaps, _ = nb_scorer
    frame = snaps.tail(800)
    contrib = scorer.contributions(frame)
    assert list(contrib.columns) == ["calls", "job", "base_value"]
    assert np.abs(contrib.sum(axis=1).to_numpy() - scorer.lgbm.decision_function(frame)).max() <= 1e-12
    out = scorer.score(frame)
    assert list(out.columns) == output_columns()
    assert np.allclose(out["raw_score"], scorer.lgbm.decision_function(frame))
    assert np.allclose(out["probability"], scorer.calibrated.predict_proba(frame)[:, 1])


def test_reasons_come_from_the_largest_terms(nb_scorer):
    scorer, snaps, _ = nb_scorer
    frame = snaps.tail(800)
    out = scorer.score(frame)
    retired = (frame["job"] == "retired").to_numpy()
    assert out.loc[retired, "reason_1"].str.contains("retired", case=False).mean() > 0.9
    job_term = scorer.contributions(frame)["job"].to_numpy()
    assert np.allclose(out.loc[retired, "reason_1_shap"], job_term[retired])  # one feature per group: its term
    assert (out["reason_3"] == "").all() and (out["reason_3_shap"] == 0).all()  # two signals, three slots
    assert (out.loc[out["risk_1"] != "", "risk_1_shap"] < 0).all()
    assert (out["reason_1_shap"] >= out["reason_2_shap"]).all()


def test_pickled_scorer_and_pyfunc_give_the_same_scores(nb_scorer):
    scorer, snaps, _ = nb_scorer
    frame = snaps.tail(300)
    again = pickle.loads(pickle.dumps(scorer))
    pd.testing.assert_frame_equal(again.score(frame), scorer.score(frame))
    served = LeadScorerModel(scorer).predict(None, frame.drop(columns=["cutoff", "label"]))
    assert served["lead_id"].tolist() == frame["lead_id"].tolist()
    assert np.allclose(served["probability"], scorer.score(frame)["probability"])


def test_a_recency_weighted_model_with_selected_columns_scores_the_full_frame_exactly():
    """Recency weights and column selection (``train.naive_bayes``) keep the scorer's contract: the frame
    still carries the dropped column, contributions are exact, reasons come only from the kept columns."""
    rng = np.random.default_rng(4)
    n = 5000
    job = rng.choice(["admin", "retired", "student", "services"], size=n)
    promo = rng.random(n) < 0.3
    late = np.arange(n) >= int(0.6 * n)
    logit = -2.2 + 1.4 * (job == "retired") + 1.0 * (job == "student") + np.where(late, -2.0, 2.0) * promo
    snaps = pd.DataFrame({
        "lead_id": np.arange(1, n + 1),
        "cutoff": pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="D"),
        "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8),
        "job": pd.Series(job, dtype="category"),
        "promo": pd.Series(np.where(promo, "yes", "no"), dtype="category"),
    })
    params = TrainParams(split=SplitParams(train=0.6, calibration=0.15, test=0.25, gap_days=0), slices=[],
                         candidates=["naive_bayes"], final_refit=True,
                         naive_bayes=NaiveBayesParams(half_life=0.5, select="backward"),
                         lgbm=LGBMParams(n_estimators=20, search=SearchParams(n_trials=1)))
    result = train_all(snaps, params, horizon_days=0)
    assert result.metrics["model"]["column_selection"]["dropped"] == ["promo"]
    catalog = build_catalog([7, 30, 90], discover_attributes(snaps.drop(columns=["cutoff", "label"])))
    scorer = LeadScorer(result.calibrated, ReasonBook.from_catalog(catalog, result.spec.names), ScorerParams(),
                        best_f1_threshold=result.best_f1_threshold)
    frame = snaps.tail(500)
    assert scorer.features == ["job"]
    out = pickle.loads(pickle.dumps(scorer)).score(frame)  # checks the columns: 'promo' is known, not used
    assert np.allclose(out["raw_score"], scorer.lgbm.decision_function(frame))
    assert np.allclose(out["probability"], result.calibrated.predict_proba(frame)[:, 1])
    assert not out["reason_1"].str.contains("promo", case=False).any()
    assert not out["risk_1"].str.contains("promo", case=False).any()
