"""Calibration of the LightGBM scorer on the calibration part only.

scikit-learn's ``CalibratedClassifierCV`` over a ``FrozenEstimator`` fits the map from the
booster's raw score to a probability without refitting the booster. ``method="auto"``
chooses on the data: sigmoid (2 parameters) unless the calibration part is large enough for
isotonic (at least ``min_isotonic_rows`` rows *and* ``min_isotonic_positives`` positives,
because an isotonic step function is only as fine as the positives it can see), and then
isotonic only if it beats sigmoid's Brier score by at least ``isotonic_min_gain`` (relative) in a
K-fold check within the calibration part. Isotonic is a step function: it ties every score in a
step, which costs ranking resolution (ROC and PR AUC), so it must pay for that with a clear gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from features.contract import CUTOFF, LABEL


class CalibrationParams(BaseModel):
    """How the calibration method is chosen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["auto", "sigmoid", "isotonic"] = "auto"
    min_isotonic_rows: int = Field(5000, ge=1)
    min_isotonic_positives: int = Field(500, ge=1)
    isotonic_min_gain: float = Field(0.005, ge=0)
    """Relative Brier reduction over sigmoid that isotonic needs to be chosen."""
    folds: int = Field(5, ge=2)
    seed: int = 42


@dataclass(frozen=True)
class CalibrationChoice:
    """The method used and why, with the K-fold Brier scores when both were compared."""

    method: Literal["sigmoid", "isotonic"]
    reason: str
    cv_brier: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return {"method": self.method, "reason": self.reason, "cv_brier": self.cv_brier}


def cv_brier(score: np.ndarray, y: np.ndarray, folds: int, seed: int) -> dict[str, float]:
    """Out-of-fold Brier score of sigmoid and isotonic maps from ``score`` to probability."""
    oof = {"sigmoid": np.empty(len(y)), "isotonic": np.empty(len(y))}
    x = score.reshape(-1, 1)
    for fit_idx, val_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        sig = LogisticRegression(C=1e6).fit(x[fit_idx], y[fit_idx])
        oof["sigmoid"][val_idx] = sig.predict_proba(x[val_idx])[:, 1]
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(score[fit_idx], y[fit_idx])
        oof["isotonic"][val_idx] = iso.predict(score[val_idx])
    return {name: float(brier_score_loss(y, p)) for name, p in oof.items()}


def choose_method(score: np.ndarray, y: np.ndarray, params: CalibrationParams) -> CalibrationChoice:
    """Pick sigmoid or isotonic for raw scores ``score`` with labels ``y`` (see the module docstring)."""
    rows, positives = len(y), int(np.sum(y))
    if params.method != "auto":
        return CalibrationChoice(params.method, f"method fixed to {params.method} in params")
    if rows < params.min_isotonic_rows or positives < params.min_isotonic_positives:
        return CalibrationChoice(
            "sigmoid",
            f"{rows} calibration rows with {positives} positives: isotonic needs at least "
            f"{params.min_isotonic_rows} rows and {params.min_isotonic_positives} positives",
        )
    briers = cv_brier(score, y, params.folds, params.seed)
    gain = 1.0 - briers["isotonic"] / briers["sigmoid"] if briers["sigmoid"] > 0 else 0.0
    method = "isotonic" if gain >= params.isotonic_min_gain else "sigmoid"
    verdict = "at least" if method == "isotonic" else "under"
    return CalibrationChoice(
        method,
        f"{rows} calibration rows with {positives} positives allow isotonic; {params.folds}-fold Brier "
        f"sigmoid {briers['sigmoid']:.5f} vs isotonic {briers['isotonic']:.5f}: isotonic's gain "
        f"{gain:.2%} is {verdict} the {params.isotonic_min_gain:.2%} required, so {method}",
        briers,
    )


def calibrate(
    scorer, calibration: pd.DataFrame, params: CalibrationParams
) -> tuple[CalibratedClassifierCV, CalibrationChoice]:
    """Fit the calibration map of ``scorer`` (already trained, never refit) on the calibration part."""
    y = calibration[LABEL].to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("the calibration part has a single class; calibration needs both")
    choice = choose_method(scorer.decision_function(calibration), y, params)
    model = CalibratedClassifierCV(FrozenEstimator(scorer), method=choice.method, ensemble=False)
    model.fit(calibration, y)
    return model, choice


