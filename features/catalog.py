"""The feature catalog: every feature declared once.

A declaration (``Feature``) says what a feature computes (its ``kind``, the events it reads, its
window), its unit, a plain-language description template and a direction hint. The same
declarations drive the point-in-time builder's SQL (``features.builder``), the model's feature
list (``Catalog.feature_names``), the documentation table (``Catalog.to_markdown``) and the
reason sentences (``Catalog.describe``), so none of them can drift from another.

Conventions the builder implements for every declaration:
- a feature at cutoff ``c`` reads only events with ``ts < c`` (strictly); a window of ``w`` days
  is ``[c - w days, c)``; "all time" (window ``None``) is everything before ``c``;
- recency is fractional days since the latest matching event, null when there was none;
- "activity" is the lead's own events: every type except ``MARKETING_EVENT_TYPES`` (e-mails sent);
- momentum is ``n_recent / ((n_before + 1) * recent / before)``: events in the last ``recent`` days
  over the count expected from the ``before`` days preceding them, with one pseudo-event of
  smoothing so a lead new to activity gets a finite, large ratio instead of a division by zero;
- rates are null when their denominator is zero (nothing to be a rate of).

Datetime columns of the leads table are *not* turned into features: a date stored on a lead
record (``last_activity_at``, ``updated_at``) usually reflects the record as exported, i.e.
after the cutoff, and would leak. They are listed as skipped with that reason; model them as
events instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.contract import (
    CONTENT_TYPE,
    CONTENT_TYPES,
    CREATED_AT,
    EVENT_TYPE,
    FEATURE,
    LEAD_ID,
    LEAD_TIME_COLUMNS,
    MARKETING_EVENT_TYPES,
    MQL_AT,
    PAGE_TYPE,
    PAGE_TYPES,
    EventType,
)

MOMENTUM_RECENT_DAYS = 7
MOMENTUM_BEFORE_DAYS = 28
RATE_WINDOW_DAYS = 90
USAGE_WINDOW_DAYS = 30
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Kind(StrEnum):
    """What a feature computes."""

    COUNT = "count"
    """Matching events in the window."""
    RECENCY = "recency"
    """Days since the latest matching event (null if none)."""
    MOMENTUM = "momentum"
    """Smoothed ratio of recent to earlier matching events (see module docstring)."""
    RATE = "rate"
    """Matching events per ``denominator`` event in the window (null if no denominator event)."""
    ACTIVE_DAYS = "active_days"
    """Distinct UTC calendar days with a matching event in the window."""
    DISTINCT_VALUES = "distinct_values"
    """Distinct non-null values of the event property ``column`` among matching events."""
    SINCE = "since"
    """Days from the lead's lifecycle timestamp ``column`` to the cutoff."""
    ATTRIBUTE = "attribute"
    """The lead's fit attribute ``column`` as it is (numeric, or categorical text)."""


@dataclass(frozen=True)
class Match:
    """One kind of event: an event type, optionally with one property value (e.g. pricing page views)."""

    event_type: str
    column: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class EventFilter:
    """Which events a feature reads: any of ``include`` (every event when empty), none of ``exclude_types``."""

    key: str
    include: tuple[Match, ...] = ()
    exclude_types: tuple[str, ...] = ()

    @property
    def columns(self) -> frozenset[str]:
        """Event columns the filter reads."""
        props = {m.column for m in self.include if m.column is not None}
        return frozenset({EVENT_TYPE, *props})

    def sql(self) -> str:
        """A SQL predicate over the event columns (NULL properties never match)."""
        parts = []
        if self.include:
            ors = []
            for m in self.include:
                cond = f"{EVENT_TYPE} = {_lit(m.event_type)}"
                if m.column is not None:
                    cond += f" AND {m.column} = {_lit(m.value)}"
                ors.append(f"({cond})")
            parts.append("(" + " OR ".join(ors) + ")")
        if self.exclude_types:
            parts.append(f"{EVENT_TYPE} NOT IN ({', '.join(_lit(t) for t in self.exclude_types)})")
        return " AND ".join(parts) if parts else "TRUE"

    def mask(self, events: pd.DataFrame) -> np.ndarray:
        """The same predicate as ``sql`` on a pandas frame (absent property columns are all-null)."""
        etype = events[EVENT_TYPE].to_numpy(dtype=object)
        keep = np.ones(len(events), dtype=bool)
        if self.include:
            anyof = np.zeros(len(events), dtype=bool)
            for m in self.include:
                hit = etype == m.event_type
                if m.column is not None:
                    prop = events[m.column] if m.column in events.columns else pd.Series(None, index=events.index)
                    hit &= (prop == m.value).fillna(False).to_numpy(dtype=bool)
                anyof |= hit
            keep &= anyof
        if self.exclude_types:
            keep &= ~np.isin(etype, list(self.exclude_types))
        return keep


