"""Input guards for model training: snapshot shape, class counts, unusable feature columns.

Training on a handful of positives gives a model and metrics that look precise and mean
nothing, so too few rows of either class stops the run with a message saying how many were
found and how many are needed; a count that is merely small warns that metrics will be noisy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.contract import CUTOFF, LABEL, LEAD_ID, SQL_AT
from features.errors import DataContractError

SNAPSHOTS = "snapshots"
"""How error messages name the training input (the stage passes a frame, not a path)."""

KEY_COLUMNS: tuple[str, ...] = (LEAD_ID, CUTOFF, LABEL)
OUTCOME_COLUMNS: tuple[str, ...] = (SQL_AT, "true_probability")
"""Columns that are the outcome (or the simulator's truth about it), never features."""


class NoisyMetricsWarning(UserWarning):
    """A part of the data has few rows of one class: its metrics carry wide error bars."""


class DroppedFeatureWarning(UserWarning):
    """A feature column was left out of training (for example: entirely null)."""


def check_snapshot_frame(snapshots: pd.DataFrame) -> None:
    """Raise ``DataContractError`` unless the frame has the snapshot key, a UTC cutoff and 0/1 labels."""
    missing = [c for c in KEY_COLUMNS if c not in snapshots.columns]
    if missing:
        raise DataContractError(
            SNAPSHOTS,
            f"missing column(s) {', '.join(missing)}",
            expected=f"columns {', '.join(KEY_COLUMNS)} followed by feature columns",
        )
    cutoff = snapshots[CUTOFF]
    if not isinstance(cutoff.dtype, pd.DatetimeTZDtype) or str(cutoff.dtype.tz) != "UTC":
        raise DataContractError(
            SNAPSHOTS, f"cutoff has dtype {cutoff.dtype}", column=CUTOFF, expected="datetime64[us, UTC]"
        )
    if cutoff.isna().any():
        raise DataContractError(
            SNAPSHOTS,
            "null cutoff",
            column=CUTOFF,
            n_bad=int(cutoff.isna().sum()),
            expected="a cutoff on every row",
        )
    label = snapshots[LABEL]
    bad = ~label.isin([0, 1]) | label.isna()
    if bad.any():
        shown = [str(v) for v in pd.unique(label[bad])[:5]]
        raise DataContractError(
            SNAPSHOTS,
            "label values other than 0/1",
            column=LABEL,
            rows=shown,
            n_bad=int(bad.sum()),
            expected="0 or 1",
        )
    n_duplicated = int(snapshots.duplicated(list((LEAD_ID, CUTOFF))).sum())
    if n_duplicated:
        raise DataContractError(
            SNAPSHOTS, "duplicate (lead_id, cutoff) rows", n_bad=n_duplicated, expected="one row per snapshot"
        )


def class_counts(labels: pd.Series | np.ndarray) -> tuple[int, int]:
    """``(positives, negatives)`` of a 0/1 label vector."""
    y = np.asarray(labels)
    positives = int((y == 1).sum())
    return positives, int(len(y) - positives)


def check_class_counts(
    labels: pd.Series | np.ndarray, *, part: str, minimum: int, warn_below: int
) -> list[str]:
    """Stop when ``part`` ("the train part") has under ``minimum`` rows of a class; warn under ``warn_below``.

    Returns the warning messages issued (also emitted as ``NoisyMetricsWarning``), so callers
    can record them next to the metrics.
    """
    positives, negatives = class_counts(labels)
    for name, found in (("positive (label=1)", positives), ("negative (label=0)", negatives)):
        if found < minimum:
            raise DataContractError(
                SNAPSHOTS,
                f"{part} has {found} {name} rows; at least {minimum} are needed "
                f"({positives} positive and {negatives} negative rows found in {positives + negatives} rows)",
                column=LABEL,
                expected=f"at least {minimum} rows of each class in {part} "
                "(more data, a longer date range, or a lower min_class_rows)",
            )
    messages = []
    for name, found in (("positive", positives), ("negative", negatives)):
        if found < warn_below:
            msg = f"{part} has only {found} {name} rows (under {warn_below}): its metrics will be noisy"
            warnings.warn(msg, NoisyMetricsWarning, stacklevel=2)
            messages.append(msg)
    return messages


def feature_columns(snapshots: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Every column that is not the snapshot key nor excluded, in frame order."""
    skip = set(KEY_COLUMNS) | set(exclude)
    return [c for c in snapshots.columns if c not in skip]


def check_no_outcome_columns(features: Sequence[str]) -> None:
    """Refuse feature columns that carry the outcome itself (they would leak the label)."""
    leaks = [c for c in features if c in OUTCOME_COLUMNS]
    if leaks:
        raise DataContractError(
            SNAPSHOTS,
            f"column(s) {', '.join(leaks)} describe the outcome and would leak the label into training",
            expected="snapshot features known before the cutoff; drop these columns or list them in exclude",
        )


def drop_timestamp_features(
    snapshots: pd.DataFrame, features: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """Split ``features`` into ``(kept, dropped, messages)``; timestamp columns are dropped.

    A raw timestamp is not a feature a model can reuse at a later scoring time (every new date
    is unseen); the point-in-time builder turns times into durations before the cutoff.
    """
    dropped = [c for c in features if pd.api.types.is_datetime64_any_dtype(snapshots[c].dtype)]
    messages = []
    for col in dropped:
        msg = f"feature column '{col}' holds timestamps and was dropped from training (use durations)"
        warnings.warn(msg, DroppedFeatureWarning, stacklevel=2)
        messages.append(msg)
    return [c for c in features if c not in set(dropped)], dropped, messages


def drop_null_features(
    snapshots: pd.DataFrame, features: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """Split ``features`` into ``(kept, dropped, messages)``; entirely-null columns are dropped.

    A column with no value carries no information and breaks some encoders, so it is left out
    with a ``DroppedFeatureWarning`` naming it rather than failing the whole run.
    """
    all_null = snapshots[list(features)].isna().all() if len(features) else pd.Series(dtype=bool)
    dropped = [c for c in features if bool(all_null[c])]
    kept = [c for c in features if c not in set(dropped)]
    messages = []
    for col in dropped:
        msg = f"feature column '{col}' is entirely null and was dropped from training"
        warnings.warn(msg, DroppedFeatureWarning, stacklevel=2)
        messages.append(msg)
    if not kept:
        raise DataContractError(
            SNAPSHOTS, "no usable feature columns", expected="at least one feature column with values"
        )
    return kept, dropped, messages
