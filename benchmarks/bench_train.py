"""Train + calibrate + evaluate on about 1M snapshots: seconds and peak memory.

Runs ``models.train.train_all`` exactly as the train stage does (the ``train`` section of
params.yaml), on snapshots the feature benchmark built from the simulated base, taking whole
leads until about ``rows`` snapshots (a lead never straddles the sample's edge).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.measure import PeakMemory, stopwatch
from features.builder import FeaturesParams
from features.contract import LEAD_ID
from models.train import TrainParams, train_all
from pipelines.config import load_section

ROOT = Path(__file__).resolve().parents[1]


def sample_leads(snapshots: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """Snapshots of randomly chosen whole leads, about ``rows`` of them."""
    if len(snapshots) <= rows:
        return snapshots
    counts = snapshots.groupby(LEAD_ID).size().sample(frac=1.0, random_state=seed)
    keep = counts.index[: int(np.searchsorted(counts.cumsum().to_numpy(), rows)) + 1]
    return snapshots[snapshots[LEAD_ID].isin(keep)].reset_index(drop=True)


def run(snapshots_path: Path, rows: int = 1_000_000, oracle_path: Path | None = None) -> dict[str, Any]:
    params = load_section(ROOT / "params.yaml", "train", TrainParams)
    horizon = load_section(ROOT / "params.yaml", "features", FeaturesParams).horizon_days
    snapshots = sample_leads(pd.read_parquet(snapshots_path), rows)
    oracle = pd.read_parquet(oracle_path) if oracle_path is not None and oracle_path.exists() else None
    with PeakMemory() as memory, stopwatch() as t:
        result = train_all(snapshots, params, horizon_days=horizon, oracle=oracle)
    test = result.metrics["test"]
    return {
        "rows": int(len(snapshots)),
        "features": int(result.metrics["data"]["features"]),
        "seconds": round(t["seconds"], 1),
        "target_seconds": 600,
        "peak_memory_gib": round(memory.gib, 2),
        "trees": int(result.metrics["search"]["trees"]),
        "trials": len(result.trials),
        "calibration": result.calibration.method,
        "test_roc_auc": {k: (round(v["roc_auc"], 4) if v.get("roc_auc") else None) for k, v in test.items()},
    }

