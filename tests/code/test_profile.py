"""The data profile: numbers per column, outcome over time with the censoring warning, the HTML page."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.audit import Suspect
from features.profile import censoring_warning, profile, profile_html
from features.tabular import infer_types


def _monthly(collapse: bool, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Twelve months of leads at a 20 % outcome rate; with ``collapse`` the last two months
    have barely converted yet (censoring)."""
    rng = np.random.default_rng(seed)
    n = 2400
    created = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 365, n)), unit="D")
    rate = np.full(n, 0.2)
    if collapse:
        rate[created >= pd.Timestamp("2024-11-01", tz="UTC")] = 0.03
    y = (rng.random(n) < rate).astype(np.int8)
    frame = pd.DataFrame({
        "created": created,
        "industry": rng.choice(["software", "retail", "unknown_sector"], n),
        "employees": rng.integers(1, 5000, n).astype(float),
        "newsletter": pd.array(rng.random(n) < 0.5, dtype="boolean"),
    })
    frame.loc[:99, "industry"] = None
    return frame, y


TYPES = {"industry": "categorical", "employees": "numeric", "newsletter": "boolean"}


def test_censoring_warning_when_last_months_collapse():
    frame, y = _monthly(collapse=True)
    p = profile(frame, y, TYPES, time_column="created")
    warning = p["over_time"]["censoring_warning"]
    assert warning is not None and "2024-11, 2024-12" in warning and "not had time to convert" in warning
    assert len(p["over_time"]["periods"]) == 12


def test_no_warning_when_the_rate_holds():
    frame, y = _monthly(collapse=False)
    assert profile(frame, y, TYPES, time_column="created")["over_time"]["censoring_warning"] is None


def test_censoring_rule_ignores_small_periods():
    periods = [{"period": str(i), "rows": 100, "outcome_rate": 0.2} for i in range(8)]
    periods.append({"period": "tiny", "rows": 5, "outcome_rate": 0.0})
    assert censoring_warning(periods, "month") is None


def test_column_profiles_are_json_ready():
    frame, y = _monthly(collapse=False)
    p = profile(frame, y, TYPES, time_column="created")
    json.dumps(p)
    cols = {c["name"]: c for c in p["column_profiles"]}
    assert cols["industry"]["missing_share"] == pytest.approx(100 / 2400, abs=1e-4)
    assert cols["industry"]["cardinality"] == 3
    top = cols["industry"]["values"][0]
    assert set(top) == {"value", "rows", "share", "outcome_rate"}
    assert {v["value"] for v in cols["newsletter"]["values"]} == {"yes", "no"}
    assert len(cols["employees"]["values"]) == 4 and cols["employees"]["type"] == "numeric"
    assert p["rows"] == 2400 and 0.15 < p["outcome_rate"] < 0.25


def test_types_from_inference_are_accepted():
    raw = pd.DataFrame({"a": ["1", "2", "3", "4"], "b": ["x", "y", "x", None], "c": ["yes", "no", "no", "yes"]})
    typed, types = infer_types(raw)
    p = profile(typed, np.array([1, 0, 0, 1]), types)
    assert [c["type"] for c in p["column_profiles"]] == ["numeric", "categorical", "boolean"]
    assert p["over_time"]["periods"] == []


def test_row_order_profile_uses_blocks():
    y = np.r_[np.zeros(500), np.ones(100)].astype(int)
    p = profile(pd.DataFrame({"x": np.arange(600.0)}), y, {"x": "numeric"}, row_order=True)
    assert p["over_time"]["unit"] == "row block" and len(p["over_time"]["periods"]) == 20
    assert p["over_time"]["censoring_warning"] is None  # the rate rises at the end: not censoring


def test_html_is_self_contained_and_readable():
    frame, y = _monthly(collapse=True)
    leak = Suspect("call_minutes", "dominates", "alone predicts the outcome (AUC 0.930)", 0.93)
    p = profile(frame, y, TYPES, time_column="created", suspects=[leak], notes=["Split: out of time by 'created'."])
    page = profile_html(p, "ACME leads — data profile")
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "call_minutes" in page and "Alone predicts the outcome" in page
    assert "Recent periods look incomplete" in page and "ACME leads" in page and "out of time" in page


def test_html_escapes_user_text():
    p = profile(pd.DataFrame({"<b>x</b>": ["<script>", "a", "a", "b"]}), np.array([1, 0, 1, 0]),
                {"<b>x</b>": "categorical"})
    page = profile_html(p, "t")
    assert "<script>" not in page and "&lt;script&gt;" in page
