"""The point-in-time builder on tiny hand-written logs: exact values at the window edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.builder import FeaturesParams, build_features, build_snapshots, partition_count
from features.catalog import build_catalog, discover_attributes
from features.contract import LEAD_ID
from features.errors import DataContractError

C = pd.Timestamp("2024-03-01 12:00", tz="UTC")
D = pd.Timedelta(days=1)
US = pd.Timedelta(microseconds=1)


def _leads() -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": [1, 2],
        "created_at": [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-15", tz="UTC")],
        "mql_at": [pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-02-10", tz="UTC")],
        "sql_at": pd.Series([pd.NaT, pd.NaT], dtype="datetime64[us, UTC]"),
        "industry": ["software", None],
        "employees": [50.0, np.nan],
        "crm_compatible": [True, False],
    })


def _event(ts, event_type, page_type=None, content_type=None, feature=None, lead=1):
    return {"lead_id": lead, "ts": ts, "event_type": event_type, "page_type": page_type,
            "content_type": content_type, "feature": feature}


def _events() -> pd.DataFrame:
    rows = [
        _event(C - 7 * D, "page_view", "pricing"),           # exactly at c - 7d: inside the 7-day window
        _event(C, "page_view", "pricing"),                   # exactly at the cutoff: excluded
        _event(C - 7 * D - US, "page_view", "pricing"),      # just before c - 7d: 30-day window only
        _event(C - 2 * D, "demo_request"),
        _event(C - 20 * D, "email_sent"),
        _event(C - 10 * D, "email_sent"),
        _event(C - 9 * D, "email_open"),
        _event(C - 9 * D + pd.Timedelta(hours=1), "email_click"),
        _event(C - 1 * D, "product_usage", feature="api"),
        _event(C - 1 * D + pd.Timedelta(hours=1), "product_usage", feature="reports"),
        _event(C - 5 * D, "product_usage", feature="api"),
        _event(C - 40 * D, "product_usage", feature="dashboards"),
        _event(C - 10 * D, "podcast_listen"),
        _event(C - 100 * D, "page_view", "blog"),
        _event(C - 30 * D, "content_download", content_type="case_study"),  # exactly at c - 30d
        _event(C + 1 * D, "email_sent"),                     # after the cutoff
    ]
    return pd.DataFrame(rows).astype({"ts": "datetime64[us, UTC]"})


def _spine(label: bool = True) -> pd.DataFrame:
    spine = pd.DataFrame({"lead_id": [1, 2, 1], "cutoff": [C, C, C + 14 * D], "label": [0, 1, 1]})
    spine["cutoff"] = spine["cutoff"].astype("datetime64[us, UTC]")
    spine["label"] = spine["label"].astype("int8")
    return spine if label else spine.drop(columns="label")


@pytest.fixture(scope="module")
def catalog():
    return build_catalog([7, 30, 90], discover_attributes(_leads()))


@pytest.fixture(scope="module")
def built(catalog):
    return build_features(_leads(), _events(), _spine(), catalog)


def test_columns_are_key_then_catalog_order(built, catalog):
    assert list(built.columns) == ["lead_id", "cutoff", "label", *catalog.feature_names]
    assert built["lead_id"].tolist() == [1, 2, 1]
    assert built["cutoff"].tolist() == _spine()["cutoff"].tolist()


def test_window_edges(built):
    row = built.iloc[0]
    assert row["page_view_pricing_count_7d"] == 1     # c - 7d in, c out
    assert row["page_view_pricing_count_30d"] == 2    # c - 7d - 1us in
    assert row["page_view_pricing_count_all"] == 2
    assert row["page_view_count_all"] == 3 and row["page_view_blog_count_all"] == 1
    assert row["page_view_blog_count_90d"] == 0
    assert row["content_download_case_study_count_30d"] == 1   # exactly at c - 30d: included
    assert row["content_download_count_7d"] == 0
    assert row["demo_request_count_7d"] == 1 and row["email_sent_count_all"] == 2


def test_later_snapshot_sees_events_at_and_after_the_earlier_cutoff(built):
    row = built.iloc[2]  # cutoff c + 14d
    assert row["page_view_pricing_count_all"] == 3
    assert row["page_view_pricing_count_30d"] == 3
    assert row["page_view_pricing_count_7d"] == 0
    assert row["email_sent_count_all"] == 3
    assert row["days_since_last_page_view_pricing"] == pytest.approx(14.0)


def test_recency(built):
    row = built.iloc[0]
    assert row["days_since_last_demo_request"] == pytest.approx(2.0)
    assert row["days_since_last_page_view_pricing"] == pytest.approx(7.0)
    assert row["days_since_last_activity"] == pytest.approx(23 / 24, rel=1e-6)
    assert row["days_since_last_email_sent"] == pytest.approx(10.0)
    assert np.isnan(row["days_since_last_sales_recycled"])


def test_momentum(built):
    row = built.iloc[0]
    # activity in [c-7d, c): pricing, demo, 3 usage = 5; in [c-35d, c-7d): pricing, open, click, podcast,
    # the case-study download = 5; 5 / ((5 + 1) * 7 / 28)
    assert row["activity_count_7d"] == 5
    assert row["activity_momentum_7d_vs_28d"] == pytest.approx(5 / 1.5)
    # high intent: pricing + demo this week, one pricing view the 28 days before
    assert row["high_intent_momentum_7d_vs_28d"] == pytest.approx(2 / 0.5)
    assert row["high_intent_count_all"] == 3


def test_email_rates(built):
    row = built.iloc[0]
    assert row["email_open_rate_90d"] == pytest.approx(0.5)
    assert row["email_click_rate_90d"] == pytest.approx(0.5)
    assert row["email_click_to_open_rate_90d"] == pytest.approx(1.0)


def test_trial_usage(built):
    row = built.iloc[0]
    assert row["trial_active_days_30d"] == 2   # Feb 29 (twice) and Feb 25
    assert row["trial_active_days_all"] == 3   # plus Jan 21
    assert row["trial_features_used_all"] == 3


def test_unknown_event_types_are_counted(built):
    assert built.iloc[0]["other_event_count_30d"] == 1
    assert built.iloc[0]["other_event_count_7d"] == 0


def test_lifecycle_durations(built):
    assert built.iloc[0]["lead_age_days"] == pytest.approx(60.5)
    assert built.iloc[0]["days_since_mql"] == pytest.approx(29.5)
    assert built.iloc[1]["days_since_mql"] == pytest.approx(20.5)


def test_a_lead_without_events(built, catalog):
    row = built.iloc[1]
    counts = [f for f in catalog.feature_names if "_count_" in f or f.startswith("trial_")]
    assert (row[counts] == 0).all()
    assert row[[f for f in catalog.feature_names if f.startswith("days_since_last_")]].isna().all()
    assert np.isnan(row["email_open_rate_90d"])
    assert row["activity_momentum_7d_vs_28d"] == 0


def test_categoricals_are_carried_as_text(built):
    assert built["industry"].iloc[0] == "software" and pd.isna(built["industry"].iloc[1])
    assert built["crm_compatible"].tolist() == ["true", "false", "true"]
    assert built["employees"].iloc[0] == 50.0 and np.isnan(built["employees"].iloc[1])


def test_dtypes(built, catalog):
    assert str(built["page_view_pricing_count_7d"].dtype) == "int32"
    assert str(built["days_since_last_demo_request"].dtype) == "float32"
    assert pd.api.types.is_string_dtype(built["industry"].dtype) or built["industry"].dtype == object
    assert str(built["label"].dtype) == "int8"


def test_scoring_spine_without_label(built, catalog):
    scored = build_features(_leads(), _events(), _spine(label=False), catalog)
    assert list(scored.columns) == ["lead_id", "cutoff", *catalog.feature_names]
    pd.testing.assert_frame_equal(scored, built.drop(columns="label"))


def test_parquet_output_equals_in_memory(tmp_path, built, catalog):
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    ev = _events()
    ev.iloc[:8].to_parquet(events_dir / "part-0.parquet", index=False)
    ev.iloc[8:].to_parquet(events_dir / "part-1.parquet", index=False)
    stats = build_snapshots(_leads(), str(events_dir / "*.parquet"), _spine(), catalog, tmp_path / "s.parquet",
                            threads=1, memory_limit="1GB", temp_dir=str(tmp_path / "duck"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), built)
    info = stats.to_dict()
    assert info["rows"] == 3 and info["features"] == len(catalog) and info["events_scanned"] == len(ev)
    assert info["unknown_event_types"] == {"podcast_listen": 1}


def test_an_events_file_that_is_not_parquet_is_named_and_nothing_is_written(tmp_path, catalog):
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    _events().to_parquet(events_dir / "part-0.parquet", index=False)
    (events_dir / "part-1.parquet").write_text("lead_id,ts\n1,2026-01-01\n")
    out = tmp_path / "s.parquet"
    with pytest.raises(DataContractError) as err:
        build_snapshots(_leads(), str(events_dir / "*.parquet"), _spine(), catalog, out,
                        threads=1, memory_limit="1GB", temp_dir=str(tmp_path / "duck"))
    assert err.value.file.endswith("part-1.parquet") and "Parquet" in str(err.value)
    assert not out.exists()


def test_events_without_property_columns(catalog):
    ev = _events()[["lead_id", "ts", "event_type"]]
    out = build_features(_leads(), ev, _spine(), catalog)
    assert out.iloc[0]["page_view_count_all"] == 3 and out.iloc[0]["page_view_pricing_count_all"] == 0
    assert out.iloc[0]["trial_features_used_all"] == 0


def test_string_lead_ids(catalog):
    leads = _leads().assign(lead_id=["a", "b"])
    ev = _events().assign(lead_id=lambda d: d[LEAD_ID].map({1: "a"}))
    out = build_features(leads, ev, _spine().assign(lead_id=["a", "b", "a"]), catalog)
    assert out.iloc[0]["page_view_pricing_count_30d"] == 2


def test_params_spine_and_defaults():
    p = FeaturesParams()
    assert p.windows == [7, 30, 90] and p.spine().step_days == 14
    with pytest.raises(Exception):
        FeaturesParams(unknown=1)


def test_rows_keep_the_spine_order_at_scale(catalog):
    """Several row groups and two threads: rows still come out in spine order, with the same values."""
    rng = np.random.default_rng(3)
    n_leads, per_lead = 1_000, 150
    leads = pd.DataFrame({
        "lead_id": np.arange(n_leads, dtype="int64"),
        "created_at": pd.Timestamp("2023-06-01", tz="UTC"),
        "mql_at": pd.Timestamp("2023-07-01", tz="UTC"),
        "sql_at": pd.Series(pd.NaT, index=range(n_leads), dtype="datetime64[us, UTC]"),
        "industry": "software", "employees": 10.0, "crm_compatible": True,
    })
    ev = pd.DataFrame({
        "lead_id": rng.integers(0, n_leads, 20_000).astype("int64"),
        "ts": pd.Timestamp("2023-07-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 300 * 86_400, 20_000), unit="s"),
        "event_type": rng.choice(["page_view", "email_open", "demo_request"], 20_000),
    }).astype({"ts": "datetime64[us, UTC]"})
    cut = pd.Timestamp("2023-07-02", tz="UTC") + pd.to_timedelta(np.arange(per_lead) * 2, unit="D")
    spine = pd.DataFrame({"lead_id": np.repeat(leads["lead_id"].to_numpy(), per_lead),
                          "cutoff": np.tile(cut.to_numpy(), n_leads)}).astype({"cutoff": "datetime64[us, UTC]"})
    spine = spine.sample(frac=1.0, random_state=5).reset_index(drop=True)
    out = build_features(leads, ev, spine, catalog, threads=2)
    pd.testing.assert_frame_equal(out[["lead_id", "cutoff"]], spine)
    ordered = build_features(leads, ev, spine.sort_values(["lead_id", "cutoff"]), catalog, threads=2)
    again = ordered.set_index(["lead_id", "cutoff"]).loc[pd.MultiIndex.from_frame(spine)].reset_index()
    pd.testing.assert_frame_equal(again, out)


def test_partitioned_builds_equal_the_single_pass_at_scale(catalog, tmp_path):
    """Lead-range partitions (several Parquet row groups, a shuffled spine, string ids too) give the
    same rows in spine order, and the same counts of events used and boundaries."""
    rng = np.random.default_rng(11)
    n_leads, n_events = 600, 30_000
    leads = pd.DataFrame({
        "lead_id": np.arange(n_leads, dtype="int64"),
        "created_at": pd.Timestamp("2023-06-01", tz="UTC"),
        "mql_at": pd.Timestamp("2023-07-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 60, n_leads), unit="D"),
        "sql_at": pd.Series(pd.NaT, index=range(n_leads), dtype="datetime64[us, UTC]"),
        "industry": rng.choice(["software", "retail"], n_leads), "employees": 10.0, "crm_compatible": True,
    })
    ev = pd.DataFrame({
        "lead_id": rng.integers(0, n_leads, n_events).astype("int64"),
        "ts": pd.Timestamp("2023-05-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 300 * 86_400, n_events), unit="s"),
        "event_type": rng.choice(["page_view", "email_open", "demo_request", "product_usage", "podcast_listen"],
                                 n_events),
        "page_type": rng.choice(["pricing", "blog", None], n_events),
        "feature": rng.choice(["api", "reports", None], n_events),
    }).astype({"ts": "datetime64[us, UTC]"})
    cut = leads["mql_at"].repeat(8).reset_index(drop=True) + pd.to_timedelta(np.tile(np.arange(8) * 14, n_leads), unit="D")
    spine = pd.DataFrame({"lead_id": np.repeat(leads["lead_id"].to_numpy(), 8), "cutoff": cut.to_numpy(),
                          "label": rng.integers(0, 2, n_leads * 8).astype("int8")})
    spine = spine.astype({"cutoff": "datetime64[us, UTC]"}).sample(frac=1.0, random_state=2).reset_index(drop=True)
    single = build_features(leads, ev, spine, catalog, partitions=1)
    pd.testing.assert_frame_equal(build_features(leads, ev, spine, catalog, partitions=5), single)
    as_text = {"lead_id": lambda d: "L" + d["lead_id"].astype(str)}
    pd.testing.assert_frame_equal(
        build_features(leads.assign(**as_text), ev.assign(**as_text), spine.assign(**as_text), catalog, partitions=4),
        single.assign(**as_text))

    events_dir = tmp_path / "events"
    events_dir.mkdir()
    by_lead = ev.sort_values("lead_id", kind="stable")
    for i, rows in enumerate(np.array_split(np.arange(n_events), 4)):
        by_lead.iloc[rows].to_parquet(events_dir / f"part-{i}.parquet", index=False, row_group_size=2_000)
    stats = [build_snapshots(leads, str(events_dir / "*.parquet"), spine, catalog, tmp_path / f"s{k}.parquet",
                             threads=2, memory_limit="1GB", temp_dir=str(tmp_path / "duck"), partitions=k)
             for k in (1, 3)]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s3.parquet"), single)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s1.parquet"), single)
    assert [s.partitions for s in stats] == [1, 3]
    for field in ("events_scanned", "events_used", "boundaries", "unknown_event_types"):
        assert getattr(stats[0], field) == getattr(stats[1], field), field
    assert stats[1].unknown_event_types["podcast_listen"] > 0


def test_partition_count_follows_events_and_memory():
    assert partition_count(0, "4GB") == 1 and partition_count(1_000, "4GB") == 1
    assert partition_count(117_616_621, "4GB") == 9 and partition_count(110_000_000, "4GB") == 8
    assert partition_count(117_616_621, "8GB") == 5 and partition_count(117_616_621, "4096MiB") == 8
