"""Benchmark of the simulator: the `simulate` stage end to end (simulation + Parquet writing).

``run`` calls the stage's ``main`` with a temporary params file, so the figures are those of
``leadlift simulate``: wall seconds, events written, events per second, the CPU seconds of the
stage and its workers, and the peak resident memory of the whole process tree (the stage and
its worker processes), sampled by psutil.

``learnability`` is the check behind the simulator's realism targets: crude point-in-time
features (event counts in the last 7/30/90 days, days since key events, fit attributes) with
LightGBM trained on the earlier 70% of snapshots by cutoff, against the oracle and the points
baseline on the later 30%.

    python -m benchmarks.bench_simulate --leads 1000000 --repeats 3
    python -m benchmarks.bench_simulate --learnability 20000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Samples the resident memory of this process and its children until stopped."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = []
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss.append(proc.memory_info().rss)
                except psutil.Error:
                    pass
            self.peak_total = max(self.peak_total, sum(rss))
            self.peak_single = max(self.peak_single, max(rss, default=0))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished (reaped) children, e.g. pool workers.

    With other jobs on the machine, wall time measures the machine's load as much as this code;
    CPU seconds divided by the cores in use is the wall time this work needs on an idle machine."""
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _params_file(folder: Path, leads: int, workers: int, chunk_leads: int) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["simulate"].update(leads=leads, workers=workers, chunk_leads=chunk_leads)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run(out_dir: Path, leads: int, workers: int = 2, chunk_leads: int = 50_000, repeats: int = 1) -> dict[str, Any]:
    """Simulate ``leads`` leads with the stage into ``out_dir`` (``leads.parquet``, ``events/``,
    ``truth/``) ``repeats`` times; the median run's figures plus every run's seconds."""
    from pipelines.stages import simulate as stage

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        params = _params_file(Path(tmp), leads, workers, chunk_leads)
        for _ in range(repeats):
            load0 = round(psutil.getloadavg()[0], 2)
            with PeakMemory() as mem:
                cpu0, t0 = _cpu_seconds(), time.perf_counter()
                stage.main(params, out_dir / "leads.parquet", out_dir / "events", out_dir / "truth")
                seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            runs.append((seconds, mem.peak_total, mem.peak_single, cpu, load0, round(psutil.getloadavg()[0], 2)))
            print(f"[simulate] run {len(runs)}: {seconds:.1f} s wall, {cpu:.1f} CPU-s, "
                  f"load {load0} -> {runs[-1][5]}", flush=True)
    events = sum(pq.ParquetFile(p).metadata.num_rows for p in (out_dir / "events").glob("part-*.parquet"))
    size = sum(p.stat().st_size for p in out_dir.rglob("*.parquet"))
    median = statistics.median(r[0] for r in runs)
    return {
        "leads": leads,
        "workers": workers,
        "chunk_leads": chunk_leads,
        "events": events,
        "events_per_lead": round(events / leads, 1),
        "seconds": round(median, 2),
        "seconds_all_runs": [round(r[0], 2) for r in runs],
        "cpu_seconds": round(statistics.median(r[3] for r in runs), 1),
        "cpu_seconds_all_runs": [round(r[3], 1) for r in runs],
        "load_average_1min_before_after": [(r[4], r[5]) for r in runs],
        "events_per_second": round(events / median),
        "peak_rss_total_mb": round(max(r[1] for r in runs) / 2**20),
        "peak_rss_one_process_mb": round(max(r[2] for r in runs) / 2**20),
        "parquet_mb": round(size / 2**20),
    }


# --- learnability ----------------------------------------------------------------------------------

_COUNTED = {
    "demo_request": "event_type = 'demo_request'",
    "contact_form": "event_type = 'contact_form'",
    "trial_signup": "event_type = 'trial_signup'",
    "webinar_register": "event_type = 'webinar_register'",
    "webinar_attend": "event_type = 'webinar_attend'",
    "content_download": "event_type = 'content_download'",
    "email_open": "event_type = 'email_open'",
    "email_click": "event_type = 'email_click'",
    "email_reply": "event_type = 'email_reply'",
    "email_unsubscribe": "event_type = 'email_unsubscribe'",
    "chat": "event_type = 'chat'",
    "roi_calculator": "event_type = 'roi_calculator'",
    "product_usage": "event_type = 'product_usage'",
    "sales_recycled": "event_type = 'sales_recycled'",
    "page_view": "event_type = 'page_view'",
    **{f"page_view_{p}": f"event_type = 'page_view' AND page_type = '{p}'"
       for p in ("pricing", "product", "blog", "careers", "case_study", "docs")},
    **{f"content_download_{c}": f"event_type = 'content_download' AND content_type = '{c}'"
       for c in ("case_study", "analyst_report", "guide", "ebook")},
}
_RECENCY = ("demo_request", "page_view_pricing", "contact_form", "product_usage", "sales_recycled",
            "content_download")


