"""Stage `validate`: check leads and events against the contract and write normalised copies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.io import atomic_path, iter_event_batches, read_leads_file, write_json_atomic
from features.validate import (
    EventsSummary,
    ValidateParams,
    require_events,
    validate_events_batch,
    validate_leads,
)
from features.tabular import DataParams, prepare_table
from pipelines.config import load_section
from pipelines.console import console, progress


def main(
    params_path: Path,
    leads_in: Path,
    events_in: Path,
    leads_out: Path,
    events_out: Path,
    report_out: Path,
    now: pd.Timestamp | None = None,
) -> None:
    params = load_section(params_path, "validate", ValidateParams)
    data = load_section(params_path, "data", DataParams)
    if data.files_tabular:
        _tabular(data, leads_in, events_in, leads_out, events_out, report_out)
        return
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    leads, notes = validate_leads(read_leads_file(leads_in), source=str(leads_in), now=now, params=params)
    summary = EventsSummary()
    with atomic_path(events_out) as tmp_events, atomic_path(leads_out) as tmp_leads:
        tmp_events.mkdir(parents=True)
        with progress() as bar:
            task = bar.add_task("validating events", total=None)
            for i, (source, first_row, batch) in enumerate(iter_event_batches(str(events_in), params.batch_rows)):
                table, batch_notes = validate_events_batch(
                    batch, source=source, first_row=first_row, lead_ids=leads["lead_id"], now=now, params=params
                )
                pq.write_table(table, tmp_events / f"part-{i:05d}.parquet", compression="zstd")
                summary = summary.add(table, batch_notes)
                bar.advance(task, table.num_rows)
        require_events(summary.rows, source=str(events_in))
        leads.to_parquet(tmp_leads, index=False)
    report = {"leads": {"rows": len(leads), "notes": notes}, "events": summary.to_dict()}
    write_json_atomic(report, report_out)
    for note in [*notes, *summary.notes]:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"validated {len(leads):,} leads and {summary.rows:,} events")


def _tabular(data: DataParams, leads_in: Path, events_in: Path, leads_out: Path, events_out: Path,
             report_out: Path) -> None:
    """A CRM export (no events): checked with ``prepare_table`` and passed on as it is."""
    raw = pd.read_parquet(leads_in)
    prep = prepare_table(raw, data, source=str(data.leads))
    with atomic_path(events_out) as tmp_events, atomic_path(leads_out) as tmp_leads:
        tmp_events.mkdir(parents=True)
        for i, part in enumerate(sorted(Path(events_in).glob("*.parquet"))):
            pq.write_table(pq.read_table(part), tmp_events / f"part-{i:05d}.parquet")
        raw.to_parquet(tmp_leads, index=False)
    report = {"mode": "tabular", "leads": {"rows": len(raw), "positives": int(prep.label.sum()), "notes": prep.notes},
              "events": {"rows": 0}}
    write_json_atomic(report, report_out)
    for note in prep.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    console.print(f"validated {len(raw):,} rows of a CRM export (tabular mode: no events)")
