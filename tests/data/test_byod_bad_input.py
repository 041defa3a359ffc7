"""Bad input in files mode: each case is one clear error, and the stage writes nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from features.errors import DataContractError
from pipelines.stages import ingest, validate
from tests.files_data import CRM_DATA, crm_export, write_export


def _params(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data}))
    return path


def _ingest(tmp_path: Path, data: dict) -> dict[str, Path]:
    outs = {"leads": tmp_path / "raw/leads.parquet", "events": tmp_path / "raw/events",
            "truth": tmp_path / "truth", "report": tmp_path / "reports/ingest.json"}
    ingest.main(_params(tmp_path, data), outs["leads"], outs["events"], outs["truth"], outs["report"])
    return outs


def _nothing_written(tmp_path: Path) -> None:
    for rel in ("raw/leads.parquet", "raw/events", "truth", "reports/ingest.json"):
        assert not (tmp_path / rel).exists(), rel
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name or p.name.startswith(".leadlift")]
    assert not leftovers, leftovers


def _crm(tmp_path: Path, frame: pd.DataFrame | None = None) -> dict:
    path = write_export(crm_export() if frame is None else frame, tmp_path / "crm.csv")
    return {**CRM_DATA, "leads": str(path)}


def test_a_good_export_is_ingested(tmp_path):
    outs = _ingest(tmp_path, _crm(tmp_path))
    assert len(pd.read_parquet(outs["leads"])) == 600
    assert pd.read_parquet(outs["events"]).empty and outs["report"].exists()


def test_mapped_column_that_does_not_exist(tmp_path):
    data = _crm(tmp_path)
    data["mapping"] = {**data["mapping"], "outcome": "Closed Won"}
    with pytest.raises(DataContractError) as err:
        _ingest(tmp_path, data)
    text = str(err.value)
    assert "mapped column 'Closed Won' is not in the file" in text
    assert "Record ID" in text and "Industry" in text and "Won" in text  # the columns found
    _nothing_written(tmp_path)


def test_outcome_with_more_than_two_values(tmp_path):
    frame = crm_export()
    frame.loc[:9, "Won"] = "maybe"
    with pytest.raises(DataContractError) as err:
        _ingest(tmp_path, _crm(tmp_path, frame))
    assert "column 'Won'" in str(err.value) and "3 distinct values" in str(err.value)
    assert "'maybe'" in str(err.value)
    _nothing_written(tmp_path)


def test_dates_that_do_not_parse_give_rows_and_a_sample(tmp_path):
    frame = crm_export()
    frame.loc[[4, 40], "Created"] = ["next tuesday", "2024-13-45"]
    with pytest.raises(DataContractError) as err:
        _ingest(tmp_path, _crm(tmp_path, frame))
    text = str(err.value)
    assert "Created" in text and "row 5: Created='next tuesday'" in text and "row 41" in text
    _nothing_written(tmp_path)


def test_duplicate_lead_ids(tmp_path):
    frame = crm_export()
    frame.loc[10, "Record ID"] = frame.loc[3, "Record ID"]
    with pytest.raises(DataContractError) as err:
        _ingest(tmp_path, _crm(tmp_path, frame))
    assert "duplicate lead ids: 'C00003'" in str(err.value) and "row 4" in str(err.value)
    assert "row 11" in str(err.value)
    _nothing_written(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "crm.csv").write_bytes(b"")
    with pytest.raises(DataContractError) as err:
        _ingest(tmp_path, {**CRM_DATA, "leads": str(tmp_path / "crm.csv")})
    assert "crm.csv" in str(err.value) and "empty" in str(err.value)
    _nothing_written(tmp_path)


def test_other_separator_and_encoding_are_detected(tmp_path):
    frame = crm_export()
    frame.loc[0, "Industry"] = "métallurgie"
    path = tmp_path / "crm.csv"
    path.write_bytes(frame.to_csv(sep="\t", index=False).encode("cp1252"))
    outs = _ingest(tmp_path, {**CRM_DATA, "leads": str(path)})
    read = pd.read_parquet(outs["leads"])
    assert read.loc[0, "Industry"] == "métallurgie" and len(read.columns) == len(frame.columns)


def test_unreadable_encoding_is_a_clear_error(tmp_path):
    path = tmp_path / "crm.csv"
    path.write_bytes(crm_export().to_csv(sep=";", index=False).encode("utf-16"))
    with pytest.raises(DataContractError) as err:
        _ingest(tmp_path, {**CRM_DATA, "leads": str(path)})
    assert "UTF-16" in str(err.value) and "crm.csv" in str(err.value)
    _nothing_written(tmp_path)


def _leads_and_events(tmp_path: Path, unknown_lead: bool) -> dict:
    leads = pd.DataFrame({
        "Contact": ["a1", "a2", "a3"],
        "Created": ["2024-01-01", "2024-01-02", "2024-01-03"],
        "MQL date": ["2024-01-05", "2024-01-06", "2024-01-07"],
        "SQL date": ["2024-02-01", "", ""],
        "Industry": ["software", "retail", "unknown"],
    })
    events = pd.DataFrame({
        "who": ["a1", "a2", "zz9" if unknown_lead else "a3"],
        "when": ["2024-07-04 10:00", "2024-01-05 11:00", "2024-01-06 12:00"],
        "what": ["page_view", "email_open", "demo_request"],
    })
    leads.to_csv(tmp_path / "leads.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    return {"source": "files", "leads": str(tmp_path / "leads.csv"), "events": str(tmp_path / "events.csv"),
            "mapping": {"lead_id": "Contact", "created_at": "Created", "mql_at": "MQL date", "sql_at": "SQL date"},
            "event_mapping": {"lead_id": "who", "ts": "when", "event_type": "what"},
            "timezone": "Europe/Lisbon"}


def test_leads_and_events_are_mapped_to_the_contract(tmp_path):
    outs = _ingest(tmp_path, _leads_and_events(tmp_path, unknown_lead=False))
    leads = pd.read_parquet(outs["leads"])
    assert list(leads.columns) == ["lead_id", "created_at", "mql_at", "sql_at", "Industry"]
    assert leads["Industry"].isna().sum() == 1  # "unknown" is missing
    events = pd.read_parquet(outs["events"])
    assert list(events.columns[:3]) == ["lead_id", "ts", "event_type"]
    # naive times are Lisbon time: 10:00 in July is summer time (UTC+1), so 09:00 UTC
    assert events["ts"].iloc[0] == pd.Timestamp("2024-07-04 09:00", tz="UTC")


def test_events_that_reference_unknown_leads_stop_validate(tmp_path):
    outs = _ingest(tmp_path, _leads_and_events(tmp_path, unknown_lead=True))
    params = tmp_path / "params.yaml"
    out_leads, out_events = tmp_path / "validated/leads.parquet", tmp_path / "validated/events"
    with pytest.raises(DataContractError) as err:
        validate.main(params, outs["leads"], outs["events"], out_leads, out_events, tmp_path / "validation.json")
    assert "zz9" in str(err.value) and "lead_id" in str(err.value)
    assert not out_leads.exists() and not out_events.exists() and not (tmp_path / "validation.json").exists()
