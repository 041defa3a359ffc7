"""Whole-base scoring: the exported ``LeadScorer`` end to end on 1M leads, exact reasons for each.

On real point-in-time snapshots (the feature benchmark's simulated base), a 300-tree, 31-leaf
LightGBM model is trained on a sample of leads, calibrated on others, and wrapped exactly as the
``export`` stage wraps it (``LeadScorer``: calibrated probability, flag, tier, three reasons and a
risk as sentences, their contributions; reason directions learned on the training rows). Then
``LeadScorer.score`` runs on ``rows`` scoring rows, one snapshot per lead (the latest), topped up
with further snapshots when the base has fewer open leads. Measured in the same run, on the same
model and the same two threads: plain ``predict`` (the physical limit of a pass over the trees),
LightGBM ``pred_contrib`` and ``shap.TreeExplainer`` on samples (their rates extrapolated); the
max abs difference of the scorer's contributions to ``shap.TreeExplainer`` and of their sum to
the booster's raw score; peak memory; CPU seconds beside wall seconds and the load average.

Run: ``python -m benchmarks.bench_score SNAPSHOTS LEADS [rows] [repeats]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import shap

from benchmarks.measure import PeakMemory, cpu_seconds, median, rate, stopwatch
from features.catalog import build_catalog, discover_attributes
from features.contract import CUTOFF, LABEL, LEAD_ID
from models.calibration import CalibrationParams, calibrate
from models.lgbm import FeatureSpec, LGBMParams, LGBMScorer, booster_params
from models.reasons import ReasonBook
from models.scorer import KEY_COLUMNS, LeadScorer, ScorerParams, with_learned_effects
from models.split import lead_holdout
from models.train import best_f1_threshold

THREADS = 2
TREES = 300


def scoring_rows(snapshots: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The latest snapshot of every lead, then (if fewer than ``rows``) earlier ones, ``rows`` in all."""
    ordered = snapshots.sort_values([LEAD_ID, CUTOFF], kind="stable")
    latest = ordered.drop_duplicates(LEAD_ID, keep="last")
    if len(latest) >= rows:
        return latest.sample(rows, random_state=0).reset_index(drop=True)
    rest = ordered.drop(index=latest.index)
    extra = rest.sample(min(rows - len(latest), len(rest)), random_state=0)
    return pd.concat([latest, extra], ignore_index=True)


def build_scorer(snapshots: pd.DataFrame, leads: pd.DataFrame, windows: list[int],
                 train_rows: int = 300_000) -> tuple[LeadScorer, pd.DataFrame]:
    """A ``TREES``-tree calibrated scorer from lead samples of ``snapshots`` (train, calibration)."""
    rest, train = lead_holdout(snapshots, min(0.5, train_rows / len(snapshots)), seed=1)
    _, calibration = lead_holdout(rest, min(0.5, 100_000 / len(rest)), seed=2)
    catalog = build_catalog(windows, discover_attributes(leads))
    features = [c for c in snapshots.columns if c not in KEY_COLUMNS]
    params = LGBMParams(num_threads=THREADS)
    spec = FeatureSpec.infer(train, features, params.max_cat_levels)
    data = lgb.Dataset(spec.matrix(train), label=train[LABEL].to_numpy(np.float64), feature_name=spec.names,
                       categorical_feature=spec.categorical_indices(), params={"max_bin": params.max_bin})
    native = {**booster_params(params), "metric": "none"}
    booster = lgb.train(native, data, num_boost_round=TREES)  # a fixed size: no early stopping
    model = LGBMScorer.from_booster(booster, spec, params)
    calibrated, _ = calibrate(model, calibration, CalibrationParams())
    book = ReasonBook.from_catalog(catalog, spec.names)
    scorer = LeadScorer(calibrated, book, ScorerParams(), best_f1_threshold=best_f1_threshold(calibrated, calibration))
    return with_learned_effects(scorer, train), train