def _lit(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Feature:
    """One feature, declared once.

    ``description`` is a ``str.format`` template with the placeholders ``value`` (the raw value),
    ``num`` (the value as a tidy number), ``times`` ("once", "twice", "3 times"), ``ago``
    ("2 days ago"), ``period`` ("in the last 7 days" / "so far"), ``window`` and ``label``.
    ``missing`` is the sentence for a null value, ``zero`` the one for zero. ``value_text`` maps categorical values to
    their own sentence. ``direction`` is +1 when more of it should never lower the odds of
    conversion, -1 for the reverse, 0 for no claim (a monotone-constraint hint).
    """

    name: str
    kind: Kind
    description: str
    unit: str
    window: int | None = None
    events: EventFilter | None = None
    denominator: EventFilter | None = None
    before_days: int | None = None
    column: str | None = None
    categorical: bool = False
    direction: int = 0
    missing: str | None = None
    zero: str | None = None
    """The sentence for a value of zero, where "0 times" would read oddly ("Has not requested a demo")."""
    low: str | None = None
    """The template when the value is a reason *because it is low* ("Viewed blog posts only twice so far":
    the model learned that heavy blog readers convert less); the reason book decides when."""
    earlier: str | None = None
    """The template of a recency as a reason *for* a lead when it is long past ("Chatted with the team
    before (last time 178 days ago)"): what raises the score then is that it happened at all, which
    "Last chatted with the team 178 days ago" does not say; the reason book decides when."""
    value_text: tuple[tuple[str, str], ...] = ()
    label: str = ""
    dtype: Literal["int32", "float32", "float64", "string"] = "float32"
    example: Any = field(default=None, compare=False)
    """A value to show in the documentation (not part of the catalog version)."""

    def describe(self, value: Any, *, low: bool = False, earlier: bool = False) -> str:
        """The plain-language sentence for ``value`` of this feature (``low``: said as "only ..." where the
        declaration has a ``low`` template; ``earlier``: as a past fact where it has an ``earlier`` one)."""
        if _is_missing(value):
            return self.missing or f"{self.label or _label(self.name)}: not known"
        if self.categorical:
            text = category_text(value)
            pretty = text.replace("_", " ")
            return dict(self.value_text).get(text, self.description.format(label=self.label, value=pretty))
        x = float(value)
        if x == 0 and self.zero is not None:
            return self.zero
        template = self.description
        if low and self.low is not None:
            template = self.low
        elif earlier and self.earlier is not None:
            template = self.earlier
        return template.format(
            value=x, num=_tidy(x), times=_times(x), ago=_ago(x), period=_period(self.window),
            window=self.window, label=self.label,
        )


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def category_text(value: Any) -> str:
    """A categorical value as the text the builder writes and the catalog describes."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def _tidy(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _times(x: float) -> str:
    n = round(x)
    return {1: "once", 2: "twice"}.get(n, f"{n:,} times")


def _ago(days: float) -> str:
    if days < 1:
        return "less than a day ago"
    n = math.floor(days)
    return "1 day ago" if n == 1 else f"{n:,} days ago"


def _period(window: int | None) -> str:
    return "so far" if window is None else f"in the last {window} days"


def _label(column: str) -> str:
    return column.replace("_", " ").strip().capitalize()


# --- the event vocabulary in words ---------------------------------------------------------------

_PAGE_WORDS: dict[str, str] = {
    "home": "the home page", "blog": "blog posts", "product": "product pages", "pricing": "the pricing page",
    "case_study": "case-study pages", "docs": "the documentation", "careers": "the careers page",
}
_CONTENT_WORDS: dict[str, str] = {
    "guide": "guides", "ebook": "e-books", "whitepaper": "white papers", "checklist": "checklists",
    "case_study": "case studies", "analyst_report": "analyst reports",
}
# event kind -> (count phrase, recency phrase); count phrases take " {times} {period}"
_EVENT_WORDS: dict[str, tuple[str, str]] = {
    EventType.EMAIL_SENT: ("Was sent marketing e-mails", "Was last sent a marketing e-mail"),
    EventType.EMAIL_OPEN: ("Opened marketing e-mails", "Last opened a marketing e-mail"),
    EventType.EMAIL_CLICK: ("Clicked links in marketing e-mails", "Last clicked a link in a marketing e-mail"),
    EventType.EMAIL_REPLY: ("Replied to e-mails", "Last replied to an e-mail"),
    EventType.EMAIL_UNSUBSCRIBE: ("Unsubscribed from e-mails", "Unsubscribed from e-mails"),
    EventType.PAGE_VIEW: ("Viewed web pages", "Last viewed a web page"),
    EventType.CONTENT_DOWNLOAD: ("Downloaded content", "Last downloaded content"),
    EventType.WEBINAR_REGISTER: ("Registered for webinars", "Last registered for a webinar"),
    EventType.WEBINAR_ATTEND: ("Attended webinars", "Last attended a webinar"),
    EventType.CHAT: ("Chatted with the team", "Last chatted with the team"),
    EventType.CONTACT_FORM: ("Filled in the contact form", "Filled in the contact form"),
    EventType.ROI_CALCULATOR: ("Used the ROI calculator", "Used the ROI calculator"),
    EventType.DEMO_REQUEST: ("Requested a demo", "Requested a demo"),
    EventType.TRIAL_SIGNUP: ("Signed up for the free trial", "Signed up for the free trial"),
    EventType.PRODUCT_USAGE: ("Used the product", "Last used the product"),
    EventType.SALES_RECYCLED: ("Was sent back to nurturing by sales", "Was sent back to nurturing by sales"),
    "activity": ("Engaged", "Last engaged"),
    "high_intent": ("Showed buying intent", "Last showed buying intent"),
    "other_event": ("Had other (unrecognised) events", "Last had an unrecognised event"),
}
_NEVER: dict[str, str] = {
    EventType.EMAIL_SENT: "Has never been sent a marketing e-mail",
    EventType.EMAIL_OPEN: "Has never opened a marketing e-mail",
    EventType.EMAIL_CLICK: "Has never clicked a marketing e-mail link",
    EventType.CONTENT_DOWNLOAD: "Has never downloaded content",
    EventType.WEBINAR_ATTEND: "Has never attended a webinar",
    EventType.CHAT: "Has never chatted with the team",
    EventType.CONTACT_FORM: "Has never filled in the contact form",
    EventType.ROI_CALCULATOR: "Has never used the ROI calculator",
    EventType.DEMO_REQUEST: "Has never requested a demo",
    EventType.TRIAL_SIGNUP: "Has never signed up for the free trial",
    EventType.PRODUCT_USAGE: "Has never used the product",
    EventType.SALES_RECYCLED: "Has never been sent back to nurturing by sales",
    "page_view_pricing": "Has never viewed the pricing page",
    "activity": "Has no activity yet",
    "high_intent": "Has shown no buying intent yet",
}

# short names of the signals, for charts and tables (a reason sentence stays the template's)
_SIGNAL_NOUNS: dict[str, str] = {
    EventType.EMAIL_SENT: "Marketing e-mails sent", EventType.EMAIL_OPEN: "Marketing e-mails opened",
    EventType.EMAIL_CLICK: "Marketing e-mail links clicked", EventType.EMAIL_REPLY: "E-mail replies",
    EventType.EMAIL_UNSUBSCRIBE: "Unsubscribes", EventType.PAGE_VIEW: "Web page views (any page)",
    EventType.CONTENT_DOWNLOAD: "Content downloads (any)", EventType.WEBINAR_REGISTER: "Webinar sign-ups",
    EventType.WEBINAR_ATTEND: "Webinars attended", EventType.CHAT: "Chats with the team",
    EventType.CONTACT_FORM: "Contact forms sent", EventType.ROI_CALCULATOR: "ROI calculator use",
    EventType.DEMO_REQUEST: "Demo requests", EventType.TRIAL_SIGNUP: "Free-trial sign-up",
    EventType.PRODUCT_USAGE: "Product use in the trial", EventType.SALES_RECYCLED: "Sent back to nurturing by sales",
    "activity": "Overall activity", "high_intent": "Buying-intent actions", "other_event": "Unrecognised events",
}
_PAGE_NOUNS: dict[str, str] = {
    "home": "Home page views", "blog": "Blog reading", "product": "Product page views",
    "pricing": "Pricing page views", "case_study": "Case-study page views", "docs": "Documentation reading",
    "careers": "Careers page views",
}
_CONTENT_NOUNS: dict[str, str] = {
    "guide": "Guide downloads", "ebook": "E-book downloads", "whitepaper": "White paper downloads",
    "checklist": "Checklist downloads", "case_study": "Case study downloads",
    "analyst_report": "Analyst report downloads",
}
_ATTRIBUTE_NOUNS: dict[str, str] = {
    "employees": "Company size (people)", "seniority": "Job level", "industry": "Industry", "country": "Country",
    "revenue_band": "Company revenue band", "lead_source": "Lead source", "source_type": "Inbound or outbound",
    "email_domain_type": "E-mail domain (business or free)", "crm_compatible": "CRM the product integrates with",
}
_LIFECYCLE_NOUNS: dict[str, str] = {"lead_age_days": "Time since becoming a lead",
                                    "days_since_mql": "Time since becoming marketing-qualified"}


# filters -----------------------------------------------------------------------------------------


def _type_filter(event_type: str) -> EventFilter:
    return EventFilter(str(event_type), (Match(str(event_type)),))


def _page_filter(page: str) -> EventFilter:
    return EventFilter(f"page_view_{page}", (Match(EventType.PAGE_VIEW.value, PAGE_TYPE, page),))


def _content_filter(content: str) -> EventFilter:
    return EventFilter(
        f"content_download_{content}", (Match(EventType.CONTENT_DOWNLOAD.value, CONTENT_TYPE, content),)
    )


ACTIVITY = EventFilter("activity", (), tuple(sorted(MARKETING_EVENT_TYPES)))
HIGH_INTENT = EventFilter(
    "high_intent",
    (
        Match(EventType.DEMO_REQUEST.value),
        Match(EventType.CONTACT_FORM.value),
        Match(EventType.PAGE_VIEW.value, PAGE_TYPE, "pricing"),
        Match(EventType.ROI_CALCULATOR.value),
        Match(EventType.CHAT.value),
        Match(EventType.TRIAL_SIGNUP.value),
    ),
)
OTHER_EVENTS = EventFilter("other_event", (), tuple(e.value for e in EventType))
"""Event types the catalog does not know: counted, and listed in the build report."""

_INCREASING = {
    EventType.DEMO_REQUEST.value, EventType.CONTACT_FORM.value, EventType.ROI_CALCULATOR.value,
    EventType.TRIAL_SIGNUP.value, "page_view_pricing", "high_intent",
}
_DECREASING = {EventType.EMAIL_UNSUBSCRIBE.value}
RECENCY_KEYS: tuple[str, ...] = (
    "activity", "high_intent", "page_view_pricing", EventType.DEMO_REQUEST, EventType.CONTACT_FORM,
    EventType.CHAT, EventType.ROI_CALCULATOR, EventType.EMAIL_SENT, EventType.EMAIL_OPEN,
    EventType.EMAIL_CLICK, EventType.CONTENT_DOWNLOAD, EventType.WEBINAR_ATTEND, EventType.TRIAL_SIGNUP,
    EventType.PRODUCT_USAGE, EventType.SALES_RECYCLED,
)


def count_filters() -> tuple[EventFilter, ...]:
    """Every filter that gets window counts, in catalog order."""
    return (
        ACTIVITY,
        HIGH_INTENT,
        *(_type_filter(e) for e in EventType),
        *(_page_filter(p) for p in PAGE_TYPES),
        *(_content_filter(c) for c in CONTENT_TYPES),
        OTHER_EVENTS,
    )


def _words(key: str) -> tuple[str, str]:
    if key.startswith("page_view_") and key.removeprefix("page_view_") in _PAGE_WORDS:
        page = _PAGE_WORDS[key.removeprefix("page_view_")]
        return f"Viewed {page}", f"Last viewed {page}"
    if key.startswith("content_download_") and key.removeprefix("content_download_") in _CONTENT_WORDS:
        what = _CONTENT_WORDS[key.removeprefix("content_download_")]
        return f"Downloaded {what}", f"Last downloaded {what}"
    return _EVENT_WORDS[key]


def _signal_noun(key: str) -> str:
    if key.startswith("page_view_") and key.removeprefix("page_view_") in _PAGE_NOUNS:
        return _PAGE_NOUNS[key.removeprefix("page_view_")]
    if key.startswith("content_download_") and key.removeprefix("content_download_") in _CONTENT_NOUNS:
        return _CONTENT_NOUNS[key.removeprefix("content_download_")]
    return _SIGNAL_NOUNS.get(key, _label(key))


def attribute_label(column: str) -> str:
    """The plain name of a leads column ("Lead source", "Company size (people)")."""
    return _ATTRIBUTE_NOUNS.get(column, _label(column))


def signal_label(feature: Feature) -> str:
    """The short plain name of the source signal a feature reads ("Pricing page views", "Job level"),
    the same for every window and recency of that signal: for charts and tables of drivers."""
    if feature.events is not None:
        return _signal_noun(feature.events.key)
    if feature.kind == Kind.ATTRIBUTE and feature.column is not None:
        return _ATTRIBUTE_NOUNS.get(feature.column, feature.label or attribute_label(feature.column))
    return _LIFECYCLE_NOUNS.get(feature.name, feature.label or _label(feature.name))


def feature_label(feature: Feature) -> str:
    """A plain axis label for one feature's values ("Pricing page views, last 30 days (count)")."""
    signal = signal_label(feature)
    span = "all time" if feature.window is None else f"last {feature.window} days"
    if feature.kind == Kind.COUNT:
        return f"{signal}, {span} (count)"
    if feature.kind == Kind.RECENCY:
        return f"{signal}: days since the latest"
    if feature.kind == Kind.MOMENTUM:
        return f"{signal}: last {feature.window} days vs the weekly pace of the {feature.before_days} before (ratio)"
    if feature.kind == Kind.RATE:
        return f"{signal}, {span}: {feature.unit}"
    if feature.kind == Kind.ACTIVE_DAYS:
        return f"Days with product use, {span}"
    if feature.kind == Kind.DISTINCT_VALUES:
        return f"Different product features used, {span}"
    if feature.kind == Kind.SINCE:
        return f"{signal} (days)"
    return signal


_NEGATIVE_VERBS: dict[str, str] = {"Was sent": "been sent", "Showed": "shown", "Had": "had", "Engaged": "engaged"}


def _negative(phrase: str, window: int | None) -> str:
    """ "Requested a demo" -> "Has not requested a demo in the last 30 days" (or "... yet")."""
    for verb, participle in _NEGATIVE_VERBS.items():
        if phrase.startswith(verb + " ") or phrase == verb:
            rest = participle + phrase[len(verb):]
            break
    else:
        rest = phrase[0].lower() + phrase[1:]
    return f"Has not {rest} " + ("yet" if window is None else f"in the last {window} days")


def _window_suffix(window: int | None) -> str:
    return "all" if window is None else f"{window}d"


_COUNT_NOTES: dict[str, str] = {"high_intent": " (demo, pricing page, contact form, chat, ROI calculator or trial)"}
"""What a composite signal is made of, said after its count."""


def _count_features(windows: Sequence[int]) -> list[Feature]:
    out = []
    for f in count_filters():
        phrase = _words(f.key)[0]
        note = _COUNT_NOTES.get(f.key, "")
        direction = 1 if f.key in _INCREASING else -1 if f.key in _DECREASING else 0
        for w in [*windows, None]:
            out.append(Feature(
                name=f"{f.key}_count_{_window_suffix(w)}", kind=Kind.COUNT, events=f, window=w,
                unit="events", dtype="int32", direction=direction,
                description=phrase + " {times} {period}" + note, zero=_negative(phrase, w) + note,
                low=phrase + " only {times} {period}" + note,
            ))
    return out


def _recency_features() -> list[Feature]:
    filters = {f.key: f for f in count_filters()}
    out = []
    for key in map(str, RECENCY_KEYS):
        phrase = _words(key)[1]
        direction = -1 if key in _INCREASING else 0
        out.append(Feature(
            name=f"days_since_last_{key}", kind=Kind.RECENCY, events=filters[key], unit="days",
            direction=direction, description=phrase + " {ago}",
            earlier=_words(key)[0] + " before (last time {ago})" if phrase.startswith("Last ") else None,
            missing=_NEVER.get(key, f"{_words(key)[0]}: never"),
        ))
    return out


def _momentum_features() -> list[Feature]:
    return [
        Feature(
            name=f"{f.key}_momentum_{MOMENTUM_RECENT_DAYS}d_vs_{MOMENTUM_BEFORE_DAYS}d", kind=Kind.MOMENTUM,
            events=f, window=MOMENTUM_RECENT_DAYS, before_days=MOMENTUM_BEFORE_DAYS, unit="ratio",
            description=f"{what} in the last {{window}} days at {{value:.1f}}x the weekly pace of the "
            f"{MOMENTUM_BEFORE_DAYS} days before", zero=_negative(what, MOMENTUM_RECENT_DAYS),
        )
        for f, what in ((ACTIVITY, "Engaged"), (HIGH_INTENT, "Showed buying intent"))
    ]


def _rate_features() -> list[Feature]:
    sent, opened, clicked = (_type_filter(e) for e in (EventType.EMAIL_SENT, EventType.EMAIL_OPEN,
                                                       EventType.EMAIL_CLICK))
    w = RATE_WINDOW_DAYS
    no_mail = f"Was sent no marketing e-mails in the last {w} days"
    return [
        Feature(name=f"email_open_rate_{w}d", kind=Kind.RATE, events=opened, denominator=sent, window=w,
                unit="opens per e-mail sent", missing=no_mail,
                description="Opened {value:.2f} e-mails per marketing e-mail sent {period}"),
        Feature(name=f"email_click_rate_{w}d", kind=Kind.RATE, events=clicked, denominator=sent, window=w,
                unit="clicks per e-mail sent", missing=no_mail,
                description="Clicked {value:.2f} e-mail links per marketing e-mail sent {period}"),
        Feature(name=f"email_click_to_open_rate_{w}d", kind=Kind.RATE, events=clicked, denominator=opened,
                window=w, unit="clicks per e-mail open",
                missing=f"Opened no marketing e-mails in the last {w} days",
                description="Clicked {value:.2f} e-mail links per e-mail opened {period}"),
    ]


def _usage_features() -> list[Feature]:
    usage = _type_filter(EventType.PRODUCT_USAGE)
    return [
        *(
            Feature(name=f"trial_active_days_{_window_suffix(w)}", kind=Kind.ACTIVE_DAYS, events=usage, window=w,
                    unit="days", dtype="int32", direction=1, zero=_negative("Used the product", w),
                    description="Used the product on {num} different days {period}",
                    low="Used the product on only {num} different days {period}")
            for w in (USAGE_WINDOW_DAYS, None)
        ),
        Feature(name="trial_features_used_all", kind=Kind.DISTINCT_VALUES, events=usage, column=FEATURE,
                unit="features", dtype="int32", direction=1, zero="Has not used any product feature yet",
                description="Used {num} different product features {period}",
                low="Used only {num} different product features {period}"),
    ]


def _lifecycle_features() -> list[Feature]:
    return [
        Feature(name="lead_age_days", kind=Kind.SINCE, column=CREATED_AT, unit="days",
                description="Became a lead {ago}", missing="Lead creation date not known"),
        Feature(name="days_since_mql", kind=Kind.SINCE, column=MQL_AT, unit="days",
                description="Became marketing-qualified {ago}", missing="Not marketing-qualified yet"),
    ]


# --- fit attributes ------------------------------------------------------------------------------

AttributeKind = Literal["numeric", "boolean", "categorical", "skipped"]


@dataclass(frozen=True)
class Attribute:
    """A leads column used as a fit attribute, with its discovered type (or why it is skipped)."""

    column: str
    kind: AttributeKind
    reason: str | None = None
    example: str | None = None
    """The most common value (documentation only; not part of the catalog version)."""


_KNOWN_VALUE_TEXT: dict[str, dict[str, str]] = {
    "email_domain_type": {
        "free": "Uses a free e-mail domain", "business": "Uses a business e-mail domain",
        "edu": "Uses an education e-mail domain",
    },
    "crm_compatible": {
        "true": "Uses a CRM the product integrates with", "false": "Uses a CRM the product cannot integrate with",
    },
    "seniority": {
        "c_level": "Job level: C-level executive", "vp": "Job level: vice president", "director": "Job level: director",
        "manager": "Job level: manager", "individual": "Job level: individual contributor",
        "student": "Job level: student",
    },
}


_KNOWN_TEMPLATES: dict[str, str] = {
    "employees": "Company size: {num} people",
    "seniority": "Job level: {value}",  # values such as c_level read "c level"
    "industry": "Works in {value}",
    "country": "Based in {value}",
    "revenue_band": "Company revenue band: {value}",
    "lead_source": "Came in through {value}",
    "source_type": "An {value} lead",
}
"""Sentences for common CRM fields; any other attribute reads "<Column label>: <value>"."""


def discover_attributes(leads: pd.DataFrame) -> list[Attribute]:
    """Every leads column except ``lead_id`` and the lifecycle timestamps, typed from its values."""
    skip = {LEAD_ID, *LEAD_TIME_COLUMNS}
    found = [_type_attribute(str(c), leads[c]) for c in leads.columns if c not in skip]
    return [
        a if a.kind in ("numeric", "skipped") else replace(a, example=_most_common(leads[a.column])) for a in found
    ]


def _most_common(values: pd.Series) -> str | None:
    counts = values.dropna().map(category_text).value_counts()
    return None if counts.empty else str(counts.sort_index().sort_values(ascending=False, kind="stable").index[0])


def _type_attribute(column: str, values: pd.Series) -> Attribute:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return Attribute(column, "boolean")
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return Attribute(column, "skipped", "a time stored on the lead record may postdate the cutoff and "
                         "leak; record it as an event to use it")
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return Attribute(column, "numeric")
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "boolean":
        return Attribute(column, "boolean")
    if inferred in ("datetime", "datetime64", "date", "timedelta"):
        return Attribute(column, "skipped", "holds dates or times, which may postdate the cutoff and leak")
    return Attribute(column, "categorical")


def _attribute_feature(attr: Attribute) -> Feature:
    label = _label(attr.column)
    if attr.kind == "numeric":
        return Feature(name=attr.column, kind=Kind.ATTRIBUTE, column=attr.column, unit="value", dtype="float64",
                       label=label, description=_KNOWN_TEMPLATES.get(attr.column, "{label}: {num}"),
                       missing=f"{label}: not known")
    known = _KNOWN_VALUE_TEXT.get(attr.column, {})
    if attr.kind == "boolean":
        text = {"true": f"{label}: yes", "false": f"{label}: no", **known}
    else:
        text = known
    return Feature(name=attr.column, kind=Kind.ATTRIBUTE, column=attr.column, unit="category", dtype="string",
                   categorical=True, label=label, description=_KNOWN_TEMPLATES.get(attr.column, "{label}: {value}"),
                   missing=f"{label}: not known",
                   value_text=tuple(sorted(text.items())), example=attr.example)


# --- the catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """The ordered feature declarations, plus the attributes left out and why."""

    features: tuple[Feature, ...]
    skipped: tuple[Attribute, ...] = ()
    _by_name: Mapping[str, Feature] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Feature] = {}
        for f in self.features:
            if f.name in by_name:
                raise ValueError(f"feature name '{f.name}' is declared twice (a leads column may clash with an "
                                 "event feature; rename the column)")
            by_name[f.name] = f
        object.__setattr__(self, "_by_name", by_name)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_names(self) -> list[str]:
        return [f.name for f in self.features if f.categorical]

    def names_with_direction(self, direction: int) -> list[str]:
        """Features declared monotone in ``direction`` (+1: more never lowers the odds)."""
        return [f.name for f in self.features if f.direction == direction]

    @property
    def version(self) -> str:
        """A short hash of every declaration; it changes whenever any declaration changes."""
        declared = [{k: v for k, v in asdict(f).items() if k != "example"} for f in self.features]
        payload = json.dumps(declared, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def __getitem__(self, name: str) -> Feature:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def describe(self, name: str, value: Any) -> str:
        """The reason sentence for ``value`` of feature ``name``."""
        return self[name].describe(value)

    def to_markdown(self) -> str:
        """The documentation table: every feature with its kind, window, template and an example."""
        lines = [
            "# Feature catalog",
            "",
            f"Catalog version `{self.version}`, {len(self.features)} features. A feature at cutoff `c` reads "
            "only events with `ts < c`; a window of `w` days is `[c - w days, c)`. \"Activity\" is every "
            "event except marketing e-mails sent. Momentum is `n_7d / ((n_28d_before + 1) / 4)`. Recency is "
            "null when the event never happened; rates are null when their denominator is zero. Event types "
            "the catalog does not know are counted in `other_event_count_*` and listed in the build report.",
            "",
            "| name | kind | window | unit | direction | description | example |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in self.features:
            window = "all time" if f.window is None else f"{f.window} days"
            if f.kind in (Kind.SINCE, Kind.ATTRIBUTE, Kind.RECENCY):
                window = "-"
            cells = [f"`{f.name}`", f.kind.value, window, f.unit, f"{f.direction:+d}" if f.direction else "",
                     f.description, self.describe(f.name, _example(f))]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if self.skipped:
            lines += ["", "## Leads columns not used", ""]
            lines += [f"- `{a.column}`: {a.reason}" for a in self.skipped]
        return "\n".join(lines) + "\n"


def _example(f: Feature) -> Any:
    if f.example is not None:
        return f.example
    if f.categorical:
        return f.value_text[0][0] if f.value_text else "example"
    return {Kind.COUNT: 3, Kind.RECENCY: 2.4, Kind.MOMENTUM: 2.5, Kind.RATE: 0.35, Kind.ACTIVE_DAYS: 6,
            Kind.DISTINCT_VALUES: 3, Kind.SINCE: 41.2, Kind.ATTRIBUTE: 250}[f.kind]


def build_catalog(windows: Sequence[int], attributes: Sequence[Attribute]) -> Catalog:
    """The catalog for these count windows (days; "all time" is always added) and fit attributes."""
    wins = sorted({int(w) for w in windows})
    if not wins or wins[0] < 1:
        raise ValueError(f"windows must be positive whole days, got {list(windows)}")
    features = [
        *_lifecycle_features(),
        *_count_features(wins),
        *_recency_features(),
        *_momentum_features(),
        *_rate_features(),
        *_usage_features(),
        *(_attribute_feature(a) for a in attributes if a.kind != "skipped"),
    ]
    for f in features:
        if f.kind != Kind.ATTRIBUTE and not _NAME.match(f.name):
            raise ValueError(f"feature name '{f.name}' is not a lower-case identifier")
    return Catalog(tuple(features), tuple(a for a in attributes if a.kind == "skipped"))
