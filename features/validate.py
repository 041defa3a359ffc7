"""Check the user's leads and events against the engagement-log contract and normalise them.

Timestamps are parsed to ``datetime64[us, UTC]`` (naive values read as UTC, with a note),
event properties become strings, event lead ids take the leads table's type. The pandera
schemas in ``features.schemas`` then check presence, types, nullability, uniqueness and the
cross-column rules lazily, and every failure becomes part of one ``DataContractError`` that
names the file, the column, a few offending rows and the expectation.

Events are validated one batch at a time (``validate_events_batch``), so inputs of any size
stream through; ``EventsSummary`` accumulates what the validation report needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandera.errors import SchemaErrors
from pydantic import BaseModel, ConfigDict, Field

from features.contract import (
    CREATED_AT,
    EVENT_PROPERTY_COLUMNS,
    EVENT_REQUIRED_COLUMNS,
    EVENT_TYPE,
    LEAD_ID,
    LEAD_TIME_COLUMNS,
    MQL_AT,
    SQL_AT,
    TIME_UNIT,
    TIMEZONE,
    TS,
    EventType,
)
from features.errors import DataContractError
from features.schemas import KNOWN_LEAD, NOT_FUTURE, RULES, TIMESTAMP_DTYPE, events_schema, leads_schema


class ValidateParams(BaseModel):
    """The ``validate:`` section of ``params.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_rows: int = Field(5, ge=1)
    """Offending rows shown per problem."""
    batch_rows: int = Field(2_000_000, ge=1)
    """Events per streamed batch."""
    future_tolerance_minutes: int = Field(5, ge=0)
    """Clock skew allowed beyond the reference time before a timestamp counts as in the future."""


TIMESTAMP_EXPECTED = (
    "ISO 8601 timestamps such as 2024-05-01T13:45:00Z or 2024-05-01 13:45 "
    "(a value without a time zone is read as UTC)"
)
_UTC_OFFSET = r"[+-]\d\d(?::?\d\d)?$"
_ZONE_NAME = r"\s(?:UTC|GMT|utc|gmt)$"
_INTEGER_TEXT = r"\s*[+-]?\d{1,18}(?:\.0*)?\s*"
"""An integer id written as text ("42", " 42 ", "42.0"); 18 digits always fit in int64."""


# --- timestamps ------------------------------------------------------------------------------


class ParsedTimestamps(NamedTuple):
    values: pd.Series
    """``datetime64[us, UTC]``; NaT where the input is missing or unparseable."""
    unparseable: pd.Series
    """True where a value was given but is not a timestamp."""
    naive: bool
    """Some values had no time zone and were read as UTC."""


_HAS_YEAR = r"\d{4}|\b\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2}\b"  # 2024, or a short date such as 03/13/24


def parse_timestamps(raw: pd.Series) -> ParsedTimestamps:
    """Parse a column of timestamps (datetime or text) to UTC microseconds.

    Text is tried as ISO 8601 first (vectorised, fast), then the remaining values one by one
    in any common form (``format="mixed"``; month first for ``01/02/2024``) that names a year: a
    value such as "13th of March" would otherwise be given the current year silently. Empty strings
    are missing values. Numbers are not accepted: epoch units are ambiguous.
    """
    index = raw.index
    none_bad = pd.Series(False, index=index)
    dtype = raw.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return ParsedTimestamps(raw.dt.tz_convert(TIMEZONE).dt.as_unit(TIME_UNIT), none_bad, False)
    if pd.api.types.is_datetime64_dtype(dtype):
        values = raw.dt.tz_localize(TIMEZONE).dt.as_unit(TIME_UNIT)
        return ParsedTimestamps(values, none_bad, bool(raw.notna().any()))
    if raw.isna().all():
        return ParsedTimestamps(pd.Series(pd.NaT, index=index, dtype=TIMESTAMP_DTYPE), none_bad, False)
    if not (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)):
        return ParsedTimestamps(pd.Series(pd.NaT, index=index, dtype=TIMESTAMP_DTYPE), raw.notna(), False)
    text = raw.astype("str").str.strip()
    text = text.mask(text == "")
    values = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    rest = values.isna() & text.notna() & text.str.contains(_HAS_YEAR, regex=True).fillna(False).astype(bool)
    if rest.any():
        values = values.mask(rest, pd.to_datetime(text[rest], format="mixed", utc=True, errors="coerce"))
    values = values.dt.as_unit(TIME_UNIT)
    unparseable = values.isna() & text.notna()
    parsed = text.notna() & ~unparseable
    return ParsedTimestamps(values, unparseable, _any_without_zone(text[parsed]))


