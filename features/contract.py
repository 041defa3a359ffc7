"""The engagement-log data contract: column names and the known event vocabulary.

Every module that reads or writes leads, events or snapshots takes its column names from
here, so the contract is written down exactly once. Event types and property values are
open-ended in users' data; the vocabularies below are the ones leadlift knows how to turn
into features (the catalog) and that the simulator emits.
"""

from __future__ import annotations

from enum import StrEnum

# --- leads table -------------------------------------------------------------------------
LEAD_ID = "lead_id"
CREATED_AT = "created_at"
MQL_AT = "mql_at"
SQL_AT = "sql_at"
DISQUALIFIED_AT = "disqualified_at"

LEAD_REQUIRED_COLUMNS: tuple[str, ...] = (LEAD_ID, CREATED_AT, MQL_AT, SQL_AT)
LEAD_TIME_COLUMNS: tuple[str, ...] = (CREATED_AT, MQL_AT, SQL_AT, DISQUALIFIED_AT)
"""Lifecycle timestamps; every other leads column is a fit attribute (discovered, not listed)."""

# --- events table ------------------------------------------------------------------------
TS = "ts"
EVENT_TYPE = "event_type"
PAGE_TYPE = "page_type"
CONTENT_TYPE = "content_type"
CHANNEL = "channel"
CAMPAIGN = "campaign"
FEATURE = "feature"

EVENT_REQUIRED_COLUMNS: tuple[str, ...] = (LEAD_ID, TS, EVENT_TYPE)
EVENT_PROPERTY_COLUMNS: tuple[str, ...] = (PAGE_TYPE, CONTENT_TYPE, CHANNEL, CAMPAIGN, FEATURE)
"""Optional string properties of an event; absent columns are treated as all-null."""

# --- snapshots ---------------------------------------------------------------------------
CUTOFF = "cutoff"
LABEL = "label"
SNAPSHOT_KEY: tuple[str, ...] = (LEAD_ID, CUTOFF)

# --- time --------------------------------------------------------------------------------
TIMEZONE = "UTC"
TIME_UNIT = "us"
"""All timestamps are stored as timestamp[us, UTC]; naive inputs are read as UTC."""


class EventType(StrEnum):
    """Event types the catalog knows. Anything else is kept, counted and reported as unknown."""

    EMAIL_SENT = "email_sent"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    EMAIL_REPLY = "email_reply"
    EMAIL_UNSUBSCRIBE = "email_unsubscribe"
    PAGE_VIEW = "page_view"
    CONTENT_DOWNLOAD = "content_download"
    WEBINAR_REGISTER = "webinar_register"
    WEBINAR_ATTEND = "webinar_attend"
    CHAT = "chat"
    CONTACT_FORM = "contact_form"
    ROI_CALCULATOR = "roi_calculator"
    DEMO_REQUEST = "demo_request"
    TRIAL_SIGNUP = "trial_signup"
    PRODUCT_USAGE = "product_usage"
    SALES_RECYCLED = "sales_recycled"
    """Sales rejected the lead after a discovery call and sent it back to nurturing."""


MARKETING_EVENT_TYPES: frozenset[str] = frozenset({EventType.EMAIL_SENT})
"""Events marketing does *to* a lead; all other events are the lead's own activity."""

PAGE_TYPES: tuple[str, ...] = ("home", "blog", "product", "pricing", "case_study", "docs", "careers")
CONTENT_TYPES: tuple[str, ...] = (
    "guide",
    "ebook",
    "whitepaper",
    "checklist",
    "case_study",
    "analyst_report",
)
PRODUCT_FEATURES: tuple[str, ...] = (
    "dashboards",
    "reports",
    "integrations",
    "automation",
    "api",
    "user_admin",
)
CHANNELS: tuple[str, ...] = ("email", "organic", "paid", "social", "referral", "direct", "sales")
