"""Synthetic snapshot frames shaped like the builder's output, for the models tests.

Labels are drawn from a known logistic function of the features (returned as the oracle),
where the high-intent counts (demo requests, pricing views, trial sign-ups) drive conversion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HIGH_INTENT: tuple[str, ...] = (
    "demo_request_count_90d",
    "page_view_pricing_count_30d",
    "trial_signup_count_90d",
)


def make_snapshots(
    n_leads: int = 4000, *, seed: int = 0, days: int = 720, noise_features: int = 5, base_logit: float = -4.4
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(snapshots, oracle)`` for ``n_leads`` leads with 1-6 snapshots each, 14 days apart."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    mql = start + pd.to_timedelta(rng.uniform(0, days, n_leads), unit="D")
    n_snap = rng.integers(1, 7, n_leads)
    lead_idx = np.repeat(np.arange(n_leads), n_snap)
    step = np.concatenate([np.arange(k) for k in n_snap])
    n = len(lead_idx)
    cutoff = (pd.DatetimeIndex(mql[lead_idx]) + pd.to_timedelta(14 * step, unit="D")).as_unit("us")

    intent = rng.gamma(1.0, 1.0, n_leads)[lead_idx]
    source = rng.choice(
        ["organic", "paid_search", "referral", "event", "cold_email", "social_outreach"],
        n_leads,
        p=[0.3, 0.2, 0.1, 0.1, 0.2, 0.1],
    )[lead_idx]
    inbound = ~np.isin(source, ["cold_email", "social_outreach"])
    domain = rng.choice(["business", "free", "edu"], n_leads, p=[0.65, 0.3, 0.05])[lead_idx]
    seniority = rng.choice(["individual", "manager", "director", "vp", "c_level"], n_leads)[lead_idx]
    industry = rng.choice(["software", "finance", "retail", "health", "education", "manufacturing"], n_leads)[
        lead_idx
    ]
    employees = np.round(np.exp(rng.uniform(0, 9, n_leads)))[lead_idx]
    employees[rng.random(n) < 0.05] = np.nan
    crm = rng.random(n_leads)[lead_idx] > 0.15

    demo = rng.poisson(0.15 * intent)
    pricing = rng.poisson(0.8 * intent)
    trial = rng.poisson(0.1 * intent)
    contact = rng.poisson(0.1 * intent)
    downloads = rng.poisson(1.5 + 0.3 * intent)
    webinars = rng.poisson(0.3 + 0.1 * intent)
    blog = rng.poisson(3.0, n)
    clicks = rng.poisson(1.0 + 0.5 * intent)
    unsub = rng.binomial(1, 0.03, n)
    recency = np.where(rng.random(n) < 0.1, np.nan, rng.exponential(20, n))

    logit = (
        base_logit
        + 1.4 * np.minimum(demo, 2)
        + 0.45 * np.minimum(pricing, 5)
        + 0.9 * np.minimum(trial, 2)
        + 0.5 * contact
        + 0.08 * downloads
        + 0.1 * webinars
        - 0.9 * (domain == "free")
        + 0.5 * np.isin(seniority, ["director", "vp", "c_level"])
        + 0.35 * np.log1p(np.nan_to_num(employees, nan=20.0)) / 3
        - 1.2 * ~crm
        + 0.4 * inbound
        + 0.6 * (inbound & (demo > 0))
        - 0.015 * np.nan_to_num(recency, nan=60.0)
        + np.select([industry == "software", industry == "education"], [0.4, -0.5], 0.0)
        - 1.0 * unsub
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(n) < p).astype("int8")

    frame = pd.DataFrame(
        {
            "lead_id": (1000 + lead_idx).astype("int64"),
            "cutoff": cutoff,
            "label": label,
            "demo_request_count_90d": demo.astype("float64"),
            "page_view_pricing_count_30d": pricing.astype("float64"),
            "trial_signup_count_90d": trial.astype("float64"),
            "contact_form_count_90d": contact.astype("float64"),
            "content_download_count_90d": downloads.astype("float64"),
            "webinar_attend_count_90d": webinars.astype("int64"),
            "page_view_blog_count_30d": blog.astype("float32"),
            "email_click_count_30d": clicks.astype("int64"),
            "email_unsubscribe_count_90d": unsub.astype("int64"),
            "days_since_last_activity": recency,
            "lead_source": pd.array(source, dtype="str"),
            "source_type": pd.array(np.where(inbound, "inbound", "outbound"), dtype="str"),
            "email_domain_type": pd.array(domain, dtype="str"),
            "seniority": pd.array(seniority, dtype=object),
            "industry": pd.Categorical(industry),
            "employees": employees,
            "crm_compatible": crm,
        }
    )
    noise = pd.DataFrame(
        rng.normal(size=(n, noise_features)), columns=[f"noise_{i}" for i in range(noise_features)]
    )
    frame = pd.concat([frame, noise], axis=1)
    oracle = pd.DataFrame({"lead_id": frame["lead_id"], "cutoff": frame["cutoff"], "true_probability": p})
    return frame, oracle
