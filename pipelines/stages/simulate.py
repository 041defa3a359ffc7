"""Stage `simulate`: write the simulated lead base (leads, events) and its hidden truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.builder import FeaturesParams
from features.contract import DISQUALIFIED_AT, LEAD_ID, MQL_AT, SQL_AT
from features.io import atomic_path, write_parquet_atomic
from features.simulate import SimulateParams, oracle_probabilities, simulate_chunks
from features.snapshots import snapshot_spine
from features.timeline import latest_lead_time, resolve_data_end
from pipelines.config import load_section
from pipelines.console import console, progress


def main(params_path: Path, leads_out: Path, events_out: Path, truth_out: Path) -> None:
    sim = load_section(params_path, "simulate", SimulateParams)
    feat = load_section(params_path, "features", FeaturesParams)
    leads_parts, truth_parts, states_parts = [], [], []
    n_events, latest_event = 0, None
    n_chunks = -(-sim.leads // sim.chunk_leads)
    with atomic_path(events_out) as tmp_events:
        tmp_events.mkdir(parents=True)
        with progress() as bar:
            task = bar.add_task("simulating lead base", total=n_chunks)
            for i, chunk in enumerate(simulate_chunks(sim, encoded=True)):
                # dictionary-encoded text, no Arrow schema stored: the file reads back as plain strings
                pq.write_table(chunk.events, tmp_events / f"part-{i:05d}.parquet", compression="zstd",
                               store_schema=False)
                n_events += chunk.events.num_rows
                if chunk.events.num_rows:
                    chunk_max = pc.max(chunk.events["ts"]).as_py()
                    latest_event = chunk_max if latest_event is None else max(latest_event, chunk_max)
                leads_parts.append(chunk.leads)
                truth_parts.append(chunk.truth)
                states_parts.append(chunk.states)
                bar.advance(task)
        leads = pd.concat(leads_parts, ignore_index=True)
        truth = pd.concat(truth_parts, ignore_index=True)
        states = pa.concat_tables(states_parts).to_pandas()
        latest = pd.Timestamp(latest_event) if latest_event is not None else None
        data_end = resolve_data_end(feat.as_of, latest, latest_lead_time(leads))
        lifecycle = leads[[LEAD_ID, MQL_AT, SQL_AT, DISQUALIFIED_AT]]  # the spine needs no attributes
        spine = snapshot_spine(lifecycle, data_end, feat.spine())
        oracle = spine[["lead_id", "cutoff"]].assign(
            true_probability=oracle_probabilities(states, truth, spine, feat.horizon_days, sim)
        )
        with atomic_path(truth_out) as tmp_truth:
            tmp_truth.mkdir(parents=True)
            truth.to_parquet(tmp_truth / "leads.parquet", index=False)
            pq.write_table(pa.Table.from_pandas(states, preserve_index=False), tmp_truth / "states.parquet")
            oracle.to_parquet(tmp_truth / "oracle.parquet", index=False)
        write_parquet_atomic(leads, leads_out)
    console.print(
        f"simulated {len(leads):,} leads, {n_events:,} events, "
        f"{int(leads['mql_at'].notna().sum()):,} MQLs, {int(leads['sql_at'].notna().sum()):,} SQLs; "
        f"oracle for {len(oracle):,} snapshots (data end {data_end:%Y-%m-%d})"
    )
