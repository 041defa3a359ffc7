"""Speed and memory of the point-in-time feature builder, and its agreement with plain pandas.

``run(sim_dir, repeats)`` reads a simulated lead base (``leads.parquet``, ``events/*.parquet``),
builds the training spine and its snapshots with the DuckDB builder (median seconds, peak RSS of
this process, DuckDB included since it runs in-process), then on a sample of leads whose events
total about ``SAMPLE_EVENTS`` runs both the builder and ``reference_features`` -- the same catalog
computed the way a data scientist would write it in pandas (spine x events merge, filter
``ts < cutoff``, group-bys) -- checks every feature agrees, and reports both timings.
Figures are printed; nothing here passes or fails.
"""

from __future__ import annotations

import os
import statistics
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.measure import cpu_seconds, load_average
from features.builder import FeaturesParams, build_snapshots
from features.catalog import Catalog, Kind, build_catalog, category_text, discover_attributes
from features.contract import CUTOFF, LABEL, LEAD_ID, TS
from features.snapshots import snapshot_spine
from features.timeline import latest_event_time, latest_lead_time, resolve_data_end

SAMPLE_EVENTS = 10_000_000
DAY = pd.Timedelta(days=1)


# --- the pandas reference ----------------------------------------------------------------------


def reference_features(leads: pd.DataFrame, events: pd.DataFrame, spine: pd.DataFrame,
                       catalog: Catalog) -> pd.DataFrame:
    """The catalog's features the straightforward pandas way: merge spine x events, filter, group by."""
    keys = [LEAD_ID, CUTOFF] + ([LABEL] if LABEL in spine.columns else [])
    out = spine[keys].reset_index(drop=True)
    sid = pd.RangeIndex(len(out))
    snap = out[[LEAD_ID, CUTOFF]].assign(_sid=np.arange(len(out)))
    m = snap.merge(events, on=LEAD_ID, how="inner")
    m = m.loc[m[TS] < m[CUTOFF]].reset_index(drop=True)
    age = m[CUTOFF] - m[TS]

    masks: dict[Any, np.ndarray] = {}

    def in_window(days: int | None) -> np.ndarray:
        if ("window", days) not in masks:
            masks["window", days] = (np.ones(len(m), bool) if days is None
                                     else (age <= pd.Timedelta(days=days)).to_numpy())
        return masks["window", days]

    def kept(flt: Any) -> np.ndarray:
        if flt.key not in masks:
            masks[flt.key] = flt.mask(m)
        return masks[flt.key]

    def count(flt: Any, days: int | None) -> pd.Series:
        hit = kept(flt) & in_window(days)
        return m.loc[hit].groupby("_sid").size().reindex(sid, fill_value=0)

    lead_rows = out[[LEAD_ID]].merge(leads, on=LEAD_ID, how="left")
    cols: dict[str, Any] = {}
    for f in catalog:
        if f.kind is Kind.COUNT:
            cols[f.name] = count(f.events, f.window).astype("int32")
        elif f.kind is Kind.RECENCY:
            last = m.loc[kept(f.events)].groupby("_sid")[TS].max().reindex(sid)
            cols[f.name] = ((out[CUTOFF] - last) / DAY).astype("float32")
        elif f.kind is Kind.MOMENTUM:
            recent = count(f.events, f.window)
            before = count(f.events, f.window + f.before_days) - recent
            cols[f.name] = (recent / ((before + 1) * f.window / f.before_days)).astype("float32")
        elif f.kind is Kind.RATE:
            den = count(f.denominator, f.window)
            cols[f.name] = (count(f.events, f.window) / den.where(den > 0)).astype("float32")
        elif f.kind is Kind.ACTIVE_DAYS:
            hit = m.loc[kept(f.events) & in_window(f.window)]
            days = hit[TS].dt.floor("D").groupby(hit["_sid"]).nunique()
            cols[f.name] = days.reindex(sid, fill_value=0).astype("int32")
        elif f.kind is Kind.DISTINCT_VALUES:
            hit = m.loc[kept(f.events) & in_window(f.window)]
            cols[f.name] = hit.groupby("_sid")[f.column].nunique().reindex(sid, fill_value=0).astype("int32")
        elif f.kind is Kind.SINCE:
            cols[f.name] = ((out[CUTOFF] - lead_rows[f.column]) / DAY).astype("float32")
        elif f.categorical:
            cols[f.name] = lead_rows[f.column].map(category_text, na_action="ignore")
        else:
            cols[f.name] = lead_rows[f.column].astype("float64")
    return pd.concat([out, pd.DataFrame(cols)], axis=1)