def probability_from_raw(calibrated: CalibratedClassifierCV | CrossFitCalibrated, raw: np.ndarray) -> np.ndarray:
    """``calibrated.predict_proba(X)[:, 1]`` from the main model's raw scores of ``X`` (log-odds).

    The calibration maps read only the frozen scorer's ``decision_function``, its raw score; the
    scorer already has it as the sum of the TreeSHAP contributions, so applying the maps to it
    saves a second pass of every row through every tree. Same averaging and clipping as
    scikit-learn's ``predict_proba`` for a binary problem.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if isinstance(calibrated, CrossFitCalibrated):
        return calibrated.probability(raw)
    p = np.zeros(len(raw))
    for member in calibrated.calibrated_classifiers_:
        if member.method not in ("sigmoid", "isotonic") or len(member.calibrators) != 1:
            raise ValueError(f"probability_from_raw supports binary sigmoid or isotonic maps, not {member.method}")
        p += member.calibrators[0].predict(raw)
    p /= len(calibrated.calibrated_classifiers_)
    p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0
    return p


class CrossFitCalibrated(ClassifierMixin, BaseEstimator):
    """A model refit on train + calibration, with a calibration map learnt on out-of-fold scores.

    When the final model is refit on every pre-test row, no row is left to calibrate it on. The map
    from raw score to probability is then learnt from scores the model never trained on: each block
    of the calibration part scored by a model fitted on the rows before it (``cross_fit_blocks``),
    as ``CalibratedClassifierCV(ensemble=False)`` does with its folds, but in time order. ``fit``
    takes those out-of-fold scores; ``predict_proba`` applies the map to ``estimator``'s own score.
    """

    def __init__(self, estimator, method: Literal["sigmoid", "isotonic"] = "sigmoid") -> None:
        self.estimator = estimator
        self.method = method

    def fit(self, score: np.ndarray, y: np.ndarray) -> CrossFitCalibrated:
        """Learn the map on out-of-fold raw scores ``score`` and labels ``y`` (the estimator is not refit)."""
        score, y = np.asarray(score, dtype=float), np.asarray(y)
        if len(np.unique(y)) < 2:
            raise ValueError("the out-of-fold calibration rows have a single class; calibration needs both")
        if self.method == "isotonic":
            self.map_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(score, y)
        else:
            self.map_ = LogisticRegression(C=1e6).fit(score.reshape(-1, 1), y)
        self.classes_ = np.array([0, 1])
        return self

    def probability(self, score: np.ndarray) -> np.ndarray:
        """The calibrated probability of raw scores ``score``."""
        score = np.asarray(score, dtype=float)
        if self.method == "isotonic":
            return np.clip(self.map_.predict(score), 0.0, 1.0)
        return self.map_.predict_proba(score.reshape(-1, 1))[:, 1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.probability(self.estimator.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int8)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "map_")


def cross_fit_blocks(
    calibration: pd.DataFrame, blocks: int, gap_days: int
) -> list[tuple[np.ndarray, pd.Timestamp]]:
    """The calibration part cut into ``blocks`` consecutive time blocks of about equal rows.

    Returns, per block, the positions of its rows in ``calibration`` and the time its model's training
    rows must precede: the block's first cutoff minus ``gap_days``, so no label window of a training
    row reaches into the block (the caller also leaves out the block's own leads).
    """
    order = np.argsort(calibration[CUTOFF].to_numpy(), kind="stable")
    out = []
    for rows in np.array_split(order, blocks):
        if len(rows):
            out.append((np.sort(rows), calibration[CUTOFF].iloc[rows].min() - pd.Timedelta(days=gap_days)))
    return out


def base_model(calibrated):
    """The fitted model under a calibration wrapper (``CalibratedClassifierCV`` or ``CrossFitCalibrated``)."""
    if isinstance(calibrated, CrossFitCalibrated):
        return calibrated.estimator
    return calibrated.calibrated_classifiers_[0].estimator.estimator
