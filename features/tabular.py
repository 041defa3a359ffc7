"""The user's own files: the ``data:`` params, readers, column mapping, typing and tabular mode.

Two kinds of input come through here. With an events table, the user's leads and events are
renamed to the contract (``apply_mapping``) and then go through ``features.validate`` like the
simulated data. Without one (a CRM export with a 0/1 or yes/no outcome column) the table is
*tabular*: its attribute columns are typed (``infer_types``), audited for leakage
(``features.audit``) and become one snapshot per lead (``tabular_snapshots``).

Only ``read_table`` touches the disk; every other function is data in, data out and never
modifies its input.
"""

from __future__ import annotations

import bz2
import csv
import glob as globlib
import gzip
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.audit import AuditParams, Suspect, leakage_audit
from features.contract import (
    CAMPAIGN,
    CHANNEL,
    CONTENT_TYPE,
    CREATED_AT,
    CUTOFF,
    EVENT_TYPE,
    FEATURE,
    LABEL,
    LEAD_ID,
    MQL_AT,
    PAGE_TYPE,
    SQL_AT,
    TIME_UNIT,
    TIMEZONE,
    TS,
)
from features.errors import DataContractError
from features.io import file_format
from features.validate import TIMESTAMP_EXPECTED, parse_timestamps

OUTCOME = "outcome"
"""Contract name the user's outcome column is renamed to (tabular mode)."""

ColumnType = Literal["numeric", "boolean", "categorical", "date", "id", "text", "constant"]
"""``numeric``/``boolean``/``categorical``/``date`` become features; ``id``, ``text`` (free text,
nearly one value per row) and ``constant`` columns do not."""

FEATURE_TYPES: frozenset[str] = frozenset({"numeric", "boolean", "categorical", "date"})

DEFAULT_MISSING_TOKENS: tuple[str, ...] = (
    "", "unknown", "Unknown", "UNKNOWN", "Select", "N/A", "n/a", "NA", "null", "NULL", "None", "-",
)
TRUE_TOKENS: frozenset[str] = frozenset({"yes", "y", "true", "t", "1", "1.0"})
FALSE_TOKENS: frozenset[str] = frozenset({"no", "n", "false", "f", "0", "0.0"})
SEPARATORS: tuple[str, ...] = (",", ";", "\t", "|")
SYNTHETIC_ORIGIN = pd.Timestamp("2000-01-01", tz=TIMEZONE)
"""Origin of synthetic cutoffs (row order or random order): row ``i`` gets ``origin + i days``."""
MAX_ERROR_ROWS = 5


# --- params ----------------------------------------------------------------------------------


class LeadMapping(BaseModel):
    """The user's column names for the leads table (``None`` = not in the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_id: str | None = None
    """Unique lead id; tabular mode numbers the rows 1..n when absent."""
    created_at: str | None = None
    mql_at: str | None = None
    sql_at: str | None = None
    """Time the lead became SQL (empty = not converted); the label when ``outcome`` is not given."""
    outcome: str | None = None
    """A 0/1, yes/no or true/false outcome column instead of ``sql_at``."""
    positive_values: list[str] = Field(default_factory=list)
    """Outcome values that mean "converted"; needed only for other vocabularies."""
    date: str | None = None
    """Tabular mode: the column that dates each lead (the snapshot time and the split axis)."""
    row_order_is_time: bool = False
    """Tabular mode without a date column: rows are in time order (oldest first)."""

    @model_validator(mode="after")
    def _one_time_axis(self) -> LeadMapping:
        if self.date is not None and self.row_order_is_time:
            raise ValueError("set either mapping.date or mapping.row_order_is_time, not both")
        if self.positive_values and self.outcome is None:
            raise ValueError("mapping.positive_values needs mapping.outcome")
        return self

    def renames(self) -> dict[str, str]:
        """User name -> contract name for the mapped lifecycle and outcome columns."""
        pairs = {LEAD_ID: self.lead_id, CREATED_AT: self.created_at, MQL_AT: self.mql_at,
                 SQL_AT: self.sql_at, OUTCOME: self.outcome}
        return {user: contract for contract, user in pairs.items() if user is not None}


class EventMapping(BaseModel):
    """The user's column names for the events table (``None`` = the contract name, or absent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_id: str | None = None
    ts: str | None = None
    event_type: str | None = None
    page_type: str | None = None
    content_type: str | None = None
    channel: str | None = None
    campaign: str | None = None
    feature: str | None = None

    def renames(self) -> dict[str, str]:
        pairs = {LEAD_ID: self.lead_id, TS: self.ts, EVENT_TYPE: self.event_type, PAGE_TYPE: self.page_type,
                 CONTENT_TYPE: self.content_type, CHANNEL: self.channel, CAMPAIGN: self.campaign,
                 FEATURE: self.feature}
        return {user: contract for contract, user in pairs.items() if user is not None}


