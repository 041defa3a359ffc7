"""The simulated lead base: reproducible, within the contract, and behaving as the domain says.

One small base (4,000 leads in two chunks) is simulated once per module; the checks read it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from features.simulate import (
    MQL_THRESHOLD,
    SCORE_DECAY,
    SimulateParams,
    behaviour_points,
    fit_points,
    oracle_probabilities,
    period,
    simulate_chunks,
)
from features.snapshots import SpineParams, snapshot_spine
from features.timeline import latest_lead_time
from features.validate import ValidateParams, events_arrow_schema, validate_events_batch, validate_leads

PARAMS = SimulateParams(leads=4_000, chunk_leads=2_000, workers=1, seed=11)
HORIZON = 30


def _simulate(params: SimulateParams) -> tuple[pd.DataFrame, pa.Table, pd.DataFrame, pd.DataFrame]:
    chunks = list(simulate_chunks(params))
    return (
        pd.concat([c.leads for c in chunks], ignore_index=True),
        pa.concat_tables([c.events for c in chunks]),
        pd.concat([c.truth for c in chunks], ignore_index=True),
        pa.concat_tables([c.states for c in chunks]).to_pandas(),
    )


@pytest.fixture(scope="module")
def base():
    leads, events, truth, states = _simulate(PARAMS)
    return leads, events, events.to_pandas(), truth, states


@pytest.fixture(scope="module")
def snapshots(base):
    leads, events, _, truth, states = base
    data_end = max(pd.Timestamp(pa.compute.max(events["ts"]).as_py()), latest_lead_time(leads))
    spine = snapshot_spine(leads, data_end, SpineParams(horizon_days=HORIZON))
    spine["oracle"] = oracle_probabilities(states, truth, spine, HORIZON, PARAMS)
    return spine


# --- reproducibility ------------------------------------------------------------------------------


def test_same_seed_same_base_whatever_the_number_of_workers(base):
    leads, events, _, truth, states = base
    again = _simulate(PARAMS.model_copy(update={"workers": 2}))
    pd.testing.assert_frame_equal(again[0], leads)
    assert again[1].equals(events)
    pd.testing.assert_frame_equal(again[2], truth)
    pd.testing.assert_frame_equal(again[3], states)


def test_another_seed_gives_another_base(base):
    leads, events, *_ = base
    other_leads, other_events, *_ = _simulate(PARAMS.model_copy(update={"seed": 12}))
    assert not other_leads["created_at"].equals(leads["created_at"])
    assert other_events.num_rows != events.num_rows or not other_events.equals(events)


def test_params_are_bounded_and_strict():
    with pytest.raises(ValidationError):
        SimulateParams(months=12)
    with pytest.raises(ValidationError):
        SimulateParams(leadz=10)
    with pytest.raises(ValidationError):
        SimulateParams(start="2024-03-01 10:00")


# --- contract -------------------------------------------------------------------------------------


def test_leads_and_events_pass_the_contract(base):
    leads, events, *_ = base
    start, days = period(PARAMS)
    now = start + pd.Timedelta(days=days + 1)
    checked, _ = validate_leads(leads, source="sim/leads", now=now, params=ValidateParams())
    pd.testing.assert_frame_equal(checked, leads)
    assert events.schema == events_arrow_schema(True)
    batch = events.slice(0, 200_000)
    out, _ = validate_events_batch(
        batch, source="sim/events", first_row=1, lead_ids=pd.Index(leads["lead_id"]), now=now,
        params=ValidateParams(),
    )
    assert out.equals(batch)
    assert leads["lead_id"].is_unique
    for col, kind in [("industry", "str"), ("employees", "int64"), ("crm_compatible", "bool")]:
        assert str(leads[col].dtype) == kind
    assert set(leads["source_type"]) == {"inbound", "outbound"}
    assert set(leads["email_domain_type"]) == {"business", "free"}
    assert leads["mql_at"].isna().any() and leads["mql_at"].notna().any()


def test_events_are_sorted_within_their_leads_lifetime_and_the_period(base):
    leads, _, ev, *_ = base
    start, days = period(PARAMS)
    assert (ev[["lead_id", "ts"]].diff().dropna().pipe(
        lambda d: (d["lead_id"] > 0) | ((d["lead_id"] == 0) & (d["ts"] >= pd.Timedelta(0)))
    )).all()
    created = ev["lead_id"].map(leads.set_index("lead_id")["created_at"])
    assert (ev["ts"] >= created).all()
    assert ev["ts"].max() < start + pd.Timedelta(days=days)
    usage = ev[ev["event_type"] == "product_usage"]
    assert usage["feature"].notna().all() and ev.loc[ev["event_type"] != "product_usage", "feature"].isna().all()
    assert ev.loc[ev["event_type"] == "page_view", "page_type"].notna().all()


def test_span_and_weekly_seasonality(base):
    leads, _, ev, *_ = base
    assert leads["created_at"].max() - leads["created_at"].min() >= pd.Timedelta(days=540)
    assert ev["ts"].max() - ev["ts"].min() >= pd.Timedelta(days=540)
    per_day = ev.loc[ev["event_type"] != "email_sent", "ts"].dt.floor("D").value_counts()
    weekend = per_day.index.day_of_week >= 5
    assert per_day[~weekend].mean() > 2 * per_day[weekend].mean()
    created = leads["created_at"].dt.day_of_week
    assert (created < 5).mean() > 0.85
    hour = ev["ts"].dt.hour
    assert ((hour >= 8) & (hour < 20)).mean() > 0.75


def test_state_segments_are_compact_and_cover_each_leads_life(base):
    leads, _, _, truth, states = base
    assert len(states) < 0.1 * len(leads) * period(PARAMS)[1]
    s = states.sort_values(["lead_id", "start_day"])
    same = s["lead_id"].to_numpy()[1:] == s["lead_id"].to_numpy()[:-1]
    assert (s["start_day"].to_numpy()[1:][same] == s["end_day"].to_numpy()[:-1][same] + 1).all()
    assert (s["state"].to_numpy()[1:][same] != s["state"].to_numpy()[:-1][same]).all()
    first = s.groupby("lead_id")["start_day"].min()
    start, _ = period(PARAMS)
    created_day = ((leads.set_index("lead_id")["created_at"] - start) // pd.Timedelta(days=1)).loc[first.index]
    assert (first == created_day).all()


# --- personas and outcomes ------------------------------------------------------------------------


def _per_lead(ev: pd.DataFrame, event_type: str, leads: pd.DataFrame) -> pd.Series:
    counts = ev.loc[ev["event_type"] == event_type, "lead_id"].value_counts()
    return counts.reindex(leads["lead_id"], fill_value=0).set_axis(leads.index)


def test_personas_behave_as_described(base):
    leads, _, ev, truth, _ = base
    t = leads.merge(truth, on="lead_id")
    t["downloads"] = _per_lead(ev, "content_download", leads)
    t["demos"] = _per_lead(ev, "demo_request", leads)
    t["pricing"] = ev.loc[ev["page_type"] == "pricing", "lead_id"].value_counts().reindex(
        leads["lead_id"], fill_value=0).to_numpy()
    t["sql"] = t["sql_at"].notna()
    by = t.groupby("persona")[["downloads", "demos", "pricing", "sql"]].mean()
    kicker, buyer = by.loc["tire_kicker"], by.loc["ready_buyer"]
    assert kicker["downloads"] > 1.5 * buyer["downloads"]
    assert kicker["demos"] < 0.2 * buyer["demos"]
    assert kicker["pricing"] < 0.5 * buyer["pricing"]
    assert buyer["sql"] > 0.5 > 10 * kicker["sql"]
    assert t.loc[t["email_domain_type"] == "free", "sql"].mean() < 0.6 * t.loc[
        t["email_domain_type"] == "business", "sql"].mean()
    assert t.loc[~t["crm_compatible"], "sql"].mean() < 0.5 * t.loc[t["crm_compatible"], "sql"].mean()
    assert (t.loc[t["persona"] == "tire_kicker", "seniority"] == "student").mean() > 0.2
    assert (t.loc[t["persona"] == "ready_buyer", "seniority"] == "student").mean() == 0


def _replay_score(times: np.ndarray, points: np.ndarray, base: float, until: pd.Timestamp) -> tuple[float, float]:
    """Marketing automation's score just before and at ``until`` (decay at day boundaries)."""
    day = times.astype("datetime64[D]").astype(np.int64)
    day_until = np.datetime64(until.tz_convert(None), "D").astype(np.int64)
    weight = SCORE_DECAY ** (day_until - day)
    at = base + (points * weight)[times <= until.tz_convert(None).to_datetime64()].sum()
    before = base + (points * weight)[times < until.tz_convert(None).to_datetime64()].sum()
    day_ends = np.unique(day[times < until.tz_convert(None).to_datetime64()])
    earlier = [base + (points * SCORE_DECAY ** (d - day))[day <= d].sum() for d in day_ends if d < day_until]
    return max([before, *earlier]), at


