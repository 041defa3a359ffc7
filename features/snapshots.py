"""The snapshot spine: which (lead, cutoff) rows exist, and their labels.

A training row is a (lead, cutoff) snapshot of an *open* MQL. Cutoffs fall at the MQL time
and every ``step_days`` after it while the lead is still open, up to ``max_age_days`` after
the MQL. The label is "became SQL within ``horizon_days`` after the cutoff", i.e. ``sql_at``
in ``(cutoff, cutoff + horizon]``. Snapshots whose horizon runs past the end of the data are
censored: left out, never labelled negative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.contract import CUTOFF, DISQUALIFIED_AT, LABEL, LEAD_ID, MQL_AT, SQL_AT


class SpineParams(BaseModel):
    """How snapshots are laid out in time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_days: int = Field(14, ge=1)
    horizon_days: int = Field(30, ge=1)
    max_age_days: int = Field(168, ge=0)


def _open_at(leads: pd.DataFrame, cutoff: pd.Series) -> pd.Series:
    """True where the lead is an MQL, not yet SQL and not disqualified at ``cutoff``."""
    mql = leads[MQL_AT]
    sql = leads[SQL_AT]
    is_open = mql.notna() & (mql <= cutoff) & (sql.isna() | (sql > cutoff))
    if DISQUALIFIED_AT in leads.columns:
        dq = leads[DISQUALIFIED_AT]
        is_open &= dq.isna() | (dq > cutoff)
    return is_open


def snapshot_spine(leads: pd.DataFrame, data_end: pd.Timestamp, params: SpineParams) -> pd.DataFrame:
    """Training spine ``(lead_id, cutoff, label)`` for every open MQL snapshot not censored.

    ``data_end`` is the last moment the data covers; a snapshot is kept only when
    ``cutoff + horizon <= data_end``. Rows are sorted by ``(cutoff, lead_id)``.
    """
    return _spine(leads, data_end, params, count_censored=False)[0]


def censored_snapshot_count(leads: pd.DataFrame, data_end: pd.Timestamp, params: SpineParams) -> int:
    """How many open-MQL snapshots up to ``data_end`` are left out because their horizon is not over."""
    return _spine(leads, data_end, params, count_censored=True)[1]


def _spine(
    leads: pd.DataFrame, data_end: pd.Timestamp, params: SpineParams, *, count_censored: bool
) -> tuple[pd.DataFrame, int]:
    step = pd.Timedelta(days=params.step_days)
    horizon = pd.Timedelta(days=params.horizon_days)
    n_steps = params.max_age_days // params.step_days + 1

    censored = 0
    mqls = leads.loc[leads[MQL_AT].notna()]
    if mqls.empty:
        return _empty_spine(leads), 0
    k = np.tile(np.arange(n_steps), len(mqls))
    rows = mqls.iloc[np.repeat(np.arange(len(mqls)), n_steps)].reset_index(drop=True)
    cutoff = rows[MQL_AT] + step * k
    keep = _open_at(rows, cutoff) & (cutoff <= data_end)
    if count_censored:
        censored = int((keep & (cutoff + horizon > data_end)).sum())
    keep &= cutoff + horizon <= data_end
    rows, cutoff = rows.loc[keep], cutoff.loc[keep]
    sql = rows[SQL_AT]
    label = (sql.notna() & (sql <= cutoff + horizon)).astype("int8")
    spine = pd.DataFrame({LEAD_ID: rows[LEAD_ID].to_numpy(), CUTOFF: cutoff.to_numpy(), LABEL: label.to_numpy()})
    spine = spine.sort_values([CUTOFF, LEAD_ID], kind="stable").reset_index(drop=True)
    return spine, censored if count_censored else 0


def scoring_spine(leads: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Scoring spine ``(lead_id, cutoff)``: every lead that is an open MQL at ``as_of``."""
    cutoff = pd.Series(as_of, index=leads.index)
    open_leads = leads.loc[_open_at(leads, cutoff), LEAD_ID]
    return pd.DataFrame({LEAD_ID: open_leads.to_numpy(), CUTOFF: as_of}).reset_index(drop=True)


def _empty_spine(leads: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            LEAD_ID: pd.Series([], dtype=leads[LEAD_ID].dtype),
            CUTOFF: pd.Series([], dtype=leads[MQL_AT].dtype),
            LABEL: pd.Series([], dtype="int8"),
        }
    )
