"""The additive naive Bayes: exact additive contributions, slots for missing and unseen levels, bins."""

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import CategoricalNB

from models.nbayes import NaiveBayesParams, bin_edges, fit_naive_bayes


def _frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(["web", "phone", "event"], size=n, p=[0.5, 0.3, 0.2])
    age = rng.normal(40, 10, size=n)
    flag = rng.random(n) < 0.1
    logit = -2.0 + 1.5 * (channel == "event") + 0.05 * (age - 40) + 1.0 * flag
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    frame = pd.DataFrame({"channel": pd.Series(channel, dtype=object), "age": age, "flag": flag, "label": label})
    frame.loc[rng.random(n) < 0.05, "channel"] = None
    frame.loc[rng.random(n) < 0.05, "age"] = np.nan
    return frame


def test_contributions_are_exact_and_sum_to_the_raw_score():
    frame = _frame()
    model = fit_naive_bayes(frame, ["channel", "age", "flag"], NaiveBayesParams())
    contrib = model.contributions(model.matrix(frame))
    assert contrib.shape == (len(frame), 4)
    assert np.allclose(contrib.sum(axis=1), model.decision_function(frame))
    prior = frame["label"].mean()
    assert np.allclose(contrib[:, -1], np.log(prior / (1 - prior)))  # base value: the prior log-odds
    p = model.predict_proba(frame)[:, 1]
    assert np.allclose(p, 1 / (1 + np.exp(-model.decision_function(frame))))


def test_terms_follow_the_planted_effects():
    frame = _frame(20_000)
    model = fit_naive_bayes(frame, ["channel", "age", "flag"], NaiveBayesParams())
    rows = pd.DataFrame({"channel": ["event", "web"], "age": [40.0, 40.0], "flag": [False, False]})
    c = model.contributions(model.matrix(rows))
    assert c[0, 2] > 0 > c[1, 2]  # the 'event' channel raises the odds, 'web' lowers them
    old = pd.DataFrame({"channel": ["web"] * 2, "age": [65.0, 20.0], "flag": [True, False]})
    c = model.contributions(model.matrix(old))
    assert c[0, 0] > c[1, 0] and c[0, 1] > 0 > c[1, 1]  # older and flagged raise the odds


def test_categoricals_only_with_smoothing_match_scikit_learns_categorical_nb():
    frame = _frame().dropna(subset=["channel"]).reset_index(drop=True)
    model = fit_naive_bayes(frame, ["channel"], NaiveBayesParams(numeric_bins=0))
    assert model.spec_.names == ["channel"]
    levels = sorted(frame["channel"].unique())
    codes = frame["channel"].map({v: i for i, v in enumerate(levels)}).to_numpy().reshape(-1, 1)
    # leadlift's slots are the 3 levels + missing + unseen: 5 categories with the same smoothing
    reference = CategoricalNB(alpha=1.0, min_categories=5).fit(codes, frame["label"])
    assert np.allclose(model.predict_proba(frame)[:, 1], reference.predict_proba(codes)[:, 1])


def test_missing_and_unseen_levels_have_their_own_slots():
    frame = _frame()
    smoothed = fit_naive_bayes(frame, ["channel"], NaiveBayesParams(numeric_bins=0, unseen="smoothed"))
    neutral = fit_naive_bayes(frame, ["channel"], NaiveBayesParams(numeric_bins=0, unseen="neutral"))
    rows = pd.DataFrame({"channel": [None, "fax"]})
    s, n = smoothed.contributions(smoothed.matrix(rows)), neutral.contributions(neutral.matrix(rows))
    assert s[0, 0] == pytest.approx(n[0, 0]) and s[0, 0] != 0  # missing: learnt from the missing rows
    n1, n0 = frame["label"].sum(), (1 - frame["label"]).sum()
    assert s[1, 0] == pytest.approx(np.log((n0 + 5) / (n1 + 5)))  # unseen: a zero count, smoothed
    assert n[1, 0] == 0.0  # unseen: no evidence


def test_bin_edges_keep_flags_and_rare_values_apart():
    assert bin_edges(np.r_[np.zeros(95), np.ones(5)], 10) == (0.5,)
    mostly = np.r_[np.full(97, 999.0), [0.0, 3.0, 6.0]]
    assert bin_edges(mostly, 10) == (499.5,)  # 'contacted before' stays apart from the 999 default
    assert len(bin_edges(np.arange(1000.0), 10)) == 10
    assert bin_edges(np.array([np.nan, np.nan]), 10) == ()


def test_fit_does_not_modify_its_input_and_needs_both_classes():
    frame = _frame()
    before = frame.copy()
    fit_naive_bayes(frame, ["channel", "age", "flag"], NaiveBayesParams())
    pd.testing.assert_frame_equal(frame, before)
    with pytest.raises(ValueError, match="both classes"):
        fit_naive_bayes(frame.assign(label=0), ["channel"], NaiveBayesParams())
