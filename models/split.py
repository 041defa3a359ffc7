"""Out-of-time split of snapshots into train / calibration / test, no lead in two parts.

The time axis is cut at two cutoff dates ``t1 < t2`` taken from the row fractions:
train is ``cutoff < t1 - gap``, calibration ``t1 <= cutoff < t2 - gap``, test ``cutoff >= t2``.
With ``gap = horizon_days`` no label window of an earlier part (cutoff + horizon) reaches
into the next part. No lead is in two parts: a lead belongs to the part in which its *first*
snapshot (its MQL) falls, and its later rows in later parts are dropped (counted in the summary);
a lead whose first snapshot falls in a gap is left out.

Why the first snapshot and not the last: a lead only has snapshots while it is open, so "the
latest part a lead reaches" depends on whether it converted; keeping such leads out of the
earlier parts would select converters into train and calibration (in the simulated base the
calibration part's positive rate doubled) and miscalibrate the model. The MQL time is known at the
first cutoff and says nothing about the outcome, so every part is an unbiased sample of its
cohort's snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.contract import CUTOFF, LABEL, LEAD_ID

PARTS: tuple[str, ...] = ("train", "calibration", "test")


class SplitParams(BaseModel):
    """Row fractions of the three parts (before gaps and lead de-duplication) and the gap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: float = Field(0.6, gt=0, lt=1)
    calibration: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    gap_days: int | None = Field(None, ge=0)
    """Days left out before each boundary; None = the label horizon."""
    method: Literal["auto", "out_of_time", "stratified_random"] = "auto"
    """auto: the train stage picks out_of_time for dated rows, stratified_random for an undated
    CRM export (``data.split_method``); the library treats auto as out_of_time."""
    seed: int = 42
    """Seed of the stratified random split."""

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitParams:
        total = self.train + self.calibration + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + calibration + test must be 1, got {total:g}")
        return self


@dataclass(frozen=True)
class SplitResult:
    """The three parts and a JSON-ready summary (dates, row, lead and positive counts, drops)."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def part(self, name: str) -> pd.DataFrame:
        return {"train": self.train, "calibration": self.calibration, "test": self.test}[name]


def boundaries(cutoffs: pd.Series, params: SplitParams) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The cut dates ``(t1, t2)``: the cutoffs at the train and train+calibration row quantiles."""
    values = cutoffs.sort_values(ignore_index=True)
    n = len(values)
    i1 = min(int(np.floor(n * params.train)), n - 1)
    i2 = min(int(np.floor(n * (params.train + params.calibration))), n - 1)
    return values.iloc[i1], values.iloc[i2]


def split_out_of_time(snapshots: pd.DataFrame, params: SplitParams, horizon_days: int) -> SplitResult:
    """Split ``snapshots`` out of time (see the module docstring); the input is not modified.

    With ``params.method == "stratified_random"`` the split is a seeded stratified random split
    by lead instead (``split_stratified_random``), for data with no time axis.
    """
    if params.method == "stratified_random":
        return split_stratified_random(snapshots, params)
    gap = pd.Timedelta(days=params.gap_days if params.gap_days is not None else horizon_days)
    cutoff = snapshots[CUTOFF]
    t1, t2 = boundaries(cutoff, params)
    if not t1 < t2 - gap:
        raise ValueError(
            f"the calibration period [{t1}, {t2 - gap}) is empty: the data spans too little time "
            f"for a {gap.days}-day gap; shorten gap_days or use more data"
        )
    part = np.full(len(snapshots), -1, dtype=np.int8)  # -1 = in a gap
    part[(cutoff < t1 - gap).to_numpy()] = 0
    part[((cutoff >= t1) & (cutoff < t2 - gap)).to_numpy()] = 1
    part[(cutoff >= t2).to_numpy()] = 2

    # Each lead belongs to the part of its first snapshot (see the module docstring).
    ids = snapshots[LEAD_ID].to_numpy()
    first_cutoff = cutoff.groupby(ids).transform("min")
    home = np.full(len(snapshots), -1, dtype=np.int8)
    home[(first_cutoff < t1 - gap).to_numpy()] = 0
    home[((first_cutoff >= t1) & (first_cutoff < t2 - gap)).to_numpy()] = 1
    home[(first_cutoff >= t2).to_numpy()] = 2
    in_gap = part == -1
    started_in_gap = ~in_gap & (home == -1)
    earlier = ~in_gap & (home >= 0) & (home < part)
    keep = ~in_gap & (home == part)

    frames = {name: snapshots.loc[keep & (part == i)].reset_index(drop=True) for i, name in enumerate(PARTS)}
    summary: dict[str, Any] = {
        "method": "out_of_time",
        "gap_days": gap.days,
        "t1": t1.isoformat(),
        "t2": t2.isoformat(),
        "fractions": {"train": params.train, "calibration": params.calibration, "test": params.test},
        "input_rows": int(len(snapshots)),
        "dropped_rows": {
            "gap": int(in_gap.sum()),
            "lead_in_earlier_part": {
                name: int((earlier & (part == i)).sum()) for i, name in enumerate(PARTS) if i > 0
            },
            "lead_started_in_gap": {
                name: int((started_in_gap & (part == i)).sum()) for i, name in enumerate(PARTS) if i > 0
            },
        },
    }
    for name, frame in frames.items():
        summary[name] = describe_part(frame)
    return SplitResult(frames["train"], frames["calibration"], frames["test"], summary)


