"""Leakage audit: find columns that know the outcome because they were filled in after it.

A CRM export mixes what was known before a lead was qualified with what sales wrote after
(call length, deal stage, contract dates). Such columns make a model look brilliant and fail
in use. Four rules, each cheap and deterministic:

* **near_perfect** — the column alone predicts the outcome on a holdout with ROC AUC at least
  ``near_perfect_auc`` (default 0.95).
* **dominates** — the column alone predicts about as well as a quick model on all the *other*
  columns together (its lift over chance is at least ``dominance_share`` of theirs) **and** it
  carries information nothing else has (added to the quick model on the others it removes at
  least ``min_error_share`` of their ranking errors, ``(AUC_all − AUC_others) / (1 − AUC_others)``).
  Honest context columns that are predictive but redundant (bank marketing's macro-economic
  indicators: error share ≤ 0.04) fail the second half; an honest strong but not dominant column
  fails the first half; a post-outcome column such as a call's duration (error share ≈ 0.73,
  alone ≈ as good as the rest) passes both.
* **filled_for_one_class** — the share of filled rows differs between converted and
  non-converted leads by at least ``missing_gap`` (a field sales fills in after qualifying).
* **after_outcome** — a date column that falls at or after the outcome time for most
  converted leads, or after the lead's reference date (the cutoff) for most rows.

Single-column scores are target rates per quantile bin (numbers, dates) or per value
(categories), learnt on a stratified random 70 % and scored on the other 30 %. The holdout is
random, not out-of-time, on purpose: the audit asks what a column knows about the outcome, not
whether it generalises over time (an out-of-time holdout would confuse drift with leakage).
Known limitation: two copies of the same leaky column hide each other from the dominance rule
(each is redundant given the other); the near-perfect rule still catches strong copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

Rule = Literal["near_perfect", "dominates", "filled_for_one_class", "after_outcome"]


class AuditParams(BaseModel):
    """Thresholds of the leakage audit (``data.audit`` in ``params.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    keep: list[str] = Field(default_factory=list)
    """Columns kept as features even when suspect (reported as kept on purpose)."""
    near_perfect_auc: float = Field(0.95, gt=0.5, le=1.0)
    dominance_share: float = Field(0.9, gt=0.0)
    """Suspect when (AUC alone − 0.5) ≥ share × (AUC of the others together − 0.5) ..."""
    min_error_share: float = Field(0.5, ge=0.0, le=1.0)
    """... and adding it to the others removes at least this share of their ranking errors:
    (AUC with it − AUC without) / (1 − AUC without)."""
    missing_gap: float = Field(0.5, gt=0.0, le=1.0)
    """Suspect when |P(filled | converted) − P(filled | not converted)| reaches this."""
    after_share: float = Field(0.5, gt=0.0, le=1.0)
    """Suspect when this share of a date column's rows falls after the outcome or the cutoff."""
    min_support: int = Field(20, ge=1)
    """Rows each class (and each side of filled/missing) needs before a rule may fire."""
    holdout: float = Field(0.3, gt=0.05, lt=0.95)
    max_rows: int = Field(20_000, ge=100)
    """Rows the quick models train on at most (a stratified sample), to keep the audit fast."""
    seed: int = 42


@dataclass(frozen=True)
class Suspect:
    """A column the audit suspects of leaking the outcome, with the rule, a sentence and the figure."""

    column: str
    rule: Rule
    reason: str
    figure: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- holdout and encodings ---------------------------------------------------------------------


def stratified_holdout(label: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Boolean mask of a stratified random holdout (``share`` of each class)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(label), dtype=bool)
    for cls in (0, 1):
        idx = np.flatnonzero(label == cls)
        mask[rng.choice(idx, size=int(round(share * len(idx))), replace=False)] = True
    return mask


def numeric_view(frame: pd.DataFrame, time_column: str | None = None) -> pd.DataFrame:
    """Every column as float (categories as codes, dates as days before ``time_column`` or epoch days)."""
    reference = frame[time_column] if time_column else None
    out = {}
    for col in frame.columns:
        s = frame[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
            base = reference if reference is not None and col != time_column else pd.Timestamp(0, tz="UTC")
            out[col] = (base - s).dt.total_seconds() / 86400.0
        elif _is_number(s):
            out[col] = s.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
        else:
            codes = s.astype("category").cat.codes.to_numpy().astype("float64")
            out[col] = np.where(codes < 0, np.nan, codes)
    return pd.DataFrame(out, index=frame.index)


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(s.dtype) or (
        pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype)
    )


def single_column_scores(values: pd.Series, is_categorical: bool, label: np.ndarray, train: np.ndarray,
                         bins: int = 20, prior_rows: float = 10.0) -> np.ndarray:
    """Each row's smoothed outcome rate in its bin (quantile bin, or value), learnt on ``train`` rows.

    Missing values form their own bin, so "filled or not" counts as information too.
    """
    if is_categorical:
        keys = values.astype("str").where(values.notna(), "\x00missing").to_numpy(dtype=object)
    else:
        x = values.to_numpy(dtype="float64", na_value=np.nan)
        finite = x[train & ~np.isnan(x)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1))[1:-1]) if len(finite) else np.array([])
        keys = np.where(np.isnan(x), -1, np.searchsorted(edges, np.nan_to_num(x), side="right"))
    prior = float(label[train].mean())
    stats = pd.DataFrame({"k": keys[train], "y": label[train]}).groupby("k", sort=False)["y"].agg(["sum", "count"])
    rate = (stats["sum"] + prior * prior_rows) / (stats["count"] + prior_rows)
    return pd.Series(keys).map(rate).fillna(prior).to_numpy(dtype="float64")


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else 0.5


