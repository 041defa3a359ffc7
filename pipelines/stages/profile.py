"""Stage `profile`: the data profile page (``reports/data_profile.html``) and its figures (JSON).

Rows, every column with its type, missing share, cardinality and the outcome rate of its top
values, the outcome rate by month (or by block of rows) with a warning when recent periods look
censored, and the leakage audit's findings. The outcome profiled is the label's: for a CRM export
its outcome column; for leads with events "the MQL became SQL" (at any time, so recent MQLs that
have not had time to convert show up as a falling rate, which is what the censoring warning is for).
The train stage logs the page to its MLflow run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import LEAD_ID, LEAD_TIME_COLUMNS, MQL_AT, SQL_AT
from features.io import write_json_atomic, write_text_atomic
from features.profile import profile, profile_html
from features.tabular import DataParams, infer_types, prepare_table
from pipelines.config import load_section
from pipelines.console import console


def _read_json(path: Path | None) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if path is not None and Path(path).exists() else {}


def main(params_path: Path, leads_in: Path, ingest_report: Path | None, features_report: Path | None,
         html_out: Path, json_out: Path) -> None:
    data = load_section(params_path, "data", DataParams)
    leads = pd.read_parquet(leads_in)
    if data.files_tabular:
        result = _tabular(leads, data, _read_json(features_report))
        title = f"Data profile: {Path(str(data.leads)).name}"
    else:
        result = _leads(leads, data, _read_json(ingest_report))
        title = "Data profile: the simulated lead base" if data.source == "simulated" else (
            f"Data profile: {Path(str(data.leads)).name}")
    write_json_atomic(result, json_out)
    write_text_atomic(profile_html(result, title=title), html_out)
    warning = result["over_time"].get("censoring_warning")
    if warning:
        console.print(f"[bold yellow]censoring[/]: {warning}", highlight=False)
    for s in result["suspects"]:
        action = "kept on purpose" if s["kept"] else "excluded"
        console.print(f"[bold yellow]leakage audit[/]: {action} '{s['column']}' ({s['rule']}): {s['reason']}",
                      highlight=False)
    console.print(f"profiled {result['rows']:,} rows, {result['columns']} columns -> {html_out}", highlight=False)


def _tabular(leads: pd.DataFrame, data: DataParams, features_report: dict[str, Any]) -> dict[str, Any]:
    prep = prepare_table(leads, data, source=str(data.leads))
    split = features_report.get("split", data.split_method)
    notes = [*prep.notes, f"split: {split} ({features_report.get('split_reason', '')})".rstrip(" ()")]
    return profile(
        prep.frame, prep.label, prep.types,
        time_column=prep.time_column if prep.time_axis == "date" else None,
        suspects=features_report.get("suspects", []),
        row_order=prep.time_axis == "row_order", kept=data.audit.keep, notes=notes,
    )


def _leads(leads: pd.DataFrame, data: DataParams, ingest_report: dict[str, Any]) -> dict[str, Any]:
    mqls = leads[leads[MQL_AT].notna()].reset_index(drop=True) if MQL_AT in leads.columns else leads
    label = mqls[SQL_AT].notna().to_numpy().astype(np.int8)
    attributes = [c for c in mqls.columns if c != LEAD_ID and c not in LEAD_TIME_COLUMNS]
    typed, types = infer_types(mqls[attributes], timezone=data.timezone, source="leads")
    frame = pd.concat([typed, mqls[[MQL_AT]]], axis=1) if MQL_AT in mqls.columns else typed
    notes = ["outcome: the MQL became SQL (at any time after its MQL); one row per MQL",
             "the training labels use features.horizon_days and leave out snapshots whose horizon runs past "
             "the end of the data, so a censoring warning here describes the raw table, not the training rows",
             *ingest_report.get("notes", [])]
    return profile(frame, label, types, time_column=MQL_AT if MQL_AT in frame.columns else None,
                   suspects=ingest_report.get("suspects", []), kept=data.audit.keep, notes=notes)