class DataParams(BaseModel):
    """The ``data:`` section of ``params.yaml``: where the data comes from and how to read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["simulated", "files"] = "simulated"
    leads: str | None = None
    """Leads (or CRM export) file: CSV or Parquet, a path or a glob."""
    events: str | None = None
    """Events file(s); absent = tabular mode."""
    mapping: LeadMapping = Field(default_factory=LeadMapping)
    event_mapping: EventMapping = Field(default_factory=EventMapping)
    timezone: str = "UTC"
    """Time zone of timestamps written without one."""
    missing_tokens: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING_TOKENS))
    """Text values that mean "missing" (compared after trimming spaces)."""
    exclude: list[str] = Field(default_factory=list)
    """Columns never used as features (user names)."""
    audit: AuditParams = Field(default_factory=AuditParams)

    @model_validator(mode="after")
    def _files_need_leads(self) -> DataParams:
        if self.source == "files" and not self.leads:
            raise ValueError("data.source is 'files' but data.leads (a path or glob) is not set")
        try:
            pd.Timestamp("2024-01-01").tz_localize(self.timezone)
        except Exception:
            raise ValueError(f"data.timezone {self.timezone!r} is not a known time zone (e.g. UTC, Europe/Lisbon)")
        return self

    @property
    def tabular(self) -> bool:
        """True when there is no events table: the leads file is a CRM export with an outcome."""
        return self.events is None

    @property
    def files_tabular(self) -> bool:
        """True for the user's own CRM export without events (one snapshot per row)."""
        return self.source == "files" and self.tabular

    @property
    def split_method(self) -> Literal["out_of_time", "stratified_random"]:
        """How the train stage splits: out of time when the rows are dated (a date column, the
        MQL or creation time, or rows declared in time order), else stratified random."""
        if not self.files_tabular:
            return "out_of_time"
        m = self.mapping
        dated = m.date is not None or m.mql_at is not None or m.created_at is not None or m.row_order_is_time
        return "out_of_time" if dated else "stratified_random"


# --- reading ---------------------------------------------------------------------------------


def resolve_paths(path_or_glob: str | Path) -> list[Path]:
    """The files behind a path or glob, sorted; a glob matching nothing is an error naming it."""
    text = str(path_or_glob)
    if set("*?[") & set(text):
        matches = sorted(Path(p) for p in globlib.glob(text, recursive=True) if Path(p).is_file())
        if not matches:
            raise DataContractError(text, "no files match this pattern", expected="at least one CSV or Parquet file")
        return matches
    path = Path(text)
    if not path.exists():
        raise DataContractError(text, "file not found")
    return [path]


def read_table(path_or_glob: str | Path) -> pd.DataFrame:
    """One table from a CSV or Parquet file, or from every file a glob matches (same columns).

    CSV is read as text (every column a string, nothing turned into NaN): typing and missing
    tokens are decided later, explicitly. The separator (``, ; tab |``) and the encoding
    (UTF-8, UTF-8 with BOM, else Windows-1252) are detected. Every error names the file.
    """
    frames: list[pd.DataFrame] = []
    first: Path | None = None
    for path in resolve_paths(path_or_glob):
        frame = _read_one(path)
        if frames:
            _same_columns(first, frames[0], path, frame)
        else:
            first = path
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _same_columns(first: Path | None, reference: pd.DataFrame, path: Path, frame: pd.DataFrame) -> None:
    if list(frame.columns) == list(reference.columns):
        return
    missing = [c for c in reference.columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in reference.columns]
    detail = "; ".join(p for p in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "") if p)
    raise DataContractError(
        str(path), f"columns differ from {first} ({detail or 'different order'})",
        expected="every file of the glob with the same columns",
    )