def test_mql_is_the_moment_the_points_rule_crosses_the_threshold(base):
    leads, _, ev, *_ = base
    rng = np.random.default_rng(0)
    ev = ev.assign(points=behaviour_points(ev))
    groups = dict(tuple(ev.groupby("lead_id")))
    base_points = pd.Series(fit_points(leads), index=leads["lead_id"])
    mqls = leads[leads["mql_at"].notna()]
    for _, lead in mqls.iloc[rng.choice(len(mqls), 150, replace=False)].iterrows():
        e = groups[lead["lead_id"]]
        assert lead["mql_at"] in set(e["ts"]), "MQL happens at an event"
        times = e["ts"].dt.tz_convert(None).to_numpy()
        highest_before, at = _replay_score(times, e["points"].to_numpy(), base_points[lead["lead_id"]],
                                           lead["mql_at"])
        assert highest_before < MQL_THRESHOLD <= at + 1e-9
    never = leads[leads["mql_at"].isna() & leads["lead_id"].isin(groups)]
    end = ev["ts"].max()
    for _, lead in never.iloc[rng.choice(len(never), 100, replace=False)].iterrows():
        e = groups[lead["lead_id"]]
        highest, at = _replay_score(e["ts"].dt.tz_convert(None).to_numpy(), e["points"].to_numpy(),
                                    base_points[lead["lead_id"]], end)
        assert max(highest, at) < MQL_THRESHOLD


