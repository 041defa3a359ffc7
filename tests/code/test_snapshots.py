import pandas as pd

from features.snapshots import SpineParams, censored_snapshot_count, scoring_spine, snapshot_spine


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _leads() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [1, 2, 3, 4],
            "created_at": [T("2024-01-01")] * 4,
            "mql_at": [T("2024-01-02"), T("2024-01-05"), pd.NaT, T("2024-01-03")],
            "sql_at": [T("2024-02-10"), pd.NaT, pd.NaT, pd.NaT],
            "disqualified_at": [pd.NaT, pd.NaT, pd.NaT, T("2024-01-20")],
        }
    )


PARAMS = SpineParams(step_days=14, horizon_days=30, max_age_days=56)


def test_cutoffs_step_from_mql_while_open_and_within_max_age():
    spine = snapshot_spine(_leads(), T("2024-12-31"), PARAMS)
    by_lead = spine.groupby("lead_id")["cutoff"].apply(list).to_dict()
    # lead 1: open until its SQL on Feb 10
    assert by_lead[1] == [T("2024-01-02"), T("2024-01-16"), T("2024-01-30")]
    # lead 2: never converts; stops at max age (56 days = 4 steps)
    assert by_lead[2] == [T("2024-01-05") + pd.Timedelta(days=14 * k) for k in range(5)]
    # lead 3 never became MQL; lead 4 disqualified on Jan 20, so only Jan 3 and Jan 17
    assert 3 not in by_lead
    assert by_lead[4] == [T("2024-01-03"), T("2024-01-17")]


def test_label_is_sql_within_horizon_after_cutoff():
    spine = snapshot_spine(_leads(), T("2024-12-31"), PARAMS).set_index(["lead_id", "cutoff"])
    assert spine.loc[(1, T("2024-01-02")), "label"] == 0  # Feb 1 < Feb 10
    assert spine.loc[(1, T("2024-01-16")), "label"] == 1
    assert spine.loc[(1, T("2024-01-30")), "label"] == 1
    assert spine.loc[2, "label"].eq(0).all()


def test_censored_snapshots_are_dropped_and_counted():
    end = T("2024-03-01")
    spine = snapshot_spine(_leads(), end, PARAMS)
    assert (spine["cutoff"] + pd.Timedelta(days=30) <= end).all()
    # lead 2 has cutoffs Feb 2, Feb 16, Mar 1 whose 30-day horizon is not over by Mar 1
    assert censored_snapshot_count(_leads(), end, PARAMS) == 3


def test_scoring_spine_takes_open_mqls_at_the_scoring_time():
    spine = scoring_spine(_leads(), T("2024-02-15"))
    assert sorted(spine["lead_id"]) == [2]
    assert (spine["cutoff"] == T("2024-02-15")).all()


def test_no_mqls_gives_an_empty_typed_spine():
    never = pd.Series(pd.NaT, index=range(4), dtype="datetime64[us, UTC]")
    leads = _leads().assign(mql_at=never, sql_at=never)
    spine = snapshot_spine(leads, T("2024-12-31"), PARAMS)
    assert spine.empty
    assert list(spine.columns) == ["lead_id", "cutoff", "label"]
