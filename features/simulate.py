"""The simulated lead base: leadlift's embedded default data, with its hidden truth.

A B2B lead base is generated from a small generative model of the funnel (docs: domain.md):

* Leads are created over ``months`` from ``start`` (mild growth, fewer on weekends, business
  hours). Each has a hidden **persona** (ready buyer, slow evaluator, researcher, tire-kicker)
  that shapes its observable fit attributes and behaviour, and a hidden **fit** in (0, 1): a
  logistic function of the fit attributes plus a little unobservable noise (budget, timing).
* **Intent** is a daily Markov chain per lead over ``STATES`` with persona-specific transition
  matrices (``TRANSITIONS``). Each day the lead's own activity is Poisson with a rate per
  (persona, state) split over activity kinds (page views by page type, downloads by content
  type, webinars, chat, forms, ROI calculator, demo and trial requests); marketing sends
  e-mails on weekdays until the lead unsubscribes, and opens, clicks and replies depend on the
  state; after a trial sign-up an engaged lead uses the product on some days.
* **MQL**: marketing automation's points rule (``FIT_POINTS`` + ``KIND_POINTS`` per event,
  ``MQL_THRESHOLD``) runs over the events as they happen; ``mql_at`` is the time of the event
  whose points first take the running score to the threshold. The behaviour score decays at
  day boundaries (``SCORE_HALF_LIFE_DAYS``) and its points are never negative, so within a day
  the score only rises and the crossing event is well defined.
* **After MQL** the sales process runs on *MQL-days*: MQL-day ``j`` is the interval
  ``[mql_at + j days, mql_at + (j+1) days)``. In MQL-day ``j`` the lead's intent state is the
  state of the calendar day containing ``mql_at + j days``; given that state, one categorical
  draw decides: hand-off accepted by sales (SQL), hand-off rejected (a ``sales_recycled``
  event; the next day's state is ``nurture``, the lead stays an open MQL), disqualified, or
  nothing (``daily_outcome_probabilities``). SQL, recycle and DQ times are uniform within
  their MQL-day. A closed lead (SQL or DQ) has one more calendar day of events, then none.
* Everything happens strictly before ``start + months``; outcomes that would fall later are
  not observed (left null).

Chunks of ``chunk_leads`` leads are independent and seeded by ``[seed, chunk_index]``, so the
base is the same whatever the number of worker processes. The generator is vectorised over
the leads alive on each day (one Python iteration per calendar day), with integer codes for
all categorical values until the Arrow table is built.

The hidden truth is kept for evaluation only (never a feature): per lead the persona, fit and
trial engagement, the intent states as run-length segments, and ``oracle_probabilities``, the
exact probability of the label given the hidden state at a snapshot's cutoff.
"""

from __future__ import annotations

import ctypes
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.contract import (
    CAMPAIGN,
    CHANNEL,
    CHANNELS,
    CONTENT_TYPE,
    CONTENT_TYPES,
    CREATED_AT,
    CUTOFF,
    DISQUALIFIED_AT,
    EVENT_PROPERTY_COLUMNS,
    EVENT_TYPE,
    FEATURE,
    LEAD_ID,
    MQL_AT,
    PAGE_TYPE,
    PAGE_TYPES,
    PRODUCT_FEATURES,
    SQL_AT,
    TIME_UNIT,
    TIMEZONE,
    TS,
    EventType,
)


class SimulateParams(BaseModel):
    """The ``simulate:`` section of ``params.yaml``: size, time span, seed, parallelism, a few rates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    leads: int = Field(20_000, ge=1)
    start: str = "2024-03-01"
    """First day (UTC midnight) leads can be created."""
    months: int = Field(24, ge=18, le=120)
    seed: int = Field(42, ge=0)
    chunk_leads: int = Field(50_000, ge=1, le=1_000_000)
    workers: int = Field(2, ge=1)
    growth: float = Field(0.5, ge=0.0, le=10.0)
    """Lead creation rate at the end of the period relative to the start, minus one."""
    sends_per_week: float = Field(1.2, ge=0.0, le=5.0)
    """Marketing e-mails per subscribed lead per week (weekdays only)."""
    activity_scale: float = Field(1.0, gt=0.0, le=10.0)
    """Multiplies every rate of the leads' own activity (page views, downloads, ...)."""
    handoff_scale: float = Field(1.0, gt=0.0, le=5.0)
    """Multiplies the daily hand-off-to-sales probability of an open MQL."""

    @field_validator("start")
    @classmethod
    def _is_date(cls, value: str) -> str:
        ts = pd.Timestamp(value)
        if ts != ts.normalize():
            raise ValueError("start must be a date (midnight), e.g. 2024-03-01")
        return value


@dataclass(frozen=True)
class Chunk:
    """One independently simulated slice of the lead base."""

    leads: pd.DataFrame
    """The leads table (contract columns, then fit attributes)."""
    events: pa.Table
    """Events in ``features.validate.events_arrow_schema(True)``, sorted by (lead_id, ts); text columns
    dictionary-encoded when simulated with ``encoded=True``."""
    truth: pd.DataFrame
    """Hidden per-lead truth: ``lead_id, persona, fit, outbound, authority, trial_engaged``."""
    states: pa.Table
    """Intent states as run-length segments ``lead_id, start_day, end_day, state`` (days since
    ``start``, inclusive; ``state`` indexes ``STATES``)."""


# --- the hidden world ----------------------------------------------------------------------------

PERSONAS: tuple[str, ...] = ("ready_buyer", "slow_evaluator", "researcher", "tire_kicker")
PERSONA_SHARES = np.array([0.10, 0.25, 0.25, 0.40])
BUYER, EVALUATOR, RESEARCHER, TIRE_KICKER = range(4)

STATES: tuple[str, ...] = ("dormant", "nurture", "researching", "evaluating", "buying")
DORMANT, NURTURE, RESEARCHING, EVALUATING, BUYING = range(5)
N_STATES = len(STATES)


def _chain(moves: dict[int, dict[int, float]]) -> np.ndarray:
    """A daily transition matrix from its off-diagonal probabilities (the rest stays put)."""
    m = np.zeros((N_STATES, N_STATES))
    for src, dests in moves.items():
        for dst, p in dests.items():
            m[src, dst] = p
        m[src, src] = 1.0 - sum(dests.values())
    return m


D_, N_, R_, E_, B_ = DORMANT, NURTURE, RESEARCHING, EVALUATING, BUYING
TRANSITIONS = np.stack(
    [
        _chain({D_: {N_: .015, R_: .010}, N_: {D_: .008, R_: .025, E_: .008}, R_: {N_: .015, E_: .030, B_: .006},
                E_: {R_: .015, N_: .008, B_: .030}, B_: {E_: .030, N_: .015}}),
        _chain({D_: {N_: .012, R_: .006}, N_: {D_: .010, R_: .020, E_: .004}, R_: {N_: .020, E_: .020, B_: .002},
                E_: {R_: .020, N_: .010, B_: .012}, B_: {E_: .040, N_: .020}}),
        _chain({D_: {N_: .010, R_: .008}, N_: {D_: .012, R_: .025, E_: .002}, R_: {N_: .025, E_: .006},
                E_: {R_: .040, N_: .010, B_: .002}, B_: {E_: .060, N_: .030}}),
        _chain({D_: {N_: .010, R_: .010}, N_: {D_: .015, R_: .030}, R_: {N_: .030, E_: .002},
                E_: {R_: .050, N_: .020, B_: .001}, B_: {E_: .080, N_: .040}}),
    ]
)
"""Daily intent transitions per persona, ``[persona, from, to]``: weeks-long states, bursts
of evaluating/buying for buyers, research and nurture cycles for tire-kickers."""