def _any_without_zone(text: pd.Series) -> bool:
    """True if some timestamp text has no zone designator. A regex over whole strings is slow, so
    the common ``...Z`` ending is tested first and the regex only sees the last few characters."""
    rest = text[~text.str.endswith(("Z", "z"))]
    if rest.empty:
        return False
    tail = rest.str.slice(-6)
    # an offset only counts after a time of day: "2024-03-01" ends in "-01" but has no zone
    offset = rest.str.contains(":", regex=False) & tail.str.contains(_UTC_OFFSET, regex=True)
    named = tail.str.contains(_ZONE_NAME, regex=True)
    return not (offset | named).all()


def _future_limit(now: pd.Timestamp, params: ValidateParams) -> pd.Timestamp:
    now = pd.Timestamp(now)
    now = now.tz_localize(TIMEZONE) if now.tzinfo is None else now.tz_convert(TIMEZONE)
    return now + pd.Timedelta(minutes=params.future_tolerance_minutes)


# --- lead ids --------------------------------------------------------------------------------


def _normalise_lead_ids(ids: pd.Series, source: str) -> tuple[pd.Series, list[str]]:
    """Leads' ids as int64 or text; decimals that are whole numbers become int64 (with a note)."""
    dtype = ids.dtype
    if pd.api.types.is_integer_dtype(dtype):
        return (ids.astype("int64") if not ids.isna().any() else ids), []
    if pd.api.types.is_float_dtype(dtype):
        whole = ids.notna() & (ids == np.floor(ids))
        if whole.all():
            return ids.astype("int64"), [f"{LEAD_ID} was stored as decimals; read as whole numbers"]
        return ids, []  # nulls are reported by the schema; fractional ids are still unique keys
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype) or isinstance(
        dtype, pd.CategoricalDtype
    ):
        return ids.astype("str"), []
    raise DataContractError(
        source, f"lead ids have type {dtype}", column=LEAD_ID, expected="integer or text lead ids"
    )


def _is_integer_kind(ids: pd.Index | pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(ids.dtype)


def _cast_ids(raw: pd.Series, to_integer: bool) -> tuple[pd.Series, pd.Series]:
    """Event lead ids in the leads' type family, and where the cast worked.

    ``"7"`` and ``7.0`` become ``7`` for integer leads; ``7`` becomes ``"7"`` for text leads.
    Values that cannot be cast cannot name a known lead; the caller reports them as unknown.
    """
    dtype = raw.dtype
    if not to_integer:
        if pd.api.types.is_float_dtype(dtype):
            whole = raw.notna() & (raw == np.floor(raw))
            text = raw.astype("str").mask(whole, raw.where(whole, 0).astype("int64").astype("str"))
            return text.mask(raw.isna()), raw.notna()
        return raw.astype("str"), raw.notna()
    if pd.api.types.is_integer_dtype(dtype):
        return raw.astype("Int64"), raw.notna()
    if pd.api.types.is_float_dtype(dtype):
        ok = raw.notna() & (raw == np.floor(raw)) & (raw.abs() < 2**63)
        return raw.where(ok).astype("Int64"), ok
    if pd.api.types.is_bool_dtype(dtype):
        return pd.Series(pd.NA, index=raw.index, dtype="Int64"), pd.Series(False, index=raw.index)
    text = raw.astype("str")
    ok = text.str.fullmatch(_INTEGER_TEXT).fillna(False).astype(bool)
    digits = text.where(ok, "0").str.strip().str.replace(r"\.0*$", "", regex=True)
    return digits.astype("int64").astype("Int64").where(ok), ok


def _known_lead_check(known: pd.Index):
    """A pandera check function: True where the lead id (cast to the leads' type) is a known lead.

    Missing ids count as True here; the not-null rule reports them.
    """
    to_integer = _is_integer_kind(known)

    def check(raw: pd.Series) -> pd.Series:
        values, ok = _cast_ids(raw, to_integer)
        return raw.isna() | (ok & values.isin(known).fillna(False).astype(bool))

    return check


def _as_index(lead_ids: Any) -> pd.Index:
    if isinstance(lead_ids, pd.Index):
        return lead_ids
    if isinstance(lead_ids, (set, frozenset)):
        lead_ids = list(lead_ids)
    index = pd.Index(lead_ids)
    return index.astype("int64") if _is_integer_kind(index) else index


# --- turning failures into messages -----------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value)):
        return "null"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, str):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class _Context:
    """What message building needs to know about the frame being checked."""

    source: str
    frame: pd.DataFrame
    """Normalised frame (parsed timestamps), positions 0..n-1."""
    raw: pd.DataFrame
    """The frame as given, same positions, to show values the user wrote."""
    first_row: int
    context_columns: tuple[str, ...]
    max_rows: int

    def row_lines(self, positions: Sequence[int], columns: Sequence[str], *, raw_for: str | None = None) -> list[str]:
        shown = [c for c in dict.fromkeys([*self.context_columns[:1], *columns]) if c in self.frame.columns]
        lines = []
        for pos in sorted(positions)[: self.max_rows]:
            cells = []
            for col in shown:
                source = self.raw if col == raw_for or col == LEAD_ID else self.frame
                cells.append(f"{col}={_fmt(source[col].iloc[pos])}")
            lines.append(f"row {self.first_row + pos}: " + ", ".join(cells))
        return lines


