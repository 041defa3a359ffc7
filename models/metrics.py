"""Evaluation metrics and curve tables for probabilities on the out-of-time test part.

All functions take labels and scores as arrays and return plain JSON values or tidy frames.
Top-k figures treat tied scores fairly: a tie group straddling the k-th row counts with the
share of it that fits, so results never depend on row order (a points score has many ties).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

TOP_FRACTIONS: tuple[float, ...] = (0.05, 0.10, 0.20)
ECE_BINS = 15
CURVE_POINTS = 201


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error: size-weighted |observed rate - mean probability| over equal-width bins."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    gap = np.abs(
        np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins)
    )
    return float(gap.sum() / len(y))


def gain_knots(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and positives counted down from the top score, one knot per distinct score.

    Between knots the count is linear: contacting part of a tie group finds its positives pro
    rata, which is the expectation over any order of the tied rows.
    """
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    order = np.argsort(-score, kind="stable")
    s, cum = score[order], np.cumsum(y[order])
    last_of_group = np.r_[s[1:] != s[:-1], True] if len(s) else np.array([], dtype=bool)
    rows = np.r_[0, np.flatnonzero(last_of_group) + 1].astype(float)
    found = np.r_[0.0, cum[last_of_group]]
    return rows, found


def positives_in_top(y: np.ndarray, score: np.ndarray, k: float | np.ndarray) -> float | np.ndarray:
    """Expected positives among the ``k`` highest scores, ties at the boundary shared pro rata."""
    rows, found = gain_knots(y, score)
    return np.interp(k, rows, found)


def top_fraction_stats(y: np.ndarray, score: np.ndarray, fraction: float) -> dict[str, float]:
    """Lift (precision in the top fraction / base rate) and recall of the top ``fraction`` of rows."""
    y = np.asarray(y, dtype=float)
    k = fraction * len(y)
    hits = float(positives_in_top(y, score, k))
    total = y.sum()
    base = total / len(y) if len(y) else float("nan")
    precision = hits / k if k > 0 else float("nan")
    return {
        "lift": float(precision / base) if base > 0 else float("nan"),
        "recall": float(hits / total) if total > 0 else float("nan"),
    }


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100):d}pct"


def binary_metrics(
    y: np.ndarray,
    p: np.ndarray,
    *,
    threshold: float,
    top_fractions: Sequence[float] = TOP_FRACTIONS,
    n_bins: int = ECE_BINS,
) -> dict[str, Any]:
    """Every test metric for probabilities ``p``; ranking ones are None when a class is absent."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    both = 0 < y.sum() < len(y)
    flagged = p >= threshold
    tp = float((flagged & (y == 1)).sum())
    out: dict[str, Any] = {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()) if len(y) else None,
        "mean_probability": float(p.mean()) if len(y) else None,
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if len(y) else None,
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])) if len(y) else None,
        "ece": ece(y, p, n_bins) if len(y) else None,
        "threshold": float(threshold),
        "flagged": int(flagged.sum()),
        "precision_at_threshold": float(tp / flagged.sum()) if flagged.any() else None,
        "recall_at_threshold": float(tp / y.sum()) if y.sum() else None,
    }
    for fraction in top_fractions:
        stats = top_fraction_stats(y, p, fraction) if len(y) else {"lift": None, "recall": None}
        out[f"lift_at_{_pct(fraction)}"] = _finite(stats["lift"])
        out[f"recall_at_{_pct(fraction)}"] = _finite(stats["recall"])
    return out


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def band(values: pd.Series, edges: Sequence[float]) -> pd.Series:
    """Numeric ``values`` as labelled bands ``[e0, e1)``, ..., ``[e_last, inf)``: '1-49', ..., '1000+'."""
    edges = list(edges)
    labels = [f"{a:g}-{b - 1:g}" for a, b in zip(edges[:-1], edges[1:], strict=True)] + [f"{edges[-1]:g}+"]
    x = pd.to_numeric(values, errors="coerce").astype("float64")
    cut = pd.cut(x, [*edges, np.inf], right=False, labels=labels)
    return cut.astype(object).where(cut.notna(), None)


def slice_metrics(
    keys: pd.Series,
    y: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    *,
    thresholds: Mapping[str, float],
    min_rows: int,
) -> dict[str, dict[str, Any]]:
    """Metrics of each model (flagged at its own threshold) within each slice value having at least
    ``min_rows`` rows."""
    values = keys.astype(object).where(keys.notna(), "(missing)").to_numpy()
    y = np.asarray(y)
    out: dict[str, dict[str, Any]] = {}
    for value in sorted(pd.unique(values), key=str):
        mask = values == value
        if mask.sum() < min_rows:
            continue
        entry: dict[str, Any] = {"rows": int(mask.sum()), "positives": int(y[mask].sum())}
        for model, p in probabilities.items():
            entry[model] = binary_metrics(y[mask], np.asarray(p)[mask], threshold=thresholds[model])
        out[str(value)] = entry
    return out


def _thin(frame: pd.DataFrame, points: int = CURVE_POINTS) -> pd.DataFrame:
    """At most ``points`` rows, evenly spaced along the curve, first and last kept."""
    if len(frame) <= points:
        return frame
    idx = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[idx]


def roc_table(y: np.ndarray, probabilities: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Tidy ROC curves: ``model, fpr, tpr``."""
    parts = []
    for model, p in probabilities.items():
        fpr, tpr, _ = roc_curve(y, p)
        parts.append(_thin(pd.DataFrame({"model": model, "fpr": fpr, "tpr": tpr})))
    return pd.concat(parts, ignore_index=True)