INITIAL_STATE = np.array(
    [
        [0.00, 0.15, 0.30, 0.30, 0.25],
        [0.05, 0.25, 0.40, 0.25, 0.05],
        [0.05, 0.30, 0.55, 0.10, 0.00],
        [0.10, 0.35, 0.50, 0.05, 0.00],
    ]
)
"""Intent state on the creation day of an inbound lead, per persona."""
INITIAL_STATE_OUTBOUND = np.array([0.50, 0.40, 0.10, 0.00, 0.00])
"""Outbound leads did not ask for anything: they start dormant or in nurture."""

# Sales process per MQL-day (see daily_outcome_probabilities).
HANDOFF_BY_STATE = np.array([0.001, 0.004, 0.010, 0.040, 0.150])
HANDOFF_BY_PERSONA = np.array([1.2, 1.0, 0.7, 0.5])
ACCEPT_BY_PERSONA = np.array([0.90, 0.70, 0.35, 0.08])
DQ_BY_STATE = np.array([0.006, 0.003, 0.002, 0.001, 0.0005])
DQ_BY_PERSONA = np.array([0.3, 0.6, 1.0, 2.0])
ACCEPT_WITHOUT_AUTHORITY = 0.3
"""Sales accepts a hand-off from a lead without buying authority (BANT's A) this much less often."""

# --- event kinds -----------------------------------------------------------------------------------
# A kind is an event type with its page or content type. The first N_ACTIVITY kinds are the lead's
# own site activity, drawn from a Poisson total per lead-day and split by (persona, state).

EVENT_TYPES: tuple[str, ...] = tuple(e.value for e in EventType)
CAMPAIGNS: tuple[str, ...] = (
    "newsletter", "nurture_track", "product_update", "outbound_sequence", "brand_search", "retargeting",
    "trade_show", "q1_webinar_series", "q2_webinar_series", "q3_webinar_series", "q4_webinar_series",
)
_CAMP = {name: i for i, name in enumerate(CAMPAIGNS)}
_CH = {name: i for i, name in enumerate(CHANNELS)}

# (event type, page type, content type, points, rate per day by state, multiplier by persona)
_ACTIVITY: tuple[tuple[str, str | None, str | None, float, tuple, tuple], ...] = (
    ("page_view", "home", None, 0, (.010, .040, .120, .200, .300), (1.0, 1.0, 1.0, 1.0)),
    ("page_view", "blog", None, 1, (.010, .060, .250, .150, .100), (0.6, 0.8, 1.5, 2.5)),
    ("page_view", "product", None, 3, (.003, .020, .100, .300, .450), (1.2, 1.1, 0.8, 0.5)),
    ("page_view", "pricing", None, 10, (.001, .004, .020, .180, .450), (1.3, 1.0, 0.5, 0.15)),
    ("page_view", "case_study", None, 3, (.001, .004, .030, .120, .150), (1.0, 1.3, 1.0, 0.4)),
    ("page_view", "docs", None, 2, (.001, .005, .040, .100, .150), (1.0, 1.3, 1.2, 0.6)),
    ("page_view", "careers", None, 0, (.004, .008, .015, .010, .005), (0.3, 0.5, 1.0, 4.0)),
    ("content_download", None, "guide", 5, (.0005, .006, .050, .020, .010), (0.4, 0.7, 1.5, 3.0)),
    ("content_download", None, "ebook", 5, (.0005, .005, .040, .015, .008), (0.4, 0.7, 1.5, 3.0)),
    ("content_download", None, "whitepaper", 5, (.0003, .004, .030, .020, .010), (0.5, 0.8, 1.5, 2.5)),
    ("content_download", None, "checklist", 5, (.0003, .003, .020, .015, .010), (0.5, 0.8, 1.2, 2.5)),
    ("content_download", None, "case_study", 8, (.0, .001, .008, .050, .040), (1.2, 1.5, 0.8, 0.3)),
    ("content_download", None, "analyst_report", 8, (.0, .001, .010, .040, .030), (1.0, 1.5, 1.2, 0.4)),
    ("webinar_register", None, None, 5, (.0003, .005, .020, .015, .008), (0.5, 0.8, 1.5, 3.0)),
    ("webinar_attend", None, None, 10, (.0002, .003, .012, .010, .005), (0.5, 0.8, 1.5, 3.0)),
    ("chat", None, None, 10, (.0, .0005, .004, .025, .050), (1.3, 1.0, 0.6, 0.3)),
    ("contact_form", None, None, 70, (.0, .0002, .001, .008, .025), (1.3, 1.0, 0.5, 0.2)),
    ("roi_calculator", None, None, 15, (.0, .0, .001, .025, .040), (1.2, 1.1, 0.6, 0.15)),
    ("demo_request", None, None, 100, (.0, .0, .0003, .006, .040), (1.5, 1.0, 0.3, 0.05)),
    ("trial_signup", None, None, 20, (.0, .0, .001, .010, .015), (1.0, 1.2, 0.8, 0.4)),
)
N_ACTIVITY = len(_ACTIVITY)
# The other kinds, generated by their own processes.
K_EMAIL_SENT, K_EMAIL_OPEN, K_EMAIL_CLICK, K_EMAIL_REPLY, K_EMAIL_UNSUB, K_USAGE, K_RECYCLED = range(
    N_ACTIVITY, N_ACTIVITY + 7
)
_OTHER = (
    ("email_sent", 0), ("email_open", 1), ("email_click", 3), ("email_reply", 10), ("email_unsubscribe", 0),
    ("product_usage", 2), ("sales_recycled", 0),
)
N_KINDS = N_ACTIVITY + len(_OTHER)
K_PRODUCT_PAGE = 2
K_TRIAL = N_ACTIVITY - 1


def _kind_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per kind: event type code, page type code, content type code (-1 = none), MQL points."""
    etype = np.full(N_KINDS, -1, np.int8)
    page = np.full(N_KINDS, -1, np.int8)
    content = np.full(N_KINDS, -1, np.int8)
    points = np.zeros(N_KINDS)
    for k, (et, pg, ct, pts, _, _) in enumerate(_ACTIVITY):
        etype[k] = EVENT_TYPES.index(et)
        page[k] = PAGE_TYPES.index(pg) if pg else -1
        content[k] = CONTENT_TYPES.index(ct) if ct else -1
        points[k] = pts
    for k, (et, pts) in enumerate(_OTHER, start=N_ACTIVITY):
        etype[k] = EVENT_TYPES.index(et)
        points[k] = pts
    return etype, page, content, points


KIND_EVENT_TYPE, KIND_PAGE, KIND_CONTENT, KIND_POINTS = _kind_tables()
"""``KIND_POINTS``: marketing automation's behaviour points per event (never negative)."""
MQL_THRESHOLD = 65.0
"""The running points score (fit + behaviour) at which marketing automation marks a lead MQL."""
SCORE_HALF_LIFE_DAYS = 45.0
SCORE_DECAY = 0.5 ** (1.0 / SCORE_HALF_LIFE_DAYS)
"""The behaviour score decays at each day boundary (no decay within a day), so old activity fades."""

def activity_rates(scale: float) -> np.ndarray:
    """Expected activity events per lead-day, ``[persona, state, kind]`` (before weekday/lead factors)."""
    by_state = np.array([a[4] for a in _ACTIVITY]).T  # (state, kind)
    by_persona = np.array([a[5] for a in _ACTIVITY]).T  # (persona, kind)
    return scale * by_persona[:, None, :] * by_state[None, :, :]