def test_outcomes_follow_the_funnel(base):
    leads, _, ev, *_ = base
    assert (leads["sql_at"].dropna().index.isin(leads["mql_at"].dropna().index)).all()
    assert (leads["sql_at"] > leads["mql_at"]).sum() == leads["sql_at"].notna().sum()
    assert (leads["disqualified_at"] > leads["mql_at"]).sum() == leads["disqualified_at"].notna().sum()
    assert not (leads["sql_at"].notna() & leads["disqualified_at"].notna()).any()
    fast = ev[ev["event_type"].isin(["demo_request", "contact_form"])].groupby("lead_id")["ts"].min()
    mql = leads.set_index("lead_id")["mql_at"].reindex(fast.index)
    assert (mql <= fast).mean() > 0.9, "a demo request or contact form makes the lead MQL at once"
    recycled = ev[ev["event_type"] == "sales_recycled"].merge(leads, on="lead_id")
    assert len(recycled) > 20
    assert (recycled["ts"] > recycled["mql_at"]).all()
    still_open = (recycled["sql_at"].isna() | (recycled["sql_at"] > recycled["ts"])) & (
        recycled["disqualified_at"].isna() | (recycled["disqualified_at"] > recycled["ts"]))
    assert still_open.all()
    assert (recycled["channel"] == "sales").all()


# --- the oracle -----------------------------------------------------------------------------------


def test_oracle_is_a_probability_and_calibrated_against_the_labels(snapshots):
    spine = snapshots
    p, y = spine["oracle"].to_numpy(), spine["label"].to_numpy()
    assert len(spine) > 5_000 and 0.04 < y.mean() < 0.16
    assert ((p >= 0) & (p <= 1)).all()
    # snapshots of one lead are correlated: allow twice the binomial variance, at 4 sigma
    tolerance = 4 * np.sqrt(2 * p.mean() * (1 - p.mean()) / len(p))
    assert abs(p.mean() - y.mean()) < tolerance
    decile = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False).to_numpy()
    for d in range(10):
        pd_, yd = p[decile == d], y[decile == d]
        sd = np.sqrt(2 * max(pd_.mean() * (1 - pd_.mean()), 1e-4) / len(pd_))
        assert abs(pd_.mean() - yd.mean()) < 4 * sd + 0.003, f"decile {d}: oracle {pd_.mean():.4f} vs {yd.mean():.4f}"


def test_oracle_ranks_well_but_not_perfectly(snapshots):
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(snapshots["label"], snapshots["oracle"])
    assert 0.8 < auc < 0.95