def compare(built: pd.DataFrame, reference: pd.DataFrame, catalog: Catalog) -> dict[str, Any]:
    """Per-feature agreement: same nulls, values equal (numbers within float32 rounding)."""
    bad: dict[str, int] = {}
    for f in catalog:
        a, b = built[f.name], reference[f.name]
        na, nb = a.isna().to_numpy(), b.isna().to_numpy()
        if f.categorical:
            same = a.astype(object).to_numpy() == b.astype(object).to_numpy()
        else:
            x, y = a.to_numpy("float64", na_value=np.nan), b.to_numpy("float64", na_value=np.nan)
            same = np.isclose(x, y, rtol=1e-5, atol=1e-4)
        differ = (na != nb) | (~na & ~nb & ~same)
        if differ.any():
            bad[f.name] = int(differ.sum())
    keys_equal = built[[LEAD_ID, CUTOFF]].reset_index(drop=True).equals(
        reference[[LEAD_ID, CUTOFF]].reset_index(drop=True))
    return {"features_compared": len(catalog), "keys_equal": bool(keys_equal),
            "features_differing": bad, "equal": bool(keys_equal and not bad)}


# --- measuring ---------------------------------------------------------------------------------


class PeakRSS:
    """Peak resident memory of this process (DuckDB included: it runs in-process), sampled in a thread."""

    def __init__(self, every: float = 0.05) -> None:
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._proc = psutil.Process(os.getpid())

    def __enter__(self) -> PeakRSS:
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


@dataclass
class Timed:
    """Every run's wall seconds, CPU seconds (user + system, DuckDB's threads included) and the
    1-minute load average before and after it; the peak RSS over all runs; the last result."""

    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    load: list[tuple[float, float]] = field(default_factory=list)
    peak: int = 0
    result: Any = None

    def figures(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}median_seconds": round(statistics.median(self.seconds), 2),
            f"{prefix}runs_seconds": [round(s, 2) for s in self.seconds],
            f"{prefix}median_cpu_seconds": round(statistics.median(self.cpu), 1),
            f"{prefix}runs_cpu_seconds": [round(c, 1) for c in self.cpu],
            f"{prefix}load_average_before_after": self.load,
            f"{prefix}peak_rss_gb": round(self.peak / 1e9, 2),
        }


def _timed(fn: Callable[[], Any], repeats: int, label: str) -> Timed:
    out = Timed()
    for _ in range(repeats):
        load0 = load_average()
        with PeakRSS() as rss:
            cpu0, start = cpu_seconds(), time.perf_counter()
            out.result = fn()
            out.seconds.append(time.perf_counter() - start)
            out.cpu.append(cpu_seconds() - cpu0)
        out.load.append((load0, load_average()))
        out.peak = max(out.peak, rss.peak)
        print(f"[features] {label} run {len(out.seconds)}: {out.seconds[-1]:.1f} s wall, {out.cpu[-1]:.1f} CPU-s, "
              f"peak {rss.peak / 1e9:.2f} GB, load {out.load[-1][0]} -> {out.load[-1][1]}", flush=True)
    return out



def run(sim_dir: Path, repeats: int, keep_snapshots: Path | None = None) -> dict[str, Any]:
    """Benchmark the builder on ``sim_dir`` (full base, then a ~10M-event sample against pandas);
    the full base's snapshots are copied to ``keep_snapshots`` when given (for the training benchmark)."""
    params = FeaturesParams()
    leads = pd.read_parquet(sim_dir / "leads.parquet")
    glob = str(sim_dir / "events" / "*.parquet")
    data_end = resolve_data_end(params.as_of, latest_event_time(glob), latest_lead_time(leads))
    spine = snapshot_spine(leads, data_end, params.spine())
    catalog = build_catalog(params.windows, discover_attributes(leads))
    with duckdb.connect() as con:
        n_events = con.execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchall()[0][0]
    figures: dict[str, Any] = {
        "leads": len(leads), "events": int(n_events), "snapshots": len(spine), "features": len(catalog),
        "threads": params.threads, "memory_limit": params.memory_limit,
    }
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        out = Path(tmp) / "snapshots.parquet"

        def full() -> Any:
            return build_snapshots(leads, glob, spine, catalog, out, threads=params.threads,
                                   memory_limit=params.memory_limit, temp_dir=str(Path(tmp) / "duckdb"))

        if os.environ.get("LEADLIFT_BENCH_SKIP_FULL") != "1":
            timed = _timed(full, repeats, "full")
            figures["full"] = {**timed.figures(), "build": timed.result.to_dict()}
            print(f"[features] full: {figures['full']}", flush=True)
            if keep_snapshots is not None:
                shutil.copy(out, keep_snapshots)
        figures["sample"] = _sample_vs_pandas(leads, glob, spine, catalog, params, Path(tmp), repeats)
    print(f"[features] sample: {figures['sample']}", flush=True)
    return figures