def pr_table(y: np.ndarray, probabilities: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Tidy precision-recall curves: ``model, recall, precision``."""
    parts = []
    for model, p in probabilities.items():
        precision, recall, _ = precision_recall_curve(y, p)
        parts.append(
            _thin(pd.DataFrame({"model": model, "recall": recall[::-1], "precision": precision[::-1]}))
        )
    return pd.concat(parts, ignore_index=True)


def reliability_table(
    y: np.ndarray, probabilities: Mapping[str, np.ndarray], n_bins: int = ECE_BINS
) -> pd.DataFrame:
    """Tidy reliability diagram: ``model, bin, mean_predicted, observed_rate, rows`` (non-empty bins)."""
    y = np.asarray(y, dtype=float)
    parts = []
    for model, p in probabilities.items():
        p = np.clip(np.asarray(p, dtype=float), 0, 1)
        bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
        n = np.bincount(bins, minlength=n_bins)
        keep = n > 0
        parts.append(
            pd.DataFrame(
                {
                    "model": model,
                    "bin": np.arange(n_bins)[keep],
                    "mean_predicted": np.bincount(bins, weights=p, minlength=n_bins)[keep] / n[keep],
                    "observed_rate": np.bincount(bins, weights=y, minlength=n_bins)[keep] / n[keep],
                    "rows": n[keep],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def gains_table(y: np.ndarray, probabilities: Mapping[str, np.ndarray], points: int = 101) -> pd.DataFrame:
    """Tidy cumulative gains: ``model, fraction_contacted, fraction_of_positives`` at even steps."""
    y = np.asarray(y, dtype=float)
    fractions = np.linspace(0, 1, points)
    total = y.sum()
    parts = []
    for model, p in probabilities.items():
        gained = positives_in_top(y, p, fractions * len(y)) / total if total else np.full(points, np.nan)
        parts.append(
            pd.DataFrame({"model": model, "fraction_contacted": fractions, "fraction_of_positives": gained})
        )
    return pd.concat(parts, ignore_index=True)


def curve_tables(y: np.ndarray, probabilities: Mapping[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    """All four curves, keyed ``roc``, ``pr``, ``reliability``, ``gains``."""
    return {
        "roc": roc_table(y, probabilities),
        "pr": pr_table(y, probabilities),
        "reliability": reliability_table(y, probabilities),
        "gains": gains_table(y, probabilities),
    }
