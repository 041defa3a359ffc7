"""The point-in-time feature builder: catalog features for every (lead, cutoff) of a spine, on DuckDB.

Why not ``spine JOIN events ON lead_id AND ts < cutoff``: every event would be repeated for every
snapshot of its lead (hundreds of millions of rows). Instead:

1. each event gets an *atom* id -- the finest kind of event any declaration tells apart (an event
   type, or a type with one property value such as pricing page views); every catalog filter is
   a union of atoms, so per-atom counts are all that has to be accumulated;
2. each lead's time line is cut at *boundaries* -- every cutoff ``c`` and every window start
   ``c - w`` -- each of which knows the first cutoff at or after it; each event is assigned to
   the first boundary after it (an ASOF join), and so also to the first cutoff after it;
3. one aggregation with two grouping sets: per (lead, boundary) the per-atom counts packed into a
   few HUGEINT words (``_Layout``), and per (lead, cutoff interval, recency group) the latest event
   time (atoms grouped by the recency filters that keep them, so each filter is a union of groups);
4. running sums of the packed words per lead give ``C(b)``, the events with ``ts < b``, at every
   boundary; each snapshot picks up ``C(c)`` and ``C(c - w)`` (one hash join and group-by instead
   of a range-framed window sum per window and word), and a window count is ``C(c) - C(c - w)``,
   subtracted word by word;
5. recency is the last non-null group maximum over the lead's cutoffs (a window over cutoffs only),
   a filter's latest time the greatest of its groups';
6. distinct-day and distinct-value features read only the product-usage subset, joined to the
   spine directly;
7. the narrow per-snapshot rows are put into spine order by position (``_SpineRows``: each row's
   spine number is its place, so no sort is needed), then unpacked into the features; intermediate
   tables are dropped as soon as they are used, to keep DuckDB's memory low.

Steps 2-6 run once per *lead partition*: ranges of lead ids holding about equal numbers of events,
as many as keep a partition's tables within ``memory_limit`` (``partition_count``), since spilling
the big intermediate tables to disk cost more than the work itself. Each pass reads its leads'
events straight from the source (Parquet row-group statistics skip the other ranges when the files
are clustered by lead, as the simulator's are) and places its narrow rows at their spine
positions. Every feature of a snapshot depends on its own lead's events only, so partitioned and
single-pass builds are equal row for row.

Measured and not kept (1M leads, 117.6M events, 8 partitions; CPU-s on a loaded machine, so only
the comparisons count). Where the time went before the rows were placed instead of sorted: the ASOF
join and aggregation (``agg``) ~90 CPU-s, the final sort, projection and Parquet write ~69 (the
projection alone ~11-20, the Parquet encoding ~30), the running sums (``cum``) ~44, recency ~20,
boundaries ~14. Within ``agg``, on one partition (13.0 CPU-s): reading and atom-coding its events
2.7-3.4, the ASOF join another ~4, the (lead, boundary) packed sums ~3 and the (lead, cutoff,
recency group) maxima ~3. Tried:

- a spine ordered by lead, each partition's narrow rows sorted on their own and appended, so the
  final write needs no sort: the per-partition sorts cost what the global sort saved (25.5 + 48.8
  against 8.3 + 69.0 CPU-s). DuckDB's hash join does not keep the probe side's order (rows behind a
  hash-chain collision come out later), even with the join order fixed (``disabled_optimizers``),
  so the order has to be restored: kept is placing rows by their spine number (``_SpineRows``),
  which took the final step from 25.4 s to 11.8 s wall (48.9 to 22.3 CPU-s) at the same peak memory;
- aggregating per (lead, boundary, atom) first and packing the words after: 9.7 against 9.35 CPU-s
  on one partition;
- six BIGINT words of five slots instead of three HUGEINT words: ``agg`` + ``cum`` 16.7-21.0
  against 12.8-16.5 CPU-s on one partition;
- the window counts by five equality joins on ``C(c - w)`` instead of the ``roles`` pivot: the same
  4.9 CPU-s on one partition;
- Parquet options (snappy, lz4, zstd level 1, no bloom filters, format V2): within the noise;
- 6 or 12 partitions instead of 8: 128.8 and 135.4 s against 131.7 s wall (one run each).

This is exact for arbitrary cutoffs (training grid, scoring time, random property-test spines).
All times are integer microseconds since the epoch (UTC), so no time zone or DST rule can move a
window edge. ``build_snapshots`` streams Parquet in and out (DuckDB spills to ``temp_dir`` under
``memory_limit`` if it must); ``build_features`` runs the same SQL on in-memory frames.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from features.catalog import Catalog, EventFilter, Feature, Kind, category_text
from features.contract import CUTOFF, EVENT_TYPE, LABEL, LEAD_ID, TS
from features.errors import DataContractError
from features.snapshots import SpineParams

DAY_US = 86_400_000_000


class FeaturesParams(BaseModel):
    """``params.yaml: features``: the spine layout, the count windows and the DuckDB resources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_days: int = Field(14, ge=1)
    horizon_days: int = Field(30, ge=1)
    max_age_days: int = Field(168, ge=0)
    windows: list[int] = Field(default_factory=lambda: [7, 30, 90], min_length=1)
    as_of: str | None = None
    threads: int = Field(2, ge=1)
    memory_limit: str = "4GB"

    def spine(self) -> SpineParams:
        return SpineParams(step_days=self.step_days, horizon_days=self.horizon_days, max_age_days=self.max_age_days)