# First touch of an inbound lead (the form that created it), per persona over activity kinds.
_FIRST_TOUCH = {
    BUYER: {"ct:guide": .15, "ct:ebook": .05, "ct:case_study": .15, "webinar_register": .10, "contact_form": .20,
            "demo_request": .25, "trial_signup": .10},
    EVALUATOR: {"ct:guide": .20, "ct:ebook": .10, "ct:case_study": .15, "ct:analyst_report": .10,
                "webinar_register": .20, "contact_form": .10, "demo_request": .08, "trial_signup": .07},
    RESEARCHER: {"ct:guide": .30, "ct:ebook": .20, "ct:whitepaper": .15, "ct:analyst_report": .10,
                 "webinar_register": .20, "contact_form": .03, "trial_signup": .02},
    TIRE_KICKER: {"ct:guide": .30, "ct:ebook": .25, "ct:whitepaper": .10, "ct:checklist": .15,
                  "webinar_register": .18, "contact_form": .02},
}


def _first_touch_table() -> np.ndarray:
    """``[persona, kind]`` probabilities of the creating event of an inbound lead."""
    table = np.zeros((len(PERSONAS), N_ACTIVITY))
    for p, probs in _FIRST_TOUCH.items():
        for key, prob in probs.items():
            if key.startswith("ct:"):
                k = next(i for i, a in enumerate(_ACTIVITY) if a[0] == "content_download" and a[2] == key[3:])
            else:
                k = next(i for i, a in enumerate(_ACTIVITY) if a[0] == key)
            table[p, k] = prob
    return table / table.sum(axis=1, keepdims=True)


# E-mail: per send, by state (and persona).
OPEN_BY_STATE = np.array([0.06, 0.15, 0.25, 0.35, 0.40])
OPEN_BY_PERSONA = np.array([1.0, 1.0, 1.1, 1.2])
CLICK_BY_STATE = np.array([0.05, 0.12, 0.20, 0.30, 0.35])
REPLY_BY_STATE = np.array([0.0, 0.003, 0.010, 0.030, 0.060])
REPLY_BY_PERSONA = np.array([1.5, 1.2, 0.7, 0.3])
UNSUB_BY_STATE = np.array([0.015, 0.006, 0.004, 0.003, 0.002])
UNSUB_BY_PERSONA = np.array([0.5, 0.8, 1.0, 1.4])

# Trial and product usage (PQL).
TRIAL_DAYS = 30
ENGAGE_BY_PERSONA = np.array([0.85, 0.75, 0.50, 0.25])
"""Share of trial sign-ups that actually use the product; the rest never do."""
USE_BY_STATE = np.array([0.05, 0.15, 0.30, 0.50, 0.70])
USE_BY_PERSONA = np.array([1.2, 1.0, 0.7, 0.5])
USAGE_EXTRA_EVENTS = 1.5
"""Mean product_usage events beyond the first on an active day."""
FEATURE_MIX = np.array(
    [
        [0.25, 0.20, 0.20, 0.15, 0.10, 0.10],
        [0.25, 0.20, 0.20, 0.15, 0.10, 0.10],
        [0.40, 0.25, 0.15, 0.10, 0.05, 0.05],
        [0.60, 0.25, 0.05, 0.05, 0.03, 0.02],
    ]
)
"""Product features used, per persona (``PRODUCT_FEATURES`` order)."""

DOW_ACTIVITY = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.35, 0.30])
"""Activity by day of week (Monday first)."""
DOW_CREATION = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.3, 0.25])
ACTIVITY_SIGMA = 0.3
"""Lead-to-lead spread of activity: a lognormal multiplier with mean 1."""

# --- fit attributes -----------------------------------------------------------------------------------

INDUSTRIES = ("software", "financial_services", "healthcare", "manufacturing", "retail",
              "professional_services", "education", "media", "government", "nonprofit")
ICP_INDUSTRIES = ("software", "financial_services", "healthcare", "manufacturing", "professional_services")
INDUSTRY_MIX = np.array(
    [
        [.30, .20, .12, .12, .08, .10, .02, .02, .02, .02],
        [.25, .15, .12, .12, .10, .12, .04, .04, .03, .03],
        [.15, .10, .10, .10, .10, .10, .12, .10, .08, .05],
        [.08, .05, .05, .05, .07, .10, .30, .20, .05, .05],
    ]
)
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA", "AU", "IN", "BR", "ES")
ICP_COUNTRIES = ("US", "GB", "DE", "NL", "CA", "AU")
COUNTRY_MIX = np.array(
    [
        [.45, .13, .11, .05, .05, .07, .05, .04, .03, .02],
        [.40, .12, .10, .06, .04, .06, .04, .08, .05, .05],
        [.35, .10, .09, .07, .04, .05, .04, .12, .07, .07],
        [.30, .09, .08, .07, .03, .05, .04, .16, .10, .08],
    ]
)
SENIORITIES = ("c_level", "vp", "director", "manager", "individual", "student")
SENIOR = ("c_level", "vp", "director")
SENIORITY_MIX = np.array(
    [
        [.15, .25, .30, .25, .05, .00],
        [.05, .10, .25, .40, .20, .00],
        [.02, .05, .15, .35, .40, .03],
        [.03, .04, .08, .20, .35, .30],
    ]
)
EMPLOYEES_MEDIAN = np.array([600.0, 250.0, 80.0, 15.0])
REVENUE_BANDS = ("under_1m", "1m_10m", "10m_50m", "50m_250m", "over_250m")
FREE_EMAIL_BY_PERSONA = np.array([0.05, 0.10, 0.20, 0.35])
CRM_COMPATIBLE_BY_PERSONA = np.array([0.95, 0.88, 0.80, 0.70])
INBOUND_SOURCES = ("organic_search", "paid_search", "social", "email", "referral", "event")
OUTBOUND_SOURCES = ("cold_email", "social_outreach")
LEAD_SOURCES = INBOUND_SOURCES + OUTBOUND_SOURCES
SOURCE_MIX = np.array(
    [
        [.25, .25, .05, .05, .25, .15],
        [.30, .20, .10, .10, .15, .15],
        [.45, .15, .15, .10, .05, .10],
        [.45, .10, .25, .10, .03, .07],
    ]
)
OUTBOUND_BY_PERSONA = np.array([0.12, 0.15, 0.15, 0.10])
SOURCE_CHANNEL = np.array([_CH["organic"], _CH["paid"], _CH["social"], _CH["email"], _CH["referral"],
                           _CH["direct"], _CH["email"], _CH["social"]])
"""Channel of a site visit through the lead's own source (``LEAD_SOURCES`` order)."""
WEB_CHANNEL_MIX = np.array([0.10, 0.35, 0.15, 0.10, 0.05, 0.25, 0.0])
"""Channel of a site visit that does not come through the lead's own source (``CHANNELS`` order)."""
OWN_SOURCE_SHARE = 0.4

FIT_NOISE = 0.2
"""Spread of the unobservable part of fit (budget, timing) on the logit scale."""
FIT_POINTS = {"senior": 10.0, "student": -15.0, "big_company": 5.0, "free_email": -10.0}
"""Marketing automation's explicit points, given at creation."""

DAY_US = 86_400_000_000


# --- public API ---------------------------------------------------------------------------------------------


def period(params: SimulateParams) -> tuple[pd.Timestamp, int]:
    """The first instant (UTC) and the number of whole days of the simulated period."""
    start = pd.Timestamp(params.start, tz=TIMEZONE)
    end = start + pd.DateOffset(months=params.months)
    return start, int((end - start) / pd.Timedelta(days=1))


