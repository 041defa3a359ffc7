"""Where the data ends: the reference time for censoring snapshots."""

from __future__ import annotations

import duckdb
import pandas as pd

from features.contract import LEAD_TIME_COLUMNS, TS


def latest_event_time(events_glob: str | list[str]) -> pd.Timestamp | None:
    """Latest ``ts`` in the events Parquet file(s), read by DuckDB (mostly from Parquet statistics)."""
    with duckdb.connect() as con:
        # epoch microseconds, not a TIMESTAMPTZ: DuckDB needs pytz to hand out zone-aware datetimes
        value = con.execute(f"SELECT epoch_us(max({TS})) FROM read_parquet(?)", [events_glob]).fetchone()[0]
    return None if value is None else pd.Timestamp(int(value), unit="us", tz="UTC")


def latest_lead_time(leads: pd.DataFrame) -> pd.Timestamp | None:
    """Latest lifecycle timestamp in the leads table."""
    maxima = [leads[c].max() for c in LEAD_TIME_COLUMNS if c in leads.columns]
    maxima = [m for m in maxima if pd.notna(m)]
    return max(maxima) if maxima else None


def resolve_data_end(as_of: str | None, *latest: pd.Timestamp | None) -> pd.Timestamp:
    """``as_of`` when given (a UTC time), else the latest timestamp seen in the data."""
    if as_of is not None:
        ts = pd.Timestamp(as_of)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    seen = [t for t in latest if t is not None]
    if not seen:
        raise ValueError("cannot tell where the data ends: no timestamps in leads or events, and no as_of")
    return max(seen)
