"""Stage `ingest`: the pipeline's raw input, from the simulator or from the user's own files.

``data.source: simulated`` runs the simulator exactly as the `simulate` stage always did.
``data.source: files`` reads the user's leads (or CRM export) and events, maps their columns to
the contract, and writes the same raw outputs, so every later stage reads one format:

* with an events table: leads and events renamed to the contract, timestamps in UTC (naive ones
  read in ``data.timezone``), attribute columns typed, the leakage audit run on the attributes and
  suspect columns left out (unless kept in ``data.audit.keep``);
* without one (tabular mode): the export as read (text columns, checked by ``prepare_table``),
  one snapshot per row is made later by the `features` stage; the events output is an empty part.

Everything is read and checked before anything is written, and each output is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.io import atomic_path, write_json_atomic, write_parquet_atomic
from features.tabular import DataParams, prepare_events, prepare_leads, prepare_table, read_table
from features.validate import events_arrow_schema
from pipelines.config import load_section
from pipelines.console import console


def main(params_path: Path, leads_out: Path, events_out: Path, truth_out: Path, report_out: Path) -> None:
    data = load_section(params_path, "data", DataParams)
    if data.source == "simulated":
        from pipelines.stages import simulate

        simulate.main(params_path, leads_out, events_out, truth_out)
        write_json_atomic({"source": "simulated"}, report_out)
        return
    leads_source = str(data.leads)
    raw = read_table(leads_source)
    if data.tabular:
        prep = prepare_table(raw, data, source=leads_source)  # every check, before writing anything
        leads, events = raw, None
        report: dict[str, Any] = {
            "source": "files", "mode": "tabular", "leads_file": leads_source, "rows": int(len(raw)),
            "columns": list(map(str, raw.columns)), "positives": int(prep.label.sum()),
            "time_axis": prep.time_axis, "split": data.split_method, "notes": prep.notes,
        }
    else:
        leads, lead_report = prepare_leads(raw, data, source=leads_source)
        events = prepare_events(read_table(str(data.events)), data, source=str(data.events))
        report = {"source": "files", "mode": "events", "leads_file": leads_source, "events_file": str(data.events),
                  "rows": int(len(leads)), "events": int(len(events)), **lead_report}
    _write(leads, events, leads_out, events_out, truth_out)
    write_json_atomic(report, report_out)
    for line in report.get("leakage_lines", []):
        console.print(f"[yellow]leakage audit[/]: {line}", highlight=False)
    for note in report.get("notes", []):
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    what = f"{report['rows']:,} rows (tabular: one snapshot per row)" if events is None else (
        f"{report['rows']:,} leads and {report['events']:,} events")
    console.print(f"ingested {what} from {leads_source}", highlight=False)


def _write(leads: pd.DataFrame, events: pd.DataFrame | None, leads_out: Path, events_out: Path,
           truth_out: Path) -> None:
    """Events, the (empty) truth folder and the leads, each atomically; leads last (the stage's key output)."""
    with atomic_path(events_out) as tmp_events:
        tmp_events.mkdir(parents=True)
        if events is None:
            empty = events_arrow_schema(lead_ids_integer=False).empty_table()
            pq.write_table(empty, tmp_events / "part-00000.parquet")
        else:
            pq.write_table(pa.Table.from_pandas(events, preserve_index=False), tmp_events / "part-00000.parquet",
                           compression="zstd")
    with atomic_path(truth_out) as tmp_truth:
        tmp_truth.mkdir(parents=True)
        (tmp_truth / "README.md").write_text("No hidden truth: the data comes from your files, not the simulator.\n")
    write_parquet_atomic(leads, leads_out)
