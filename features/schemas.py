"""Pandera schemas of the engagement-log contract (leads table, events table).

The schemas check *normalised* frames: timestamps already parsed to ``datetime64[us, UTC]``
and string properties already cast (see ``features.validate``). Every custom check carries a
``name`` that ``RULES`` explains in plain words, so a failure can be turned into a message
naming the column, the rows and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from features.contract import (
    CREATED_AT,
    DISQUALIFIED_AT,
    EVENT_PROPERTY_COLUMNS,
    EVENT_TYPE,
    LEAD_ID,
    MQL_AT,
    SQL_AT,
    TIME_UNIT,
    TIMEZONE,
    TS,
)

TIMESTAMP_DTYPE = pd.DatetimeTZDtype(unit=TIME_UNIT, tz=TIMEZONE)


@dataclass(frozen=True)
class Rule:
    """How to explain one failed check: the problem, the expectation, the columns worth showing."""

    column: str
    problem: str
    expected: str
    show: tuple[str, ...]


NOT_FUTURE = "not_in_future"
MQL_AFTER_CREATED = "mql_at_not_before_created_at"
SQL_AFTER_MQL = "sql_at_not_before_mql_at"
KNOWN_LEAD = "lead_in_leads_table"
NON_EMPTY = "non_empty_text"

RULES: dict[str, Rule] = {
    MQL_AFTER_CREATED: Rule(
        MQL_AT, "mql_at is before created_at", "mql_at >= created_at when both are set", (MQL_AT, CREATED_AT)
    ),
    SQL_AFTER_MQL: Rule(SQL_AT, "sql_at is before mql_at", "sql_at >= mql_at when both are set", (SQL_AT, MQL_AT)),
    KNOWN_LEAD: Rule(
        LEAD_ID,
        "events refer to leads that are not in the leads table",
        "every event's lead_id to be a lead_id of the leads table",
        (LEAD_ID, TS, EVENT_TYPE),
    ),
    NON_EMPTY: Rule(EVENT_TYPE, "empty event type", "a non-empty event name such as 'page_view'", (TS, EVENT_TYPE)),
}


def _not_after(limit: pd.Timestamp) -> pa.Check:
    return pa.Check(lambda s: s.isna() | (s <= limit), name=NOT_FUTURE)


def _ordered(later: str, earlier: str, name: str) -> pa.Check:
    """Frame-level check ``later >= earlier`` wherever both are set (vacuous if a column is absent)."""

    def check(df: pd.DataFrame) -> pd.Series | bool:
        if later not in df.columns or earlier not in df.columns:
            return True
        a, b = df[later], df[earlier]
        return a.isna() | b.isna() | (a >= b)

    return pa.Check(check, name=name)


def leads_schema(future_limit: pd.Timestamp) -> pa.DataFrameSchema:
    """Leads: unique non-null ``lead_id``, UTC lifecycle timestamps, ordered, none after ``future_limit``.

    Other columns are fit attributes and pass through unchecked (``strict=False``).
    """

    def ts_column(*, nullable: bool, required: bool = True) -> pa.Column:
        return pa.Column(TIMESTAMP_DTYPE, nullable=nullable, required=required, checks=[_not_after(future_limit)])

    return pa.DataFrameSchema(
        {
            LEAD_ID: pa.Column(nullable=False, unique=True, report_duplicates="all"),
            CREATED_AT: ts_column(nullable=False),
            MQL_AT: ts_column(nullable=True),
            SQL_AT: ts_column(nullable=True),
            DISQUALIFIED_AT: ts_column(nullable=True, required=False),
        },
        checks=[_ordered(MQL_AT, CREATED_AT, MQL_AFTER_CREATED), _ordered(SQL_AT, MQL_AT, SQL_AFTER_MQL)],
        strict=False,
        name="leads",
    )


def events_schema(
    is_known_lead: Callable[[pd.Series], pd.Series], future_limit: pd.Timestamp
) -> pa.DataFrameSchema:
    """Events: ``lead_id`` of a known lead, UTC ``ts`` not after ``future_limit``, a non-empty
    ``event_type``, and the optional string properties. Nothing else (``strict=True``)."""
    return pa.DataFrameSchema(
        {
            LEAD_ID: pa.Column(nullable=False, checks=[pa.Check(is_known_lead, name=KNOWN_LEAD)]),
            TS: pa.Column(TIMESTAMP_DTYPE, nullable=False, checks=[_not_after(future_limit)]),
            EVENT_TYPE: pa.Column(
                str, nullable=False, checks=[pa.Check(lambda s: s.str.strip().str.len() > 0, name=NON_EMPTY)]
            ),
            **{c: pa.Column(str, nullable=True) for c in EVENT_PROPERTY_COLUMNS},
        },
        strict=True,
        name="events",
    )
