"""Exact SHAP contributions for every lead: TreeShap vs LightGBM pred_contrib vs shap.TreeExplainer.

Trains a ~300-tree, 31-leaf binary LightGBM model on synthetic data shaped like lead snapshots
(~100 features: non-negative counts with many zeros and long tails, recency days with NaN for
"never", 8 integer-coded categoricals with 3-30 levels), then on ``rows`` scoring rows measures
rows/s of plain ``predict``, of ``pred_contrib`` and ``shap.TreeExplainer`` (on samples,
extrapolated rates), and of ``TreeShap.contributions`` on all rows (median of ``repeats``), the
max abs difference to ``pred_contrib`` on a >= 20k-row sample, peak memory, CPU seconds (user + sys,
all threads) beside wall seconds, and how many distinct decision patterns (and memoised part states)
TreeShap finds per tree in one chunk of rows, the quantity its speed rests on. Every method runs
on ``THREADS`` threads (2, this machine's cores) so the ratios compare like with like; TreeShap's
numba kernels are compiled (or loaded from the on-disk cache) on a small warm-up first, and that
time is reported separately, not counted in its rate.
Then the same comparison on a real table, UCI Bank Marketing (Moro, Cortez and Rita (2014),
Decision Support Systems; ``../shared/data/bank-marketing``, read in place, ``duration`` dropped as
it leaks the outcome): 41k contacts, a 300-tree 31-leaf model, all rows through TreeShap.
Run: ``python -m benchmarks.bench_shap [rows] [repeats]``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import shap

from benchmarks.measure import PeakMemory, median, rate, repeat, stopwatch
from models.treeshap import TreeShap

N_COUNTS, N_RECENCY, N_CATS = 80, 12, 8
THREADS = 2


def lead_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(X float32, y, categorical column indices) resembling lead snapshots."""
    rng = np.random.default_rng(seed)
    engagement = rng.gamma(0.6, 1.0, n)  # one latent driver, so features correlate as in real logs
    X = np.empty((n, N_COUNTS + N_RECENCY + N_CATS), dtype=np.float32)
    for j in range(N_COUNTS):
        active = rng.random(n) < rng.uniform(0.2, 0.8)
        lam = engagement * rng.uniform(0.1, 3.0) * active * rng.pareto(2.5, n).clip(0, 20)
        X[:, j] = rng.poisson(lam)
    for j in range(N_RECENCY):
        days = np.floor(rng.exponential(30 / (0.2 + engagement)))
        days[rng.random(n) < np.clip(0.7 - 0.3 * engagement, 0.05, 0.95)] = np.nan  # never
        X[:, N_COUNTS + j] = days
    cat_rng = np.random.default_rng(12345)  # same levels/frequencies for train and score data
    for j in range(N_CATS):
        levels = int(cat_rng.integers(3, 31))
        X[:, N_COUNTS + N_RECENCY + j] = rng.choice(levels, n, p=cat_rng.dirichlet(np.full(levels, 0.7)))
    cats = list(range(N_COUNTS + N_RECENCY, X.shape[1]))
    logit = (-2.0 + 0.27 * np.log1p(X[:, :10]).sum(axis=1)
             - 0.005 * np.nan_to_num(X[:, N_COUNTS], nan=200.0) + 0.7 * (X[:, cats[0]] % 3 == 0))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return X, y, cats


