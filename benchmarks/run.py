"""`make bench`: the foundation's speed and memory figures on this machine.

1. simulate 1M leads (~100M events) and write Parquet;
2. build point-in-time snapshots from those events with the DuckDB builder, and compare it with a
   straightforward pandas implementation of the same features on a ~10M-event sample;
3. train + calibrate + evaluate on about 1M of those snapshots;
4. exact SHAP contributions for 1M lead-shaped rows: leadlift's TreeSHAP vs LightGBM and shap.
Figures are printed (medians of repeated runs, ratios); nothing here is a pass/fail test.
Scale it down for a quick look with LEADLIFT_BENCH_LEADS=100000.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks import bench_features, bench_shap, bench_simulate, bench_train

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    leads = int(os.environ.get("LEADLIFT_BENCH_LEADS", "1000000"))
    repeats = int(os.environ.get("LEADLIFT_BENCH_REPEATS", "3"))
    sim_dir = OUT / f"sim-{leads}"
    figures = {"simulate": bench_simulate.run(sim_dir, leads=leads)}
    snapshots = sim_dir / "snapshots.parquet"
    figures["features"] = bench_features.run(sim_dir, repeats=repeats, keep_snapshots=snapshots)
    if snapshots.exists():
        figures["train"] = bench_train.run(snapshots, rows=1_000_000, oracle_path=sim_dir / "truth" / "oracle.parquet")
        print(f"[train] {figures['train']}", flush=True)
    figures["shap"] = bench_shap.run(rows=min(leads, 1_000_000), repeats=repeats)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "foundation.json").write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    print(f"figures written to {OUT / 'foundation.json'}")


if __name__ == "__main__":
    main()
