"""Reading the user's engagement logs and writing outputs atomically.

Readers turn unreadable input (missing, empty, not the format its name claims) into a
``DataContractError`` that names the file, instead of a library traceback. Writers go through
``atomic_path`` so a failed stage never leaves a half-written output behind. No contract
checks live here; those are in ``features.validate``.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.errors import DataContractError

PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
_GLOB_CHARS = set("*?[")


def file_format(path: str | Path) -> str:
    """``"parquet"`` or ``"csv"`` from the file name's extension; anything else is a contract error."""
    name = Path(path).name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise DataContractError(
        str(path),
        "unsupported file type",
        expected=f"a file ending in one of {', '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)}",
    )


def _not_parquet(path: str | Path, exc: BaseException) -> DataContractError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataContractError(
        str(path),
        f"not a valid Parquet file ({reason})",
        expected="a Parquet file, or rename it to .csv if it is CSV text",
    )


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DataContractError(str(path), "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise DataContractError(str(path), "file is empty (0 bytes)", expected="a header and at least one row")


def read_leads_file(path: str | Path) -> pd.DataFrame:
    """The leads table from a CSV or Parquet file (chosen by extension), as read, without checks.

    A Parquet *folder* (parts of one table) is read too. Raises ``DataContractError`` for a
    missing, empty (0 bytes or header only) or unreadable file.
    """
    path = Path(path)
    _require_file(path)
    if path.is_dir():
        fmt = "parquet"
    else:
        fmt = file_format(path)
    if fmt == "parquet":
        try:
            df = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise _not_parquet(path, exc) from None
    else:
        try:
            df = pd.read_csv(path, low_memory=False)
        except pd.errors.EmptyDataError:
            raise DataContractError(str(path), "file is empty", expected="a header and at least one row") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            reason = str(exc).strip().splitlines()[0]
            raise DataContractError(str(path), f"cannot be read as CSV ({reason})",
                                    expected="comma-separated UTF-8 text with a header row") from None
    if len(df) == 0:
        raise DataContractError(str(path), "the leads table has no rows", expected="at least one lead")
    return df


def event_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The event files behind ``paths``: files, folders of parts (searched recursively) or globs.

    Hidden and underscore-prefixed names (``.tmp``, ``_SUCCESS``) are skipped. The list is sorted
    within each entry, so batches always come in the same order.
    """
    entries = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: list[Path] = []
    for entry in entries:
        text = str(entry)
        if _GLOB_CHARS & set(text):
            matches = sorted(Path(p) for p in globlib.glob(text, recursive=True))
            matches = [p for p in matches if p.is_file() and not _hidden(p.name)]
            if not matches:
                raise DataContractError(text, "no event files match this pattern")
            found.extend(matches)
        elif Path(text).is_dir():
            parts = sorted(
                p for p in Path(text).rglob("*")
                if p.is_file() and p.name.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES)
                and not any(_hidden(part) for part in p.relative_to(text).parts)
            )
            if not parts:
                raise DataContractError(text, "folder holds no event files",
                                        expected="Parquet (.parquet, .pq) or CSV (.csv) files")
            found.extend(parts)
        else:
            _require_file(Path(text))
            found.append(Path(text))
    return found


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def iter_event_batches(
    paths: str | Path | Iterable[str | Path], batch_rows: int
) -> Iterator[tuple[str, int, pa.RecordBatch]]:
    """Stream events as ``(file name, 1-based row number of the batch's first row, batch)``.

    Never loads a whole file: Parquet is read ``batch_rows`` rows at a time; CSV is read as
    text (every column a string, so a late odd value cannot break type inference mid-file)
    and re-cut to ``batch_rows``. Files with no rows yield nothing; the caller decides whether
    an empty input as a whole is an error.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    for path in event_files(paths):
        reader = _parquet_batches(path, batch_rows) if file_format(path) == "parquet" else _csv_batches(path)
        first_row = 1
        for batch in _rebatch(reader, batch_rows):
            yield str(path), first_row, batch
            first_row += batch.num_rows


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        parquet = pq.ParquetFile(path)
        yield from parquet.iter_batches(batch_size=batch_rows)
    except (pa.ArrowException, OSError) as exc:
        raise _not_parquet(path, exc) from None


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        names = pacsv.open_csv(path).schema.names
        convert = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=True
        )
        yield from pacsv.open_csv(path, convert_options=convert)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Empty CSV file" in reason:
            raise DataContractError(str(path), "file is empty", expected="a header and event rows") from None
        raise DataContractError(str(path), f"cannot be read as CSV ({reason})",
                                expected="comma-separated UTF-8 text with a header row") from None


def _rebatch(batches: Iterable[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of batches into batches of exactly ``batch_rows`` rows (the last may be shorter).

    Hand-written because pyarrow's readers size CSV blocks in bytes, not rows.
    """
    pending: list[pa.RecordBatch] = []
    n_pending = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        n_pending += batch.num_rows
        while n_pending >= batch_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, batch_rows).combine_chunks().to_batches()[0]
            rest = table.slice(batch_rows)
            pending = rest.combine_chunks().to_batches() if rest.num_rows else []
            n_pending = rest.num_rows
    if n_pending:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


# --- atomic writes ---------------------------------------------------------------------------


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final``; on success it replaces ``final``.

    Works for a file or a directory written at the temporary path. The previous output is
    replaced only after the new one is complete; on any exception the temporary path is
    deleted and the previous output is left untouched. The parent folder is created if needed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        yield tmp
        if not tmp.exists() and not tmp.is_symlink():
            raise FileNotFoundError(f"nothing was written for {final}")
        _replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def _replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``. A file over a file is one atomic rename; a directory (or a change
    of kind) cannot be renamed over an existing one, so the old output is first moved aside and
    deleted only once the new one is in place (restored if that move fails)."""
    if tmp.is_file() and not final.is_dir():
        os.replace(tmp, final)
        return
    if not final.exists() and not final.is_symlink():
        os.replace(tmp, final)
        return
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:12]}"
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def write_parquet_atomic(data: pd.DataFrame | pa.Table, path: str | Path, *, compression: str = "zstd") -> None:
    """Write a frame or Arrow table to one Parquet file, atomically (no index column)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression)


def write_json_atomic(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON, atomically; timestamps and other non-JSON values as strings."""
    write_text_atomic(json.dumps(obj, indent=2, default=_json_default) + "\n", path)


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write UTF-8 text, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
