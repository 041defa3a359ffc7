import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.split import SplitParams, boundaries, lead_holdout, split_out_of_time

HORIZON = 30


def _frame(n_leads: int, seed: int, days: int = 600, max_snaps: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    first = rng.uniform(0, days, n_leads)
    k = rng.integers(1, max_snaps + 1, n_leads)
    lead = np.repeat(np.arange(n_leads), k)
    step = np.concatenate([np.arange(i) for i in k])
    cutoff = (start + pd.to_timedelta(first[lead] + 14 * step, unit="D")).as_unit("us")
    return pd.DataFrame(
        {
            "lead_id": lead.astype("int64"),
            "cutoff": cutoff,
            "label": rng.binomial(1, 0.1, len(lead)).astype("int8"),
            "x": rng.normal(size=len(lead)),
        }
    )


def _check_invariants(frame: pd.DataFrame, params: SplitParams, horizon: int) -> None:
    result = split_out_of_time(frame, params, horizon)
    gap = pd.Timedelta(days=params.gap_days if params.gap_days is not None else horizon)
    train, cal, test = result.train, result.calibration, result.test
    leads = [set(p["lead_id"]) for p in (train, cal, test)]
    assert not (leads[0] & leads[1]) and not (leads[0] & leads[2]) and not (leads[1] & leads[2])
    # no label window of an earlier part reaches the next part, and parts are ordered in time
    if len(train) and len(cal):
        assert train["cutoff"].max() + gap < cal["cutoff"].min() + pd.Timedelta(microseconds=1)
    if len(cal) and len(test):
        assert cal["cutoff"].max() + gap < test["cutoff"].min()
    if len(train) and len(test):
        assert train["cutoff"].max() + gap < test["cutoff"].min()
    s = result.summary
    d = s["dropped_rows"]
    dropped = d["gap"] + sum(d["lead_in_earlier_part"].values()) + sum(d["lead_started_in_gap"].values())
    assert s["input_rows"] == len(train) + len(cal) + len(test) + dropped
    for name, part in (("train", train), ("calibration", cal), ("test", test)):
        assert s[name]["rows"] == len(part)
        assert s[name]["positives"] == int(part["label"].sum())
        assert s[name]["leads"] == part["lead_id"].nunique()


def test_parts_are_disjoint_in_leads_and_separated_by_the_gap():
    _check_invariants(_frame(3000, seed=1), SplitParams(), HORIZON)


@settings(max_examples=25, deadline=None)
@given(
    n_leads=st.integers(200, 800),
    seed=st.integers(0, 10_000),
    train=st.floats(0.3, 0.7),
    gap_days=st.one_of(st.none(), st.integers(0, 60)),
)
def test_split_invariants_hold_for_any_fractions_and_gap(n_leads, seed, train, gap_days):
    cal = (1 - train) / 2
    params = SplitParams(train=train, calibration=cal, test=1 - train - cal, gap_days=gap_days)
    _check_invariants(_frame(n_leads, seed), params, HORIZON)


def test_string_lead_ids_split_the_same_way():
    frame = _frame(1500, seed=7)
    as_text = frame.assign(lead_id=pd.array("L" + frame["lead_id"].astype(str), dtype="str"))
    _check_invariants(as_text, SplitParams(), HORIZON)
    a = split_out_of_time(frame, SplitParams(), HORIZON).summary
    b = split_out_of_time(as_text, SplitParams(), HORIZON).summary
    assert a == b


def test_a_lead_belongs_to_the_part_of_its_first_snapshot():
    frame = _frame(2000, seed=2)
    result = split_out_of_time(frame, SplitParams(), HORIZON)
    t1, t2 = pd.Timestamp(result.summary["t1"]), pd.Timestamp(result.summary["t2"])
    first = frame.groupby("lead_id")["cutoff"].min()
    assert (first[result.test["lead_id"].unique()] >= t2).all()
    cal_first = first[result.calibration["lead_id"].unique()]
    assert ((cal_first >= t1) & (cal_first < t2)).all()
    # every row of the test period whose lead started in it is kept
    started = frame["lead_id"].map(first) >= t2
    assert len(result.test) == int((started & (frame["cutoff"] >= t2)).sum())


def test_parts_are_not_enriched_with_converters():
    """Leads close when they convert, so they stop having snapshots: a split that kept a lead in the
    latest part it reaches would push converters into the earlier parts. Each part's positive rate
    must stay the per-snapshot rate (10 % here)."""
    rng = np.random.default_rng(11)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for lead in range(6000):
        first = rng.uniform(0, 700)
        for k in range(12):
            y = int(rng.random() < 0.10)
            rows.append((lead, start + pd.Timedelta(days=first + 14 * k), y))
            if y:
                break
    frame = pd.DataFrame(rows, columns=["lead_id", "cutoff", "label"]).astype({"label": "int8"})
    frame["cutoff"] = frame["cutoff"].dt.as_unit("us")
    result = split_out_of_time(frame, SplitParams(), HORIZON)
    for name in ("train", "calibration", "test"):
        rate = result.part(name)["label"].mean()
        assert abs(rate - 0.10) < 0.02, (name, rate)


def test_boundaries_follow_row_fractions():
    frame = _frame(3000, seed=3)
    t1, t2 = boundaries(frame["cutoff"], SplitParams(train=0.5, calibration=0.25, test=0.25))
    assert (frame["cutoff"] < t1).mean() == pytest.approx(0.5, abs=0.01)
    assert (frame["cutoff"] < t2).mean() == pytest.approx(0.75, abs=0.01)


def test_split_ignores_row_order_and_does_not_mutate_input():
    frame = _frame(1000, seed=4)
    before = frame.copy()
    a = split_out_of_time(frame, SplitParams(), HORIZON)
    b = split_out_of_time(frame.sample(frac=1.0, random_state=0), SplitParams(), HORIZON)
    pd.testing.assert_frame_equal(frame, before)
    for name in ("train", "calibration", "test"):
        key = ["lead_id", "cutoff"]
        left = a.part(name).sort_values(key).reset_index(drop=True)
        right = b.part(name).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right)
    assert a.summary == b.summary


def test_too_short_a_period_for_the_gap_is_an_error():
    frame = _frame(500, seed=5, days=40, max_snaps=1)
    with pytest.raises(ValueError, match="calibration period"):
        split_out_of_time(frame, SplitParams(), horizon_days=30)


def test_fractions_must_add_up_and_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="must be 1"):
        SplitParams(train=0.7, calibration=0.2, test=0.2)
    with pytest.raises(ValidationError, match="extra"):
        SplitParams.model_validate({"train": 0.6, "calibraton": 0.2})


def test_lead_holdout_is_by_lead_and_order_free():
    frame = _frame(1000, seed=6)
    fit, hold = lead_holdout(frame, 0.2, seed=1)
    assert not set(fit["lead_id"]) & set(hold["lead_id"])
    assert hold["lead_id"].nunique() == 200
    _, hold2 = lead_holdout(frame.iloc[::-1], 0.2, seed=1)
    assert set(hold["lead_id"]) == set(hold2["lead_id"])