def _unparseable_error(ctx: _Context, column: str, bad: pd.Series) -> DataContractError:
    positions = np.flatnonzero(bad.to_numpy())
    return DataContractError(
        ctx.source,
        f"{column} has values that are not timestamps",
        column=column,
        rows=ctx.row_lines(positions, [*ctx.context_columns, column], raw_for=column),
        n_bad=len(positions),
        expected=TIMESTAMP_EXPECTED,
    )


def _schema_errors(
    exc: SchemaErrors, ctx: _Context, *, limit: pd.Timestamp, already: Mapping[str, set[int]]
) -> list[DataContractError]:
    """One ``DataContractError`` per (column, check) that failed; missing columns first."""
    cases = exc.failure_cases
    errors: list[DataContractError] = []
    found = ", ".join(map(str, ctx.raw.columns))
    for missing in cases.loc[cases["check"] == "column_in_dataframe", "failure_case"]:
        errors.append(DataContractError(
            ctx.source, f"required column '{missing}' is missing", column=str(missing),
            expected=f"a column named '{missing}' (columns found: {found})",
        ))
    rest = cases.loc[cases["check"] != "column_in_dataframe"]
    for check, group in rest.groupby("check", sort=False):
        rule = RULES.get(str(check))
        columns = [rule.column] if rule else list(dict.fromkeys(group["column"].dropna()))
        for column in columns:
            rows = group if rule else group.loc[group["column"] == column]
            positions = sorted({int(i) for i in rows["index"].dropna()} - already.get(column, set()))
            if not positions and rows["index"].notna().any():
                continue  # every failing row was already reported as unparseable
            errors.append(_explain(str(check), column, positions, rows, ctx, limit))
    return errors


def _explain(
    check: str, column: str, positions: list[int], cases: pd.DataFrame, ctx: _Context, limit: pd.Timestamp
) -> DataContractError:
    show = [*ctx.context_columns, column]
    n = len(positions)
    if check in RULES:
        rule = RULES[check]
        problem = rule.problem
        if check == KNOWN_LEAD:
            ids = list(dict.fromkeys(ctx.raw[LEAD_ID].iloc[positions]))
            problem = f"{len(ids)} lead id(s) not in the leads table: " + ", ".join(map(_fmt, ids[: ctx.max_rows]))
            problem += ", ..." if len(ids) > ctx.max_rows else ""
        return DataContractError(ctx.source, problem, column=column, rows=ctx.row_lines(positions, [*rule.show]),
                                 n_bad=n, expected=rule.expected)
    if check == NOT_FUTURE:
        return DataContractError(
            ctx.source, f"{column} is in the future", column=column, rows=ctx.row_lines(positions, show), n_bad=n,
            expected=f"{column} no later than {limit.isoformat()} (the validation time plus the allowed clock skew)",
        )
    if check == "not_nullable":
        return DataContractError(ctx.source, f"{column} is missing", column=column,
                                 rows=ctx.row_lines(positions, show), n_bad=n, expected=f"a {column} in every row")
    if check == "field_uniqueness":
        ids = list(dict.fromkeys(ctx.raw[column].iloc[positions]))
        listed = ", ".join(map(_fmt, ids[: ctx.max_rows])) + (", ..." if len(ids) > ctx.max_rows else "")
        return DataContractError(
            ctx.source, f"duplicate {column}s: {listed} ({len(ids)} id(s) on {n} rows)", column=column,
            rows=ctx.row_lines(positions, show), n_bad=n, expected=f"each {column} exactly once",
        )
    if check.startswith("dtype("):
        actual = ", ".join(map(str, cases["failure_case"].dropna().unique()))
        return DataContractError(ctx.source, f"{column} has type {actual}", column=column,
                                 expected=check.removeprefix("dtype(").removesuffix(")").strip("'"))
    return DataContractError(ctx.source, f"failed check {check}", column=column,
                             rows=ctx.row_lines(positions, show), n_bad=n)


