"""The scorer on real simulated snapshots: exact contributions, readable reasons, tiers, flags, bad input."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest

from models.scorer import FeatureColumnsError, FlagParams, ScorerParams, TierParams, flags, output_columns, tier_of


def _recent(snapshots: pd.DataFrame, n: int = 1500) -> pd.DataFrame:
    return snapshots.sort_values("cutoff").tail(n).reset_index(drop=True)


def test_contributions_plus_base_value_reproduce_the_raw_score(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    frame = _recent(simulated_snapshots[2])
    contrib = scorer.contributions(frame)
    raw = scorer.lgbm.decision_function(frame)
    assert np.abs(contrib.sum(axis=1).to_numpy() - raw).max() <= 1e-6
    exact = scorer.lgbm.booster_.predict(scorer.lgbm.spec_.matrix(frame), pred_contrib=True)
    assert np.abs(contrib.to_numpy() - exact).max() <= 1e-6, "the same values as LightGBM's own TreeSHAP"


def test_scores_have_every_column_and_calibrated_probabilities(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    frame = _recent(simulated_snapshots[2])
    out = scorer.score(frame)
    assert list(out.columns) == output_columns()
    assert np.allclose(out["probability"], scorer.calibrated.predict_proba(frame)[:, 1])
    assert out["tier"].isin(["hot", "warm", "cold"]).all()
    assert np.allclose(out["raw_score"], scorer.lgbm.decision_function(frame), atol=1e-6)


def test_reasons_are_plain_sentences_without_raw_feature_names(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    out = scorer.score(_recent(simulated_snapshots[2]))
    sentences = pd.unique(out[["reason_1", "reason_2", "reason_3", "risk_1"]].to_numpy().ravel())
    sentences = [s for s in sentences if s]
    assert len(sentences) > 10
    names = set(scorer.features)
    for s in sentences:
        assert s[0].isupper(), s
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", s), f"raw identifier in {s!r}"
        assert not any(n in s for n in names if "_" in n), s
    # a lead's reasons name different source signals, strongest first
    assert (out["reason_1_shap"] >= out["reason_2_shap"]).all() and (out["reason_2_shap"] >= out["reason_3_shap"]).all()
    assert (out.loc[out["reason_1"] != "", "reason_1_shap"] > 0).all()
    assert (out.loc[out["risk_1"] != "", "risk_1_shap"] < 0).all()
    same = (out["reason_1"] == out["reason_2"]) & (out["reason_1"] != "")
    assert not same.any()


def test_demo_requests_read_as_demo_requests(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    frame = _recent(simulated_snapshots[2], 4000)
    frame = frame[frame["demo_request_count_30d"] > 0]
    assert len(frame) > 0
    out = scorer.score(frame)
    top = out[["reason_1", "reason_2", "reason_3"]].to_numpy().ravel()
    assert any("demo" in s.lower() for s in top), "a recent demo request shows up among the reasons"


def test_tiers_are_absolute_cut_offs_and_flags_follow_the_policy():
    p = np.array([0.05, 0.10, 0.29, 0.30, 0.9])
    assert list(tier_of(p, TierParams(hot=0.3, warm=0.1))) == ["cold", "warm", "warm", "hot", "hot"]
    assert list(flags(p, FlagParams(policy="fixed", threshold=0.2), 0.5)) == [False, False, True, True, True]
    assert list(flags(p, FlagParams(policy="best_f1"), 0.5)) == [False, False, False, False, True]
    assert list(flags(p, FlagParams(policy="capacity", capacity=2), 0.5)) == [False, False, False, True, True]
    with pytest.raises(ValueError, match="must be below"):
        TierParams(hot=0.1, warm=0.2)


def test_missing_and_unknown_columns_are_listed(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    frame = _recent(simulated_snapshots[2], 10)
    with pytest.raises(FeatureColumnsError, match=r"missing feature columns \(2\): demo_request_count_30d, industry"):
        scorer.score(frame.drop(columns=["demo_request_count_30d", "industry"]))
    with pytest.raises(FeatureColumnsError, match=r"does not know \(1\): favourite_colour"):
        scorer.score(frame.assign(favourite_colour="blue"))


def test_unseen_categories_nulls_and_an_empty_base_are_scored(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    frame = _recent(simulated_snapshots[2], 20)
    odd = frame.assign(industry="space mining", employees=np.nan)
    out = scorer.score(odd)
    assert out["probability"].between(0, 1).all() and len(out) == 20
    empty = scorer.score(frame.head(0))
    assert list(empty.columns) == output_columns() and len(empty) == 0


def test_catalog_version_mismatch_is_refused(trained_scorer):
    scorer, _ = trained_scorer
    scorer.check_catalog(scorer.catalog_version)
    with pytest.raises(FeatureColumnsError, match="catalog version"):
        scorer.check_catalog("0123456789ab")


def test_the_scorer_pickles_without_its_explainer(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    frame = _recent(simulated_snapshots[2], 50)
    before = scorer.score(frame)
    again = pickle.loads(pickle.dumps(scorer))
    assert again._explainer is None
    pd.testing.assert_frame_equal(again.score(frame), before)


def test_a_scorer_that_cannot_be_loaded_is_a_clear_error(tmp_path):
    from features.errors import DataContractError
    from pipelines.stages.score import load_scorer

    with pytest.raises(DataContractError, match="no leadlift scorer can be loaded"):
        load_scorer(str(tmp_path / "no-scorer-here"))


def test_the_scorer_knows_which_way_its_features_work(trained_scorer, simulated_snapshots):
    scorer, _ = trained_scorer
    book = scorer.reasons
    effects = dict(zip(scorer.features, book.effects, strict=True))
    assert 1 in {effects[n] for n in ("high_intent_count_all", "demo_request_count_all", "demo_request_count_90d")}
    assert effects["page_view_careers_count_all"] == -1, "job seekers: careers-page visits lower the odds"
    # Where a signal is the top reason, the sentence says "only" exactly when its member goes against
    # the member's learned effect with a value under the level where that effect works.
    frame = _recent(simulated_snapshots[2], 4000)
    contrib = scorer.contributions(frame)[scorer.features].to_numpy()
    sums, rep = book.grouped(contrib)
    out = book.explain(frame[scorer.features], contrib)
    top = sums.argmax(axis=1)
    checked = 0
    for i in np.flatnonzero(sums.max(axis=1) > 0):
        member = rep[i, top[i]]
        f = book.features[member]
        if f.low is None or frame[f.name].iloc[i] == 0:
            continue
        low = book.effects[member] == -1 and frame[f.name].iloc[i] < book.only_below[member]
        assert (" only " in out["reason_1"].iloc[i]) == low, out["reason_1"].iloc[i]
        checked += 1
    assert checked > 20
    assert out["reason_1"].str.contains(" only ").any(), "some low counts are reasons on this base"


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_probability_from_the_raw_score_equals_predict_proba(trained_scorer, simulated_snapshots, method):
    """The scorer maps the TreeSHAP sum through the calibrators instead of predicting twice."""
    from models.calibration import CalibrationParams, calibrate, probability_from_raw

    scorer, result = trained_scorer
    snapshots = simulated_snapshots[2]
    calibrated, _ = calibrate(scorer.lgbm, snapshots.iloc[::2], CalibrationParams(method=method))
    frame = snapshots.iloc[1::2]
    raw = scorer.lgbm.decision_function(frame)
    assert np.allclose(probability_from_raw(calibrated, raw), calibrated.predict_proba(frame)[:, 1], rtol=0, atol=1e-12)