def run(snapshots_path: Path, leads_path: Path, windows: list[int], rows: int = 1_000_000, repeats: int = 3,
        contrib_sample: int = 20_000, shap_sample: int = 2_000) -> dict[str, Any]:
    load_start = os.getloadavg()
    snapshots = pd.read_parquet(snapshots_path)
    leads = pd.read_parquet(leads_path)
    with stopwatch() as t_train:
        scorer, _ = build_scorer(snapshots, leads, windows)
    frame = scoring_rows(snapshots, rows)
    del snapshots
    booster = scorer.lgbm.booster_
    with stopwatch() as t_warm:  # TreeSHAP tables and compiled kernels (or their disk cache), once
        scorer.score(frame.iloc[:1000])

    seconds, cpu, out = [], [], None
    with PeakMemory() as memory:
        for _ in range(repeats):
            del out
            c0 = cpu_seconds()
            with stopwatch() as t:
                out = scorer.score(frame)
            seconds.append(t["seconds"])
            cpu.append(cpu_seconds() - c0)

    matrix = scorer.lgbm.spec_.matrix(frame)
    predict_s = []
    for _ in range(repeats):
        with stopwatch() as t:
            raw = booster.predict(matrix, raw_score=True, num_threads=THREADS)
        predict_s.append(t["seconds"])
    contrib_rows = matrix[:contrib_sample]
    with stopwatch() as t_contrib:
        booster.predict(contrib_rows, pred_contrib=True, num_threads=THREADS)
    shap_rows = frame.iloc[:shap_sample]
    explainer = shap.TreeExplainer(booster)
    with stopwatch() as t_shap:
        reference = explainer.shap_values(matrix[:shap_sample])
    reference = reference[1] if isinstance(reference, list) else reference
    ours = scorer.contributions(shap_rows)[scorer.features].to_numpy()
    score_rate = rate(len(frame), median(seconds))
    contrib_rate = rate(len(contrib_rows), t_contrib["seconds"])
    shap_rate = rate(shap_sample, t_shap["seconds"])
    tiers = out["tier"].value_counts().to_dict()
    example = out.loc[out["tier"] == "hot"].head(1)
    return {
        "rows": len(frame),
        "distinct_leads": int(frame[LEAD_ID].nunique()),
        "trees": booster.num_trees(),
        "features": len(scorer.features),
        "threads": THREADS,
        "load_average_start": [round(v, 2) for v in load_start],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "model_build_seconds": round(t_train["seconds"], 1),
        "warm_up_seconds": round(t_warm["seconds"], 1),
        "score_seconds": [round(s, 2) for s in seconds],
        "score_cpu_seconds": [round(c, 1) for c in cpu],
        "score_rows_per_s": round(score_rate),
        "predict_rows_per_s": round(rate(len(frame), median(predict_s))),
        "pred_contrib_rows_per_s": round(contrib_rate),
        "shap_tree_explainer_rows_per_s": round(shap_rate),
        "ratio_vs_pred_contrib": round(score_rate / contrib_rate, 1),
        "ratio_vs_shap_tree_explainer": round(score_rate / shap_rate, 1),
        "share_of_plain_predict": round(score_rate / rate(len(frame), median(predict_s)), 3),
        "peak_memory_gib": round(memory.gib, 2),
        "max_abs_diff_vs_shap_tree_explainer": float(np.abs(ours - reference).max()),
        "max_abs_diff_raw_score": float(np.abs(out["raw_score"].to_numpy() - raw).max()),
        "rows_with_reason_1": int((out["reason_1"] != "").sum()),
        "tiers": {k: int(v) for k, v in tiers.items()},
        "flagged": int(out["flag"].sum()),
        "example_hot_lead": example[["probability", "reason_1", "reason_2", "reason_3", "risk_1"]].to_dict("records"),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(run(Path(args[0]), Path(args[1]), [7, 30, 90], *(int(a) for a in args[2:4])))
