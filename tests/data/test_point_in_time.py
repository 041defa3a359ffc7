"""Point in time, the rule that cannot bend: a snapshot's features use only events strictly before its cutoff.

Property tests on random small logs and random spines: adding events at or after a cutoff changes
none of that snapshot's features; shuffling the events changes nothing; and the DuckDB builder
agrees with the plain pandas reference on every feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.bench_features import compare, reference_features
from features.builder import build_features
from features.catalog import build_catalog, discover_attributes
from features.contract import CONTENT_TYPES, PAGE_TYPES, PRODUCT_FEATURES

T0 = pd.Timestamp("2024-01-01", tz="UTC")
SPAN_US = 200 * 86_400_000_000
TYPES = ["email_sent", "email_open", "email_click", "page_view", "content_download", "demo_request",
         "contact_form", "chat", "product_usage", "trial_signup", "sales_recycled", "mystery_event"]
N_LEADS = 3

LEADS = pd.DataFrame({
    "lead_id": np.arange(N_LEADS, dtype="int64"),
    "created_at": [T0] * N_LEADS,
    "mql_at": [T0 + pd.Timedelta(days=10)] * N_LEADS,
    "sql_at": pd.Series([pd.NaT] * N_LEADS, dtype="datetime64[us, UTC]"),
    "seniority": ["vp", "manager", None],
})
CATALOG = build_catalog([7, 30, 90], discover_attributes(LEADS))
SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# times are drawn on a coarse grid half the time, so exact ties with cutoffs and window edges happen
_times = st.one_of(st.integers(0, SPAN_US), st.integers(0, 200 * 24).map(lambda h: h * 3_600_000_000))
_event = st.tuples(
    st.integers(0, N_LEADS - 1), _times, st.sampled_from(TYPES), st.sampled_from([None, *PAGE_TYPES]),
    st.sampled_from([None, *CONTENT_TYPES]), st.sampled_from([None, *PRODUCT_FEATURES]),
)


def _events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["lead_id", "us", "event_type", "page_type", "content_type", "feature"])
    frame["ts"] = (T0 + pd.to_timedelta(frame["us"].astype("int64"), unit="us")).astype("datetime64[us, UTC]")
    frame["lead_id"] = frame["lead_id"].astype("int64")
    return frame.drop(columns="us")[["lead_id", "ts", "event_type", "page_type", "content_type", "feature"]]


def _spine(cutoffs: list[tuple[int, int]]) -> pd.DataFrame:
    spine = pd.DataFrame(cutoffs, columns=["lead_id", "us"]).drop_duplicates().reset_index(drop=True)
    spine["cutoff"] = (T0 + pd.to_timedelta(spine["us"].astype("int64"), unit="us")).astype("datetime64[us, UTC]")
    return spine.assign(lead_id=spine["lead_id"].astype("int64"), label=np.int8(0))[["lead_id", "cutoff", "label"]]


_spines = st.lists(st.tuples(st.integers(0, N_LEADS - 1), _times), min_size=1, max_size=6).map(_spine)


@SETTINGS
@given(events=st.lists(_event, min_size=1, max_size=40), spine=_spines,
       later=st.lists(_event, min_size=1, max_size=15), pick=st.integers(0, 100))
def test_events_at_or_after_a_cutoff_change_nothing_before_it(events, spine, later, pick):
    base = _events(events)
    cut = spine["cutoff"].iloc[pick % len(spine)]
    extra = _events(later)
    extra["ts"] = cut + (extra["ts"] - T0)  # every added event is at or after `cut`
    before = build_features(LEADS, base, spine, CATALOG)
    after = build_features(LEADS, pd.concat([base, extra], ignore_index=True), spine, CATALOG)
    unaffected = (spine["cutoff"] <= cut).to_numpy()
    pd.testing.assert_frame_equal(before.loc[unaffected], after.loc[unaffected])


@SETTINGS
@given(events=st.lists(_event, min_size=0, max_size=40), spine=_spines, seed=st.integers(0, 2**16))
def test_features_do_not_depend_on_event_row_order(events, spine, seed):
    base = _events(events)
    shuffled = base.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    pd.testing.assert_frame_equal(build_features(LEADS, base, spine, CATALOG),
                                  build_features(LEADS, shuffled, spine, CATALOG))


@SETTINGS
@given(events=st.lists(_event, min_size=0, max_size=60), spine=_spines)
def test_builder_agrees_with_the_pandas_reference(events, spine):
    base = _events(events)
    built = build_features(LEADS, base, spine, CATALOG)
    check = compare(built, reference_features(LEADS, base, spine, CATALOG), CATALOG)
    assert check["equal"], check


@SETTINGS
@given(events=st.lists(_event, min_size=0, max_size=60), spine=_spines, parts=st.integers(2, 4))
def test_partitioned_builds_equal_the_single_pass(events, spine, parts):
    """Cutting the leads into id ranges, each built on its own, gives the same frame in the same order."""
    base = _events(events)
    pd.testing.assert_frame_equal(build_features(LEADS, base, spine, CATALOG, partitions=parts),
                                  build_features(LEADS, base, spine, CATALOG, partitions=1))