# --- leads -----------------------------------------------------------------------------------


def validate_leads(
    df: pd.DataFrame, *, source: str, now: pd.Timestamp, params: ValidateParams
) -> tuple[pd.DataFrame, list[str]]:
    """The leads table checked and normalised, plus notes for the report.

    Lifecycle timestamps become ``datetime64[us, UTC]``; ``lead_id`` becomes int64 or text;
    attribute columns are kept as they are. Row numbers in errors are 1-based data rows in the
    order given. Raises one ``DataContractError`` listing every problem found.
    """
    if len(df) == 0:
        raise DataContractError(source, "the leads table has no rows", expected="at least one lead")
    raw = df.reset_index(drop=True)
    notes: list[str] = []
    errors: list[DataContractError] = []
    columns: dict[str, pd.Series] = {}
    if LEAD_ID in raw.columns:
        columns[LEAD_ID], id_notes = _normalise_lead_ids(raw[LEAD_ID], source)
        notes += id_notes
    ctx_cols = (LEAD_ID, CREATED_AT)
    ctx = _Context(source, raw, raw, 1, ctx_cols, params.max_error_rows)
    unparseable: dict[str, set[int]] = {}
    for col in LEAD_TIME_COLUMNS:
        if col not in raw.columns:
            continue
        parsed = parse_timestamps(raw[col])
        columns[col] = parsed.values
        if parsed.unparseable.any():
            errors.append(_unparseable_error(ctx, col, parsed.unparseable))
            unparseable[col] = set(np.flatnonzero(parsed.unparseable.to_numpy()).tolist())
        if parsed.naive:
            notes.append(f"{col} had no time zone; read as UTC")
    frame = raw.assign(**columns)
    ctx = _Context(source, frame, raw, 1, ctx_cols, params.max_error_rows)
    limit = _future_limit(now, params)
    try:
        leads_schema(limit).validate(frame, lazy=True)
    except SchemaErrors as exc:
        errors += _schema_errors(exc, ctx, limit=limit, already=unparseable)
    if errors:
        raise DataContractError.combine(errors)
    sales_sourced = int((frame[SQL_AT].notna() & frame[MQL_AT].isna()).sum())
    if sales_sourced:
        notes.append(
            f"{sales_sourced} lead(s) have sql_at but no mql_at (sales-sourced); they never get an MQL snapshot"
        )
    return frame, notes


# --- events ----------------------------------------------------------------------------------

EVENT_COLUMNS: tuple[str, ...] = (*EVENT_REQUIRED_COLUMNS, *EVENT_PROPERTY_COLUMNS)


def events_arrow_schema(lead_ids_integer: bool) -> pa.Schema:
    """The schema of every validated events part: one schema, so all parts read as one table."""
    return pa.schema(
        [
            (LEAD_ID, pa.int64() if lead_ids_integer else pa.string()),
            (TS, pa.timestamp(TIME_UNIT, tz=TIMEZONE)),
            (EVENT_TYPE, pa.string()),
            *[(c, pa.string()) for c in EVENT_PROPERTY_COLUMNS],
        ]
    )


