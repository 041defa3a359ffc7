"""Stage `features`: point-in-time training snapshots from the validated leads and events."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.builder import FeaturesParams, build_snapshots
from features.catalog import build_catalog, discover_attributes
from features.io import atomic_path, write_json_atomic, write_text_atomic
from features.contract import CUTOFF, LABEL
from features.snapshots import censored_snapshot_count, snapshot_spine
from features.tabular import DataParams, tabular_snapshots
from features.timeline import latest_event_time, latest_lead_time, resolve_data_end
from pipelines.config import load_section
from pipelines.console import console


def main(params_path: Path, leads_in: Path, events_in: Path, out: Path, report_out: Path, catalog_out: Path) -> None:
    params = load_section(params_path, "features", FeaturesParams)
    data = load_section(params_path, "data", DataParams)
    leads = pd.read_parquet(leads_in)
    if data.files_tabular:
        _tabular(leads, data, params, out, report_out, catalog_out)
        return
    events_glob = str(Path(events_in) / "*.parquet")
    data_end = resolve_data_end(params.as_of, latest_event_time(events_glob), latest_lead_time(leads))
    spine = snapshot_spine(leads, data_end, params.spine())
    catalog = build_catalog(params.windows, discover_attributes(leads))
    with atomic_path(out) as tmp:
        built = build_snapshots(
            leads,
            events_glob,
            spine,
            catalog,
            str(tmp),
            threads=params.threads,
            memory_limit=params.memory_limit,
            temp_dir=str(Path(out).parent / ".duckdb_tmp"),
        )
    report = {
        "data_end": data_end.isoformat(),
        "snapshots": int(len(spine)),
        "positives": int(spine["label"].sum()),
        "positive_rate": float(spine["label"].mean()) if len(spine) else None,
        "leads_with_snapshots": int(spine["lead_id"].nunique()),
        "censored_snapshots": censored_snapshot_count(leads, data_end, params.spine()),
        "features": len(catalog.feature_names),
        "catalog_version": catalog.version,
        "skipped_attributes": {a.column: a.reason for a in catalog.skipped},
        "build": built.to_dict(),
    }
    write_json_atomic(report, report_out)
    write_text_atomic(catalog.to_markdown(), catalog_out)
    console.print(
        f"{report['snapshots']:,} snapshots of {report['leads_with_snapshots']:,} MQLs, "
        f"{report['positives']:,} positive ({(report['positive_rate'] or 0):.1%}), "
        f"{report['censored_snapshots']:,} censored, {report['features']} features -> {out}"
    )


def _tabular(leads: pd.DataFrame, data: DataParams, params: FeaturesParams, out: Path, report_out: Path,
             catalog_out: Path) -> None:
    """A CRM export: one snapshot per row (``tabular_snapshots``), leakage suspects left out."""
    snapshots, report = tabular_snapshots(leads, data, source=str(data.leads))
    catalog = build_catalog(params.windows, discover_attributes(snapshots.drop(columns=[CUTOFF, LABEL])))
    with atomic_path(out) as tmp:
        snapshots.to_parquet(tmp, index=False)
    report = {**report, "snapshots": report["rows"], "positive_rate": report["outcome_rate"],
              "censored_snapshots": 0, "catalog_version": catalog.version}
    write_json_atomic(report, report_out)
    write_text_atomic(catalog.to_markdown(), catalog_out)
    for line in report["leakage_lines"]:
        console.print(f"[bold yellow]leakage audit[/]: {line}", highlight=False)
    console.print(
        f"{report['rows']:,} snapshots (one per row), {report['positives']:,} positive "
        f"({report['outcome_rate']:.1%}), {len(report['features'])} features, split {report['split']} "
        f"({report['split_reason']}) -> {out}", highlight=False,
    )