def _sample_vs_pandas(leads: pd.DataFrame, glob: str, spine: pd.DataFrame, catalog: Catalog,
                      params: FeaturesParams, tmp: Path, repeats: int) -> dict[str, Any]:
    """Builder vs pandas on the first leads (by id) whose events add up to about ``SAMPLE_EVENTS``."""
    with duckdb.connect() as con:
        per_lead = con.execute(
            f"SELECT {LEAD_ID}, count(*) AS n FROM read_parquet(?) GROUP BY 1 ORDER BY 1", [glob]
        ).fetch_df()
        chosen = per_lead.loc[per_lead["n"].cumsum() <= SAMPLE_EVENTS, [LEAD_ID]]
        con.register("chosen", chosen)
        events = con.sql(
            f"SELECT * FROM read_parquet('{glob}') WHERE {LEAD_ID} IN (SELECT {LEAD_ID} FROM chosen)"
        ).to_arrow_table()
    sample_dir = tmp / "sample"
    sample_dir.mkdir()
    pq.write_table(events, sample_dir / "part-0.parquet")
    keep = leads[LEAD_ID].isin(chosen[LEAD_ID])
    sub_leads = leads.loc[keep].reset_index(drop=True)
    sub_spine = spine.loc[spine[LEAD_ID].isin(chosen[LEAD_ID])].reset_index(drop=True)
    out = tmp / "sample.parquet"

    def duck() -> pd.DataFrame:
        build_snapshots(sub_leads, str(sample_dir / "*.parquet"), sub_spine, catalog, out, threads=params.threads,
                        memory_limit=params.memory_limit, temp_dir=str(tmp / "duckdb"))
        return pd.read_parquet(out)

    events_df = events.to_pandas()
    del events
    duck_t = _timed(duck, repeats, "sample duckdb")
    pandas_t = _timed(lambda: reference_features(sub_leads, events_df, sub_spine, catalog),
                      max(1, min(repeats, 2)), "sample pandas")
    d_med, p_med = statistics.median(duck_t.seconds), statistics.median(pandas_t.seconds)
    return {
        "leads": len(sub_leads), "events": len(events_df), "snapshots": len(sub_spine),
        **duck_t.figures("duckdb_"), **pandas_t.figures("pandas_"),
        "speedup_vs_pandas": round(p_med / d_med, 1),
        "check": compare(duck_t.result, pandas_t.result, catalog),
    }


# --- a synthetic base for development (until features.simulate exists) -------------------------

_EVENT_MIX: dict[str, float] = {
    "email_sent": 0.25, "email_open": 0.12, "email_click": 0.04, "email_reply": 0.005,
    "email_unsubscribe": 0.003, "page_view": 0.35, "content_download": 0.04, "webinar_register": 0.01,
    "webinar_attend": 0.007, "chat": 0.01, "contact_form": 0.005, "roi_calculator": 0.005,
    "demo_request": 0.004, "trial_signup": 0.003, "product_usage": 0.05, "sales_recycled": 0.001,
    "podcast_listen": 0.012,
}


def _strings(rng: np.random.Generator, values: tuple[str, ...], n: int, mask: np.ndarray | None = None) -> pa.Array:
    idx = pa.array(rng.integers(0, len(values), n).astype("int32"), mask=None if mask is None else ~mask)
    return pa.DictionaryArray.from_arrays(idx, pa.array(values)).cast(pa.string())


