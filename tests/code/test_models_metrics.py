import json

import numpy as np
import pandas as pd
import pytest

from models.metrics import (
    band,
    binary_metrics,
    curve_tables,
    ece,
    gains_table,
    positives_in_top,
    reliability_table,
    slice_metrics,
    top_fraction_stats,
)


def test_ece_by_hand():
    # bin [0.2, 0.267): 4 rows at p=0.25, 1 positive -> gap 0; bin of p=0.9: 2 rows, 1 positive -> |0.5-0.9|
    y = np.array([1, 0, 0, 0, 1, 0])
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.9, 0.9])
    assert ece(y, p) == pytest.approx(2 / 6 * 0.4)


def test_ece_is_zero_when_each_bin_rate_equals_its_probability():
    y = np.r_[np.ones(10), np.zeros(90), np.ones(50), np.zeros(50)]
    p = np.r_[np.full(100, 0.1), np.full(100, 0.5)]
    assert ece(y, p) == pytest.approx(0.0)


def test_top_k_with_all_scores_tied_finds_the_base_rate():
    y = np.r_[np.ones(10), np.zeros(90)]
    score = np.zeros(100)
    assert positives_in_top(y, score, 20) == pytest.approx(2.0)
    assert top_fraction_stats(y, score, 0.2) == {"lift": pytest.approx(1.0), "recall": pytest.approx(0.2)}


def test_top_k_with_a_perfect_ranking():
    y = np.r_[np.ones(10), np.zeros(90)]
    score = np.r_[np.linspace(0.9, 1.0, 10), np.linspace(0.0, 0.5, 90)]
    stats = top_fraction_stats(y, score, 0.05)
    assert stats["lift"] == pytest.approx(10.0)  # all 5 contacted convert, base rate 10 %
    assert stats["recall"] == pytest.approx(0.5)
    assert top_fraction_stats(y, score, 0.2)["recall"] == pytest.approx(1.0)


def test_top_k_shares_a_boundary_tie_group_pro_rata():
    y = np.array([1, 1, 0, 1, 0, 0])
    score = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1])
    # top 3: the 0.9 row, then 2 of the 4 rows tied at 0.5 (which hold 2 positives) -> 1 + 2 * 2/4
    assert positives_in_top(y, score, 3) == pytest.approx(2.0)


def test_metrics_do_not_depend_on_row_order():
    rng = np.random.default_rng(0)
    y = rng.binomial(1, 0.2, 500)
    p = np.round(rng.random(500), 1)  # many ties
    perm = rng.permutation(500)
    a = binary_metrics(y, p, threshold=0.5)
    b = binary_metrics(y[perm], p[perm], threshold=0.5)
    assert a == pytest.approx(b)


def test_binary_metrics_contents_and_single_class():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = binary_metrics(y, p, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["precision_at_threshold"] == pytest.approx(0.5)
    assert m["recall_at_threshold"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    for key in (
        "pr_auc",
        "log_loss",
        "ece",
        "lift_at_5pct",
        "lift_at_10pct",
        "lift_at_20pct",
        "recall_at_5pct",
        "recall_at_10pct",
        "recall_at_20pct",
    ):
        assert key in m
    json.dumps(m)
    single = binary_metrics(np.zeros(4), p, threshold=0.5)
    assert single["roc_auc"] is None and single["pr_auc"] is None and single["recall_at_threshold"] is None


def test_size_bands():
    got = band(pd.Series([1, 49, 50, 999, 1000, 25000, np.nan, 0]), [1, 50, 250, 1000])
    assert got.tolist() == ["1-49", "1-49", "50-249", "250-999", "1000+", "1000+", None, None]


def test_slice_metrics_per_value_and_min_rows():
    keys = pd.Series(["a"] * 60 + ["b"] * 60 + ["c"] * 5 + [None] * 60, dtype="str")
    rng = np.random.default_rng(1)
    y = rng.binomial(1, 0.3, len(keys))
    out = slice_metrics(keys, y, {"m": rng.random(len(keys))}, thresholds={"m": 0.5}, min_rows=50)
    assert sorted(out) == ["(missing)", "a", "b"]
    assert out["a"]["rows"] == 60 and out["a"]["m"]["rows"] == 60
    assert out["b"]["positives"] == int(y[60:120].sum())


def test_curve_tables_are_tidy_and_consistent():
    rng = np.random.default_rng(2)
    y = rng.binomial(1, 0.1, 5000)
    probs = {"good": np.clip(0.1 + 0.3 * y + rng.normal(0, 0.1, 5000), 0, 1), "random": rng.random(5000)}
    tables = curve_tables(y, probs)
    assert set(tables) == {"roc", "pr", "reliability", "gains"}
    for table in tables.values():
        assert set(table["model"]) == {"good", "random"}
        assert len(table) <= 2 * 201
    gains = gains_table(y, probs)
    for _, part in gains.groupby("model"):
        assert part["fraction_of_positives"].iloc[0] == 0 and part["fraction_of_positives"].iloc[
            -1
        ] == pytest.approx(1)
        assert part["fraction_of_positives"].is_monotonic_increasing
    rel = reliability_table(y, probs)
    assert rel.groupby("model")["rows"].sum().eq(5000).all()
