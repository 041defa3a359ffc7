"""Reason sentences: grouped per source signal, and a low count that raises the score says "only"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import Attribute, build_catalog
from models.reasons import ReasonBook, learned_effects

NAMES = ["page_view_blog_count_all", "demo_request_count_90d", "days_since_last_demo_request", "industry"]


def _book() -> ReasonBook:
    catalog = build_catalog([7, 30, 90], [Attribute("industry", "categorical")])
    return ReasonBook.from_catalog(catalog, NAMES)


def _training() -> tuple[pd.DataFrame, np.ndarray]:
    """Blog reading lowers the score the more there is of it; demo requests raise it."""
    rng = np.random.default_rng(0)
    blog = rng.integers(0, 40, 400).astype(float)
    demo = rng.integers(0, 3, 400).astype(float)
    values = pd.DataFrame({"page_view_blog_count_all": blog, "demo_request_count_90d": demo,
                           "days_since_last_demo_request": np.where(demo > 0, 3.0, np.nan),
                           "industry": rng.choice(["software", "retail"], 400)})
    contrib = np.column_stack([0.9 - 0.05 * blog, 0.4 * demo - 0.1, np.zeros(400), rng.normal(0, 0.1, 400)])
    return values, contrib


def test_effects_are_the_direction_of_each_feature_learned_from_its_contributions():
    values, contrib = _training()
    effects = learned_effects(_book().features, values, contrib)
    assert effects == (-1, 1, 0, 0), "blog lowers, demo raises, a constant recency and a category say nothing"


def test_a_low_count_that_raises_the_score_reads_only():
    values, contrib = _training()
    book = _book().with_effects(values, contrib)
    lead = pd.DataFrame({"page_view_blog_count_all": [2.0, 30.0, 0.0], "demo_request_count_90d": [1.0, 0.0, 0.0],
                         "days_since_last_demo_request": [3.0, np.nan, np.nan], "industry": ["software"] * 3})
    shap = np.array([[0.8, 0.3, 0.0, 0.0], [-0.9, -0.1, 0.0, 0.0], [0.9, -0.1, 0.0, 0.0]])
    out = book.explain(lead, shap)
    assert out.loc[0, "reason_1"] == "Viewed blog posts only twice so far"
    assert out.loc[0, "reason_2"] == "Requested a demo once in the last 90 days"
    assert out.loc[1, "risk_1"] == "Viewed blog posts 30 times so far", "a high count that lowers it reads plainly"
    assert out.loc[1, "reason_1"] == ""
    assert out.loc[2, "reason_1"] == "Has not viewed blog posts yet"
    assert out.loc[2, "risk_1"] == "Has not requested a demo in the last 90 days"
    plain = _book().explain(lead, shap)  # a book without learned effects says the value only
    assert plain.loc[0, "reason_1"] == "Viewed blog posts twice so far"


def test_the_effects_do_not_change_which_reasons_are_chosen_or_their_values():
    values, contrib = _training()
    lead = values.head(50)
    a = _book().explain(lead, contrib[:50])
    b = _book().with_effects(values, contrib).explain(lead, contrib[:50])
    shap = [c for c in a.columns if c.endswith("_shap")]
    pd.testing.assert_frame_equal(a[shap], b[shap])


def _reference_explain(book: ReasonBook, contributions: np.ndarray, k: int):
    """The plain numpy definition: group sums, a stable descending sort for the reasons, argmin for the risk."""
    g = len(book.groups)
    onehot = np.zeros((contributions.shape[1], g))
    onehot[np.arange(contributions.shape[1]), book._group_of] = 1.0
    sums = contributions @ onehot
    order = np.argsort(-sums, axis=1, kind="stable")[:, :k]
    risk = np.argmin(sums, axis=1)
    return sums, order, risk


def test_fused_ranking_matches_the_plain_definition_including_ties():
    catalog = build_catalog([7, 30, 90], [Attribute("industry", "categorical")])
    book = ReasonBook.from_catalog(catalog, catalog.feature_names)
    rng = np.random.default_rng(3)
    p = len(book.features)
    # coarse values make equal group sums (ties) common; whole zero rows too
    contributions = rng.integers(-2, 3, size=(2000, p)).astype(float) * 0.5
    contributions[:50] = 0.0
    sums, order, risk = _reference_explain(book, contributions, 3)
    got_sums, rep = book.grouped(contributions)
    assert np.array_equal(got_sums, sums)
    for j in range(p):  # each group's representative has the largest |value| among its members (first on ties)
        members = np.flatnonzero(book._group_of == book._group_of[j])
        best = members[np.argmax(np.abs(contributions[:, members]), axis=1)]
        assert np.array_equal(rep[:, book._group_of[j]], best)
    values = pd.DataFrame(rng.integers(0, 5, size=(2000, p)).astype(float), columns=book.names)
    out = book.explain(values, contributions, n_reasons=3)
    rows = np.arange(len(values))
    for i in range(3):
        expected = sums[rows, order[:, i]]
        assert np.array_equal(out[f"reason_{i + 1}_shap"].to_numpy(), np.where(expected > 0, expected, 0.0))
        assert ((out[f"reason_{i + 1}"] != "") == (expected > 0)).all()
    low = sums[rows, risk]
    assert np.array_equal(out["risk_1_shap"].to_numpy(), np.where(low < 0, low, 0.0))
    assert ((out["risk_1"] != "") == (low < 0)).all()
    # the sentence is the representative member's, rendered with the lead's own value
    first = order[:, 0]
    for r in np.flatnonzero(sums[rows, first] > 0)[:200]:
        decl = book.features[rep[r, first[r]]]
        assert out["reason_1"].iloc[r] == decl.describe(values[decl.name].iloc[r])


def test_only_is_said_for_low_values_not_for_high_ones_that_still_raise_the_score():
    """A non-monotone effect: a lead far above the level where blog reading lowers the score, whose
    contribution is still positive, gets the plain sentence, not "only 35 times"."""
    values, contrib = _training()
    book = _book().with_effects(values, contrib)
    j = NAMES.index("page_view_blog_count_all")
    level = book.only_below[j]
    heavy = values["page_view_blog_count_all"][contrib[:, 0] < 0]
    assert book.effects[j] == -1 and level == float(np.median(heavy))
    lead = pd.DataFrame({"page_view_blog_count_all": [2.0, 35.0], "demo_request_count_90d": [0.0, 0.0],
                         "days_since_last_demo_request": [np.nan, np.nan], "industry": ["software"] * 2})
    shap = np.array([[0.8, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    out = book.explain(lead, shap)
    assert 2.0 < level < 35.0
    assert out.loc[0, "reason_1"] == "Viewed blog posts only twice so far"
    assert out.loc[1, "reason_1"] == "Viewed blog posts 35 times so far"


def test_a_long_past_recency_as_a_reason_reads_as_a_past_fact():
    """"Last chatted with the team 178 days ago" as a reason to call reads backwards: what raises the
    score is that the lead chatted at all. Past RECENT_DAYS it says so; recent ones and risks read plainly."""
    catalog = build_catalog([7, 30, 90], [])
    book = ReasonBook.from_catalog(catalog, ["days_since_last_chat", "page_view_blog_count_all"])
    lead = pd.DataFrame({"days_since_last_chat": [178.0, 3.0, 178.0], "page_view_blog_count_all": [1.0, 1.0, 1.0]})
    shap = np.array([[0.7, 0.0], [0.7, 0.0], [-0.7, 0.1]])
    out = book.explain(lead, shap)
    assert out.loc[0, "reason_1"] == "Chatted with the team before (last time 178 days ago)"
    assert out.loc[1, "reason_1"] == "Last chatted with the team 3 days ago"
    assert out.loc[2, "risk_1"] == "Last chatted with the team 178 days ago"
    assert catalog["days_since_last_demo_request"].earlier is None  # "Requested a demo 178 days ago" is a past fact already