def split_stratified_random(snapshots: pd.DataFrame, params: SplitParams) -> SplitResult:
    """A seeded random split by lead, stratified on whether the lead ever has a positive row.

    For tables with no time axis (a CRM export without dates): each part gets the configured
    share of the converted and of the other leads, so the outcome rate is the same in every part.
    There is no gap (no time to leave out) and no lead is in two parts.
    """
    ids = snapshots[LEAD_ID].to_numpy()
    leads = pd.Series(snapshots[LABEL].to_numpy()).groupby(ids).max()
    rng = np.random.default_rng(params.seed)
    part_of: dict[Any, int] = {}
    for cls in (0, 1):
        members = np.sort(leads.index[leads.to_numpy() == cls].to_numpy())
        order = members[rng.permutation(len(members))]
        n = len(order)
        i1 = int(round(n * params.train))
        i2 = int(round(n * (params.train + params.calibration)))
        for i, lead in enumerate(order.tolist()):
            part_of[lead] = 0 if i < i1 else 1 if i < i2 else 2
    part = pd.Series(ids).map(part_of).to_numpy()
    frames = {name: snapshots.loc[part == i].reset_index(drop=True) for i, name in enumerate(PARTS)}
    summary: dict[str, Any] = {
        "method": "stratified_random",
        "reason": "the rows have no time axis (no date column, rows not declared in time order)",
        "seed": params.seed,
        "gap_days": 0,
        "fractions": {"train": params.train, "calibration": params.calibration, "test": params.test},
        "input_rows": int(len(snapshots)),
    }
    for name, frame in frames.items():
        summary[name] = describe_part(frame)
    return SplitResult(frames["train"], frames["calibration"], frames["test"], summary)


def describe_part(frame: pd.DataFrame) -> dict[str, Any]:
    """Dates, rows, leads and positives of one part, as plain JSON values."""
    rows = int(len(frame))
    positives = int(frame[LABEL].sum()) if rows else 0
    return {
        "start": frame[CUTOFF].min().isoformat() if rows else None,
        "end": frame[CUTOFF].max().isoformat() if rows else None,
        "rows": rows,
        "leads": int(frame[LEAD_ID].nunique()),
        "positives": positives,
        "positive_rate": positives / rows if rows else None,
    }


def lead_holdout(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` by lead into ``(fit, holdout)`` with about ``fraction`` of leads held out.

    Used for early stopping inside the training part. Leads are drawn from their sorted unique
    ids with a seeded generator, so the result does not depend on row order.
    """
    leads = np.sort(pd.unique(frame[LEAD_ID].to_numpy()))
    rng = np.random.default_rng(seed)
    n_hold = max(1, int(round(len(leads) * fraction)))
    held = set(rng.choice(leads, size=n_hold, replace=False).tolist())
    mask = frame[LEAD_ID].isin(held).to_numpy()
    return frame.loc[~mask].reset_index(drop=True), frame.loc[mask].reset_index(drop=True)
