"""The feature catalog: unique names, sentences without raw names, a version that tracks the declarations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.catalog import Attribute, Catalog, Kind, build_catalog, discover_attributes


def T(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _leads() -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": [1, 2],
        "created_at": [T("2024-01-01"), T("2024-01-02")],
        "mql_at": [T("2024-01-03"), pd.NaT],
        "sql_at": [pd.NaT, pd.NaT],
        "disqualified_at": [pd.NaT, pd.NaT],
        "industry": ["software", None],
        "employees": [250.0, np.nan],
        "headcount": pd.array([10, None], dtype="Int64"),
        "crm_compatible": [True, False],
        "verified": pd.Series([True, None], dtype=object),
        "email_domain_type": ["free", "business"],
        "last_touched_at": [T("2024-05-01"), T("2024-05-02")],
    })


def _catalog() -> Catalog:
    return build_catalog([7, 30, 90], discover_attributes(_leads()))


def test_attributes_are_discovered_and_typed():
    kinds = {a.column: a.kind for a in discover_attributes(_leads())}
    assert kinds == {
        "industry": "categorical", "employees": "numeric", "headcount": "numeric", "crm_compatible": "boolean",
        "verified": "boolean", "email_domain_type": "categorical", "last_touched_at": "skipped",
    }


def test_datetime_attributes_are_skipped_with_a_reason_and_documented():
    catalog = _catalog()
    assert "last_touched_at" not in catalog
    assert [a.column for a in catalog.skipped] == ["last_touched_at"]
    assert catalog.skipped[0].reason
    assert "last_touched_at" in catalog.to_markdown()


def test_names_are_unique_and_include_the_names_other_modules_expect():
    names = _catalog().feature_names
    assert len(names) == len(set(names))
    expected = {
        "demo_request_count_90d", "page_view_pricing_count_30d", "email_click_count_30d",
        "content_download_count_90d", "webinar_attend_count_90d", "trial_signup_count_90d",
        "contact_form_count_90d", "email_unsubscribe_count_90d", "activity_count_7d", "activity_count_all",
        "content_download_case_study_count_90d", "other_event_count_30d", "days_since_last_demo_request",
        "days_since_last_activity", "days_since_last_page_view_pricing", "activity_momentum_7d_vs_28d",
        "high_intent_momentum_7d_vs_28d", "email_open_rate_90d", "email_click_rate_90d",
        "high_intent_count_30d", "trial_active_days_30d", "trial_active_days_all", "trial_features_used_all",
        "lead_age_days", "days_since_mql", "industry", "employees", "email_domain_type", "crm_compatible",
    }
    assert expected <= set(names)


def test_categoricals_are_the_text_attributes():
    assert _catalog().categorical_names == ["industry", "crm_compatible", "verified", "email_domain_type"]


@pytest.mark.parametrize("value", [0, 1, 2, 4.6, None, float("nan")])
def test_every_feature_renders_a_sentence_without_raw_names(value):
    catalog = _catalog()
    for f in catalog:
        v = ("free" if value == 0 else "software") if f.categorical and value is not None else value
        text = catalog.describe(f.name, v)
        assert text and "{" not in text, (f.name, text)
        assert f.name not in text, (f.name, text)
        assert "_" not in text, (f.name, text)


def test_sentences_read_as_intended():
    catalog = _catalog()
    assert catalog.describe("page_view_pricing_count_7d", 4) == "Viewed the pricing page 4 times in the last 7 days"
    assert catalog.describe("page_view_pricing_count_all", 1) == "Viewed the pricing page once so far"
    assert catalog.describe("days_since_last_demo_request", 2.3) == "Requested a demo 2 days ago"
    assert catalog.describe("days_since_last_demo_request", None) == "Has never requested a demo"
    assert catalog.describe("email_domain_type", "free") == "Uses a free e-mail domain"
    assert catalog.describe("industry", "software") == "Works in software"
    assert catalog.describe("employees", 250.0) == "Company size: 250 people"
    sources = build_catalog([7], [Attribute("lead_source", "categorical")])
    assert sources.describe("lead_source", "organic_search") == "Came in through organic search"


def test_version_is_stable_and_changes_with_any_declaration():
    a, b = _catalog(), _catalog()
    assert a.version == b.version and len(a.version) == 12
    assert build_catalog([7, 30], discover_attributes(_leads())).version != a.version
    first = a.features[0]
    edited = dataclasses.replace(first, description=first.description + " (edited)")
    assert Catalog((edited, *a.features[1:])).version != a.version


def test_lookup_by_name_and_declaration_fields():
    catalog = _catalog()
    f = catalog["page_view_pricing_count_30d"]
    assert f.kind is Kind.COUNT and f.window == 30 and f.direction == 1
    assert catalog["days_since_last_demo_request"].kind is Kind.RECENCY
    assert "demo_request_count_90d" in catalog.names_with_direction(1)
    assert "email_unsubscribe_count_90d" in catalog.names_with_direction(-1)


def test_markdown_lists_every_feature_once():
    catalog = _catalog()
    md = catalog.to_markdown()
    for name in catalog.feature_names:
        assert md.count(f"| `{name}` |") == 1
    assert catalog.version in md


def test_a_clashing_attribute_name_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        build_catalog([7], [Attribute("lead_age_days", "numeric")])


def test_windows_must_be_positive():
    with pytest.raises(ValueError):
        build_catalog([0], [])


def test_a_zero_count_reads_as_not_done():
    catalog = _catalog()
    assert catalog.describe("demo_request_count_90d", 0) == "Has not requested a demo in the last 90 days"
    assert catalog.describe("page_view_pricing_count_all", 0) == "Has not viewed the pricing page yet"
    assert catalog.describe("email_sent_count_7d", 0) == "Has not been sent marketing e-mails in the last 7 days"
    assert catalog.describe("trial_active_days_30d", 0) == "Has not used the product in the last 30 days"
    assert catalog.describe("demo_request_count_90d", 1) == "Requested a demo once in the last 90 days"


def test_every_feature_has_a_plain_signal_name_and_axis_label():
    from features.catalog import feature_label, signal_label

    catalog = _catalog()
    for f in catalog:
        for text in (signal_label(f), feature_label(f)):
            assert text and "_" not in text and f.name not in text, (f.name, text)
    pricing = {signal_label(catalog[n]) for n in ("page_view_pricing_count_7d", "page_view_pricing_count_all",
                                                  "days_since_last_page_view_pricing")}
    assert pricing == {"Pricing page views"}, "every window and the recency of a signal share its name"
    assert signal_label(catalog["employees"]) == "Company size (people)"
    assert feature_label(catalog["page_view_pricing_count_30d"]) == "Pricing page views, last 30 days (count)"
