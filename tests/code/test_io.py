"""Readers (clear errors for missing, empty, mislabelled files; streamed event batches) and
atomic writes (all or nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.errors import DataContractError
from features.io import (
    _rebatch,
    atomic_path,
    event_files,
    iter_event_batches,
    read_leads_file,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- leads reader ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["leads.parquet", "leads.pq", "leads.csv"])
def test_read_leads_file_by_extension(tmp_path: Path, name: str):
    df = pd.DataFrame({"lead_id": [1, 2], "created_at": ["2024-01-01", "2024-01-02"], "industry": ["a", "b"]})
    path = tmp_path / name
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    out = read_leads_file(path)
    assert list(out.columns) == ["lead_id", "created_at", "industry"]
    assert out["lead_id"].tolist() == [1, 2] and out["industry"].tolist() == ["a", "b"]


def test_read_leads_file_missing(tmp_path: Path):
    with pytest.raises(DataContractError, match=r"nope\.csv: file not found"):
        read_leads_file(tmp_path / "nope.csv")


@pytest.mark.parametrize("content", ["", "lead_id,created_at,mql_at,sql_at\n"])
def test_read_leads_file_empty_or_header_only(tmp_path: Path, content: str):
    path = tmp_path / "leads.csv"
    path.write_text(content)
    with pytest.raises(DataContractError) as err:
        read_leads_file(path)
    assert str(path) in str(err.value) and ("empty" in str(err.value) or "no rows" in str(err.value))


def test_read_leads_file_not_parquet(tmp_path: Path):
    path = tmp_path / "leads.parquet"
    path.write_bytes(b"\x00\x01 definitely not parquet \x02")
    with pytest.raises(DataContractError) as err:
        read_leads_file(path)
    assert err.value.file == str(path) and "not a valid Parquet file" in err.value.problem
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no pyarrow traceback chained


def test_read_leads_file_unknown_extension(tmp_path: Path):
    path = tmp_path / "leads.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataContractError, match=r"(?s)unsupported file type.*\.parquet.*\.csv"):
        read_leads_file(path)


# --- event batches ---------------------------------------------------------------------------------


def _events(n: int, start: int = 0) -> pa.Table:
    return pa.table({
        "lead_id": pa.array(range(start, start + n), pa.int64()),
        "ts": pa.array([1_700_000_000_000_000 + i for i in range(n)], pa.timestamp("us", "UTC")),
        "event_type": ["page_view"] * n,
    })


def test_folder_of_parts_streams_in_order_with_file_row_numbers(tmp_path: Path):
    folder = tmp_path / "events"
    folder.mkdir()
    pq.write_table(_events(7, start=0), folder / "part-00000.parquet")
    pq.write_table(_events(3, start=100), folder / "part-00001.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00002.parquet.tmp").write_text("half written")
    got = list(iter_event_batches(str(folder), batch_rows=4))
    assert [(Path(f).name, first, b.num_rows) for f, first, b in got] == [
        ("part-00000.parquet", 1, 4), ("part-00000.parquet", 5, 3), ("part-00001.parquet", 1, 3)
    ]
    ids = [i for _, _, b in got for i in b.column("lead_id").to_pylist()]
    assert ids == [*range(7), *range(100, 103)]


def test_glob_and_list_of_paths(tmp_path: Path):
    for i in range(3):
        pq.write_table(_events(2, start=10 * i), tmp_path / f"e{i}.parquet")
    by_glob = event_files(str(tmp_path / "e*.parquet"))
    by_list = event_files([tmp_path / "e0.parquet", str(tmp_path / "e2.parquet")])
    assert [p.name for p in by_glob] == ["e0.parquet", "e1.parquet", "e2.parquet"]
    assert [p.name for p in by_list] == ["e0.parquet", "e2.parquet"]
    with pytest.raises(DataContractError, match="no event files match"):
        event_files(str(tmp_path / "x*.parquet"))


def test_csv_events_are_read_as_text_and_rebatched(tmp_path: Path):
    path = tmp_path / "events.csv"
    rows = [f"{i},2024-01-0{1 + i % 9}T10:00:00Z,page_view" for i in range(10)] + ["oops,not-a-time,chat"]
    path.write_text("lead_id,ts,event_type\n" + "\n".join(rows) + "\n")
    got = list(iter_event_batches(path, batch_rows=4))
    assert [(first, b.num_rows) for _, first, b in got] == [(1, 4), (5, 4), (9, 3)]
    last = got[-1][2]
    assert last.schema.field("lead_id").type == pa.string()  # a late odd value cannot break inference
    assert last.column("lead_id").to_pylist()[-1] == "oops"


def test_empty_csv_events_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "events.csv"
    path.write_text("")
    with pytest.raises(DataContractError, match=r"events\.csv: file is empty"):
        list(iter_event_batches(path, 10))


def test_events_folder_without_event_files(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataContractError, match="folder holds no event files"):
        list(iter_event_batches(tmp_path, 10))


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 9), max_size=8), batch_rows=st.integers(1, 7))
def test_rebatch_keeps_every_row_in_order_in_full_batches(sizes: list[int], batch_rows: int):
    batches, start = [], 0
    for n in sizes:
        batches.append(pa.record_batch({"x": pa.array(range(start, start + n), pa.int64())}))
        start += n
    out = list(_rebatch(batches, batch_rows))
    assert [v for b in out for v in b.column("x").to_pylist()] == list(range(start))
    assert all(b.num_rows == batch_rows for b in out[:-1])
    assert all(0 < b.num_rows <= batch_rows for b in out)


# --- atomic writes --------------------------------------------------------------------------------


def test_atomic_file_write_replaces_on_success(tmp_path: Path):
    target = tmp_path / "out" / "report.json"
    write_json_atomic({"v": 1}, target)
    write_json_atomic({"v": 2, "when": pd.Timestamp("2024-01-01", tz="UTC")}, target)
    assert json.loads(target.read_text()) == {"v": 2, "when": "2024-01-01T00:00:00+00:00"}
    assert _listing(target.parent) == ["report.json"]


def test_atomic_file_write_failure_keeps_previous_file_and_no_litter(tmp_path: Path):
    target = tmp_path / "notes.md"
    write_text_atomic("old", target)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half written")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["notes.md"]


def test_atomic_directory_replaces_only_when_complete(tmp_path: Path):
    target = tmp_path / "events"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "part-0.parquet").write_text("v1")
        (tmp / "part-1.parquet").write_text("v1")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "part-0.parquet").write_text("v2")
        assert _listing(target) == ["part-0.parquet", "part-1.parquet"]  # old output still whole meanwhile
    assert _listing(target) == ["part-0.parquet"] and (target / "part-0.parquet").read_text() == "v2"
    assert _listing(tmp_path) == ["events"]


def test_atomic_directory_failure_keeps_previous_directory(tmp_path: Path):
    target = tmp_path / "events"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "part-0.parquet").write_text("v1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "part-0.parquet").write_text("v2")
            raise KeyboardInterrupt
    assert (target / "part-0.parquet").read_text() == "v1"
    assert _listing(tmp_path) == ["events"]


def test_atomic_path_without_output_is_an_error_and_keeps_previous(tmp_path: Path):
    target = tmp_path / "a.txt"
    write_text_atomic("old", target)
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            pass
    assert target.read_text() == "old"


def test_write_parquet_atomic_from_frame_and_table(tmp_path: Path):
    df = pd.DataFrame({"lead_id": [1, 2], "x": ["a", None]}, index=[5, 6])
    write_parquet_atomic(df, tmp_path / "a.parquet")
    write_parquet_atomic(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "b.parquet")
    for name in ("a.parquet", "b.parquet"):
        back = pq.read_table(tmp_path / name)
        assert back.column_names == ["lead_id", "x"] and back.column("x").to_pylist() == ["a", None]
