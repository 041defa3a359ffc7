"""The leakage audit: planted leaks are caught, honest columns are left alone, keep overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.audit import AuditParams, leakage_audit
from features.contract import SQL_AT
from features.tabular import DataParams, LeadMapping, prepare_table, read_table, tabular_snapshots

BANK = (Path(__file__).parents[2] / ".." / "shared" / "data" / "bank-marketing" / "bank-additional-full.csv").resolve()


def _crm(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A hand-made CRM export: honest fit columns, and three columns written after the outcome."""
    rng = np.random.default_rng(seed)
    industry = rng.choice(["software", "retail", "banking", "education"], n, p=[0.3, 0.3, 0.2, 0.2])
    employees = np.round(rng.lognormal(4, 1.2, n))
    newsletter = rng.random(n) < 0.4
    region = rng.choice(["north", "south", "east"], n)
    logit = -2.2 + 0.9 * (industry == "software") - 0.6 * (industry == "education") + 0.35 * np.log1p(employees) / 2
    logit += 0.5 * newsletter
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    mql = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 365, n), unit="D")
    sql = pd.Series(mql + pd.to_timedelta(rng.uniform(2, 40, n), unit="D")).where(y == 1)
    call_minutes = np.round(np.where(y == 1, rng.normal(38, 12, n), rng.normal(12, 9, n)).clip(0), 1)
    contract = (sql + pd.to_timedelta(rng.uniform(1, 20, n), unit="D")).where(rng.random(n) < 0.9)
    budget_note = np.where(rng.random(n) < np.where(y == 1, 0.85, 0.08),
                           rng.choice(["confirmed", "pending", "approved"], n), "")
    phone = np.where(rng.random(n) < np.where(y == 1, 0.75, 0.6), "+351 555 0101", "")
    return pd.DataFrame({
        "Lead": np.arange(1000, 1000 + n), "MQL date": mql.strftime("%Y-%m-%d %H:%M"),
        "SQL date": sql.dt.strftime("%Y-%m-%d %H:%M"), "industry": industry, "employees": employees,
        "newsletter": np.where(newsletter, "yes", "no"), "region": region, "phone": phone,
        "call_minutes": call_minutes, "contract_signed_at": contract.dt.strftime("%Y-%m-%d"),
        "budget_note": budget_note,
    })


PARAMS = DataParams(source="files", leads="crm.csv",
                    mapping=LeadMapping(lead_id="Lead", mql_at="MQL date", sql_at="SQL date"))


@pytest.fixture(scope="module")
def crm_audit():
    prep = prepare_table(_crm(), PARAMS)
    return prep, {s.column: s for s in leakage_audit(
        prep.frame[[*prep.features, prep.time_column, SQL_AT]], prep.label,
        time_column=prep.time_column, outcome_time=SQL_AT, params=AuditParams())}


def test_planted_leaks_are_caught(crm_audit):
    _, found = crm_audit
    assert found["call_minutes"].rule == "dominates"
    assert found["contract_signed_at"].rule == "after_outcome"
    assert found["budget_note"].rule == "filled_for_one_class"
    assert "sql_at" in found["contract_signed_at"].reason


def test_honest_columns_are_left_alone(crm_audit):
    _, found = crm_audit
    assert set(found) == {"call_minutes", "contract_signed_at", "budget_note"}  # not phone, industry, ...


def test_reasons_name_the_figures(crm_audit):
    _, found = crm_audit
    assert "as well as all other columns" in found["call_minutes"].reason
    assert 0 < found["budget_note"].figure <= 1


def test_near_perfect_column():
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.2).astype(int)
    frame = pd.DataFrame({"stage_score": y * 5 + rng.normal(0, 1, 2000), "honest": rng.normal(0, 1, 2000) + y * 0.3,
                          "other": rng.normal(0, 1, 2000) + y * 0.8})
    found = {s.column: s for s in leakage_audit(frame, y)}
    assert set(found) == {"stage_score"} and found["stage_score"].rule == "near_perfect"


def test_after_the_reference_date():
    rng = np.random.default_rng(4)
    n = 400
    ref = pd.Series(pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 200, n), unit="D"))
    frame = pd.DataFrame({"ref": ref, "last_touch": ref + pd.Timedelta(days=3), "first_touch": ref - pd.Timedelta(days=3)})
    found = leakage_audit(frame, (rng.random(n) < 0.3).astype(int), time_column="ref")
    assert [(s.column, s.rule) for s in found] == [("last_touch", "after_outcome")]


def test_keep_override_and_exclusion_lines():
    params = PARAMS.model_copy(update={"audit": AuditParams(keep=["call_minutes"])})
    snap, report = tabular_snapshots(_crm(), params)
    assert "call_minutes" in snap.columns
    assert "budget_note" not in snap.columns and "contract_signed_at_days_before" not in snap.columns
    lines = "\n".join(report["leakage_lines"])
    assert "kept on purpose 'call_minutes'" in lines and "excluded 'budget_note' (filled_for_one_class)" in lines
    assert {"industry", "employees", "phone", "newsletter"} <= set(snap.columns)


def test_audit_can_be_switched_off():
    params = PARAMS.model_copy(update={"audit": AuditParams(enabled=False)})
    snap, report = tabular_snapshots(_crm(400), params)
    assert "call_minutes" in snap.columns and report["suspects"] == []


def test_audit_is_deterministic(crm_audit):
    prep, found = crm_audit
    again = leakage_audit(prep.frame[[*prep.features, prep.time_column, SQL_AT]], prep.label,
                          time_column=prep.time_column, outcome_time=SQL_AT)
    assert {s.column: s for s in again} == found


@pytest.mark.skipif(not BANK.exists(), reason=f"bank-marketing file not found at {BANK}")
def test_bank_marketing_flags_exactly_duration():
    """UCI Bank Marketing (Moro, Cortez and Rita, 2014): `duration` is known only after the call."""
    frame = read_table(BANK)
    params = DataParams(source="files", leads=str(BANK), mapping=LeadMapping(outcome="y", row_order_is_time=True))
    prep = prepare_table(frame, params)
    assert len(prep.frame) == 41_188 and prep.label.sum() == 4_640
    suspects = leakage_audit(prep.frame[prep.features], prep.label, params=params.audit)
    assert [(s.column, s.rule) for s in suspects] == [("duration", "dominates")]
