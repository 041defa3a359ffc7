"""Small hand-made exports for the bring-your-own-data tests (written by code, seeded, a few hundred rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def crm_export(n: int = 600, seed: int = 7, dated: bool = True) -> pd.DataFrame:
    """A CRM export as a user would send it: ``;``-separated in the file, ``unknown``/``Select`` for
    missing, a yes/no outcome, honest attributes, and two planted leaks: ``call_minutes`` (written
    by sales during the qualifying call) and ``contract_signed`` (a date filled only for winners).
    """
    rng = np.random.default_rng(seed)
    industry = rng.choice(["software", "retail", "banking", "health"], n, p=[0.4, 0.3, 0.2, 0.1])
    employees = rng.lognormal(4.5, 1.2, n).round()
    newsletter = rng.choice(["yes", "no"], n)
    visits = rng.poisson(3, n)
    logit = -1.6 + 0.9 * (industry == "software") + 0.35 * np.log1p(employees) / 3 + 0.25 * visits
    converted = rng.random(n) < 1 / (1 + np.exp(-logit + 1.2))
    call_minutes = np.where(converted, rng.gamma(9, 4, n), rng.gamma(2, 2, n)).round(1)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 540, n)), unit="D")
    signed = np.where(converted, (created + pd.to_timedelta(rng.integers(20, 60, n), unit="D")).strftime("%Y-%m-%d"), "")
    frame = pd.DataFrame({
        "Record ID": [f"C{i:05d}" for i in range(n)],
        "Industry": industry,
        "Employees": employees.astype(int).astype(str),
        "Newsletter": newsletter,
        "Site visits": visits,
        "call_minutes": call_minutes,
        "contract_signed": signed,
        "Won": np.where(converted, "yes", "no"),
    })
    if dated:
        frame.insert(1, "Created", created.strftime("%Y-%m-%d"))
    unknown = rng.random(n) < 0.08
    frame.loc[unknown, "Industry"] = rng.choice(["unknown", "Select"], int(unknown.sum()))
    return frame


def write_export(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep=";", index=False)
    return path


CRM_DATA = {
    "source": "files",
    "mapping": {"lead_id": "Record ID", "outcome": "Won", "date": "Created"},
    "missing_tokens": ["", "unknown", "Select"],
}