def validate_events_batch(
    batch: pa.RecordBatch | pa.Table | pd.DataFrame,
    *,
    source: str,
    first_row: int,
    lead_ids: pd.Index | pd.Series | np.ndarray | Iterable[Any],
    now: pd.Timestamp,
    params: ValidateParams,
) -> tuple[pa.Table, list[str]]:
    """One batch of events checked and normalised to ``events_arrow_schema``, plus notes.

    ``first_row`` is the 1-based row number, in ``source``, of the batch's first row.
    ``lead_ids`` are the leads table's ids; event ids are compared in their type.
    Columns outside the contract are dropped (with a note). Raises one ``DataContractError``
    listing every problem in the batch.
    """
    raw = batch.reset_index(drop=True) if isinstance(batch, pd.DataFrame) else batch.to_pandas()
    notes: list[str] = []
    extra = [c for c in raw.columns if c not in EVENT_COLUMNS]
    if extra:
        notes.append("events columns not in the contract were dropped: " + ", ".join(map(str, extra)))
        raw = raw.drop(columns=extra)
    known = _as_index(lead_ids)
    to_integer = _is_integer_kind(known)
    columns: dict[str, pd.Series] = {}
    errors: list[DataContractError] = []
    unparseable: dict[str, set[int]] = {}
    ctx_cols = (LEAD_ID, TS, EVENT_TYPE)
    ctx = _Context(source, raw, raw, first_row, ctx_cols, params.max_error_rows)
    if TS in raw.columns:
        parsed = parse_timestamps(raw[TS])
        columns[TS] = parsed.values
        if parsed.unparseable.any():
            errors.append(_unparseable_error(ctx, TS, parsed.unparseable))
            unparseable[TS] = set(np.flatnonzero(parsed.unparseable.to_numpy()).tolist())
        if parsed.naive:
            notes.append(f"{TS} had no time zone; read as UTC")
    if EVENT_TYPE in raw.columns and not pd.api.types.is_string_dtype(raw[EVENT_TYPE].dtype):
        columns[EVENT_TYPE] = raw[EVENT_TYPE].astype("str")
    for col in EVENT_PROPERTY_COLUMNS:
        if col in raw.columns:
            if not isinstance(raw[col].dtype, pd.StringDtype):
                columns[col] = raw[col].astype("str")
        else:
            columns[col] = pd.Series(pd.NA, index=raw.index, dtype="str")
    frame = raw.assign(**columns)
    ctx = _Context(source, frame, raw, first_row, ctx_cols, params.max_error_rows)
    limit = _future_limit(now, params)
    try:
        events_schema(_known_lead_check(known), limit).validate(frame, lazy=True)
    except SchemaErrors as exc:
        errors += _schema_errors(exc, ctx, limit=limit, already=unparseable)
    if errors:
        if LEAD_ID in raw.columns and raw[LEAD_ID].dtype != known.dtype:
            errors = [_with_type_hint(e, known, raw[LEAD_ID]) for e in errors]
        raise DataContractError.combine(errors)
    ids, _ = _cast_ids(frame[LEAD_ID], to_integer)
    if not raw[LEAD_ID].dtype == known.dtype and len(raw):
        kind = "whole numbers" if to_integer else "text"
        notes.append(f"events {LEAD_ID} read as {kind} to match the leads table")
    out = frame.assign(**{LEAD_ID: ids.astype("int64") if to_integer else ids})
    return _to_arrow(out, events_arrow_schema(to_integer)), notes


