"""The benchmark summary: every target row, and the machine reference last, in one table."""

from __future__ import annotations

from benchmarks.measure import machine_reference, summary_table
from benchmarks.run import summary


def test_machine_reference_gives_both_workload_times() -> None:
    ref = machine_reference(repeats=1)
    assert set(ref) == {"sort_seconds", "duckdb_seconds"}
    assert all(v > 0 for v in ref.values())


def test_summary_ends_with_the_machine_reference_and_keeps_the_target_columns() -> None:
    figures = {
        "machine_reference": {"start": {"sort_seconds": 0.31, "duckdb_seconds": 1.28},
                              "end": {"sort_seconds": 0.52, "duckdb_seconds": 2.05}},
        "simulate": {"leads": 1000, "events": 117_000, "seconds": 2.5, "cpu_seconds": 4.0,
                     "peak_rss_total_mb": 512, "load_average_1min_before_after": [(0.1, 0.2)]},
    }
    rows = summary(figures)
    assert [r["figure"].split()[0] for r in rows] == ["simulate", "machine"]
    assert rows[-1]["median wall s"] == "0.31 + 1.28 / 0.52 + 2.05"
    table = summary_table(rows).splitlines()
    assert "median CPU-s" in table[0]  # columns come from the first (target) row
    assert table[-1].startswith("machine reference") and "0.52 + 2.05" in table[-1]


def test_summary_without_a_reference_has_no_reference_row() -> None:
    assert summary({}) == []