def quick_model_auc(x: pd.DataFrame, label: np.ndarray, train: np.ndarray, params: AuditParams) -> float:
    """Holdout AUC of a small seeded LightGBM on ``x`` (already numeric), on at most ``max_rows`` rows."""
    if x.shape[1] == 0:
        return 0.5
    idx = np.flatnonzero(train)
    if len(idx) > params.max_rows:
        keep = stratified_holdout(label[idx], params.max_rows / len(idx), params.seed + 1)
        idx = idx[keep]
    model = lgb.LGBMClassifier(
        n_estimators=80, learning_rate=0.1, num_leaves=15, min_child_samples=40, max_bin=63,
        subsample=1.0, colsample_bytree=1.0, n_jobs=1, random_state=params.seed, deterministic=True,
        force_row_wise=True, verbose=-1,
    )
    model.fit(x.iloc[idx].to_numpy(dtype="float32"), label[idx])
    test = ~train
    return _auc(label[test], model.predict_proba(x.loc[test].to_numpy(dtype="float32"))[:, 1])


# --- the rules -----------------------------------------------------------------------------------


def fill_rates(frame: pd.DataFrame, label: np.ndarray) -> dict[str, tuple[float, float]]:
    """``column -> (P(filled | converted), P(filled | not converted))``."""
    pos = label == 1
    return {c: (float(frame[c].notna().to_numpy()[pos].mean()), float(frame[c].notna().to_numpy()[~pos].mean()))
            for c in frame.columns}


def missingness_suspects(frame: pd.DataFrame, label: np.ndarray, params: AuditParams) -> list[Suspect]:
    """Columns filled mostly for one outcome class (rule ``filled_for_one_class``)."""
    out = []
    n_pos, n_neg = int(label.sum()), int(len(label) - label.sum())
    if min(n_pos, n_neg) < params.min_support:
        return out
    for col, (p1, p0) in fill_rates(frame, label).items():
        filled = int(frame[col].notna().sum())
        if min(filled, len(frame) - filled) < params.min_support:
            continue
        gap = p1 - p0
        if abs(gap) >= params.missing_gap:
            out.append(Suspect(col, "filled_for_one_class",
                               f"filled for {p1:.0%} of converted leads but {p0:.0%} of the others "
                               f"(gap {abs(gap):.2f} ≥ {params.missing_gap:.2f}): likely written after the outcome",
                               round(abs(gap), 4)))
    return out


