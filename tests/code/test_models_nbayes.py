"""The additive naive Bayes: exact additive contributions, slots for missing and unseen levels, bins."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.naive_bayes import CategoricalNB

from models.nbayes import (
    NaiveBayesParams,
    NaiveBayesScorer,
    bin_edges,
    decay_weights,
    fit_naive_bayes,
    select_columns,
)


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


def _drifting(n: int = 6000, seed: int = 1) -> pd.DataFrame:
    """Dated rows: ``channel`` and ``age`` drive the label throughout; ``promo``'s effect flips after
    the first 60 % of rows (a column whose relation to the outcome drifts)."""
    rng = np.random.default_rng(seed + 1000)  # not the stream that drew the other columns
    frame = _frame(n, seed).drop(columns="label")
    promo = rng.random(n) < 0.3
    late = np.arange(n) >= int(0.6 * n)
    channel = frame["channel"].fillna("web").to_numpy()
    logit = -1.5 + 1.5 * (channel == "event") + 0.05 * (frame["age"].fillna(40).to_numpy() - 40)
    logit = logit + np.where(late, -1.5, 1.5) * promo
    return frame.assign(
        promo=pd.Series(np.where(promo, "yes", "no"), dtype=object),
        noise=pd.Series(rng.choice(list("abcdefgh"), size=n), dtype=object),
        label=(rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8),
        cutoff=pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="D"),
    )


def test_decay_weights_halve_every_half_life_of_the_span_and_average_one():
    times = pd.Series(pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.arange(11), unit="D"))
    w = decay_weights(times, 0.5)  # span 10 days: a half-life of 5 days, so the oldest row weighs 1/4
    assert w.mean() == pytest.approx(1.0) and w[-1] / w[0] == pytest.approx(4.0)
    assert w[-1] / w[5] == pytest.approx(2.0) and np.all(np.diff(w) > 0)
    assert np.allclose(decay_weights(pd.Series([times[0]] * 3), 0.5), 1.0)
    with pytest.raises(ValueError, match="time"):
        decay_weights(pd.Series([times[0], pd.NaT]), 0.5)


def test_recency_weights_follow_the_recent_relation_and_unit_weights_change_nothing():
    frame = _drifting()
    feats = ["channel", "age", "flag", "promo"]
    plain = fit_naive_bayes(frame, feats, NaiveBayesParams())
    unit = NaiveBayesScorer(NaiveBayesParams()).fit(frame[feats], frame["label"], np.ones(len(frame)))
    assert np.allclose(unit.decision_function(frame), plain.decision_function(frame))
    recent = fit_naive_bayes(frame, feats, NaiveBayesParams(half_life=0.05))
    yes = pd.DataFrame({"channel": ["web"], "age": [40.0], "flag": [False], "promo": ["yes"]})
    term = {m: m.contributions(m.matrix(yes))[0, 3] for m in (plain, recent)}
    assert term[plain] > 0 > term[recent]  # all rows: promo helps (60 % early rows); recent rows: it hurts
    with pytest.raises(ValueError, match="sample_weight"):
        NaiveBayesScorer().fit(frame[feats], frame["label"], -np.ones(len(frame)))


@pytest.mark.parametrize("method", ["backward", "forward"])
def test_column_selection_on_validation_leaves_out_the_drifting_column(method):
    frame = _drifting()
    train, valid = frame.iloc[:3600], frame.iloc[3600:]
    before = frame.copy()
    feats = ["channel", "age", "flag", "promo", "noise"]
    params = NaiveBayesParams(select=method, select_min_gain=0.002)
    sel = select_columns(train, valid, feats, params)
    pd.testing.assert_frame_equal(frame, before)
    assert {"channel", "age"} <= set(sel.kept) and "promo" in sel.dropped
    if method == "forward":  # forward never adds a column that does not help; backward keeps what costs little
        assert "noise" not in sel.kept
    assert set(sel.kept) | set(sel.dropped) == set(feats) and not set(sel.kept) & set(sel.dropped)
    aucs = [sel.start_roc_auc, *(r for _, _, r in sel.steps)]
    assert all(b >= a + 0.002 for a, b in zip(aucs, aucs[1:])) and sel.roc_auc == aucs[-1]
    # exact: the model refitted on the kept columns scores the validation part as the selection did
    kept = fit_naive_bayes(train, list(sel.kept), params)
    assert roc_auc_score(valid["label"], kept.decision_function(valid)) == pytest.approx(sel.roc_auc)
    full = fit_naive_bayes(train, feats, params)
    assert sel.roc_auc > roc_auc_score(valid["label"], full.decision_function(valid))
    assert sel.to_dict()["steps"][0]["step"] == ("drop" if method == "backward" else "add")


def test_column_selection_needs_a_method_and_both_classes_in_validation():
    frame = _drifting()
    with pytest.raises(ValueError, match="backward or forward"):
        select_columns(frame, frame, ["channel"], NaiveBayesParams())
    with pytest.raises(ValueError, match="single class"):
        select_columns(frame, frame.assign(label=0), ["channel"], NaiveBayesParams(select="backward"))
