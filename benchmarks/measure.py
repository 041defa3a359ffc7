"""Timing and peak-memory helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil


class PeakMemory:
    """Peak resident memory (bytes) of this process and its children, sampled every ``interval`` s.

    Sampling is hand-written because tracemalloc sees only Python allocations, not DuckDB's,
    LightGBM's or a worker process's memory, and ``ru_maxrss`` cannot be reset between phases.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def gib(self) -> float:
        return self.peak / 2**30


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["seconds"]``."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start


def repeat(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Run ``fn`` ``repeats`` times; the wall-clock seconds of each run and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        with stopwatch() as t:
            result = fn()
        seconds.append(t["seconds"])
    return seconds, result


def rate(rows: int, seconds: float) -> float:
    """Rows per second (inf for a run too short to time)."""
    return rows / seconds if seconds > 0 else float("inf")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads, DuckDB's included) and of its
    reaped child processes (e.g. finished pool workers)."""
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def load_average() -> float:
    """The machine's 1-minute load average: other jobs on a shared machine slow the wall clock."""
    return round(psutil.getloadavg()[0], 2)


def machine_reference(repeats: int = 3) -> dict[str, float]:
    """Median seconds of two fixed one-thread workloads, to compare figures taken on different days.

    The same code has measured 1.6-1.8x slower on one day than on another on this machine kind (a
    shared host), so a figure alone says little about a change; beside these reference times it
    can be scaled. ``sort``: numpy sorts the same 10M seeded doubles; ``duckdb``: a one-thread
    DuckDB group-by over 20M generated rows (the builder's kind of work).
    """
    import duckdb
    import numpy as np

    values = np.random.default_rng(0).random(10_000_000)
    sort_s, duck_s = [], []
    with duckdb.connect(config={"threads": 1}) as con:
        for _ in range(repeats):
            with stopwatch() as t:
                np.sort(values, kind="quicksort")
            sort_s.append(t["seconds"])
            with stopwatch() as t:
                con.execute("SELECT i % 100003 AS k, sum(i * 7 % 13), max(i) FROM range(20000000) r(i) "
                            "GROUP BY k ORDER BY k LIMIT 1").fetchall()
            duck_s.append(t["seconds"])
    return {"sort_seconds": round(median(sort_s), 3), "duckdb_seconds": round(median(duck_s), 3)}


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of benchmark figures (one dict per row, the same keys in every row)."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[str(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.ljust(w) for k, w in zip(keys, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(out)