def synthesize(out_dir: Path, leads: int, events_per_lead: float = 100.0, seed: int = 0,
               chunk_leads: int = 50_000) -> None:
    """A synthetic lead base in the simulator's layout (``leads.parquet``, ``events/part-*.parquet``).

    For developing the benchmark without ``features.simulate``: realistic sizes and event mix,
    no behavioural signal.
    """
    from features.contract import CHANNELS, CONTENT_TYPES, PAGE_TYPES, PRODUCT_FEATURES
    from features.validate import events_arrow_schema

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-01", tz="UTC").value // 1000
    day = 86_400_000_000
    end = start + 720 * day
    (out_dir / "events").mkdir(parents=True, exist_ok=True)
    types = tuple(_EVENT_MIX)
    probs = np.array(list(_EVENT_MIX.values()))
    probs /= probs.sum()
    lead_frames = []
    for part, first in enumerate(range(0, leads, chunk_leads)):
        n = min(chunk_leads, leads - first)
        ids = np.arange(first, first + n, dtype="int64")
        created = start + rng.integers(0, 660 * day, n)
        is_mql = rng.random(n) < 0.45
        mql = np.where(is_mql, created + (rng.exponential(15, n) * day).astype("int64"), np.iinfo("int64").min)
        mql = np.minimum(mql, end - day)
        is_sql = is_mql & (rng.random(n) < 0.2)
        sql = np.where(is_sql, mql + (rng.exponential(25, n) * day).astype("int64"), np.iinfo("int64").min)
        is_dq = is_mql & ~is_sql & (rng.random(n) < 0.1)
        dq = np.where(is_dq, mql + (rng.exponential(40, n) * day).astype("int64"), np.iinfo("int64").min)

        def ts(values: np.ndarray, mask: np.ndarray) -> pd.Series:
            return pd.Series(pd.to_datetime(np.where(mask, values, 0), unit="us", utc=True)).where(mask)

        lead_frames.append(pd.DataFrame({
            "lead_id": ids,
            "created_at": ts(created, np.ones(n, bool)),
            "mql_at": ts(mql, is_mql),
            "sql_at": ts(sql, is_sql & (sql < end)),
            "disqualified_at": ts(dq, is_dq & (dq < end)),
            "industry": rng.choice(["software", "finance", "retail", "health", "education"], n),
            "employees": np.where(rng.random(n) < 0.05, np.nan, np.round(np.exp(rng.uniform(0, 9, n)))),
            "seniority": rng.choice(["individual", "manager", "director", "vp", "c_level"], n),
            "email_domain_type": rng.choice(["business", "free", "edu"], n, p=[0.65, 0.3, 0.05]),
            "crm_compatible": rng.random(n) > 0.15,
        }))
        counts = rng.negative_binomial(2, 2 / (2 + events_per_lead), n)
        m = int(counts.sum())
        owner = np.repeat(np.arange(n), counts)
        lo = created[owner] - 60 * day
        hi = np.minimum(created[owner] + 300 * day, end)
        when = lo + (rng.random(m) * (hi - lo)).astype("int64")
        etype = rng.choice(len(types), m, p=probs)
        order = np.argsort(when, kind="stable")
        owner, when, etype = owner[order], when[order], etype[order]
        is_page = etype == types.index("page_view")
        is_dl = etype == types.index("content_download")
        is_use = etype == types.index("product_usage")
        table = pa.table({
            "lead_id": pa.array(ids[owner]),
            "ts": pa.array(when, pa.timestamp("us", tz="UTC")),
            "event_type": pa.DictionaryArray.from_arrays(pa.array(etype.astype("int32")), pa.array(types))
            .cast(pa.string()),
            "page_type": _strings(rng, PAGE_TYPES, m, is_page),
            "content_type": _strings(rng, CONTENT_TYPES, m, is_dl),
            "channel": _strings(rng, CHANNELS, m, rng.random(m) < 0.5),
            "campaign": pa.nulls(m, pa.string()),
            "feature": _strings(rng, PRODUCT_FEATURES, m, is_use),
        }).cast(events_arrow_schema(True))
        pq.write_table(table, out_dir / "events" / f"part-{part:05d}.parquet", compression="zstd")
    pd.concat(lead_frames, ignore_index=True).to_parquet(out_dir / "leads.parquet", index=False)


if __name__ == "__main__":
    import json
    import sys

    # python -m benchmarks.bench_features SIM_DIR [LEADS]: synthesizes LEADS leads first if SIM_DIR is empty
    target = Path(sys.argv[1])
    if len(sys.argv) > 2 and not (target / "leads.parquet").exists():
        synthesize(target, int(sys.argv[2]))
    print(json.dumps(run(target, int(os.environ.get("LEADLIFT_BENCH_REPEATS", "1"))), indent=2, default=str))