@dataclass(frozen=True)
class BuildStats:
    """What one build did, for the stage report.

    ``events_used`` are the events of spine leads before their last cutoff (the rest cannot reach
    any snapshot); ``unknown_event_types`` counts event types the catalog does not know among them.
    """

    seconds: float
    rows: int
    features: int
    events_scanned: int
    events_used: int
    boundaries: int
    unknown_event_types: dict[str, int] = field(default_factory=dict)
    partitions: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- SQL from the declarations -----------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class _Atom:
    """The finest kind of event the catalog tells apart: a type, optionally split by one property value.

    ``value is None`` with a ``column`` means "this type, any other value"; ``event_type is None``
    means "a type no declaration names". Every event falls in exactly one atom, and every
    filter is a union of atoms, so per-atom counts are all the builder has to accumulate.
    """

    event_type: str | None
    column: str | None = None
    value: str | None = None


def _filters(catalog: Catalog) -> dict[str, EventFilter]:
    """Every event filter the catalog uses, by key (one key, one filter)."""
    found: dict[str, EventFilter] = {}
    for f in catalog:
        for flt in (f.events, f.denominator):
            if flt is not None:
                if found.setdefault(flt.key, flt) != flt:
                    raise ValueError(f"two different event filters share the key '{flt.key}'")
    return found


def _atoms(filters: dict[str, EventFilter]) -> list[_Atom]:
    """The atoms the filters need, in a stable order; the last one is "any type no filter names"."""
    types: dict[str, set[tuple[str, str]]] = {}
    for flt in filters.values():
        for m in flt.include:
            splits = types.setdefault(m.event_type, set())
            if m.column is not None:
                splits.add((m.column, m.value))
        for t in flt.exclude_types:
            types.setdefault(t, set())
    atoms: list[_Atom] = []
    for t in sorted(types):
        columns = {c for c, _ in types[t]}
        if len(columns) > 1:
            raise ValueError(f"event type '{t}' is split by more than one property ({sorted(columns)})")
        atoms += [_Atom(t, c, v) for c, v in sorted(types[t])]
        atoms.append(_Atom(t, next(iter(columns)) if columns else None, None))
    atoms.append(_Atom(None))
    return atoms


def _atom_ids(flt: EventFilter, atoms: list[_Atom]) -> list[int]:
    """The atoms whose events ``flt`` keeps."""
    def kept(a: _Atom) -> bool:
        if a.event_type is not None and a.event_type in flt.exclude_types:
            return False
        if not flt.include:
            return True
        return any(
            m.event_type == a.event_type and (m.column is None or (m.column == a.column and m.value == a.value))
            for m in flt.include
        )
    return [i for i, a in enumerate(atoms) if kept(a)]


def _atom_case(atoms: list[_Atom]) -> str:
    """SQL giving each event its atom id (a SMALLINT)."""
    whens = []
    for i, a in enumerate(atoms):
        if a.event_type is None:
            continue
        cond = f"{EVENT_TYPE} = {_lit(a.event_type)}"
        if a.column is not None and a.value is not None:
            cond += f" AND {_q(a.column)} = {_lit(a.value)}"
        whens.append(f"WHEN {cond} THEN {i}")
    return f"CAST(CASE {' '.join(whens)} ELSE {len(atoms) - 1} END AS SMALLINT)"


