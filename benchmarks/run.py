"""`make bench`: the foundation's speed and memory figures on this machine.

1. simulate 1M leads (~100M events) and write Parquet;
2. build point-in-time snapshots from those events with the DuckDB builder, and compare it with a
   straightforward pandas implementation of the same features on a ~10M-event sample;
3. train + calibrate + evaluate on about 1M of those snapshots;
4. the exported scorer end to end (probability, flag, tier, exact reasons as sentences) on 1M of
   those leads, with a 300-tree model, beside plain predict, pred_contrib and shap in the same run;
5. exact SHAP contributions for 1M lead-shaped rows: leadlift's TreeSHAP vs LightGBM and shap.
Figures are printed (medians of repeated runs, ratios, CPU seconds and the load average beside
wall seconds, since the machine may be shared, and the times of two fixed reference workloads at
the start and the end, so figures of different days can be compared) and end with a summary
table of the foundation's targets; nothing here is a pass/fail test.

Environment: ``LEADLIFT_BENCH_LEADS`` (default 1000000; 100000 for a quick look),
``LEADLIFT_BENCH_REPEATS`` (default 3; the simulation runs ``LEADLIFT_BENCH_SIM_REPEATS``, default 2,
times), ``LEADLIFT_BENCH_ONLY`` (comma-separated subset of ``simulate,features,train,score,shap``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from benchmarks import bench_features, bench_score, bench_shap, bench_simulate, bench_train
from benchmarks.measure import machine_reference, median, summary_table
from features.builder import FeaturesParams
from pipelines.config import load_section

OUT = Path(__file__).resolve().parent / "out"
CORES = 2
"""The machine the targets are set for; CPU seconds / CORES is the wall time when both are kept busy."""


def _row(figure: str, target: str, seconds: float, cpu: float | None, peak_gb: float | None,
         load: Any, check: str = "") -> dict[str, Any]:
    return {
        "figure": figure, "target": target, "median wall s": f"{seconds:.1f}",
        "median CPU-s": "" if cpu is None else f"{cpu:.1f}",
        f"CPU-s/{CORES}": "" if cpu is None else f"{cpu / CORES:.1f}",
        "peak GB": "" if peak_gb is None else f"{peak_gb:.2f}", "load avg (1 min)": load, "check": check,
    }


def summary(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target of the foundation (issue 2, item 8), from the figures gathered."""
    rows = []
    sim = figures.get("simulate")
    if sim:
        rows.append(_row(f"simulate {sim['leads']:,} leads ({sim['events']:,} events)", "<= 180 s",
                         sim["seconds"], sim["cpu_seconds"], sim["peak_rss_total_mb"] / 1024,
                         sim["load_average_1min_before_after"]))
    feat = figures.get("features") or {}
    if "full" in feat:
        f = feat["full"]
        rows.append(_row(f"features: {feat['events']:,} events -> {feat['snapshots']:,} snapshots",
                         "<= 90 s, <= 6 GB", f["median_seconds"], f["median_cpu_seconds"], f["peak_rss_gb"],
                         f["load_average_before_after"]))
    if "sample" in feat:
        s = feat["sample"]
        ok = "values equal" if s["check"]["equal"] else f"DIFFER: {s['check']['features_differing']}"
        rows.append(_row(f"sample {s['events']:,} events: DuckDB builder", "", s["duckdb_median_seconds"],
                         s["duckdb_median_cpu_seconds"], s["duckdb_peak_rss_gb"],
                         s["duckdb_load_average_before_after"], ok))
        rows.append(_row(f"sample {s['events']:,} events: pandas reference", "", s["pandas_median_seconds"],
                         s["pandas_median_cpu_seconds"], s["pandas_peak_rss_gb"],
                         s["pandas_load_average_before_after"]))
        rows.append({"figure": "pandas / DuckDB (same run)", "target": ">= 10x",
                     "median wall s": f"{s['speedup_vs_pandas']:.1f}x",
                     "median CPU-s": f"{s['pandas_median_cpu_seconds'] / s['duckdb_median_cpu_seconds']:.1f}x"})
    score = figures.get("score")
    if score:
        rows.append({"figure": f"score {score['rows']:,} leads, {score['trees']} trees, exact reasons", "target": ">= 20k rows/s",
                     "median wall s": f"{score['rows'] / score['score_rows_per_s']:.1f}",
                     "median CPU-s": f"{median(score['score_cpu_seconds']):.1f}",
                     "peak GB": f"{score['peak_memory_gib']:.2f}", "load avg (1 min)": score["load_average_start"][0],
                     "check": f"{score['score_rows_per_s']:,} rows/s; {score['ratio_vs_shap_tree_explainer']}x shap"})
    ref = figures.get("machine_reference", {})
    if "start" in ref and "end" in ref:  # last: the table takes its columns from the first row
        rows.append({"figure": "machine reference, start / end (one thread: numpy sort of 10M, DuckDB "
                               "group-by of 20M rows)", "target": "to scale by",
                     "median wall s": " / ".join(f"{r['sort_seconds']:.2f} + {r['duckdb_seconds']:.2f}"
                                                 for r in (ref["start"], ref["end"]))})
    return rows


def main() -> None:
    leads = int(os.environ.get("LEADLIFT_BENCH_LEADS", "1000000"))
    repeats = int(os.environ.get("LEADLIFT_BENCH_REPEATS", "3"))
    sim_repeats = int(os.environ.get("LEADLIFT_BENCH_SIM_REPEATS", "2"))
    only = set(filter(None, os.environ.get("LEADLIFT_BENCH_ONLY", "simulate,features,train,score,shap").split(",")))
    sim_dir = OUT / f"sim-{leads}"
    figures: dict[str, Any] = {"machine_reference": {"start": machine_reference()}}
    if "simulate" in only:
        figures["simulate"] = bench_simulate.run(sim_dir, leads=leads, repeats=sim_repeats)
        print(f"[simulate] {figures['simulate']}", flush=True)
    snapshots = sim_dir / "snapshots.parquet"
    if "features" in only:
        figures["features"] = bench_features.run(sim_dir, repeats=repeats, keep_snapshots=snapshots)
    if "train" in only and snapshots.exists():
        figures["train"] = bench_train.run(snapshots, rows=1_000_000, oracle_path=sim_dir / "truth" / "oracle.parquet")
        print(f"[train] {figures['train']}", flush=True)
    if "score" in only and snapshots.exists():
        windows = load_section(Path(__file__).resolve().parents[1] / "params.yaml", "features", FeaturesParams).windows
        figures["score"] = bench_score.run(snapshots, sim_dir / "leads.parquet", windows, rows=min(leads, 1_000_000),
                                           repeats=repeats)
        print(f"[score] {figures['score']}", flush=True)
    if "shap" in only:
        figures["shap"] = bench_shap.run(rows=min(leads, 1_000_000), repeats=repeats)
    figures["machine_reference"]["end"] = machine_reference()
    figures["summary"] = summary(figures)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "foundation.json").write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    print(f"figures written to {OUT / 'foundation.json'}")
    print(f"\nSummary (machine with {CORES} cores; CPU-s include every thread and worker process):")
    print(summary_table(figures["summary"]))


if __name__ == "__main__":
    main()