def n_chunks(params: SimulateParams) -> int:
    """How many chunks the base is simulated in."""
    return -(-params.leads // params.chunk_leads)


def simulate_chunks(params: SimulateParams, *, encoded: bool = False) -> Iterator[Chunk]:
    """The lead base as chunks of ``chunk_leads`` leads, in chunk order.

    With ``workers > 1`` chunks are computed in that many processes, at most ``workers + 1``
    ahead of the consumer (bounded memory). Each chunk depends only on ``(params, index)``.
    Workers are *spawned* (no fork of a process that may hold library threads), so a script
    calling this with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    ``encoded``: see ``simulate_chunk`` (a chunk then crosses the process boundary as small
    integer codes instead of millions of strings).
    """
    total = n_chunks(params)
    workers = min(params.workers, total)
    if workers <= 1:
        for i in range(total):
            yield simulate_chunk(params, i, encoded=encoded)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_keep_freed_memory) as pool:
        pending: deque[Future[Chunk]] = deque()
        submitted = 0
        try:
            while submitted < total or pending:
                while submitted < total and len(pending) < workers + 1:
                    pending.append(pool.submit(simulate_chunk, params, submitted, encoded=encoded))
                    submitted += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _keep_freed_memory() -> None:
    """Worker start-up (glibc only): serve large arrays from the heap and keep freed memory.

    A chunk allocates and frees many arrays of millions of elements; by default each is a fresh
    ``mmap``, so the kernel zeroes its pages again every time (half the chunk's CPU went to
    system time). A worker process lives only for one ``simulate_chunks`` call.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap-backed allocations
    libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: return heap memory to the OS only above 1 GiB free


def decode_events(events: pa.Table) -> pa.Table:
    """Events with dictionary-encoded text columns (``simulate_chunk(encoded=True)``) as plain strings."""
    return pa.table({
        name: col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
        for name, col in zip(events.column_names, events.columns)
    })


def simulate_chunk(params: SimulateParams, index: int, *, encoded: bool = False) -> Chunk:
    """Chunk ``index`` of the lead base, from ``np.random.default_rng([seed, index])``.

    ``encoded=True`` keeps the events' text columns dictionary-encoded (``int8`` codes; the
    same values, ``decode_events`` gives the plain table): cheap to pickle, and written to
    Parquet as is (store no Arrow schema and it reads back as plain strings).
    """
    first = index * params.chunk_leads
    n = min(params.chunk_leads, params.leads - first)
    if n <= 0:
        raise ValueError(f"chunk {index} is beyond the {params.leads} leads")
    rng = np.random.default_rng([params.seed, index])
    start, days = period(params)
    world = _draw_leads(rng, n, days, start, params)
    run = _run_days(rng, world, days, start, params)
    chunk = _assemble(rng, world, run, first, days, start, params)
    if encoded:
        return chunk
    return Chunk(leads=chunk.leads, events=decode_events(chunk.events), truth=chunk.truth, states=chunk.states)


def daily_outcome_probabilities(
    persona: np.ndarray, fit: np.ndarray, outbound: np.ndarray, authority: np.ndarray, handoff_scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lead and state, ``(n, 5)`` probabilities of SQL, recycle and DQ in one MQL-day.

    Hand-off hazard = state rate x persona factor x (0.4 + fit) x ``handoff_scale``; sales
    accepts with probability persona factor x (0.2 + 0.8 fit), times fit again for outbound
    leads (they need a strong fit), times ``ACCEPT_WITHOUT_AUTHORITY`` for a lead without buying
    authority (``buying_authority``: an interaction of seniority and company size, not a sum);
    a rejected hand-off is a recycle. The DQ hazard is higher for tire-kickers, bad fit and cold
    states. The three are exclusive outcomes of one draw.
    """
    persona = np.asarray(persona)
    fit = np.asarray(fit, dtype=np.float64)
    handoff = (
        HANDOFF_BY_STATE[None, :] * HANDOFF_BY_PERSONA[persona][:, None] * (0.4 + fit)[:, None] * handoff_scale
    )
    handoff = np.minimum(handoff, 0.9)
    accept = ACCEPT_BY_PERSONA[persona] * (0.2 + 0.8 * fit) * np.where(np.asarray(outbound, bool), fit, 1.0)
    accept = accept * np.where(np.asarray(authority, bool), 1.0, ACCEPT_WITHOUT_AUTHORITY)
    p_sql = handoff * accept[:, None]
    p_recycle = handoff - p_sql
    p_dq = DQ_BY_STATE[None, :] * DQ_BY_PERSONA[persona][:, None] * (1.5 - fit)[:, None]
    p_dq = np.minimum(p_dq, 1.0 - handoff)
    return p_sql, p_recycle, p_dq