def crude_features(leads, events, spine):  # noqa: ANN001, ANN201 (pandas/arrow in, pandas out)
    """Counts per event kind in the 7/30/90 days before each cutoff, days since key events,
    product-usage days and features, days since MQL/creation, and the fit attributes."""
    import duckdb

    aggs = [
        f"count(*) FILTER (WHERE {cond} AND e.ts >= s.cutoff - INTERVAL {w} DAY) AS {name}_count_{w}d"
        for w in (7, 30, 90) for name, cond in _COUNTED.items()
    ]
    aggs += [
        f"date_diff('second', max(e.ts) FILTER (WHERE {_COUNTED[name]}), s.cutoff) / 86400.0 AS days_since_{name}"
        for name in _RECENCY
    ]
    aggs += [
        "date_diff('second', max(e.ts) FILTER (WHERE event_type <> 'email_sent'), s.cutoff) / 86400.0"
        " AS days_since_activity",
        "count(DISTINCT CAST(e.ts AS DATE)) FILTER (WHERE event_type = 'product_usage'"
        " AND e.ts >= s.cutoff - INTERVAL 30 DAY) AS usage_days_30d",
        "count(DISTINCT feature) FILTER (WHERE event_type = 'product_usage'"
        " AND e.ts >= s.cutoff - INTERVAL 30 DAY) AS usage_features_30d",
    ]
    with duckdb.connect() as con:
        con.register("ev", events)
        con.register("sp", spine[["lead_id", "cutoff"]])
        feats = con.execute(
            f"SELECT s.lead_id, s.cutoff, {', '.join(aggs)} FROM sp s LEFT JOIN ev e"
            " ON e.lead_id = s.lead_id AND e.ts < s.cutoff AND e.ts >= s.cutoff - INTERVAL 180 DAY"
            " GROUP BY s.lead_id, s.cutoff"
        ).df()
    frame = spine.merge(feats, on=["lead_id", "cutoff"], how="left").merge(leads, on="lead_id", how="left")
    frame["days_since_mql"] = (frame["cutoff"] - frame["mql_at"]).dt.total_seconds() / 86400
    frame["days_since_created"] = (frame["cutoff"] - frame["created_at"]).dt.total_seconds() / 86400
    return frame


def learnability(leads: int = 20_000, seed: int = 42, horizon_days: int = 30) -> dict[str, Any]:
    """ROC AUC on the later 30% of snapshots (by cutoff): LightGBM on crude features, the oracle,
    and the default points score; plus the base's size and positive rate."""
    import lightgbm as lgb
    import pandas as pd
    import pyarrow as pa
    from sklearn.metrics import roc_auc_score

    from features.simulate import SimulateParams, oracle_probabilities, simulate_chunks
    from features.snapshots import SpineParams, snapshot_spine
    from features.timeline import latest_lead_time
    from models.baselines import PointsParams, points_score

    params = SimulateParams(leads=leads, seed=seed, chunk_leads=max(1_000, -(-leads // 2)), workers=2)
    chunks = list(simulate_chunks(params))
    base = pd.concat([c.leads for c in chunks], ignore_index=True)
    truth = pd.concat([c.truth for c in chunks], ignore_index=True)
    states = pa.concat_tables([c.states for c in chunks]).to_pandas()
    events = pa.concat_tables([c.events for c in chunks])
    data_end = max(pd.Timestamp(pa.compute.max(events["ts"]).as_py()), latest_lead_time(base))
    spine = snapshot_spine(base, data_end, SpineParams(horizon_days=horizon_days))
    spine["oracle"] = oracle_probabilities(states, truth, spine, horizon_days, params)
    frame = crude_features(base, events, spine)
    categorical = ["industry", "revenue_band", "country", "seniority", "lead_source", "source_type",
                   "email_domain_type"]
    for col in categorical:
        frame[col] = frame[col].astype("category")
    frame["crm_compatible"] = frame["crm_compatible"].astype(int)
    hidden = {"lead_id", "cutoff", "label", "oracle", "created_at", "mql_at", "sql_at", "disqualified_at"}
    columns = [c for c in frame.columns if c not in hidden]
    split = frame["cutoff"].quantile(0.7)
    train, test = frame[frame["cutoff"] <= split], frame[frame["cutoff"] > split]
    model = lgb.LGBMClassifier(n_estimators=400, learning_rate=0.03, num_leaves=31, min_child_samples=40,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1)
    model.fit(train[columns], train["label"])
    auc_lgbm = roc_auc_score(test["label"], model.predict_proba(test[columns])[:, 1])
    auc_oracle = roc_auc_score(test["label"], test["oracle"])
    auc_points = roc_auc_score(test["label"], points_score(test, PointsParams()))
    return {
        "leads": leads,
        "events_per_lead": round(events.num_rows / leads, 1),
        "mql_share": round(float(base["mql_at"].notna().mean()), 3),
        "snapshots": len(spine),
        "positive_rate": round(float(spine["label"].mean()), 4),
        "oracle_mean": round(float(spine["oracle"].mean()), 4),
        "test_rows": len(test),
        "auc_lgbm_crude": round(auc_lgbm, 4),
        "auc_oracle": round(auc_oracle, 4),
        "auc_points": round(auc_points, 4),
        "lgbm_over_oracle": round(auc_lgbm / auc_oracle, 4),
        "top_features": list(
            pd.Series(model.booster_.feature_importance("gain"), index=columns).nlargest(8).index
        ),
        "oracle_deciles": (
            spine.groupby(pd.qcut(spine["oracle"].rank(method="first"), 10, labels=False))
            .agg(oracle=("oracle", "mean"), label=("label", "mean"))
            .round(4).to_dict("list")
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "sim")
    parser.add_argument("--learnability", type=int, default=0, help="leads for the learnability check instead")
    args = parser.parse_args()
    if args.learnability:
        figures = learnability(args.learnability)
    else:
        figures = run(args.out, args.leads, workers=args.workers, repeats=args.repeats)
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