def _read_one(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise DataContractError(str(path), "file is empty (0 bytes)", expected="a header and at least one row")
    if file_format(path) == "parquet":
        try:
            frame = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DataContractError(str(path), f"not a valid Parquet file ({str(exc).splitlines()[0]})",
                                    expected="a Parquet file, or rename it to .csv if it is CSV text") from None
    else:
        frame = parse_csv_text(decode_bytes(_raw_bytes(path), str(path)), str(path))
    if len(frame) == 0:
        raise DataContractError(str(path), "the file has a header but no rows", expected="at least one row")
    return frame


def _raw_bytes(path: Path) -> bytes:
    name = path.name.lower()
    opener = gzip.open if name.endswith(".gz") else bz2.open if name.endswith(".bz2") else open
    if name.endswith(".zst"):
        raise DataContractError(str(path), "zstd-compressed CSV is not supported", expected="plain, .gz or .bz2 CSV")
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise DataContractError(str(path), f"cannot be read ({exc})") from None


def decode_bytes(data: bytes, source: str) -> str:
    """Text of a CSV file: UTF-8 (a BOM is dropped), else Windows-1252; UTF-16 and binary are errors."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataContractError(source, "the file is UTF-16 text", expected="UTF-8 (save as 'CSV UTF-8')")
    if b"\x00" in data[:65536]:
        raise DataContractError(source, "the file holds binary data (NUL bytes), not CSV text",
                                expected="CSV text in UTF-8 or Windows-1252, or a .parquet file")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    bad = _first_undecodable(data)
    raise DataContractError(source, f"the text encoding is neither UTF-8 nor Windows-1252 (byte {bad})",
                            expected="CSV text saved as UTF-8")


def _first_undecodable(data: bytes) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"0x{data[exc.start]:02x} at offset {exc.start}"
    return "?"


def sniff_separator(text: str, source: str, sample_lines: int = 50) -> str:
    """The separator among ``, ; tab |`` that splits the first lines into the same number (> 1) of fields."""
    lines = text.splitlines()[:sample_lines]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise DataContractError(source, "the file is empty (no header)", expected="a header and at least one row")
    best: tuple[int, str] | None = None
    for sep in SEPARATORS:
        counts = [len(row) for row in csv.reader(lines, delimiter=sep)]
        if counts[0] > 1 and all(c == counts[0] for c in counts) and (best is None or counts[0] > best[0]):
            best = (counts[0], sep)
    if best is not None:
        return best[1]
    header_counts = {sep: len(next(csv.reader(lines[:1], delimiter=sep))) for sep in SEPARATORS}
    sep, n = max(header_counts.items(), key=lambda kv: kv[1])
    if n > 1:
        return sep  # ragged rows: let the parser report the first bad line
    return ","  # a single column; the mapping step will list what was found


def parse_csv_text(text: str, source: str) -> pd.DataFrame:
    """A CSV document (already decoded) as an all-text frame; ragged rows are an error with the line."""
    sep = sniff_separator(text, source)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                            skipinitialspace=False, engine="c")
    except pd.errors.EmptyDataError:
        raise DataContractError(source, "the file is empty", expected="a header and at least one row") from None
    except pd.errors.ParserError as exc:
        raise DataContractError(source, f"cannot be read as CSV with separator {sep!r} ({str(exc).strip()})",
                                expected="the same number of fields on every line") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes or any(c.startswith("Unnamed: ") for c in frame.columns):
        raise DataContractError(source, f"the header has duplicate or empty column names {dupes}",
                                expected="one distinct name per column")
    return frame


# --- mapping and missing values --------------------------------------------------------------


def apply_mapping(frame: pd.DataFrame, mapping: LeadMapping | EventMapping, source: str) -> pd.DataFrame:
    """``frame`` with the user's mapped columns renamed to the contract names (a new frame).

    A mapped column that is not in the file, or a rename onto a name the file already uses for
    another column, is a ``DataContractError`` that lists the columns found.
    """
    renames = mapping.renames()
    found = ", ".join(map(str, frame.columns))
    missing = [user for user in renames if user not in frame.columns]
    if isinstance(mapping, LeadMapping) and mapping.date and mapping.date not in frame.columns:
        missing.append(mapping.date)
    if missing:
        errors = [DataContractError(source, f"mapped column '{m}' is not in the file", column=m,
                                    expected=f"one of the columns found: {found}") for m in missing]
        raise DataContractError.combine(errors)
    clashes = [c for user, c in renames.items() if c != user and c in frame.columns]
    if clashes:
        raise DataContractError(source, f"the file already has column(s) {clashes} that are not the mapped ones",
                                expected="map those columns, or rename them in the file")
    return frame.rename(columns=renames)


def normalise_missing(frame: pd.DataFrame, tokens: Sequence[str]) -> pd.DataFrame:
    """Text cells equal (after trimming spaces) to a missing token become missing; text is trimmed."""
    token_set = set(tokens)
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_string_dtype(s.dtype) or pd.api.types.is_object_dtype(s.dtype):
            text = s.astype("str").str.strip()
            out[col] = text.mask(text.isin(token_set) | s.isna())
        else:
            out[col] = s
    return pd.DataFrame(out, index=frame.index)


# --- types -----------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DATE_LIKE = re.compile(r"^\s*(?:\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{4}-\d{2})(?:[ T]\S.*)?$")
_ID_NAME = re.compile(r"(?i:(^|[_\W])(id|key|uuid|guid)$)|[a-z](ID|Id)$")
DATE_SHARE = 0.8
"""A text column is a date column when this share of its filled values look like dates."""
TEXT_UNIQUE_SHARE = 0.5
MAX_LEVELS = 200


def infer_types(
    frame: pd.DataFrame, exclude_cols: Sequence[str] = (), *, timezone: str = "UTC", source: str = "data"
) -> tuple[pd.DataFrame, dict[str, ColumnType]]:
    """Each column typed (numeric, boolean, categorical, date, or id/text/constant = not a feature).

    Returns a converted copy (numbers as float64, booleans as ``boolean``, categoricals as
    ``category``, dates as UTC timestamps) and the type of each column. ``exclude_cols`` are
    left as they are and untyped. A column that is mostly dates but has values that do not parse
    is a ``DataContractError`` with the row numbers and a sample.
    """
    out: dict[str, pd.Series] = {}
    types: dict[str, ColumnType] = {}
    skip = set(exclude_cols)
    for col in frame.columns:
        if col in skip:
            out[col] = frame[col]
            continue
        out[col], types[col] = _type_column(frame[col], str(col), timezone, source)
    return pd.DataFrame(out, index=frame.index), types


def _type_column(s: pd.Series, name: str, timezone: str, source: str) -> tuple[pd.Series, ColumnType]:
    filled = s.dropna()
    if filled.nunique() == 0 or (filled.nunique() == 1 and len(filled) == len(s)):
        return s, "constant"
    if filled.nunique() == 1:  # one value or blank, e.g. a ticked box: filled-or-not is the information
        return s.astype("str").mask(s.isna()).astype("category"), "categorical"
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        return to_utc(s, name, timezone, source), "date"
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("boolean"), "boolean"
    if pd.api.types.is_numeric_dtype(s.dtype):
        numeric = s.astype("float64")
        return _numeric_kind(numeric, name)
    text = filled.astype("str")
    lowered = set(text.str.lower().unique())
    if len(lowered) == 2 and (lowered <= TRUE_TOKENS | FALSE_TOKENS) and lowered & TRUE_TOKENS and lowered & FALSE_TOKENS:
        flags = s.astype("str").str.lower()
        return flags.isin(TRUE_TOKENS).astype("boolean").mask(s.isna()), "boolean"
    if text.str.match(_NUMBER).all():
        return _numeric_kind(pd.to_numeric(s, errors="coerce").astype("float64"), name)
    if text.str.match(_DECIMAL_COMMA).all():
        return _numeric_kind(pd.to_numeric(s.str.replace(",", ".", regex=False), errors="coerce"), name)
    if text.str.contains(_DATE_LIKE).mean() >= DATE_SHARE:
        return to_utc(s, name, timezone, source), "date"
    n_unique = filled.nunique()
    if n_unique == len(filled) and _ID_NAME.search(name):
        return s.astype("str").mask(s.isna()), "id"
    if n_unique > MAX_LEVELS and n_unique >= TEXT_UNIQUE_SHARE * len(filled):
        return s.astype("str").mask(s.isna()), "text"
    return s.astype("category"), "categorical"


def _numeric_kind(values: pd.Series, name: str) -> tuple[pd.Series, ColumnType]:
    """Two values 0/1 are boolean; a whole-number column with a distinct value per row named
    like an id (``id``, ``*_id``, ``key``) is an id, not a feature."""
    filled = values.dropna()
    uniques = set(filled.unique().tolist())
    if uniques <= {0.0, 1.0}:
        return (values == 1).astype("boolean").mask(values.isna()), "boolean"
    whole = bool((filled == np.floor(filled)).all())
    if whole and filled.nunique() == len(filled) and _ID_NAME.search(name):
        return values, "id"
    return values, "numeric"


def to_utc(raw: pd.Series, column: str, timezone: str, source: str) -> pd.Series:
    """Timestamps as ``datetime64[us, UTC]``; values without a zone are read in ``timezone``.

    Uses ``features.validate.parse_timestamps`` (ISO first, then any common form). Values that
    do not parse are a ``DataContractError`` with 1-based row numbers and the values written.
    """
    parsed = parse_timestamps(raw)
    if parsed.unparseable.any():
        positions = np.flatnonzero(parsed.unparseable.to_numpy())
        rows = [f"row {p + 1}: {column}={raw.iloc[p]!r}" for p in positions[:MAX_ERROR_ROWS]]
        raise DataContractError(source, f"{column} has values that are not dates", column=column, rows=rows,
                                n_bad=len(positions), expected=TIMESTAMP_EXPECTED)
    values = parsed.values
    if parsed.naive and timezone != TIMEZONE:
        naive = _naive_rows(raw)
        local = (values[naive].dt.tz_convert(None).dt.tz_localize(timezone, ambiguous="NaT",
                                                                  nonexistent="shift_forward")
                 .dt.tz_convert(TIMEZONE).dt.as_unit(TIME_UNIT))
        values = values.copy()
        values[naive] = local
    return values


def _naive_rows(raw: pd.Series) -> pd.Series:
    """True where a timestamp was written without a time zone (or is a naive datetime)."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return pd.Series(False, index=raw.index)
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.notna()
    text = raw.astype("str").str.strip()
    zoned = text.str.endswith(("Z", "z")) | (
        text.str.contains(":", regex=False) & text.str.slice(-6).str.contains(r"[+-]\d\d(?::?\d\d)?$", regex=True)
    ) | text.str.contains(r"\s(?:UTC|GMT|utc|gmt)$", regex=True)
    return raw.notna() & ~zoned.fillna(False).astype(bool)


# --- outcome ---------------------------------------------------------------------------------


def outcome_labels(series: pd.Series, positive_values: Sequence[str] = (), source: str = "data") -> np.ndarray:
    """The outcome as 0/1 ``int8``.

    Without ``positive_values``, the column must hold two values from a known pair
    (yes/no, true/false, 1/0, y/n, t/f, any case). With them, a value is positive when it is
    one of them (any number of other values is negative). Missing outcomes, more than two
    values, or an unknown pair are a ``DataContractError``.
    """
    column = series.name if series.name is not None else OUTCOME
    text = series.astype("str").str.strip().where(series.notna())
    missing = text.isna().to_numpy()
    if missing.any():
        pos = np.flatnonzero(missing)
        raise DataContractError(source, "the outcome is missing", column=str(column), n_bad=len(pos),
                                rows=[f"row {p + 1}" for p in pos[:MAX_ERROR_ROWS]],
                                expected="an outcome on every row (drop open leads, or map sql_at instead)")
    values = pd.Index(text.str.lower().unique())
    if positive_values:
        wanted = {str(v).strip().lower() for v in positive_values}
        return text.str.lower().isin(wanted).to_numpy().astype(np.int8)
    shown = ", ".join(repr(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    if len(values) > 2:
        raise DataContractError(source, f"the outcome has {len(values)} distinct values: {shown}", column=str(column),
                                expected="two values (yes/no, 1/0, true/false), or set mapping.positive_values")
    lowered = set(values)
    if not lowered <= TRUE_TOKENS | FALSE_TOKENS or len(lowered & TRUE_TOKENS) > 1 or len(lowered & FALSE_TOKENS) > 1:
        raise DataContractError(source, f"cannot tell which outcome value means converted: {shown}",
                                column=str(column), expected="yes/no, 1/0 or true/false, or set mapping.positive_values")
    return text.str.lower().isin(TRUE_TOKENS).to_numpy().astype(np.int8)


# --- tabular mode ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedTable:
    """A CRM export mapped, cleaned and typed: what the audit, the profile and the snapshots share."""

    frame: pd.DataFrame
    """Typed columns (user names for attributes, contract names for mapped ones), one row per lead."""
    label: np.ndarray
    types: dict[str, ColumnType]
    """Type of every attribute column (mapped lifecycle/outcome columns are not listed)."""
    features: list[str]
    """Attribute columns usable as features (before the leakage audit)."""
    time_column: str | None
    """The column that dates each lead (the cutoff), or None."""
    outcome_time: str | None
    """``sql_at`` when the label comes from it, else None."""
    time_axis: Literal["date", "row_order", "none"]
    notes: list[str] = field(default_factory=list)


def prepare_table(frame: pd.DataFrame, params: DataParams, source: str = "leads") -> PreparedTable:
    """Map, clean missing tokens, type columns and compute the label of a CRM export (pure)."""
    m = params.mapping
    if m.outcome is None and m.sql_at is None:
        raise DataContractError(source, "no outcome: tabular mode needs mapping.outcome or mapping.sql_at",
                                expected=f"one of the columns found: {', '.join(map(str, frame.columns))}")
    for col in params.exclude:
        if col not in frame.columns:
            raise DataContractError(source, f"excluded column '{col}' is not in the file", column=col,
                                    expected=f"one of the columns found: {', '.join(map(str, frame.columns))}")
    mapped = normalise_missing(apply_mapping(frame, m, source), params.missing_tokens)
    notes: list[str] = []
    if LEAD_ID in mapped.columns:
        ids = mapped[LEAD_ID]
        _check_ids(ids, source)
    else:
        mapped = mapped.assign(**{LEAD_ID: np.arange(1, len(mapped) + 1)})
        notes.append("no lead id column: leads are numbered by row (1..n)")
    lifecycle = [c for c in (CREATED_AT, MQL_AT, SQL_AT) if c in mapped.columns]
    converted = {c: to_utc(mapped[c], c, params.timezone, source) for c in lifecycle}
    if m.outcome is not None:
        label = outcome_labels(mapped[OUTCOME].rename(m.outcome), m.positive_values, source)
        outcome_time = SQL_AT if SQL_AT in converted else None
    else:
        label = converted[SQL_AT].notna().to_numpy().astype(np.int8)
        outcome_time = SQL_AT
    if label.min() == label.max():
        raise DataContractError(source, f"every lead has the same outcome ({int(label[0])})",
                                expected="some converted and some not converted leads")
    reserved = {LEAD_ID, OUTCOME, *lifecycle}
    attributes = [c for c in mapped.columns if c not in reserved and c not in params.exclude]
    typed, types = infer_types(mapped[attributes], timezone=params.timezone, source=source)
    out = pd.concat([mapped[[LEAD_ID]], typed, pd.DataFrame(converted, index=mapped.index)], axis=1)
    time_column, axis = _time_axis(m, converted, types, params.timezone)
    if m.date is not None:
        types = {k: v for k, v in types.items() if k != m.date}
    features = [c for c in attributes if types.get(c) in FEATURE_TYPES]
    for col, kind in types.items():
        if kind not in FEATURE_TYPES:
            notes.append(f"'{col}' is not a feature: {_why_not(kind)}")
    return PreparedTable(out, label, types, features, time_column, outcome_time, axis, notes)


def _check_ids(ids: pd.Series, source: str) -> None:
    missing = np.flatnonzero(ids.isna().to_numpy())
    if len(missing):
        raise DataContractError(source, "lead id is missing", column=LEAD_ID, n_bad=len(missing),
                                rows=[f"row {p + 1}" for p in missing[:MAX_ERROR_ROWS]], expected="an id on every row")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        pos = np.flatnonzero(dup)
        values = list(dict.fromkeys(ids.iloc[pos].tolist()))
        raise DataContractError(source, f"duplicate lead ids: {', '.join(map(repr, values[:MAX_ERROR_ROWS]))}",
                                column=LEAD_ID, n_bad=len(pos),
                                rows=[f"row {p + 1}: {LEAD_ID}={ids.iloc[p]!r}" for p in pos[:MAX_ERROR_ROWS]],
                                expected="each lead id exactly once")


def _time_axis(
    m: LeadMapping, converted: dict[str, pd.Series], types: dict[str, ColumnType], timezone: str
) -> tuple[str | None, Literal["date", "row_order", "none"]]:
    if m.date is not None:
        if m.date in converted:  # the date column has a contract name (created_at, mql_at): parsed already
            return m.date, "date"
        if types.get(m.date) != "date":
            raise DataContractError("leads", f"mapping.date '{m.date}' does not hold dates", column=m.date,
                                    expected=TIMESTAMP_EXPECTED)
        return m.date, "date"
    for col in (MQL_AT, CREATED_AT):
        if col in converted:
            return col, "date"
    return None, "row_order" if m.row_order_is_time else "none"


def _why_not(kind: str) -> str:
    return {"id": "an identifier (a distinct value per row)",
            "text": "free text (nearly a distinct value per row)",
            "constant": "one value (or none) in every row"}.get(kind, kind)


def _date_features(frame: pd.DataFrame, columns: Sequence[str], cutoff: pd.Series) -> dict[str, pd.Series]:
    """A date attribute becomes its age at the cutoff in days (negative = after the cutoff)."""
    return {f"{c}_days_before": (cutoff - frame[c]).dt.total_seconds() / 86400.0 for c in columns}


def stratified_order(label: np.ndarray, seed: int) -> np.ndarray:
    """A random position for each row with both classes spread evenly over the order.

    Cutting the order at any fraction keeps the outcome rate of every part equal (up to one row),
    so an out-of-time splitter over these positions performs a stratified random split.
    """
    rng = np.random.default_rng(seed)
    key = np.empty(len(label), dtype=float)
    for cls in (0, 1):
        idx = np.flatnonzero(label == cls)
        ranks = rng.permutation(len(idx))
        key[idx] = (ranks + rng.random(len(idx))) / max(len(idx), 1)
    return np.argsort(np.argsort(key, kind="stable"), kind="stable")


def tabular_snapshots(
    frame: pd.DataFrame, params: DataParams, *, source: str = "leads", seed: int = 42
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One snapshot per lead ``(lead_id, cutoff, label, features…)`` from a CRM export, and a report.

    The cutoff is the date column (split ``out_of_time``); with ``row_order_is_time`` it is
    ``2000-01-01 + row position days`` (split ``out_of_time`` by row order; the dates are
    synthetic, only their order means something); with neither, it is that synthetic time over a
    stratified random order (split ``stratified_random``: an out-of-time splitter over it cuts
    random parts with equal outcome rates). Leakage suspects are dropped unless kept in
    ``params.audit.keep``. The input frame is not modified.
    """
    prep = prepare_table(frame, params, source)
    unknown = [c for c in params.audit.keep if c not in prep.types]
    if unknown:
        raise DataContractError(source, f"audit.keep names column(s) not in the file: {unknown}",
                                expected=f"attribute columns: {', '.join(map(str, prep.types))}")
    cutoff, split, reason = _cutoffs(prep, seed)
    suspects = audit_table(prep, params.audit) if params.audit.enabled else []
    keep = set(params.audit.keep)
    dropped = {s.column for s in suspects if s.column not in keep}
    features = [c for c in prep.features if c not in dropped]
    dates = [c for c in features if prep.types[c] == "date"]
    plain = [c for c in features if c not in set(dates)]
    snap = pd.concat(
        [pd.DataFrame({LEAD_ID: prep.frame[LEAD_ID].to_numpy(), CUTOFF: cutoff.to_numpy(), LABEL: prep.label},
                      index=prep.frame.index),
         prep.frame[plain], pd.DataFrame(_date_features(prep.frame, dates, cutoff), index=prep.frame.index)],
        axis=1,
    ).reset_index(drop=True)
    lines = [f"excluded '{s.column}' ({s.rule}): {s.reason}" for s in suspects if s.column in dropped]
    lines += [f"kept on purpose '{s.column}' ({s.rule}): {s.reason}" for s in suspects if s.column in keep]
    report = {
        "mode": "tabular",
        "rows": int(len(snap)),
        "positives": int(prep.label.sum()),
        "outcome_rate": round(float(prep.label.mean()), 6),
        "label_from": f"outcome column '{params.mapping.outcome}'" if params.mapping.outcome else "sql_at (filled = converted)",
        "split": split,
        "split_reason": reason,
        "cutoff_is_synthetic": prep.time_axis != "date",
        "types": dict(prep.types),
        "features": [*plain, *[f"{c}_days_before" for c in dates]],
        "suspects": [s.to_dict() for s in suspects],
        "leakage_lines": lines,
        "notes": list(prep.notes),
    }
    return snap, report


def audit_table(prep: PreparedTable, params: AuditParams) -> list[Suspect]:
    """The leakage audit over a prepared table's feature columns (plus its time columns)."""
    extra = [c for c in (prep.time_column, prep.outcome_time) if c is not None]
    cols = list(dict.fromkeys([*prep.features, *extra]))
    return leakage_audit(prep.frame[cols], prep.label, time_column=prep.time_column,
                         outcome_time=prep.outcome_time, params=params)


def _cutoffs(prep: PreparedTable, seed: int) -> tuple[pd.Series, str, str]:
    n = len(prep.frame)
    if prep.time_axis == "date":
        cutoff = prep.frame[prep.time_column]
        bad = np.flatnonzero(cutoff.isna().to_numpy())
        if len(bad):
            raise DataContractError("leads", f"{prep.time_column} is missing, so these leads cannot be dated",
                                    column=prep.time_column, n_bad=len(bad),
                                    rows=[f"row {p + 1}" for p in bad[:MAX_ERROR_ROWS]],
                                    expected="a date on every row (it is the snapshot time)")
        return cutoff, "out_of_time", f"the date column '{prep.time_column}' orders the leads in time"
    if prep.time_axis == "row_order":
        position = np.arange(n)
        reason = "mapping.row_order_is_time: rows are in time order (cutoff = 2000-01-01 + row position days)"
        split = "out_of_time"
    else:
        position = stratified_order(prep.label, seed)
        reason = ("no date column and rows not declared in time order: stratified random split "
                  "(cutoff = 2000-01-01 + position in a seeded stratified random order)")
        split = "stratified_random"
    cutoff = pd.Series(SYNTHETIC_ORIGIN + pd.to_timedelta(position, unit="D"), index=prep.frame.index)
    return cutoff.dt.as_unit(TIME_UNIT), split, reason


# --- events mode: the user's leads and events mapped to the contract -----------------------------


def _contract_ids(ids: pd.Series) -> pd.Series:
    """Lead ids as whole numbers when every filled id is written as one, else as text."""
    text = ids.astype("str").str.strip().where(ids.notna())
    if text.notna().all() and text.str.fullmatch(r"[+-]?\d{1,18}").all():
        return text.astype("int64")
    return text


def prepare_leads(frame: pd.DataFrame, params: DataParams, source: str = "leads") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The user's leads table in the contract's names and types, suspects left out, and a report.

    Mapped columns are renamed, missing tokens cleared, lifecycle times converted to UTC (naive
    ones read in ``params.timezone``) and attribute columns typed (``infer_types``; identifiers,
    free text and constant columns are dropped with a note). With the audit on, attributes that
    leak "became SQL" among the MQLs are left out unless kept in ``params.audit.keep``. The
    contract checks themselves (required columns, unique ids, time order) stay in
    ``features.validate``. The input frame is not modified.
    """
    from features.contract import LEAD_TIME_COLUMNS

    for col in params.exclude:
        if col not in frame.columns:
            raise DataContractError(source, f"excluded column '{col}' is not in the file", column=col,
                                    expected=f"one of the columns found: {', '.join(map(str, frame.columns))}")
    mapped = normalise_missing(apply_mapping(frame, params.mapping, source), params.missing_tokens)
    lifecycle = [c for c in LEAD_TIME_COLUMNS if c in mapped.columns]
    converted = {c: to_utc(mapped[c], c, params.timezone, source) for c in lifecycle}
    reserved = {LEAD_ID, OUTCOME, *lifecycle}
    attributes = [c for c in mapped.columns if c not in reserved and c not in params.exclude]
    typed, types = infer_types(mapped[attributes], timezone=params.timezone, source=source)
    notes = [f"'{c}' is not a feature: {_why_not(k)}" for c, k in types.items() if k not in FEATURE_TYPES]
    kept_attrs = [c for c in attributes if types[c] in FEATURE_TYPES]
    unknown = [c for c in params.audit.keep if c not in types]
    if unknown:
        raise DataContractError(source, f"audit.keep names column(s) not in the file: {unknown}",
                                expected=f"attribute columns: {', '.join(map(str, types))}")
    ids = {LEAD_ID: _contract_ids(mapped[LEAD_ID])} if LEAD_ID in mapped.columns else {}
    out = pd.concat([pd.DataFrame({**ids, **converted}, index=mapped.index), typed[kept_attrs]], axis=1)
    suspects: list[Suspect] = []
    if params.audit.enabled and SQL_AT in out.columns and kept_attrs:
        rows = out[MQL_AT].notna().to_numpy() if MQL_AT in out.columns else np.ones(len(out), dtype=bool)
        label = out.loc[rows, SQL_AT].notna().to_numpy().astype(np.int8)
        time_col = MQL_AT if MQL_AT in out.columns else None
        cols = [*kept_attrs, *([time_col] if time_col else []), SQL_AT]
        if 0 < label.sum() < len(label):
            suspects = leakage_audit(out.loc[rows, cols], label, time_column=time_col, outcome_time=SQL_AT,
                                     params=params.audit)
    keep = set(params.audit.keep)
    dropped = [s.column for s in suspects if s.column not in keep]
    lines = [f"excluded '{s.column}' ({s.rule}): {s.reason}" for s in suspects if s.column in dropped]
    lines += [f"kept on purpose '{s.column}' ({s.rule}): {s.reason}" for s in suspects if s.column in keep]
    report = {"types": dict(types), "suspects": [s.to_dict() for s in suspects], "leakage_lines": lines,
              "notes": notes, "features": [c for c in kept_attrs if c not in set(dropped)]}
    return out.drop(columns=dropped), report


def prepare_events(frame: pd.DataFrame, params: DataParams, source: str = "events") -> pd.DataFrame:
    """The user's events in the contract's names: mapped, missing tokens cleared, ``ts`` in UTC."""
    mapped = normalise_missing(apply_mapping(frame, params.event_mapping, source), params.missing_tokens)
    out = mapped.copy()
    if TS in out.columns:
        out[TS] = to_utc(mapped[TS], TS, params.timezone, source)
    if LEAD_ID in out.columns:
        out[LEAD_ID] = _contract_ids(mapped[LEAD_ID])
    return out


def tabular_features(frame: pd.DataFrame, params: DataParams, as_of: pd.Timestamp | None = None,
                     source: str = "leads") -> pd.DataFrame:
    """Every row of a CRM export as a scoring row ``(lead_id, cutoff, features…)``, no audit.

    The same typing and date features as ``tabular_snapshots`` (so a scorer trained on those
    snapshots finds its columns); the cutoff is the row's date when the table is dated, else
    ``as_of``. The outcome column is read only to type the table.
    """
    prep = prepare_table(frame, params, source)
    if prep.time_axis == "date":
        cutoff = prep.frame[prep.time_column]
    else:
        cutoff = pd.Series(as_of if as_of is not None else pd.Timestamp.now(tz=TIMEZONE), index=prep.frame.index)
    cutoff = pd.to_datetime(cutoff, utc=True).dt.as_unit(TIME_UNIT)
    dates = [c for c in prep.features if prep.types[c] == "date"]
    plain = [c for c in prep.features if c not in set(dates)]
    return pd.concat(
        [pd.DataFrame({LEAD_ID: prep.frame[LEAD_ID].to_numpy(), CUTOFF: cutoff.to_numpy()}, index=prep.frame.index),
         prep.frame[plain], pd.DataFrame(_date_features(prep.frame, dates, cutoff), index=prep.frame.index)],
        axis=1,
    ).reset_index(drop=True)