def time_suspects(frame: pd.DataFrame, label: np.ndarray, time_column: str | None, outcome_time: str | None,
                  params: AuditParams) -> list[Suspect]:
    """Date columns after the outcome time (converted rows) or after the cutoff (rule ``after_outcome``)."""
    out = []
    dates = [c for c in frame.columns if c not in (time_column, outcome_time) and _is_date(frame[c])]
    for col in dates:
        d = frame[col]
        if outcome_time is not None:
            both = (label == 1) & d.notna().to_numpy() & frame[outcome_time].notna().to_numpy()
            if both.sum() >= max(5, params.min_support // 4):
                share = float((d[both] >= frame[outcome_time][both]).mean())
                if share >= params.after_share:
                    out.append(Suspect(col, "after_outcome",
                                       f"at or after {outcome_time} for {share:.0%} of converted leads: "
                                       "known only once the lead had converted", round(share, 4)))
                    continue
        if time_column is not None:
            both = d.notna().to_numpy() & frame[time_column].notna().to_numpy()
            if both.sum() >= params.min_support:
                share = float((d[both] > frame[time_column][both]).mean())
                if share >= params.after_share:
                    out.append(Suspect(col, "after_outcome",
                                       f"after the lead's reference date {time_column} in {share:.0%} of rows: "
                                       "not known when the lead would be scored", round(share, 4)))
    return out


def _is_date(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype)


def predictive_suspects(frame: pd.DataFrame, label: np.ndarray, time_column: str | None,
                        params: AuditParams, skip: Sequence[str] = ()) -> tuple[list[Suspect], dict[str, dict[str, float]]]:
    """Rules ``near_perfect`` and ``dominates``, plus the figures measured per column.

    Only a column whose single AUC lift is at least ``dominance_share`` of the best *other*
    column's can dominate (a model on the others is at least about as good as their best
    column), so the quick model is refitted for a handful of candidates, not for every column.
    Suspects are taken out one at a time, strongest first, and the rest re-examined.
    """
    x = numeric_view(frame, time_column)
    cols = [c for c in frame.columns if c != time_column and c not in set(skip)]
    train = ~stratified_holdout(label, params.holdout, params.seed)
    test = ~train
    single = {c: _auc(label[test], single_column_scores(
        frame[c] if not _is_date(frame[c]) else x[c], not (_is_number(frame[c]) or _is_date(frame[c])),
        label, train)[test]) for c in cols}
    figures: dict[str, dict[str, float]] = {c: {"single_auc": round(single[c], 4)} for c in cols}
    suspects: list[Suspect] = []
    pool = list(cols)
    for c in cols:
        if single[c] >= params.near_perfect_auc:
            suspects.append(Suspect(c, "near_perfect", f"alone predicts the outcome with ROC AUC {single[c]:.3f} "
                                    f"(≥ {params.near_perfect_auc:.2f}): almost certainly known only after it",
                                    round(single[c], 4)))
            pool.remove(c)
    while len(pool) >= 2:
        full = quick_model_auc(x[pool], label, train, params)
        found = None
        for c in sorted(pool, key=lambda k: -single[k]):
            best_other = max(single[d] for d in pool if d != c)
            if single[c] - 0.5 < params.dominance_share * (best_other - 0.5):
                break  # weaker columns cannot dominate either
            others = quick_model_auc(x[[d for d in pool if d != c]], label, train, params)
            share = (full - others) / max(1.0 - others, 1e-9)
            figures[c].update(others_auc=round(others, 4), all_auc=round(full, 4), error_share=round(share, 4))
            dominant = single[c] - 0.5 >= params.dominance_share * (others - 0.5)
            if dominant and share >= params.min_error_share:
                found = Suspect(c, "dominates",
                                f"alone predicts the outcome (AUC {single[c]:.3f}) as well as all other columns "
                                f"together ({others:.3f}), and adding it to them removes {share:.0%} of their "
                                f"ranking errors (AUC {others:.3f} → {full:.3f}): it knows something no other "
                                "column does, typically the outcome itself", round(single[c], 4))
                break
        if found is None:
            break
        suspects.append(found)
        pool.remove(found.column)
    return suspects, figures


def leakage_audit(
    frame: pd.DataFrame,
    label: np.ndarray,
    *,
    time_column: str | None = None,
    outcome_time: str | None = None,
    params: AuditParams | None = None,
) -> list[Suspect]:
    """Columns of ``frame`` suspected of leaking ``label`` (0/1), one ``Suspect`` per column.

    ``frame`` holds typed feature columns (numbers/booleans, categories/text, UTC dates) and, when
    given, ``time_column`` (each lead's reference date, the cutoff) and ``outcome_time`` (when
    the lead converted); those two are context, never suspects. Deterministic; nothing is
    dropped here: the caller excludes suspects not in ``params.keep``.
    """
    params = params or AuditParams()
    label = np.asarray(label).astype(np.int8)
    if len(label) != len(frame):
        raise ValueError(f"label has {len(label)} rows, frame has {len(frame)}")
    frame = frame.reset_index(drop=True)
    context = [c for c in (time_column, outcome_time) if c is not None]
    features = frame.drop(columns=[c for c in context if c in frame.columns])
    found: dict[str, Suspect] = {}
    for s in time_suspects(frame, label, time_column, outcome_time, params):
        found.setdefault(s.column, s)
    for s in missingness_suspects(features, label, params):
        found.setdefault(s.column, s)
    if min(int(label.sum()), int(len(label) - label.sum())) >= params.min_support:
        audit_frame = frame.drop(columns=[c for c in (outcome_time,) if c is not None and c in frame.columns])
        predictive, _ = predictive_suspects(audit_frame, label, time_column, params, skip=list(found))
        for s in predictive:
            found.setdefault(s.column, s)
    return [found[c] for c in features.columns if c in found]


def audit_figures(frame: pd.DataFrame, label: np.ndarray, *, time_column: str | None = None,
                  params: AuditParams | None = None) -> dict[str, dict[str, float]]:
    """The per-column figures behind the predictive rules (single AUC, and for candidates the
    others' AUC and the unique gain), plus fill rates: for reports and for tuning thresholds."""
    params = params or AuditParams()
    label = np.asarray(label).astype(np.int8)
    frame = frame.reset_index(drop=True)
    _, figures = predictive_suspects(frame, label, time_column, params)
    for col, (p1, p0) in fill_rates(frame.drop(columns=[time_column] if time_column else []), label).items():
        figures.setdefault(col, {}).update(filled_converted=round(p1, 4), filled_other=round(p0, 4))
    return figures