def _to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Columns of ``frame`` as an Arrow table of exactly ``schema`` (no pandas metadata).

    Timestamps go through NumPy UTC values: converting a tz-aware Series directly is deprecated.
    """
    arrays = []
    for f in schema:
        col = frame[f.name]
        if pa.types.is_timestamp(f.type):
            naive = pa.array(col.dt.tz_convert(None).to_numpy(), type=pa.timestamp(f.type.unit), from_pandas=True)
            arrays.append(naive.cast(f.type))
        else:
            arrays.append(pa.array(col, type=f.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def _with_type_hint(error: DataContractError, known: pd.Index, event_ids: pd.Series) -> DataContractError:
    """Add the leads' id type to an unknown-lead error when the events' ids look like another type."""
    if error.column != LEAD_ID or "not in the leads table" not in error.problem:
        return error
    kind = "whole numbers" if _is_integer_kind(known) else "text"
    sample = ", ".join(map(_fmt, known[:3]))
    return DataContractError(
        error.file, error.problem, column=error.column, rows=error.rows, n_bad=error.n_bad,
        expected=f"{error.expected} (the leads table's ids are {kind}, e.g. {sample}; "
        f"events ids here have type {event_ids.dtype})",
    )


def require_events(total_rows: int, source: str) -> None:
    """Stop when the whole events input held no rows: there is nothing to learn behaviour from."""
    if total_rows <= 0:
        raise DataContractError(
            source, "no events: the events input has no rows",
            expected="at least one event row (lead_id, ts, event_type)",
        )


# --- report ----------------------------------------------------------------------------------

KNOWN_EVENT_TYPES: frozenset[str] = frozenset(EventType)


@dataclass(frozen=True)
class EventsSummary:
    """What the validation report says about the events, built up batch by batch (immutable)."""

    rows: int = 0
    event_types: Mapping[str, int] = field(default_factory=dict)
    ts_min: pd.Timestamp | None = None
    ts_max: pd.Timestamp | None = None
    before_created: int | None = None
    """Events earlier than their lead's ``created_at`` (anonymous visits before the form fill);
    None when no leads were given to count them."""
    notes: tuple[str, ...] = ()

    def add(
        self, table: pa.Table, notes: Iterable[str] = (), *, leads: pd.DataFrame | None = None
    ) -> EventsSummary:
        """This summary plus one validated batch (pass ``leads`` to count events before creation)."""
        return self.merge(summarize_events(table, notes, leads=leads))

    def merge(self, other: EventsSummary) -> EventsSummary:
        types = dict(self.event_types)
        for name, n in other.event_types.items():
            types[name] = types.get(name, 0) + n
        return EventsSummary(
            rows=self.rows + other.rows,
            event_types=types,
            ts_min=_pick(min, self.ts_min, other.ts_min),
            ts_max=_pick(max, self.ts_max, other.ts_max),
            before_created=_pick(lambda a, b: a + b, self.before_created, other.before_created),
            notes=tuple(dict.fromkeys([*self.notes, *other.notes])),
        )

    @property
    def unknown_event_types(self) -> dict[str, int]:
        """Event types the feature catalog does not know (kept, counted, reported)."""
        return {k: v for k, v in self.event_types.items() if k not in KNOWN_EVENT_TYPES}

    def to_dict(self) -> dict[str, Any]:
        by_count = dict(sorted(self.event_types.items(), key=lambda kv: (-kv[1], kv[0])))
        return {
            "rows": self.rows,
            "ts_min": self.ts_min.isoformat() if self.ts_min is not None else None,
            "ts_max": self.ts_max.isoformat() if self.ts_max is not None else None,
            "event_types": by_count,
            "unknown_event_types": {k: v for k, v in by_count.items() if k not in KNOWN_EVENT_TYPES},
            "events_before_lead_created": self.before_created,
            "notes": list(self.notes),
        }


def _pick(fn, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


def summarize_events(
    table: pa.Table, notes: Iterable[str] = (), *, leads: pd.DataFrame | None = None
) -> EventsSummary:
    """Summary of one validated batch: rows, counts per event type, time range, events before creation."""
    if table.num_rows == 0:
        return EventsSummary(notes=tuple(dict.fromkeys(notes)), before_created=0 if leads is not None else None)
    counts = pc.value_counts(table[EVENT_TYPE]).to_pylist()
    span = pc.min_max(table[TS]).as_py()
    before = None
    if leads is not None:
        created = leads[CREATED_AT].to_numpy(dtype="datetime64[us]")
        pos = pd.Index(leads[LEAD_ID]).get_indexer(table[LEAD_ID].to_numpy())
        ts = pc.cast(table[TS], pa.timestamp(TIME_UNIT)).to_numpy()
        found = pos >= 0
        before = int((ts[found] < created[pos[found]]).sum())
    return EventsSummary(
        rows=table.num_rows,
        event_types={c["values"]: int(c["counts"]) for c in counts},
        ts_min=pd.Timestamp(span["min"]).tz_convert(TIMEZONE),
        ts_max=pd.Timestamp(span["max"]).tz_convert(TIMEZONE),
        before_created=before,
        notes=tuple(dict.fromkeys(notes)),
    )