def oracle_probabilities(
    states: pd.DataFrame | pa.Table,
    truth: pd.DataFrame,
    spine: pd.DataFrame,
    horizon_days: int,
    params: SimulateParams,
) -> np.ndarray:
    """True probability that each spine row's lead becomes SQL in ``(cutoff, cutoff + horizon_days]``.

    Exact, from the chain (no Monte Carlo). The cutoff ``c`` starts MQL-day ``j`` (the spine
    puts cutoffs at ``mql_at`` + whole days). Known at ``c``: persona, fit, outbound, that the
    lead is open, and its state on the calendar day containing ``c`` (one-hot start). For
    ``horizon_days`` MQL-days the sub-stochastic dynamics run: SQL with ``p_sql[s]``, recycle
    with ``p_recycle[s]`` (next state nurture), DQ with ``p_dq[s]``, else a persona transition.
    SQL times are uniform within their MQL-day, so MQL-days ``j .. j+horizon-1`` are exactly
    ``[c, c + horizon)``. A cutoff inside an MQL-day is treated as that day's start.
    """
    states = states.to_pandas() if isinstance(states, pa.Table) else states
    start, _ = period(params)
    n = len(spine)
    if n == 0:
        return np.zeros(0)
    t_idx = pd.Index(truth[LEAD_ID].to_numpy()).get_indexer(spine[LEAD_ID].to_numpy())
    if (t_idx < 0).any():
        raise ValueError("spine has leads that are not in the truth table")
    persona = pd.Categorical(truth["persona"].to_numpy(), categories=PERSONAS).codes.astype(np.int64)[t_idx]
    fit = truth["fit"].to_numpy(np.float64)[t_idx]
    outbound = truth["outbound"].to_numpy(bool)[t_idx]
    authority = truth["authority"].to_numpy(bool)[t_idx]
    day = ((spine[CUTOFF] - start) // pd.Timedelta(days=1)).to_numpy(np.int64)
    state = lookup_states(states, spine[LEAD_ID].to_numpy(np.int64), day)
    if (state < 0).any():
        raise ValueError("no intent state recorded for some snapshot cutoffs")
    out = np.empty(n)
    for a in range(0, n, ORACLE_BLOCK_ROWS):  # blocks bound the memory of the (5, rows) arrays
        b = min(a + ORACLE_BLOCK_ROWS, n)
        out[a:b] = _propagate(persona[a:b], fit[a:b], outbound[a:b], authority[a:b], state[a:b],
                              horizon_days, params.handoff_scale)
    return out


ORACLE_BLOCK_ROWS = 500_000


def _propagate(
    persona: np.ndarray, fit: np.ndarray, outbound: np.ndarray, authority: np.ndarray, state: np.ndarray,
    horizon_days: int, handoff_scale: float,
) -> np.ndarray:
    """P(SQL within ``horizon_days`` MQL-days) from a known state: the sub-stochastic chain run forward.

    Rows are grouped by persona (one transition matrix each) and kept state-major, ``(5, n)``,
    so every step is a few contiguous vector operations and one small matrix product per persona.
    """
    order = np.argsort(persona, kind="stable")
    bounds = np.searchsorted(persona[order], np.arange(len(PERSONAS) + 1))
    p_sql, p_rec, p_dq = daily_outcome_probabilities(
        persona[order], fit[order], outbound[order], authority[order], handoff_scale
    )
    p_sql, p_rec = np.ascontiguousarray(p_sql.T), np.ascontiguousarray(p_rec.T)
    p_none = 1.0 - p_sql - p_rec - np.ascontiguousarray(p_dq.T)
    n = len(order)
    v = np.zeros((N_STATES, n))
    v[state[order], np.arange(n)] = 1.0
    converted = np.zeros(n)
    stay = np.empty_like(v)
    for _ in range(horizon_days):
        converted += np.einsum("sn,sn->n", v, p_sql)
        recycled = np.einsum("sn,sn->n", v, p_rec)
        np.multiply(v, p_none, out=stay)
        for p in range(len(PERSONAS)):
            a, b = bounds[p], bounds[p + 1]
            v[:, a:b] = TRANSITIONS[p].T @ stay[:, a:b]
        v[NURTURE] += recycled
    out = np.empty(n)
    out[order] = np.clip(converted, 0.0, 1.0)
    return out


def behaviour_points(events: pd.DataFrame) -> np.ndarray:
    """Marketing automation's behaviour points of each event (``KIND_POINTS`` by type, page, content)."""
    table = pd.DataFrame(
        {
            EVENT_TYPE: np.asarray(EVENT_TYPES)[KIND_EVENT_TYPE],
            PAGE_TYPE: np.where(KIND_PAGE >= 0, np.asarray(PAGE_TYPES)[KIND_PAGE], ""),
            CONTENT_TYPE: np.where(KIND_CONTENT >= 0, np.asarray(CONTENT_TYPES)[KIND_CONTENT], ""),
            "points": KIND_POINTS,
        }
    )
    keys = pd.DataFrame(
        {
            EVENT_TYPE: events[EVENT_TYPE].astype("str").to_numpy(),
            PAGE_TYPE: events[PAGE_TYPE].fillna("").astype("str").to_numpy(),
            CONTENT_TYPE: events[CONTENT_TYPE].fillna("").astype("str").to_numpy(),
        }
    )
    found = keys.merge(table, on=[EVENT_TYPE, PAGE_TYPE, CONTENT_TYPE], how="left", sort=False)
    return found["points"].fillna(0.0).to_numpy(np.float64)


def fit_points(leads: pd.DataFrame) -> np.ndarray:
    """Marketing automation's explicit points of each lead (``FIT_POINTS``) from its attributes."""
    return (
        FIT_POINTS["senior"] * leads["seniority"].isin(SENIOR).to_numpy()
        + FIT_POINTS["student"] * (leads["seniority"] == "student").to_numpy()
        + FIT_POINTS["big_company"] * (leads["employees"] >= 250).to_numpy()
        + FIT_POINTS["free_email"] * (leads["email_domain_type"] == "free").to_numpy()
    )


def lookup_states(states: pd.DataFrame, lead_id: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The intent state of each ``(lead_id, day)`` from run-length segments; -1 where none covers it."""
    seg_lead = states[LEAD_ID].to_numpy(np.int64)
    seg_start = states["start_day"].to_numpy(np.int64)
    seg_end = states["end_day"].to_numpy(np.int64)
    seg_state = states["state"].to_numpy(np.int64)
    order = np.lexsort((seg_start, seg_lead))
    seg_lead, seg_start, seg_end, seg_state = seg_lead[order], seg_start[order], seg_end[order], seg_state[order]
    span = int(max(seg_end.max(initial=0), day.max(initial=0))) + 2
    seg_key = seg_lead * span + seg_start
    pos = np.searchsorted(seg_key, lead_id * span + day, side="right") - 1
    ok = pos >= 0
    pos = np.maximum(pos, 0)
    ok &= (seg_lead[pos] == lead_id) & (seg_start[pos] <= day) & (seg_end[pos] >= day)
    return np.where(ok, seg_state[pos], -1)


# --- lead base ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _World:
    """Per-lead hidden and observable attributes of one chunk, ordered by creation time."""

    created_day: np.ndarray
    created_tod: np.ndarray
    persona: np.ndarray
    outbound: np.ndarray
    source: np.ndarray
    fit: np.ndarray
    authority: np.ndarray
    fit_points: np.ndarray
    activity: np.ndarray
    engaged: np.ndarray
    attributes: dict[str, np.ndarray]


def _categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per element of ``rows`` from the row ``probs[rows]`` (rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    u = rng.random(len(rows))
    return np.minimum((u[:, None] >= cum[rows]).sum(axis=1), probs.shape[1] - 1)


def business_hours(rng: np.random.Generator, size: int) -> np.ndarray:
    """Time of day as a fraction in [0, 1): mostly around 14:00 UTC, some at any hour."""
    tod = rng.normal(0.58, 0.13, size)
    anytime = rng.random(size) < 0.1
    tod[anytime] = rng.random(int(anytime.sum()))
    return np.clip(tod, 0.0, 1.0 - 1e-9)


def _day_of_week(start: pd.Timestamp, days: int) -> np.ndarray:
    return (start.day_of_week + np.arange(days + 1)) % 7


def buying_authority(seniority: np.ndarray, employees: np.ndarray) -> np.ndarray:
    """Whether a lead can buy (BANT's authority): executives anywhere, managers in companies under
    200 people, anyone but a student in companies under 20. Seniority codes index ``SENIORITIES``."""
    seniority = np.asarray(seniority)
    employees = np.asarray(employees)
    senior = np.isin(seniority, [SENIORITIES.index(s) for s in SENIOR])
    manager = seniority == SENIORITIES.index("manager")
    student = seniority == SENIORITIES.index("student")
    return senior | (manager & (employees < 200)) | (~student & (employees < 20))


def _draw_leads(rng: np.random.Generator, n: int, days: int, start: pd.Timestamp, params: SimulateParams) -> _World:
    """Creation times, personas, fit attributes and hidden fit of ``n`` leads."""
    dow = _day_of_week(start, days)[:days]
    weight = (1.0 + params.growth * np.arange(days) / days) * DOW_CREATION[dow]
    created_day = np.sort(rng.choice(days, size=n, p=weight / weight.sum()))
    created_tod = business_hours(rng, n)
    order = np.lexsort((created_tod, created_day))
    created_day, created_tod = created_day[order], created_tod[order]

    persona = rng.choice(len(PERSONAS), size=n, p=PERSONA_SHARES)
    outbound = rng.random(n) < OUTBOUND_BY_PERSONA[persona]
    source = np.where(
        outbound, len(INBOUND_SOURCES) + (rng.random(n) < 0.4), _categorical(rng, SOURCE_MIX, persona)
    )
    seniority = _categorical(rng, SENIORITY_MIX, persona)
    student = seniority == SENIORITIES.index("student")
    industry = _categorical(rng, INDUSTRY_MIX, persona)
    industry = np.where(student & (rng.random(n) < 0.8), INDUSTRIES.index("education"), industry)
    country = _categorical(rng, COUNTRY_MIX, persona)
    employees = np.clip(np.round(EMPLOYEES_MEDIAN[persona] * np.exp(rng.normal(0.0, 1.2, n))), 1, 200_000)
    revenue = employees * 150_000 * np.exp(rng.normal(0.0, 0.6, n))
    revenue_band = np.searchsorted(np.array([1e6, 1e7, 5e7, 2.5e8]), revenue)
    free = rng.random(n) < np.where(student, 0.85, FREE_EMAIL_BY_PERSONA[persona])
    crm = rng.random(n) < CRM_COMPATIBLE_BY_PERSONA[persona]

    senior = np.isin(seniority, [SENIORITIES.index(s) for s in SENIOR])
    manager = seniority == SENIORITIES.index("manager")
    icp_industry = np.isin(industry, [INDUSTRIES.index(s) for s in ICP_INDUSTRIES])
    icp_country = np.isin(country, [COUNTRIES.index(s) for s in ICP_COUNTRIES])
    logit = (
        -0.3 + 0.8 * senior + 0.3 * manager - 2.0 * student + 0.5 * (np.log10(employees) - 2.0) - 0.9 * free
        + 0.5 * icp_industry + 0.4 * icp_country - 2.5 * ~crm + rng.normal(0.0, FIT_NOISE, n)
    )
    fit = 1.0 / (1.0 + np.exp(-logit))
    fit_points = (
        FIT_POINTS["senior"] * senior + FIT_POINTS["student"] * student
        + FIT_POINTS["big_company"] * (employees >= 250) + FIT_POINTS["free_email"] * free
    )
    activity = np.exp(rng.normal(-ACTIVITY_SIGMA**2 / 2, ACTIVITY_SIGMA, n))
    engaged = rng.random(n) < ENGAGE_BY_PERSONA[persona]
    attributes = {
        "industry": industry, "employees": employees.astype(np.int64), "revenue_band": revenue_band,
        "country": country, "seniority": seniority, "lead_source": source,
        "email_domain_type": free.astype(np.int8), "crm_compatible": crm,
    }
    authority = buying_authority(seniority, employees)
    return _World(created_day, created_tod, persona, outbound, source, fit, authority, fit_points, activity, engaged,
                  attributes)


# --- the daily loop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """What the daily loop produced for one chunk (lead indices are chunk positions)."""

    ev_lead: np.ndarray
    ev_day: np.ndarray
    ev_kind: np.ndarray
    ev_tod: np.ndarray
    ev_campaign: np.ndarray
    states: np.ndarray
    """``(days, n)`` int8, -1 where the lead is not simulated that day."""
    mql_day: np.ndarray
    mql_base: np.ndarray
    """Fit points + decayed behaviour score at the start of the MQL day."""
    sql_j: np.ndarray
    dq_j: np.ndarray
    recycle_lead: np.ndarray
    recycle_j: np.ndarray


def _row_cumulative(probs: np.ndarray) -> np.ndarray:
    """Flattened row-wise cumulative probabilities, row ``r`` shifted by ``r`` (for one searchsorted)."""
    total = probs.sum(axis=1, keepdims=True)
    cum = np.cumsum(probs / np.where(total > 0, total, 1.0), axis=1)
    cum[:, -1] = 1.0
    return (cum + np.arange(len(probs))[:, None]).ravel()


def _moves(transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ``persona * 5 + state`` row: the probability of keeping the state, and a
    ``_row_cumulative`` table of where a lead that moves goes (the off-diagonal, renormalised)."""
    rows = transitions.reshape(-1, N_STATES)
    own = np.tile(np.arange(N_STATES), len(transitions))
    stay = rows[np.arange(len(rows)), own]
    off = rows.copy()
    off[np.arange(len(rows)), own] = 0.0
    return _row_cumulative(off), stay


def _pick(cum_flat: np.ndarray, rows: np.ndarray, u: np.ndarray, width: int) -> np.ndarray:
    """Categorical draws, one per ``rows`` entry, from a ``_row_cumulative`` table of ``width`` columns."""
    k = np.searchsorted(cum_flat, rows + u, side="right") - rows * width
    return np.minimum(k, width - 1)


def _run_days(
    rng: np.random.Generator, w: _World, days: int, start: pd.Timestamp, params: SimulateParams
) -> _Run:
    """Simulate every lead day by day: intent, events, MQL score, sales outcomes."""
    n = len(w.persona)
    dow = _day_of_week(start, days)
    rates = activity_rates(params.activity_scale).reshape(len(PERSONAS) * N_STATES, N_ACTIVITY)
    total_rate = rates.sum(axis=1)
    kind_cum = _row_cumulative(rates)
    trans_cum, stay_prob = _moves(TRANSITIONS)
    p_open = np.minimum(OPEN_BY_PERSONA[:, None] * OPEN_BY_STATE[None, :], 1.0)
    p_reply = np.minimum(REPLY_BY_PERSONA[:, None] * REPLY_BY_STATE[None, :], 1.0)
    p_unsub = UNSUB_BY_PERSONA[:, None] * UNSUB_BY_STATE[None, :]
    p_use = np.minimum(USE_BY_PERSONA[:, None] * USE_BY_STATE[None, :], 1.0)
    p_send = params.sends_per_week / 5.0
    p_sql, p_rec, p_dq = daily_outcome_probabilities(w.persona, w.fit, w.outbound, w.authority, params.handoff_scale)
    cut_sql, cut_rec, cut_dq = p_sql, p_sql + p_rec, p_sql + p_rec + p_dq
    outbound_camp = _CAMP["outbound_sequence"]

    init_rows = np.where(w.outbound, len(PERSONAS), w.persona)
    init_table = np.vstack([INITIAL_STATE, INITIAL_STATE_OUTBOUND])
    state = _categorical(rng, init_table, init_rows).astype(np.int8)
    first_touch = np.where(
        w.outbound, -1, _categorical(rng, _first_touch_table(), w.persona)
    ).astype(np.int16)
    behaviour = np.zeros(n)
    mql_base = np.zeros(n)
    trial_day = np.full(n, -1, np.int32)
    mql_day = np.full(n, -1, np.int32)
    subscribed = np.ones(n, bool)
    closed = np.zeros(n, bool)
    stop_after = np.full(n, days, np.int32)
    sql_j = np.full(n, -1, np.int32)
    dq_j = np.full(n, -1, np.int32)
    dense = np.full((days, n), -1, np.int8)
    n_created = np.searchsorted(w.created_day, np.arange(days), side="right")

    parts: list[tuple[np.ndarray, ...]] = []
    recycles: list[tuple[np.ndarray, np.ndarray]] = []
    idx = np.zeros(0, np.int64)
    for d in range(days):
        before = n_created[d - 1] if d else 0
        idx = np.concatenate([idx[stop_after[idx] >= d], np.arange(before, n_created[d])])
        m = len(idx)
        if m == 0:
            continue
        s = state[idx].astype(np.int64)
        p = w.persona[idx]
        row = p * N_STATES + s
        dense[d, idx] = s
        weekday = dow[d] < 5

        # the lead's own activity
        cnt = rng.poisson(total_rate[row] * w.activity[idx] * DOW_ACTIVITY[dow[d]])
        nz = np.flatnonzero(cnt)
        a_pos = np.repeat(nz, cnt[nz])
        a_kind = _pick(kind_cum, row[a_pos], rng.random(len(a_pos)), N_ACTIVITY)
        a_kind[(a_kind == K_TRIAL) & (trial_day[idx[a_pos]] >= 0)] = K_PRODUCT_PAGE
        a_tod = business_hours(rng, len(a_pos))
        pos_parts, kind_parts, tod_parts, camp_parts = [a_pos], [a_kind], [a_tod], [np.full(len(a_pos), -1, np.int8)]

        # the first touch of leads created today: at created_at (tod -1), campaign from the source (-2)
        new = np.arange(m - (n_created[d] - before), m)
        new = new[first_touch[idx[new]] >= 0]
        pos_parts.append(new)
        kind_parts.append(first_touch[idx[new]].astype(np.int64))
        tod_parts.append(np.full(len(new), -1.0))
        camp_parts.append(np.full(len(new), -2, np.int8))

        # marketing e-mail
        if weekday and p_send > 0:
            send = np.flatnonzero(subscribed[idx] & (rng.random(m) < p_send))
            ss, sp = s[send], p[send]
            u = rng.random((5, len(send)))
            opened = u[0] < p_open[sp, ss]
            clicked = opened & (u[1] < CLICK_BY_STATE[ss])
            replied = opened & (u[2] < p_reply[sp, ss])
            unsub = u[3] < p_unsub[sp, ss]
            t_send = 0.33 + 0.17 * u[4]
            t_open = t_send + (1.0 - t_send) * 0.5 * u[1]
            camp = np.where(w.outbound[idx[send]], outbound_camp, rng.integers(0, 3, len(send))).astype(np.int8)
            for mask, kind, tod in (
                (None, K_EMAIL_SENT, t_send), (opened, K_EMAIL_OPEN, t_open),
                (clicked, K_EMAIL_CLICK, t_open + (1.0 - t_open) * 0.2 * u[2]),
                (replied, K_EMAIL_REPLY, t_open + (1.0 - t_open) * 0.5 * u[3]),
                (unsub, K_EMAIL_UNSUB, t_open + (1.0 - t_open) * 0.1 * u[0]),
            ):
                sel = send if mask is None else send[mask]
                pos_parts.append(sel)
                kind_parts.append(np.full(len(sel), kind, np.int64))
                tod_parts.append(tod if mask is None else tod[mask])
                camp_parts.append(camp if mask is None else camp[mask])
            subscribed[idx[send[unsub]]] = False

        # product usage during a trial
        td = trial_day[idx]
        on_trial = np.flatnonzero((td >= 0) & (td < d) & (d - td <= TRIAL_DAYS) & w.engaged[idx])
        if len(on_trial):
            used = on_trial[rng.random(len(on_trial)) < p_use[p[on_trial], s[on_trial]] * DOW_ACTIVITY[dow[d]]]
            u_cnt = 1 + rng.poisson(USAGE_EXTRA_EVENTS, len(used))
            u_pos = np.repeat(used, u_cnt)
            pos_parts.append(u_pos)
            kind_parts.append(np.full(len(u_pos), K_USAGE, np.int64))
            tod_parts.append(business_hours(rng, len(u_pos)))
            camp_parts.append(np.full(len(u_pos), -1, np.int8))

        pos = np.concatenate(pos_parts)
        kind = np.concatenate(kind_parts)
        parts.append((idx[pos].astype(np.int32), np.full(len(pos), d, np.int32), kind.astype(np.int8),
                      np.concatenate(tod_parts), np.concatenate(camp_parts)))

        # marketing automation: points and MQL
        trial_day[idx[pos[kind == K_TRIAL]]] = d
        start_of_day = behaviour[idx] * SCORE_DECAY
        behaviour[idx] = start_of_day + np.bincount(pos, weights=KIND_POINTS[kind], minlength=m)
        reached = np.flatnonzero((mql_day[idx] < 0) & (w.fit_points[idx] + behaviour[idx] >= MQL_THRESHOLD))
        mql_day[idx[reached]] = d
        mql_base[idx[reached]] = w.fit_points[idx[reached]] + start_of_day[reached]

        # sales: one outcome draw per open MQL on its MQL-day d - mql_day
        open_pos = np.flatnonzero((mql_day[idx] >= 0) & ~closed[idx])
        if len(open_pos):
            li, so = idx[open_pos], s[open_pos]
            u = rng.random(len(open_pos))
            j = d - mql_day[li]
            is_sql = u < cut_sql[li, so]
            is_rec = ~is_sql & (u < cut_rec[li, so])
            is_dq = ~is_sql & ~is_rec & (u < cut_dq[li, so])
            sql_j[li[is_sql]] = j[is_sql]
            dq_j[li[is_dq]] = j[is_dq]
            done = li[is_sql | is_dq]
            closed[done] = True
            stop_after[done] = d + 1
            recycled = li[is_rec]
            recycles.append((recycled, j[is_rec]))
        else:
            recycled = np.zeros(0, np.int64)

        # tomorrow's intent: most leads keep their state; only movers need a categorical draw
        move = np.flatnonzero(rng.random(m) >= stay_prob[row])
        state[idx[move]] = _pick(trans_cum, row[move], rng.random(len(move)), N_STATES)
        state[recycled] = NURTURE

    ev_lead, ev_day, ev_kind, ev_tod, ev_campaign = (np.concatenate(c) for c in zip(*parts))
    rec_lead = np.concatenate([r[0] for r in recycles]) if recycles else np.zeros(0, np.int64)
    rec_j = np.concatenate([r[1] for r in recycles]) if recycles else np.zeros(0, np.int64)
    return _Run(ev_lead, ev_day, ev_kind, ev_tod, ev_campaign, dense, mql_day, mql_base, sql_j, dq_j, rec_lead,
                rec_j)


# --- assembling the tables ------------------------------------------------------------------------------


def _order(lead: np.ndarray, us: np.ndarray, span: int) -> np.ndarray:
    """Stable order by ``(lead, us)``; one int64 key when it cannot overflow, else a lexsort."""
    if len(lead) == 0:
        return np.zeros(0, np.int64)
    if (int(lead.max()) + 1) * span < 2**62:
        return np.argsort(lead.astype(np.int64) * span + us, kind="stable")
    return np.lexsort((us, lead))


def _first_crossing(lead: np.ndarray, day: np.ndarray, points: np.ndarray, mql_day: np.ndarray,
                    base: np.ndarray) -> np.ndarray:
    """Per lead, the position (in events sorted by lead, time) of the event whose points take the
    score to ``MQL_THRESHOLD`` on its MQL day: ``base`` (start of that day) plus the day's running
    points, which only rise within a day. -1 for leads that never reach it."""
    n = len(mql_day)
    on_day = np.flatnonzero((mql_day[lead] >= 0) & (day == mql_day[lead]))
    sub_lead = lead[on_day]
    csum = np.cumsum(points[on_day])
    first = np.searchsorted(sub_lead, np.arange(n), side="left")
    offset = np.where(first > 0, csum[np.maximum(first - 1, 0)], 0.0)
    running = base[sub_lead] + csum - offset[sub_lead]
    hits = np.flatnonzero(running >= MQL_THRESHOLD - 1e-9)
    out = np.full(n, -1, np.int64)
    hit_lead, at = np.unique(sub_lead[hits], return_index=True)
    out[hit_lead] = on_day[hits[at]]
    return out


def _dictionary(codes: np.ndarray, vocabulary: tuple[str, ...]) -> pa.Array:
    """A dictionary-encoded text column from integer codes (-1 = null), without a loop over rows."""
    indices = pa.array(codes.astype(np.int8), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(vocabulary, pa.string()))


def _utc(us: np.ndarray) -> pd.Series:
    """``datetime64[us, UTC]`` from microseconds since the epoch (int64 minimum = NaT)."""
    return pd.Series(us.view("datetime64[us]")).dt.tz_localize(TIMEZONE)


NAT = np.iinfo(np.int64).min


def _assemble(
    rng: np.random.Generator, w: _World, run: _Run, first: int, days: int, start: pd.Timestamp,
    params: SimulateParams,
) -> Chunk:
    """Timestamps, MQL/SQL/DQ times, property columns and the output tables of one chunk."""
    n = len(w.persona)
    end_us = days * DAY_US
    created_us = w.created_day.astype(np.int64) * DAY_US + (w.created_tod * DAY_US).astype(np.int64)

    lead, day, kind, tod, camp = run.ev_lead, run.ev_day, run.ev_kind, run.ev_tod, run.ev_campaign
    us = day.astype(np.int64) * DAY_US + (np.maximum(tod, 0.0) * DAY_US).astype(np.int64)
    first_touch = tod < 0
    on_creation_day = day == w.created_day[lead]
    c_us = created_us[lead]
    squeezed = c_us + 1 + ((end_of_day := (day.astype(np.int64) + 1) * DAY_US) - c_us - 1) * np.maximum(tod, 0.0)
    us = np.where(first_touch, c_us, np.where(on_creation_day, squeezed.astype(np.int64), us))
    us = np.minimum(us, end_of_day - 1)
    order = _order(lead, us, end_us + 1)
    lead, kind, us, camp = lead[order], kind[order], us[order], camp[order]

    # marketing automation replayed on the ordered events of the MQL day gives the exact MQL time
    crossing = _first_crossing(lead, us // DAY_US, KIND_POINTS[kind], run.mql_day, run.mql_base)
    mql_us = np.where(crossing >= 0, us[np.maximum(crossing, 0)], NAT)
    if not np.array_equal(np.where(crossing >= 0, mql_us // DAY_US, -1), run.mql_day):
        raise RuntimeError("MQL replay disagrees with the daily loop (simulator bug)")

    def outcome(j: np.ndarray, leads: np.ndarray | None = None) -> np.ndarray:
        base = mql_us if leads is None else mql_us[leads]
        t = base + ((j + rng.random(len(j))) * DAY_US).astype(np.int64)
        return np.where((j >= 0) & (t < end_us), t, NAT)

    sql_us = outcome(run.sql_j)
    dq_us = outcome(run.dq_j)
    rec_us = outcome(run.recycle_j, run.recycle_lead)
    seen = rec_us != NAT
    if seen.any():
        lead = np.concatenate([lead, run.recycle_lead[seen].astype(lead.dtype)])
        us = np.concatenate([us, rec_us[seen]])
        kind = np.concatenate([kind, np.full(int(seen.sum()), K_RECYCLED, kind.dtype)])
        camp = np.concatenate([camp, np.full(int(seen.sum()), -1, camp.dtype)])
        order = _order(lead, us, end_us + 1)
        lead, kind, us, camp = lead[order], kind[order], us[order], camp[order]

    events = _events_table(rng, w, lead, kind, us, camp, first, start, days)
    leads = _leads_frame(w, first, start, created_us, mql_us, sql_us, dq_us)
    truth = pd.DataFrame(
        {
            LEAD_ID: leads[LEAD_ID].to_numpy(),
            "persona": np.asarray(PERSONAS)[w.persona],
            "fit": w.fit,
            "outbound": w.outbound,
            "authority": w.authority,
            "trial_engaged": w.engaged,
        }
    )
    return Chunk(leads=leads, events=events, truth=truth, states=_state_segments(run.states, first))


def _events_table(
    rng: np.random.Generator, w: _World, lead: np.ndarray, kind: np.ndarray, us: np.ndarray, camp: np.ndarray,
    first: int, start: pd.Timestamp, days: int,
) -> pa.Table:
    """The events as an Arrow table of ``events_arrow_schema(True)``."""
    ne = len(lead)
    kind = kind.astype(np.int64)
    persona = w.persona[lead]
    outbound = w.outbound[lead]
    source = w.source[lead]
    web = kind < N_ACTIVITY
    email = (kind >= K_EMAIL_SENT) & (kind <= K_EMAIL_UNSUB)
    first_touch = camp == -2

    mix = np.vstack([WEB_CHANNEL_MIX, np.ones(len(CHANNELS))])
    channel = _pick(_row_cumulative(mix), np.zeros(ne, np.int64), rng.random(ne), len(CHANNELS))
    own = first_touch | (rng.random(ne) < OWN_SOURCE_SHARE)
    channel = np.where(own, SOURCE_CHANNEL[source], channel)
    channel = np.where(email, np.where(outbound, _CH["sales"], _CH["email"]), channel)
    channel = np.where(kind == K_RECYCLED, _CH["sales"], channel)
    channel = np.where(web | email | (kind == K_RECYCLED), channel, -1)

    quarter = pd.date_range(start.tz_convert(None), periods=days + 1, freq="D").quarter.to_numpy()
    day = us // DAY_US
    webinar = (kind == _kind_of("webinar_register")) | (kind == _kind_of("webinar_attend"))
    campaign = np.where(email, camp, -1)
    campaign = np.where(webinar, _CAMP["q1_webinar_series"] - 1 + quarter[np.minimum(day, days)], campaign)
    paid = web & ~webinar & (channel == _CH["paid"])
    campaign = np.where(paid, np.where(rng.random(ne) < 0.5, _CAMP["brand_search"], _CAMP["retargeting"]), campaign)
    campaign = np.where(first_touch & (source == LEAD_SOURCES.index("event")), _CAMP["trade_show"], campaign)

    usage = kind == K_USAGE
    feature = np.full(ne, -1, np.int64)
    feature[usage] = _pick(_row_cumulative(FEATURE_MIX), persona[usage], rng.random(int(usage.sum())),
                           len(PRODUCT_FEATURES))

    start_us = start.value // 1000
    columns = {
        LEAD_ID: pa.array(lead.astype(np.int64) + first + 1, pa.int64()),
        TS: pa.array(us + start_us, pa.int64()).cast(pa.timestamp(TIME_UNIT, tz=TIMEZONE)),
        EVENT_TYPE: _dictionary(KIND_EVENT_TYPE[kind], EVENT_TYPES),
        PAGE_TYPE: _dictionary(KIND_PAGE[kind], PAGE_TYPES),
        CONTENT_TYPE: _dictionary(KIND_CONTENT[kind], CONTENT_TYPES),
        CHANNEL: _dictionary(channel, CHANNELS),
        CAMPAIGN: _dictionary(campaign, CAMPAIGNS),
        FEATURE: _dictionary(feature, PRODUCT_FEATURES),
    }
    assert tuple(columns) == (LEAD_ID, TS, EVENT_TYPE, *EVENT_PROPERTY_COLUMNS)
    return pa.table(columns)


def _kind_of(event_type: str) -> int:
    return next(i for i, a in enumerate(_ACTIVITY) if a[0] == event_type)


def _leads_frame(
    w: _World, first: int, start: pd.Timestamp, created_us: np.ndarray, mql_us: np.ndarray, sql_us: np.ndarray,
    dq_us: np.ndarray,
) -> pd.DataFrame:
    """The leads table: lifecycle times, then fit attributes as strings, ints and bools."""
    n = len(w.persona)
    start_us = start.value // 1000

    def abs_us(x: np.ndarray) -> np.ndarray:
        return np.where(x == NAT, NAT, x + start_us)

    a = w.attributes
    return pd.DataFrame(
        {
            LEAD_ID: np.arange(first + 1, first + n + 1, dtype=np.int64),
            CREATED_AT: _utc(created_us + start_us),
            MQL_AT: _utc(abs_us(mql_us)),
            SQL_AT: _utc(abs_us(sql_us)),
            DISQUALIFIED_AT: _utc(abs_us(dq_us)),
            "industry": np.asarray(INDUSTRIES)[a["industry"]],
            "employees": a["employees"],
            "revenue_band": np.asarray(REVENUE_BANDS)[a["revenue_band"]],
            "country": np.asarray(COUNTRIES)[a["country"]],
            "seniority": np.asarray(SENIORITIES)[a["seniority"]],
            "lead_source": np.asarray(LEAD_SOURCES)[a["lead_source"]],
            "source_type": np.where(w.outbound, "outbound", "inbound"),
            "email_domain_type": np.where(a["email_domain_type"] == 1, "free", "business"),
            "crm_compatible": a["crm_compatible"].astype(bool),
        }
    )


def _state_segments(dense: np.ndarray, first: int) -> pa.Table:
    """Run-length segments ``lead_id, start_day, end_day, state`` of a ``(days, n)`` state matrix."""
    days, n = dense.shape
    flat = np.ascontiguousarray(dense.T).ravel()
    change = np.ones(len(flat), bool)
    change[1:] = flat[1:] != flat[:-1]
    change[::days] = True
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], len(flat)) - 1
    value = flat[starts]
    keep = value >= 0
    starts, ends, value = starts[keep], ends[keep], value[keep]
    lead = starts // days
    return pa.table(
        {
            LEAD_ID: pa.array(lead + first + 1, pa.int64()),
            "start_day": pa.array((starts - lead * days).astype(np.int32)),
            "end_day": pa.array((ends - lead * days).astype(np.int32)),
            "state": pa.array(value.astype(np.int8)),
        }
    )
