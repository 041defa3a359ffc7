"""The engagement-log contract: each kind of bad input stops with a message naming the file,
the column, the offending rows and the expectation; good input passes through normalised."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.contract import EVENT_PROPERTY_COLUMNS
from features.errors import DataContractError
from features.io import iter_event_batches, read_leads_file
from features.validate import (
    EventsSummary,
    ValidateParams,
    parse_timestamps,
    require_events,
    validate_events_batch,
    validate_leads,
)

NOW = pd.Timestamp("2025-06-01 12:00", tz="UTC")
PARAMS = ValidateParams()
UTC_US = "datetime64[us, UTC]"


def T(s: str | None) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC") if s is not None else pd.NaT


def _utc(values: list[str | None]) -> pd.Series:
    return pd.Series([T(v) for v in values], dtype=UTC_US)


def _leads() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [10, 11, 12, 13],
            "created_at": _utc(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
            "mql_at": _utc(["2024-01-05", "2024-01-06", None, "2024-01-04"]),
            "sql_at": _utc(["2024-02-01", None, None, None]),
            "industry": ["saas", "retail", None, "saas"],
            "employees": [50, 5000, 12, 300],
        }
    )


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [10, 10, 11, 13],
            "ts": _utc(["2024-01-02 10:00", "2024-01-06 09:30", "2024-01-03", "2024-01-05"]),
            "event_type": ["page_view", "demo_request", "content_download", "webinar_attend"],
            "page_type": ["pricing", None, None, None],
            "content_type": [None, None, "guide", None],
        }
    )


def _check_leads(df: pd.DataFrame, **kw) -> tuple[pd.DataFrame, list[str]]:
    return validate_leads(df, source="crm/leads.csv", now=NOW, params=kw.pop("params", PARAMS), **kw)


def _check_events(df, lead_ids=(10, 11, 12, 13), first_row: int = 1, params: ValidateParams = PARAMS):
    return validate_events_batch(
        df, source="logs/events.parquet", first_row=first_row, lead_ids=pd.Index(list(lead_ids)), now=NOW,
        params=params,
    )


# --- good input -------------------------------------------------------------------------------


def test_valid_leads_pass_unchanged_in_content():
    leads = _leads()
    out, notes = _check_leads(leads)
    pd.testing.assert_frame_equal(out, leads)
    assert notes == []


def test_validate_leads_does_not_mutate_its_input():
    leads = _leads().assign(created_at=lambda d: d["created_at"].dt.strftime("%Y-%m-%d %H:%M"))
    before = leads.copy()
    _check_leads(leads)
    pd.testing.assert_frame_equal(leads, before)


def test_valid_events_pass_with_properties_as_strings_and_absent_ones_null():
    table, notes = _check_events(_events())
    out = table.to_pandas()
    src = _events()
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("lead_id").type == pa.int64()
    assert list(out["lead_id"]) == list(src["lead_id"])
    assert list(out["ts"]) == list(src["ts"])
    assert list(out["event_type"]) == list(src["event_type"])
    assert out["page_type"].iloc[0] == "pricing" and out["content_type"].iloc[2] == "guide"
    for col in EVENT_PROPERTY_COLUMNS:
        assert table.schema.field(col).type == pa.string()
    assert out["channel"].isna().all() and out["feature"].isna().all()
    assert notes == []


def test_naive_timestamps_become_utc_with_a_note():
    leads = _leads().assign(created_at=lambda d: d["created_at"].dt.tz_localize(None))
    out, notes = _check_leads(leads)
    assert str(out["created_at"].dtype) == UTC_US
    assert out["created_at"].iloc[0] == T("2024-01-01")
    assert "created_at had no time zone; read as UTC" in notes

    events = _events().assign(ts=["2024-01-02 10:00", "2024-01-06T09:30:00", "2024-01-03", "2024-01-05"])
    table, notes = _check_events(events)
    assert table.column("ts").to_pylist()[0] == T("2024-01-02 10:00").to_pydatetime()
    assert "ts had no time zone; read as UTC" in notes


def test_text_timestamps_with_offsets_and_common_forms_are_parsed_to_utc():
    raw = pd.Series(["2024-03-01T10:00:00+02:00", "2024-03-01T08:00:00Z", "03/01/2024 08:00", None, ""])
    parsed = parse_timestamps(raw)
    assert str(parsed.values.dtype) == UTC_US
    assert list(parsed.values[:3]) == [T("2024-03-01 08:00")] * 3
    assert parsed.values[3:].isna().all() and not parsed.unparseable.any()
    assert parsed.naive  # the third value has no zone


def test_string_event_ids_are_read_in_the_leads_type():
    events = _events().assign(lead_id=["10", " 10", "11.0", "13"])
    table, notes = _check_events(events)
    assert table.column("lead_id").to_pylist() == [10, 10, 11, 13]
    assert any("read as whole numbers" in n for n in notes)

    text_ids = ["L-10", "11", "L-12"]
    table, _ = _check_events(_events().iloc[2:3].assign(lead_id=[11]), lead_ids=text_ids)
    assert table.schema.field("lead_id").type == pa.string()
    assert table.column("lead_id").to_pylist() == ["11"]


def test_extra_event_columns_are_dropped_with_a_note():
    table, notes = _check_events(_events().assign(user_agent="curl", ip="10.0.0.1"))
    assert "user_agent" not in table.column_names and "ip" not in table.column_names
    assert any("dropped" in n and "user_agent" in n and "ip" in n for n in notes)


def test_sales_sourced_lead_is_allowed_and_noted():
    leads = _leads().assign(mql_at=_utc([None, "2024-01-06", None, "2024-01-04"]))
    out, notes = _check_leads(leads)
    assert pd.isna(out["mql_at"].iloc[0]) and out["sql_at"].iloc[0] == T("2024-02-01")
    assert any("1 lead(s) have sql_at but no mql_at" in n for n in notes)


def test_events_before_lead_creation_are_allowed_and_counted():
    leads, _ = _check_leads(_leads())
    events = _events()  # lead 10 on 2024-01-02 is after creation; make two anonymous visits earlier
    events = events.assign(ts=_utc(["2023-12-30", "2024-01-06", "2023-12-31", "2024-01-05"]))
    table, notes = _check_events(events)
    summary = EventsSummary().add(table, notes, leads=leads).add(table, notes, leads=leads)
    report = summary.to_dict()
    assert report["events_before_lead_created"] == 4  # two per batch, two batches
    assert report["rows"] == 8
    assert report["event_types"]["page_view"] == 2
    assert report["ts_min"] == "2023-12-30T00:00:00+00:00"
    assert report["ts_max"] == "2024-01-06T00:00:00+00:00"


def test_summary_reports_unknown_event_types_and_deduplicates_notes():
    events = _events().assign(event_type=["page_view", "g2_intent_spike", "g2_intent_spike", "page_view"])
    table, _ = _check_events(events)
    summary = EventsSummary().add(table, ["a note"]).add(table, ["a note"])
    assert summary.unknown_event_types == {"g2_intent_spike": 4}
    assert summary.to_dict()["notes"] == ["a note"]
    assert summary.to_dict()["events_before_lead_created"] is None


# --- bad input: one test per case -----------------------------------------------------------------


def test_missing_lead_id_column():
    with pytest.raises(DataContractError) as err:
        _check_leads(_leads().drop(columns="lead_id"))
    msg = str(err.value)
    assert "crm/leads.csv" in msg
    assert "column 'lead_id'" in msg and "missing" in msg
    assert "expected: a column named 'lead_id'" in msg and "created_at" in msg  # lists what was found

    with pytest.raises(DataContractError, match="(?s)logs/events.parquet.*column 'lead_id'.*missing"):
        _check_events(_events().drop(columns="lead_id"))


def test_duplicate_lead_ids_show_the_ids_and_their_rows():
    leads = _leads().assign(lead_id=[10, 11, 10, 13])
    with pytest.raises(DataContractError) as err:
        _check_leads(leads)
    msg = str(err.value)
    assert "crm/leads.csv" in msg and "column 'lead_id'" in msg
    assert "duplicate lead_ids: 10" in msg
    assert "row 1: lead_id=10" in msg and "row 3: lead_id=10" in msg and "row 2:" not in msg
    assert "expected: each lead_id exactly once" in msg
    assert err.value.n_bad == 2


def test_events_of_unknown_leads_name_the_ids_and_rows():
    events = _events().assign(lead_id=[10, 99, 11, 77])
    with pytest.raises(DataContractError) as err:
        _check_events(events, first_row=1001)
    msg = str(err.value)
    assert "logs/events.parquet" in msg and "column 'lead_id'" in msg
    assert "not in the leads table: 99, 77" in msg
    assert "row 1002: lead_id=99" in msg and "row 1004: lead_id=77" in msg  # rows of the file, not the batch
    assert "expected: every event's lead_id to be a lead_id of the leads table" in msg


def test_text_event_ids_that_cannot_match_integer_leads_say_why():
    with pytest.raises(DataContractError) as err:
        _check_events(_events().assign(lead_id=["10", "abc", "11", "13"]))
    msg = str(err.value)
    assert "row 2: lead_id='abc'" in msg and "whole numbers" in msg


def test_unparseable_timestamps_list_rows_and_raw_text():
    leads = _leads().assign(created_at=["2024-01-01", "yesterday", "2024-01-03", "2024-13-45"])
    with pytest.raises(DataContractError) as err:
        _check_leads(leads)
    msg = str(err.value)
    assert "crm/leads.csv" in msg and "column 'created_at'" in msg and "not timestamps" in msg
    assert "row 2: lead_id=11, created_at='yesterday'" in msg
    assert "row 4: lead_id=13, created_at='2024-13-45'" in msg
    assert "expected: ISO 8601" in msg
    assert "is missing" not in msg  # an unparseable value is not also reported as a missing one

    events = _events().assign(ts=["2024-01-02", "2024-01-06", "not a date", "2024-01-05"])
    with pytest.raises(DataContractError, match=r"(?s)column 'ts'.*row 3: lead_id=11, ts='not a date'"):
        _check_events(events)


def test_numeric_timestamps_are_rejected_not_guessed():
    leads = _leads().assign(created_at=[1704067200, 1704153600, 1704240000, 1704326400])
    with pytest.raises(DataContractError, match=r"(?s)column 'created_at'.*not timestamps.*row 1: lead_id=10"):
        _check_leads(leads)


def test_future_timestamps_are_rejected_beyond_the_tolerance():
    within = NOW + pd.Timedelta(minutes=4)
    leads = _leads().assign(sql_at=_utc(["2024-02-01", None, None, None]).mask([False, True, False, False], within))
    _check_leads(leads)  # clock skew inside the tolerance is fine

    late = _leads().assign(created_at=_utc(["2024-01-01", "2026-01-01", "2024-01-03", "2024-01-04"]))
    late = late.assign(mql_at=_utc(["2024-01-05", None, None, "2024-01-04"]))
    with pytest.raises(DataContractError) as err:
        _check_leads(late)
    msg = str(err.value)
    assert "crm/leads.csv" in msg and "column 'created_at'" in msg and "in the future" in msg
    assert "row 2: lead_id=11, created_at=2026-01-01T00:00:00+00:00" in msg
    assert "no later than 2025-06-01T12:05:00+00:00" in msg

    events = _events().assign(ts=_utc(["2024-01-02", "2030-05-05", "2024-01-03", "2024-01-05"]))
    with pytest.raises(DataContractError, match=r"(?s)column 'ts'.*in the future.*row 2: lead_id=10"):
        _check_events(events)


def test_sql_before_mql_shows_both_timestamps():
    leads = _leads().assign(sql_at=_utc(["2024-01-04", None, None, None]))
    with pytest.raises(DataContractError) as err:
        _check_leads(leads)
    msg = str(err.value)
    assert "crm/leads.csv" in msg and "column 'sql_at'" in msg and "sql_at is before mql_at" in msg
    assert "row 1: lead_id=10, sql_at=2024-01-04T00:00:00+00:00, mql_at=2024-01-05T00:00:00+00:00" in msg
    assert "expected: sql_at >= mql_at" in msg


def test_mql_before_created_is_rejected():
    leads = _leads().assign(mql_at=_utc(["2023-12-01", "2024-01-06", None, "2024-01-04"]))
    with pytest.raises(DataContractError, match=r"(?s)column 'mql_at'.*row 1: lead_id=10, mql_at=2023-12-01"):
        _check_leads(leads)


def test_empty_event_type_is_rejected():
    events = _events().assign(event_type=["page_view", "  ", None, "chat"])
    with pytest.raises(DataContractError) as err:
        _check_events(events)
    msg = str(err.value)
    assert "column 'event_type'" in msg and "row 2: lead_id=10" in msg and "row 3: lead_id=11" in msg


def test_empty_events_csv_with_only_a_header(tmp_path: Path):
    path = tmp_path / "events.csv"
    path.write_text("lead_id,ts,event_type\n")
    assert list(iter_event_batches(str(path), 100)) == []
    with pytest.raises(DataContractError) as err:
        require_events(0, source=str(path))
    assert str(path) in str(err.value) and "no rows" in str(err.value)
    assert "expected: at least one event row" in str(err.value)


def test_empty_events_parquet_with_zero_rows(tmp_path: Path):
    folder = tmp_path / "events"
    folder.mkdir()
    empty = pa.table({"lead_id": pa.array([], pa.int64()), "ts": pa.array([], pa.timestamp("us", "UTC")),
                      "event_type": pa.array([], pa.string())})
    pq.write_table(empty, folder / "part-0.parquet")
    summary = EventsSummary()
    for _source, _first, batch in iter_event_batches(str(folder), 100):
        table, notes = _check_events(batch)
        summary = summary.add(table, notes)
    with pytest.raises(DataContractError, match="no events"):
        require_events(summary.rows, source=str(folder))


def test_a_parquet_file_that_is_not_parquet(tmp_path: Path):
    leads = tmp_path / "leads.parquet"
    leads.write_text("lead_id,created_at\n1,2024-01-01\n")
    with pytest.raises(DataContractError) as err:
        read_leads_file(leads)
    msg = str(err.value)
    assert str(leads) in msg and "not a valid Parquet file" in msg
    assert "Traceback" not in msg and len(msg.splitlines()) <= 3

    events = tmp_path / "events.parquet"
    events.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataContractError, match="not a valid Parquet file"):
        list(iter_event_batches(str(events), 10))


def test_empty_leads_table_is_rejected():
    with pytest.raises(DataContractError, match="crm/leads.csv: the leads table has no rows"):
        _check_leads(_leads().iloc[0:0])


def test_every_broken_column_is_reported_in_one_error():
    leads = _leads().assign(
        lead_id=[10, 10, 12, 13],
        created_at=["2024-01-01", "2024-01-02", "garbage", "2024-01-04"],
        sql_at=_utc(["2024-01-04", None, None, None]),
    )
    with pytest.raises(DataContractError) as err:
        _check_leads(leads)
    columns = {p.column for p in err.value.problems}
    assert columns == {"lead_id", "created_at", "sql_at"}
    assert "3 problems found" in str(err.value)


def test_shown_rows_are_capped_but_all_are_counted():
    n = 12
    events = pd.DataFrame({"lead_id": range(100, 100 + n), "ts": _utc(["2024-01-01"] * n), "event_type": "chat"})
    with pytest.raises(DataContractError) as err:
        _check_events(events, params=ValidateParams(max_error_rows=3))
    assert err.value.n_bad == n and len(err.value.rows) == 3
    assert "(first 3 of 12)" in str(err.value)


@pytest.mark.parametrize(
    ("text", "naive"),
    [
        ("2024-03-01", True),  # ends in "-01", which is not an offset
        ("2024-03-01 10:00", True),
        ("2024-03-01T10:00:00Z", False),
        ("2024-03-01T10:00:00.123456+02:00", False),
        ("2024-03-01 10:00-0500", False),
        ("2024-03-01 10:00 UTC", False),
    ],
)
def test_time_zone_detection_in_text(text: str, naive: bool):
    assert parse_timestamps(pd.Series([text])).naive is naive


def test_events_csv_streams_through_validation_with_file_row_numbers(tmp_path: Path):
    path = tmp_path / "events.csv"
    path.write_text(
        "lead_id,ts,event_type,page_type,browser\n"
        "10,2024-01-02T10:00:00Z,page_view,pricing,firefox\n"
        "11,2024-01-03T11:00:00Z,chat,,safari\n"
        "12,2024-01-04T12:00:00Z,demo_request,,safari\n"
        "55,2024-01-05T13:00:00Z,page_view,blog,edge\n"
    )
    batches = list(iter_event_batches(path, batch_rows=3))
    table, notes = _check_events(batches[0][2], first_row=batches[0][1])
    assert table.column("lead_id").to_pylist() == [10, 11, 12]
    assert table.column("page_type").to_pylist() == ["pricing", None, None]
    assert any("browser" in n for n in notes)
    source, first_row, batch = batches[1]
    with pytest.raises(DataContractError, match=r"(?s)column 'lead_id'.*row 4: lead_id='55'"):
        validate_events_batch(batch, source=source, first_row=first_row, lead_ids=[10, 11, 12, 13], now=NOW,
                              params=PARAMS)


def test_params_reject_unknown_keys_and_keep_defaults():
    assert ValidateParams.model_validate({}).batch_rows == 2_000_000
    with pytest.raises(ValueError, match="batch_row"):
        ValidateParams.model_validate({"batch_row": 10})