def train_model(train_rows: int = 60_000, trees: int = 300) -> lgb.Booster:
    X, y, cats = lead_like(train_rows, seed=0)
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "min_data_in_leaf": 20,
              "num_threads": 1, "verbose": -1, "seed": 0}
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=cats), trees)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def pattern_ratios(explainer: TreeShap, X: np.ndarray) -> dict[str, float]:
    """Distinct decision patterns and part states per tree over the rows ``X`` (one chunk), per row."""
    md = explainer.model
    codes = explainer._codes(X)
    patterns, parts = [], []
    for t in range(len(md.tree_start) - 1):
        n0, ns = md.tree_start[t], md.split_end[t]
        if ns - n0 > 64:
            continue
        key = np.zeros(len(X), dtype=np.uint64)
        for n in range(n0, ns):
            bit = md.node_bit[md.lut_start[n] + codes[:, md.node_col[n]]].astype(np.uint64)
            key |= bit << np.uint64(n - n0)
        distinct = np.unique(key)
        patterns.append(len(distinct))
        parts.append(sum(len(np.unique(distinct & md.part_mask[q]))
                         for q in range(md.part_start[t], md.part_start[t + 1])))
    return {"rows": len(X), "patterns_per_row_mean": round(float(np.mean(patterns)) / len(X), 3),
            "patterns_per_row_max": round(float(np.max(patterns)) / len(X), 3),
            "part_states_per_row_mean": round(float(np.mean(parts)) / len(X), 3)}


BANK = Path(__file__).resolve().parents[2] / "shared" / "data" / "bank-marketing" / "bank-additional-full.csv"