@dataclass(frozen=True)
class _Layout:
    """How per-atom counts are packed into HUGEINT words so running sums need few window aggregates.

    Each word holds two 63-bit halves of ``per_half`` slots of ``bits`` bits each, so the final
    unpacking splits a word once and then shifts BIGINTs.

    Sums of packed words equal packed sums as long as no slot overflows, which ``bits`` (from the
    most events any spine lead has) guarantees; differences of running sums never borrow either,
    since counts only grow with time.
    """

    atoms: tuple[_Atom, ...]
    bits: int

    @property
    def per_half(self) -> int:
        """Slots in each 63-bit half of a word: the halves are unpacked as BIGINTs, cheaper than HUGEINT."""
        return max(1, 63 // self.bits)

    @property
    def per_word(self) -> int:
        return 2 * self.per_half

    @property
    def words(self) -> int:
        return -(-len(self.atoms) // self.per_word)

    def pack(self, word: int) -> str:
        """The SQL value an event (atom id ``k``) adds to ``word`` (the high half starts at bit 63)."""
        slot = f"(e.k % {self.per_word})"
        shift = f"{self.bits} * {slot} + {63 - self.bits * self.per_half} * ({slot} // {self.per_half})"
        return f"CASE WHEN e.k // {self.per_word} = {word} THEN CAST(1 AS HUGEINT) << ({shift}) END"

    @staticmethod
    def halves(packed: str) -> tuple[str, str]:
        """SQL splitting the word ``packed`` into its low and high 63-bit halves, as BIGINTs."""
        return (f"CAST(({packed}) & {(1 << 63) - 1} AS BIGINT)", f"CAST(({packed}) >> 63 AS BIGINT)")

    def unpack(self, atom: int, lo: str, hi: str) -> str:
        """SQL extracting the count of ``atom`` from its word's halves ``lo`` and ``hi`` (BIGINT expressions)."""
        slot = atom % self.per_word
        half = lo if slot < self.per_half else hi
        return f"CAST(({half} >> {self.bits * (slot % self.per_half)}) & {(1 << self.bits) - 1} AS INTEGER)"


def _recency_keys(catalog: Catalog) -> list[str]:
    return list(dict.fromkeys(f.events.key for f in catalog if f.kind is Kind.RECENCY))


def _recency_groups(catalog: Catalog, atoms: list[_Atom]) -> list[list[int]]:
    """Atoms grouped by the recency filters they belong to: each recency filter is a union of groups,
    so one latest time per group is all that has to be kept (atoms in no recency filter are left out)."""
    filters = _filters(catalog)
    member = {k: set(_atom_ids(filters[k], atoms)) for k in _recency_keys(catalog)}
    groups: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(atoms)):
        keys = tuple(k for k in member if i in member[k])
        if keys:
            groups.setdefault(keys, []).append(i)
    return list(groups.values())


def _group_case(groups: list[list[int]], n_atoms: int) -> str:
    """SQL giving each event its recency group (a SMALLINT; NULL when no recency filter keeps it)."""
    if not groups:
        return "CAST(NULL AS SMALLINT)"
    whens = " ".join(f"WHEN {_k_in(ids, n_atoms).replace('e.k', 'k')} THEN {j}" for j, ids in enumerate(groups))
    return f"CAST(CASE {whens} END AS SMALLINT)"


def _offsets(catalog: Catalog) -> list[int]:
    """Window starts (days before the cutoff) that need a boundary."""
    days: set[int] = set()
    for f in catalog:
        if f.kind in (Kind.COUNT, Kind.RATE) and f.window is not None:
            days.add(f.window)
        elif f.kind is Kind.MOMENTUM:
            days.update({f.window, f.window + f.before_days})
    return sorted(days)


def _event_columns(catalog: Catalog) -> set[str]:
    cols = {EVENT_TYPE}
    for flt in _filters(catalog).values():
        cols |= flt.columns
    cols |= {f.column for f in catalog if f.kind is Kind.DISTINCT_VALUES}
    return cols


def _count_expr(key: str, off: int | None, filters: dict[str, EventFilter], atoms: list[_Atom]) -> str:
    """Events of filter ``key`` in ``[c - off days, c)`` (all before ``c`` when ``off`` is None)."""
    w = "all" if off is None else off
    ids = _atom_ids(filters[key], atoms)
    if len(ids) > len(atoms) / 2:  # shorter as the total minus what the filter leaves out
        rest = [f"a{i}_{w}" for i in range(len(atoms)) if i not in set(ids)]
        return "(" + " - ".join([f"tot_{w}", *rest]) + ")"
    return "(" + (" + ".join(f"a{i}_{w}" for i in ids) if ids else "0") + ")"


def _feature_expr(f: Feature, filters: dict[str, EventFilter], atoms: list[_Atom]) -> str:
    """The SQL value of ``f`` over the per-snapshot row (atom counts ``a<id>_<window>``, maxima ``m_<key>``)."""
    def n(key: str, off: int | None) -> str:
        return _count_expr(key, off, filters, atoms)

    if f.kind is Kind.COUNT:
        return f"CAST({n(f.events.key, f.window)} AS INTEGER)"
    if f.kind is Kind.RECENCY:
        return f"CAST((c - {_q('m_' + f.events.key)}) / {DAY_US}.0 AS FLOAT)"
    if f.kind is Kind.MOMENTUM:
        k, r, b = f.events.key, f.window, f.window + f.before_days
        before = f"({n(k, b)} - {n(k, r)})"
        return f"CAST({n(k, r)} / (({before} + 1) * {r / f.before_days!r}) AS FLOAT)"
    if f.kind is Kind.RATE:
        return f"CAST({n(f.events.key, f.window)} / NULLIF({n(f.denominator.key, f.window)}, 0) AS FLOAT)"
    if f.kind in (Kind.ACTIVE_DAYS, Kind.DISTINCT_VALUES):
        return f"CAST(COALESCE({_q('u_' + f.name)}, 0) AS INTEGER)"
    if f.kind is Kind.SINCE:
        return f"CAST((c - {_q('l_' + f.column)}) / {DAY_US}.0 AS FLOAT)"
    if f.kind is Kind.ATTRIBUTE:
        return f"CAST({_q('l_' + f.column)} AS {'VARCHAR' if f.categorical else 'DOUBLE'})"
    raise ValueError(f"no SQL for feature kind {f.kind}")


def _k_in(ids: list[int], n_atoms: int) -> str:
    """SQL: the event's atom ``e.k`` is one of ``ids`` (written as the shorter of the set or its complement)."""
    if not ids:
        return "FALSE"
    rest = [i for i in range(n_atoms) if i not in set(ids)]
    if not rest:
        return "TRUE"
    if len(rest) < len(ids):
        return f"e.k NOT IN ({', '.join(map(str, rest))})"
    return f"e.k IN ({', '.join(map(str, ids))})"


def _usage_sql(catalog: Catalog, atoms: list[_Atom]) -> str | None:
    """Per-snapshot distinct days / values, from a direct join of the spine with the (small) matching subset."""
    feats = [f for f in catalog if f.kind in (Kind.ACTIVE_DAYS, Kind.DISTINCT_VALUES)]
    if not feats:
        return None
    ids = _usage_atoms(catalog, atoms)
    aggs = []
    for f in feats:
        ok = [_k_in(_atom_ids(f.events, atoms), len(atoms))]
        if f.window is not None:
            ok.append(f"e.t >= s.c - {f.window * DAY_US}")
        what = f"e.t // {DAY_US}" if f.kind is Kind.ACTIVE_DAYS else "e.prop"
        aggs.append(f"count(DISTINCT {what}) FILTER (WHERE {' AND '.join(ok)}) AS {_q('u_' + f.name)}")
    return (
        f"SELECT s._sid, {', '.join(aggs)} FROM spine s JOIN use_ev e ON e.{LEAD_ID} = s.{LEAD_ID} AND e.t < s.c "
        f"WHERE {_k_in(ids, len(atoms))} GROUP BY s._sid"
    )


def _usage_atoms(catalog: Catalog, atoms: list[_Atom]) -> list[int]:
    """The atoms the distinct-day / distinct-value features read (the small ``use_ev`` subset)."""
    feats = [f for f in catalog if f.kind in (Kind.ACTIVE_DAYS, Kind.DISTINCT_VALUES)]
    return sorted({i for f in feats for i in _atom_ids(f.events, atoms)})


def _types_in(ids: list[int], atoms: list[_Atom]) -> str:
    """SQL over the raw source row: its event type is one of atoms ``ids``' (lets the Parquet scan skip
    the rest); TRUE when one of them is the "any other type" atom."""
    types = {atoms[i].event_type for i in ids}
    if None in types or not types:
        return "TRUE"
    return f"e.{EVENT_TYPE} IN ({', '.join(_lit(str(t)) for t in sorted(map(str, types)))})"


@dataclass(frozen=True)
class _Plan:
    """The build as SQL: ``part`` runs once per lead partition over the temp table ``spine`` (that
    partition's snapshots) and the events relation ``ev`` (SQL text, with the partition's ``$lo`` /
    ``$hi`` bounds when partitioned), and ``narrow`` selects its per-snapshot rows; ``final`` turns
    all partitions' narrow rows (table ``narrow``) into the snapshot rows in spine order."""

    part: list[str]
    narrow: str
    final: str
    lead_columns: tuple[str, ...] = ()


def _plan(catalog: Catalog, layout: _Layout, has_label: bool, ev: Callable[[str], str]) -> _Plan:
    """The build's SQL statements (see ``_Plan``); ``ev(condition)`` selects the atom-coded events
    (``lead_id, t, k, g, prop``) whose source row meets ``condition`` (SQL over the source ``e``)."""
    atoms = list(layout.atoms)
    filters = _filters(catalog)
    offsets = _offsets(catalog)
    recency = _recency_keys(catalog)
    groups = _recency_groups(catalog, atoms)
    offs = ", ".join(f"({o * DAY_US}, {o})" for o in [0, *offsets])
    words = [f"w{j}" for j in range(layout.words)]
    sums = [f"sum({layout.pack(j)}) AS w{j}" for j in range(layout.words)]
    win = f"OVER (PARTITION BY bd.{LEAD_ID} ORDER BY bd.b ROWS UNBOUNDED PRECEDING)"
    running = [f"COALESCE(sum(a.{w}) {win}, 0) AS {w}" for w in words]
    # one row per snapshot: C(c) and, per window start, C(c) - C(c - o); packed words subtract slot by
    # slot since counts only grow
    pivot = [f"max(x.{w}) FILTER (WHERE r.o = 0) AS {w}_all" for w in words]
    pivot += [f"max(x.{w}) FILTER (WHERE r.o = 0) - max(x.{w}) FILTER (WHERE r.o = {o}) AS {w}_{o}"
              for o in offsets for w in words]

    def latest(key: str) -> str:
        """The latest time of ``key``'s events: the greatest of its groups' (NULLs ignored)."""
        ids = [j for j, g in enumerate(groups) if set(g) <= set(_atom_ids(filters[key], atoms))]
        if not ids:
            return "CAST(NULL AS BIGINT)"
        return f"g{ids[0]}" if len(ids) == 1 else f"greatest({', '.join(f'g{j}' for j in ids)})"

    last = f"OVER (PARTITION BY cs.{LEAD_ID} ORDER BY cs.c ROWS UNBOUNDED PRECEDING)"
    steps = [
        # every cutoff and window start of every snapshot (``roles``), and once per lead (``bounds``)
        # with the first cutoff at or after it (``cb``)
        f"CREATE OR REPLACE TEMP TABLE roles AS SELECT {LEAD_ID}, c - d AS b, _sid, CAST(o AS SMALLINT) AS o "
        f"FROM spine, (VALUES {offs}) v(d, o)",
        f"CREATE OR REPLACE TEMP TABLE bounds AS SELECT d.{LEAD_ID}, d.b, s.c AS cb "
        f"FROM (SELECT DISTINCT {LEAD_ID}, b FROM roles) d ASOF JOIN (SELECT DISTINCT {LEAD_ID}, c FROM spine) s "
        f"ON d.{LEAD_ID} = s.{LEAD_ID} AND s.c >= d.b",
    ]
    usage = _usage_sql(catalog, atoms)
    used = _usage_atoms(catalog, atoms)
    if usage:
        steps += [
            f"CREATE OR REPLACE TEMP TABLE use_ev AS SELECT {LEAD_ID}, t, k, prop FROM ({ev(_types_in(used, atoms))}) e "
            f"WHERE {_k_in(used, len(atoms))}",
            f"CREATE OR REPLACE TEMP TABLE usage AS {usage}",
            "DROP TABLE use_ev",
        ]
    steps += [
        # each event goes to the first boundary after it, so to the interval of the cutoff ``cb``: packed
        # counts per (lead, boundary), and the latest event time per (lead, cutoff interval, recency group)
        f"CREATE OR REPLACE TEMP TABLE agg AS SELECT e.{LEAD_ID}, bd.b, bd.cb, e.g, GROUPING(bd.b) AS by_cutoff, "
        f"{', '.join(sums)}, max(e.t) AS mt, count(*) AS n "
        f"FROM ({ev('TRUE')}) e ASOF JOIN bounds bd ON e.{LEAD_ID} = bd.{LEAD_ID} AND e.t < bd.b "
        f"GROUP BY GROUPING SETS ((e.{LEAD_ID}, bd.b), (e.{LEAD_ID}, bd.cb, e.g))",
        # the events that reach a snapshot: those of spine leads before their last cutoff
        "INSERT INTO used SELECT COALESCE(sum(n), 0) FROM agg WHERE by_cutoff = 0",
        # C(b) = events before b = the running sum up to b, handed to the snapshots whose cutoff or
        # window start b is
        f"CREATE OR REPLACE TEMP TABLE cum AS SELECT r._sid, {', '.join(pivot)} FROM ("
        f"SELECT bd.{LEAD_ID}, bd.b, {', '.join(running)} FROM bounds bd "
        f"LEFT JOIN (SELECT * FROM agg WHERE by_cutoff = 0) a ON a.{LEAD_ID} = bd.{LEAD_ID} AND a.b = bd.b) x "
        f"JOIN roles r ON r.{LEAD_ID} = x.{LEAD_ID} AND r.b = x.b GROUP BY r._sid",
        "DROP TABLE roles",
        # recency: cutoff intervals are disjoint and in time order, so the latest event before a cutoff
        # is the last non-null interval maximum
        f"CREATE OR REPLACE TEMP TABLE rec AS SELECT {LEAD_ID}, c"
        + "".join(f", {latest(k)} AS {_q('m_' + k)}" for k in recency)
        + f" FROM (SELECT cs.{LEAD_ID}, cs.c"
        + "".join(f", last_value(p.g{j} IGNORE NULLS) {last} AS g{j}" for j in range(len(groups)))
        + f" FROM (SELECT DISTINCT {LEAD_ID}, c FROM spine) cs LEFT JOIN (SELECT {LEAD_ID}, cb"
        + "".join(f", max(mt) FILTER (WHERE g = {j}) AS g{j}" for j in range(len(groups)))
        + f" FROM agg WHERE by_cutoff = 1 GROUP BY {LEAD_ID}, cb) p ON p.{LEAD_ID} = cs.{LEAD_ID} AND p.cb = cs.c)",
        "DROP TABLE agg",
    ]
    key = [f"s.{LEAD_ID}", f"s.{CUTOFF}"] + ([f"s.{LABEL}"] if has_label else [])
    # the narrow per-snapshot row, put into spine order (over all partitions) before the wide projection
    narrow = [*key, "s._sid", "s.c"]
    narrow += [f"{h} AS {w}_{o}_{part}" for o in ["all", *offsets] for w in words
               for part, h in zip(("lo", "hi"), _Layout.halves(f"c0.{w}_{o}"))]
    narrow += [f"rc.{_q('m_' + k)}" for k in recency]
    joins = ["JOIN cum c0 ON c0._sid = s._sid", f"JOIN rec rc ON rc.{LEAD_ID} = s.{LEAD_ID} AND rc.c = s.c"]
    if usage:
        joins.append("LEFT JOIN usage u ON u._sid = s._sid")
        narrow += [f"u.{_q('u_' + f.name)}" for f in catalog if f.kind in (Kind.ACTIVE_DAYS, Kind.DISTINCT_VALUES)]
    lead_cols = list(dict.fromkeys(f.column for f in catalog if f.kind in (Kind.ATTRIBUTE, Kind.SINCE)))
    inner = [LEAD_ID, CUTOFF] + ([LABEL] if has_label else []) + ["c"]
    inner += [layout.unpack(i, f"w{i // layout.per_word}_{o}_lo", f"w{i // layout.per_word}_{o}_hi") + f" AS a{i}_{o}"
              for o in ["all", *offsets] for i in range(len(atoms))]
    inner += [_q("m_" + k) for k in recency]
    inner += [_q("u_" + f.name) for f in catalog if f.kind in (Kind.ACTIVE_DAYS, Kind.DISTINCT_VALUES)] if usage else []
    inner += [_q("l_" + c) for c in lead_cols]
    totals = [
        "(" + " + ".join(f"a{i}_{w}" for i in range(len(atoms))) + f") AS tot_{w}" for w in ["all", *offsets]
    ]
    outer = [LEAD_ID, CUTOFF] + ([LABEL] if has_label else [])
    outer += [f"{_feature_expr(f, filters, atoms)} AS {_q(f.name)}" for f in catalog]
    final = (
        f"SELECT {', '.join(outer)} FROM (SELECT *, {', '.join(totals)} FROM (SELECT {', '.join(inner)} FROM "
        "narrow))"
    )
    steps += ["DROP TABLE bounds"]
    return _Plan(part=steps, narrow=f"SELECT {', '.join(narrow)} FROM spine s {' '.join(joins)}", final=final,
                 lead_columns=tuple(lead_cols))


# --- running it ----------------------------------------------------------------------------------


def _connect(threads: int, memory_limit: str, temp_dir: str | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": threads, "memory_limit": memory_limit})
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    if temp_dir:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
        con.execute("SET temp_directory = ?", [str(temp_dir)])
    return con


def _events_source(con: duckdb.DuckDBPyConnection, events: str | list[str] | pd.DataFrame | pa.Table) -> str:
    """A SQL relation for the events: a Parquet glob/list, or an in-memory frame registered as ``events_in``."""
    if isinstance(events, (pd.DataFrame, pa.Table)):
        con.register("events_in", events)
        return "events_in"
    files = [events] if isinstance(events, (str, os.PathLike)) else list(events)
    return "read_parquet([" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "])"


def _lead_columns(leads: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """The leads columns the catalog reads; categorical attributes as text ("true"/"false" for booleans)."""
    out = {LEAD_ID: leads[LEAD_ID]}
    for f in catalog:
        if f.kind is Kind.SINCE:
            out[f.column] = leads[f.column]
        elif f.kind is Kind.ATTRIBUTE:
            col = leads[f.column]
            out[f.column] = col.map(category_text, na_action="ignore").astype(object) if f.categorical else col
    return pd.DataFrame(out)


EVENTS_PER_GB = 3_500_000
"""Events one partition may hold per GB of ``memory_limit``: sized so no step of a partition spills
(at 4GB, 14M events: 8 partitions for the 1M-lead benchmark base)."""


def _memory_bytes(memory_limit: str) -> int:
    """``"4GB"`` / ``"512MB"`` / ``"2GiB"`` as bytes (DuckDB's memory_limit spelling)."""
    text = memory_limit.strip().upper().replace(" ", "")
    for unit, factor in (("TIB", 2**40), ("GIB", 2**30), ("MIB", 2**20), ("KIB", 2**10), ("TB", 10**12),
                         ("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(float(text))


def partition_count(events: int, memory_limit: str) -> int:
    """How many lead partitions a build over ``events`` events (of the spine's leads) needs to stay
    in ``memory_limit``."""
    per_partition = max(1, int(EVENTS_PER_GB * _memory_bytes(memory_limit) / 1e9))
    return max(1, -(-int(events) // per_partition))


def _prepare(con: duckdb.DuckDBPyConnection, leads: pd.DataFrame, source: str, spine: pd.DataFrame,
             catalog: Catalog, partitions: int | None, memory_limit: str,
             ) -> tuple[_Layout, Callable[[str], str], list[tuple[Any, Any]] | None, dict[str, Any]]:
    """Create ``spine_all``, ``leads`` and ``used``; the packing layout, the events SQL, the lead
    partitions (``None``: one pass over everything) and what the events hold."""
    keep = [LEAD_ID, CUTOFF] + ([LABEL] if LABEL in spine.columns else [])
    con.register("spine_in", spine[keep].assign(_sid=range(len(spine))))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE spine_all AS SELECT *, epoch_us(CAST({CUTOFF} AS TIMESTAMPTZ)) AS c "
        "FROM spine_in"
    )
    con.register("leads_in", _lead_columns(leads, catalog))
    since = {f.column for f in catalog if f.kind is Kind.SINCE}
    lead_cols = [
        f"epoch_us(CAST({_q(c)} AS TIMESTAMPTZ)) AS {_q(c)}" if c in since else _q(c)
        for c in _lead_columns(leads.iloc[:0], catalog).columns
    ]
    con.execute(f"CREATE OR REPLACE TEMP TABLE leads AS SELECT {', '.join(lead_cols)} FROM leads_in "
                f"WHERE {LEAD_ID} IN (SELECT DISTINCT {LEAD_ID} FROM spine_all)")
    con.execute("CREATE OR REPLACE TEMP TABLE used (n HUGEINT)")

    filters = _filters(catalog)
    atoms = _atoms(filters)
    try:
        present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        scanned = int(con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0])
    except (duckdb.InvalidInputException, duckdb.IOException) as exc:
        found = re.search(r"file '([^']+)'", str(exc))
        raise DataContractError(
            found.group(1) if found else source, f"the events cannot be read: {str(exc).splitlines()[0]}",
            expected="Parquet files of events (as the validate stage writes them)",
        ) from exc
    props = [
        (f"{_q(c)}" if c in present else "CAST(NULL AS VARCHAR)") + f" AS {_q(c)}"
        for c in sorted(_event_columns(catalog) - {EVENT_TYPE})
    ]
    distinct = [f for f in catalog if f.kind is Kind.DISTINCT_VALUES]
    if len({f.column for f in distinct}) > 1:
        raise ValueError("distinct-value features over more than one event property are not supported")
    prop = (f"CASE WHEN {distinct[0].events.sql()} THEN {_q(distinct[0].column)} END"
            if distinct else "CAST(NULL AS VARCHAR)")

    # per spine lead, its events (all of them: an upper bound of what reaches its snapshots, so of
    # every packed slot); partitions are ranges of lead ids holding about equal numbers of events
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE lead_n AS SELECT s.{LEAD_ID}, COALESCE(n.n, 0) AS n "
        f"FROM (SELECT DISTINCT {LEAD_ID} FROM spine_all) s LEFT JOIN "
        f"(SELECT {LEAD_ID}, count(*) AS n FROM {source} GROUP BY {LEAD_ID}) n USING ({LEAD_ID})"
    )
    most, total = con.execute("SELECT max(n), COALESCE(sum(n), 0) FROM lead_n").fetchall()[0]
    k = partitions if partitions is not None else partition_count(int(total), memory_limit)
    layout = _Layout(tuple(atoms), bits=max(1, int(most or 0).bit_length()))
    bounds: list[tuple[Any, Any]] | None = None
    if k > 1:
        bounds = [(lo, hi) for lo, hi in con.execute(
            f"SELECT min({LEAD_ID}), max({LEAD_ID}) FROM (SELECT {LEAD_ID}, "
            f"least({k - 1}, CAST(floor((sum(n) OVER (ORDER BY {LEAD_ID}) - n) * {k} / "
            f"greatest(1, sum(n) OVER ())) AS BIGINT)) AS p FROM lead_n) GROUP BY p ORDER BY p"
        ).fetchall()]
    con.execute("DROP TABLE lead_n")
    where = f"e.{LEAD_ID} BETWEEN $lo AND $hi" if bounds else "TRUE"

    group, atom = _group_case(_recency_groups(catalog, atoms), len(atoms)), _atom_case(atoms)

    def ev(condition: str) -> str:
        return (
            f"SELECT {LEAD_ID}, t, k, {group} AS g, prop "
            f"FROM (SELECT {LEAD_ID}, t, {atom} AS k, {prop} AS prop "
            f"FROM (SELECT e.{LEAD_ID}, epoch_us(CAST(e.{TS} AS TIMESTAMPTZ)) AS t, e.{EVENT_TYPE}, "
            f"{', '.join(props) or 'NULL AS _none'} FROM {source} e WHERE {where} AND {condition}) e)"
        )

    # event types no declaration names, among the events of spine leads before their last cutoff
    known = sorted({str(a.event_type) for a in atoms if a.event_type is not None})
    other = f"e.{EVENT_TYPE} NOT IN ({', '.join(map(_lit, known))})" if known else "TRUE"
    unknown = con.execute(
        f"SELECT e.{EVENT_TYPE}, count(*) FROM {source} e "
        f"JOIN (SELECT {LEAD_ID}, max(c) AS cmax FROM spine_all GROUP BY {LEAD_ID}) last USING ({LEAD_ID}) "
        f"WHERE {other} "
        f"AND epoch_us(CAST(e.{TS} AS TIMESTAMPTZ)) < last.cmax GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    return layout, ev, bounds, {
        "events_scanned": scanned,
        "unknown_event_types": {str(t): int(v) for t, v in unknown},
        "partitions": len(bounds) if bounds else 1,
    }


def _run(con: duckdb.DuckDBPyConnection, catalog: Catalog, layout: _Layout, ev: Callable[[str], str],
         bounds: list[tuple[Any, Any]] | None, has_label: bool) -> tuple[str, int, int]:
    """Run the plan per lead partition into ``narrow``; the final SELECT (spine order), the number of
    boundaries and of events used."""
    plan = _plan(catalog, layout, has_label, ev)
    boundaries = 0
    n_spine = int(con.execute("SELECT count(*) FROM spine_all").fetchall()[0][0])
    rows = _SpineRows(n_spine)
    for part in bounds or [None]:
        params = None if part is None else {"lo": part[0], "hi": part[1]}
        where = f" WHERE {LEAD_ID} BETWEEN $lo AND $hi" if params else ""
        con.execute(f"CREATE OR REPLACE TEMP TABLE spine AS SELECT * FROM spine_all{where}", params)
        for sql in plan.part:
            if sql.startswith("DROP TABLE bounds"):
                boundaries += int(con.execute("SELECT count(*) FROM bounds").fetchall()[0][0])
            con.execute(sql, params if params and "$lo" in sql else None)
        rows.add(con.sql(plan.narrow).to_arrow_table())
        for table in ("cum", "rec", "usage", "spine"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    used = int(con.execute("SELECT COALESCE(sum(n), 0) FROM used").fetchall()[0][0])
    con.execute("DROP TABLE spine_all")
    leads = con.sql("SELECT * FROM leads").to_arrow_table()
    con.execute("DROP TABLE leads")
    con.register("narrow", rows.table(leads, plan.lead_columns))
    con.execute("SET preserve_insertion_order = true")  # the final SELECT keeps the scan's (spine) order
    return plan.final, boundaries, used


class _SpineRows:
    """The partitions' narrow rows, put straight into spine order as they arrive.

    Why by hand: ``_sid`` numbers the spine 0..n-1 and every snapshot has exactly one narrow row, so
    each partition's rows are scattered to their final positions (one numpy assignment per column)
    and no sort is needed; DuckDB's ORDER BY sorted the same rows by comparison, about half the final
    step's time on the 1M-lead base. Each partition's rows are released once placed, so the rows are
    held once, as the DuckDB table they replace was.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: dict[str, np.ndarray] = {}
        self.valid: dict[str, np.ndarray] = {}
        self.types: dict[str, pa.DataType] = {}
        self.other: dict[str, list[pa.Array]] = {}  # columns of other types (text ids, booleans): gathered
        self.sids: list[np.ndarray] = []
        self.seen = np.zeros(n, dtype=bool)

    def add(self, piece: pa.Table) -> None:
        sid = piece.column("_sid").to_numpy()
        if len(sid) and (sid.min() < 0 or sid.max() >= self.n or self.seen[sid].any()):
            raise RuntimeError("the builder produced a snapshot row twice or outside the spine")
        self.seen[sid] = True
        self.sids.append(sid)
        for name in piece.column_names:
            if name == "_sid":
                continue
            column = piece.column(name).combine_chunks()
            kind = self.types.setdefault(name, column.type)
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind)):
                self.other.setdefault(name, []).append(column)
                continue
            storage = column.cast(pa.int64()) if pa.types.is_timestamp(kind) else column
            if name not in self.values:
                dtype = storage.type.to_pandas_dtype()
                self.values[name] = np.zeros(self.n, dtype=dtype)
            if column.null_count:
                if name not in self.valid:
                    self.valid[name] = np.ones(self.n, dtype=bool)
                self.valid[name][sid] = column.is_valid().to_numpy(zero_copy_only=False)
                storage = pc.fill_null(storage, 0)
            self.values[name][sid] = storage.to_numpy(zero_copy_only=False)

    def table(self, leads: pa.Table, lead_columns: tuple[str, ...]) -> pa.Table:
        """All rows in spine order, with their lead's columns (``l_<name>``, by lead id)."""
        if not self.seen.all():
            raise RuntimeError("the builder lost snapshots of the spine")
        names, arrays = [], []
        if self.other:  # for gathered columns: spine row i is row order[i] of the pieces, concatenated
            order = np.empty(self.n, dtype=np.int64)
            order[np.concatenate(self.sids)] = np.arange(self.n)
            take = pa.array(order)
        for name in self.types:
            if name in self.other:
                arrays.append(pa.concat_arrays(self.other.pop(name)).take(take))
                names.append(name)
                continue
            values = self.values[name]
            valid = self.valid.get(name)
            bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
            nulls = -1 if valid is None else int(self.n - valid.sum())
            arrays.append(pa.Array.from_buffers(self.types[name], self.n, [bitmap, pa.py_buffer(values)],
                                                null_count=nulls if bitmap is not None else 0))
            names.append(name)
        self.values, self.valid = {}, {}
        at = pc.index_in(arrays[names.index(LEAD_ID)], value_set=leads.column(LEAD_ID))  # null: no leads row
        for name in lead_columns:
            column = leads.column(name)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                column = pc.dictionary_encode(column)  # gathered as indices: a fraction of the text's memory
            names.append("l_" + name)
            arrays.append(column.take(at))
        return pa.Table.from_arrays(arrays, names=names)


def build_features(
    leads: pd.DataFrame,
    events: pd.DataFrame | pa.Table,
    spine: pd.DataFrame,
    catalog: Catalog,
    *,
    threads: int = 1,
    memory_limit: str = "2GB",
    partitions: int | None = None,
) -> pd.DataFrame:
    """In-memory variant of ``build_snapshots`` (same SQL): the snapshot frame for small inputs."""
    with _connect(threads, memory_limit, None) as con:
        source = _events_source(con, events)
        layout, ev, bounds, _ = _prepare(con, leads, source, spine, catalog, partitions, memory_limit)
        select, _, _ = _run(con, catalog, layout, ev, bounds, LABEL in spine.columns)
        return con.sql(select).to_arrow_table().to_pandas()


def build_snapshots(
    leads: pd.DataFrame,
    events_glob: str | list[str],
    spine: pd.DataFrame,
    catalog: Catalog,
    out_path: str | Path,
    *,
    threads: int,
    memory_limit: str,
    temp_dir: str | None,
    partitions: int | None = None,
) -> BuildStats:
    """Write the snapshot Parquet: ``lead_id, cutoff[, label]`` then the catalog's features in order.

    ``spine`` is a training spine ``(lead_id, cutoff, label)`` or a scoring spine ``(lead_id, cutoff)``;
    rows keep the spine's order. Events are read from Parquet by DuckDB, once per lead partition
    (``partitions``, by default from the number of events and ``memory_limit``); Parquet row-group
    statistics let each pass skip the files and row groups of other leads' ranges.
    """
    start = time.perf_counter()
    with _connect(threads, memory_limit, temp_dir) as con:
        layout, ev, bounds, seen = _prepare(con, leads, _events_source(con, events_glob), spine, catalog,
                                            partitions, memory_limit)
        select, boundaries, used = _run(con, catalog, layout, ev, bounds, LABEL in spine.columns)
        out = str(out_path).replace("'", "''")
        con.execute(f"COPY ({select}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    if temp_dir and Path(temp_dir).is_dir() and not any(Path(temp_dir).iterdir()):
        Path(temp_dir).rmdir()  # DuckDB removes its spill files; leave no empty folder behind
    return BuildStats(
        seconds=round(time.perf_counter() - start, 3), rows=int(len(spine)), features=len(catalog),
        boundaries=boundaries, events_used=used, **seen,
    )