def bank_marketing(repeats: int, contrib_sample: int = 5_000) -> dict[str, Any]:
    """TreeShap vs pred_contrib on the real Bank Marketing table (skipped with a note when it is absent)."""
    if not BANK.exists():
        return {"skipped": f"{BANK} not found"}
    frame = pd.read_csv(BANK, sep=";").drop(columns=["duration"])
    y = (frame.pop("y") == "yes").astype(int).to_numpy()
    cats = [i for i, c in enumerate(frame.columns) if not pd.api.types.is_numeric_dtype(frame[c])]
    X = np.column_stack([frame[c].astype("category").cat.codes.to_numpy(np.float64) if i in cats
                         else frame[c].to_numpy(np.float64) for i, c in enumerate(frame.columns)])
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "min_data_in_leaf": 20,
              "num_threads": THREADS, "verbose": -1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=cats), 300)
    explainer = TreeShap(booster, n_threads=THREADS)
    explainer.contributions(X[:100])
    cpu0 = _cpu()
    ours_s, ours = repeat(lambda: explainer.contributions(X), repeats)
    ours_cpu = (_cpu() - cpu0) / repeats
    sample = X[:contrib_sample]
    cpu0 = _cpu()
    with stopwatch() as t_contrib:
        reference = booster.predict(sample, pred_contrib=True, num_threads=THREADS)
    contrib_cpu = _cpu() - cpu0
    ours_rate, contrib_rate = rate(len(X), median(ours_s)), rate(len(sample), t_contrib["seconds"])
    return {"rows": len(X), "features": X.shape[1], "trees": booster.num_trees(),
            "treeshap_rows_per_s": round(ours_rate), "pred_contrib_rows_per_s": round(contrib_rate),
            "ratio_vs_pred_contrib": round(ours_rate / contrib_rate, 1),
            "rows_per_cpu_second": {"treeshap": round(rate(len(X), ours_cpu)),
                                    "pred_contrib": round(rate(len(sample), contrib_cpu))},
            "max_abs_diff_vs_pred_contrib": float(np.abs(ours[:len(sample)] - reference).max()),
            "distinct_patterns_per_chunk": pattern_ratios(explainer, X[: -(-min(len(X), explainer.batch_rows)
                                                                         // THREADS)])}



def run(rows: int = 1_000_000, repeats: int = 3, contrib_sample: int = 20_000,
        shap_sample: int = 2_000) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with stopwatch() as t_train:
        booster = train_model()
    X, _, _ = lead_like(rows, seed=1)
    sample = X[: min(contrib_sample, rows)]
    with stopwatch() as t_compile:  # JIT compile or cache load, on a tiny model and input
        warm = TreeShap(train_model(train_rows=500, trees=2), n_threads=THREADS)
        warm.contributions(X[:10])
        warm.raw_score(X[:10])
    with PeakMemory() as mem_build, stopwatch() as t_build:
        explainer = TreeShap(booster, n_threads=THREADS)
    cpu0 = _cpu()
    with PeakMemory() as mem_ours:
        ours_s, ours = repeat(lambda: explainer.contributions(X), repeats)
    ours_cpu = (_cpu() - cpu0) / repeats
    ours_sample = ours[: len(sample)].copy()
    del ours
    cpu0 = _cpu()
    predict_s, _ = repeat(lambda: booster.predict(X, raw_score=True, num_threads=THREADS), repeats)
    predict_cpu = (_cpu() - cpu0) / repeats
    cpu0 = _cpu()
    with PeakMemory() as mem_lgb, stopwatch() as t_contrib:
        reference = booster.predict(sample, pred_contrib=True, num_threads=THREADS)
    contrib_cpu = _cpu() - cpu0
    tree_explainer = shap.TreeExplainer(booster)
    cpu0 = _cpu()
    with stopwatch() as t_shap:
        values = tree_explainer.shap_values(X[:shap_sample])
    shap_cpu = _cpu() - cpu0
    chunk = X[: -(-min(rows, explainer.batch_rows) // THREADS)]  # the rows one thread dedups over
    ratios = pattern_ratios(explainer, chunk)
    values = values[1] if isinstance(values, list) else values
    raw = booster.predict(sample, raw_score=True, num_threads=THREADS)
    ours_rate = rate(rows, median(ours_s))
    contrib_rate = rate(len(sample), t_contrib["seconds"])
    shap_rate = rate(shap_sample, t_shap["seconds"])
    return {
        "rows": rows,
        "repeats": repeats,
        "trees": booster.num_trees(),
        "features": int(X.shape[1]),
        "threads": THREADS,
        "note": "predict, pred_contrib and TreeShap on 2 threads; shap.TreeExplainer as the library runs it; "
                "compare figures within one run only",
        "load_average_start": [round(v, 2) for v in load_before],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "started": started,
        "train_seconds": round(t_train["seconds"], 1),
        "treeshap_jit_compile_seconds": round(t_compile["seconds"], 2),
        "treeshap_build_seconds": round(t_build["seconds"], 2),
        "treeshap_table_mib": round(explainer.model.tables.nbytes / 2**20, 1),
        "predict_rows_per_s": round(rate(rows, median(predict_s))),
        "pred_contrib_rows_per_s": round(contrib_rate),
        "pred_contrib_sample_rows": len(sample),
        "shap_tree_explainer_rows_per_s": round(shap_rate),
        "shap_sample_rows": shap_sample,
        "treeshap_rows_per_s": round(ours_rate),
        "treeshap_seconds": [round(s, 1) for s in ours_s],
        "cpu_seconds_per_run": {"treeshap": round(ours_cpu, 1), "predict": round(predict_cpu, 1),
                                "pred_contrib_sample": round(contrib_cpu, 1),
                                "shap_sample": round(shap_cpu, 1)},
        "rows_per_cpu_second": {"treeshap": round(rate(rows, ours_cpu)),
                                "predict": round(rate(rows, predict_cpu)),
                           "pred_contrib": round(rate(len(sample), contrib_cpu)),
                           "shap_tree_explainer": round(rate(shap_sample, shap_cpu))},
        "distinct_patterns_per_chunk": ratios,
        "target_rows_per_s": 20_000,
        "ratio_vs_pred_contrib": round(ours_rate / contrib_rate, 1),
        "ratio_vs_shap": round(ours_rate / shap_rate, 1),
        "max_abs_diff_vs_pred_contrib": float(np.abs(ours_sample - reference).max()),
        "max_abs_diff_vs_shap": float(np.abs(ours_sample[:shap_sample, :-1] - values).max()),
        "max_abs_diff_sum_vs_raw_score": float(np.abs(ours_sample.sum(axis=1) - raw).max()),
        "diff_sample_rows": len(sample),
        "bank_marketing": bank_marketing(repeats),
        "peak_memory_gib": {"build": round(mem_build.gib, 2), "treeshap": round(mem_ours.gib, 2),
                            "pred_contrib_sample": round(mem_lgb.gib, 2)},
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(run(*args), indent=2))
