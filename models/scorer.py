"""The exported scorer: per lead a calibrated probability, a flag, a tier and plain-language reasons.

``LeadScorer`` is an MLflow pyfunc model. It holds the calibrated LightGBM (booster, feature spec,
calibrator), the reason book (catalog declarations and version), the flag policy and the tier
cut-offs, so one artifact answers a batch job, a notebook and a real-time endpoint alike.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.contract import CUTOFF, LABEL, LEAD_ID
from models.calibration import base_model, probability_from_raw
from models.reasons import REASON_COLUMNS, RISK_COLUMN, ReasonBook

KEY_COLUMNS: tuple[str, ...] = (LEAD_ID, CUTOFF, LABEL)
TIERS: tuple[str, ...] = ("hot", "warm", "cold")


class TierParams(BaseModel):
    """Absolute probability cut-offs, so a tier means the same thing after every retrain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hot: float = Field(0.30, gt=0, lt=1)
    """Calibrated probability at or above which a lead is hot."""
    warm: float = Field(0.10, gt=0, lt=1)
    """At or above this (and below hot) a lead is warm; below it, cold."""

    @model_validator(mode="after")
    def _ordered(self) -> TierParams:
        if self.warm >= self.hot:
            raise ValueError(f"tiers.warm ({self.warm}) must be below tiers.hot ({self.hot})")
        return self


class FlagParams(BaseModel):
    """Which leads are flagged as likely to convert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["fixed", "capacity", "best_f1"] = "best_f1"
    """fixed: probability >= ``threshold``; capacity: the ``capacity`` most likely leads of each scoring
    run; best_f1: the threshold that maximised F1 on the calibration part (chosen at training)."""
    threshold: float = Field(0.5, gt=0, lt=1)
    capacity: int = Field(200, ge=1)


class ScorerParams(BaseModel):
    """The ``scorer`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: TierParams = TierParams()
    flag: FlagParams = FlagParams()


class FeatureColumnsError(ValueError):
    """The frame to score lacks model features or carries columns the scorer does not know."""


def output_columns(n_reasons: int = len(REASON_COLUMNS)) -> list[str]:
    reasons = [f"reason_{i + 1}" for i in range(n_reasons)]
    return [
        "probability", "flag", "tier", *reasons, RISK_COLUMN, "raw_score",
        *[f"{r}_shap" for r in reasons], f"{RISK_COLUMN}_shap",
    ]


def tier_of(p: np.ndarray, tiers: TierParams) -> np.ndarray:
    return np.where(p >= tiers.hot, "hot", np.where(p >= tiers.warm, "warm", "cold")).astype(object)


def flags(p: np.ndarray, params: FlagParams, best_f1_threshold: float) -> np.ndarray:
    """The flag of each row under the policy (capacity: the top ``capacity`` of this batch, ties by order)."""
    if params.policy == "capacity":
        out = np.zeros(len(p), dtype=bool)
        out[np.argsort(-p, kind="stable")[: params.capacity]] = True
        return out
    threshold = params.threshold if params.policy == "fixed" else best_f1_threshold
    return p >= threshold


class LeadScorer:
    """Calibrated probability, flag, tier and reasons from snapshot features (see module docstring).

    Plain Python, so scoring needs no MLflow; ``models.pyfunc.LeadScorerModel`` wraps it for MLflow.
    """

    def __init__(
        self,
        calibrated: Any,
        reasons: ReasonBook,
        params: ScorerParams,
        *,
        best_f1_threshold: float,
        model_name: str = "lead-propensity",
    ) -> None:
        self.calibrated = calibrated
        self.reasons = reasons
        self.params = params
        self.best_f1_threshold = float(best_f1_threshold)
        self.model_name = model_name
        self.model_version: str | None = None
        self._explainer = None

    # --- parts of the calibrated model ---------------------------------------------------------
    @property
    def lgbm(self) -> Any:
        """The fitted main model under the calibration wrapper: an ``LGBMScorer`` (the default) or a
        ``NaiveBayesScorer`` when the train stage chose one (``train.candidates``)."""
        return base_model(self.calibrated)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The main model's input matrix of ``frame`` (what its explainer reads)."""
        model = self.lgbm
        return model.matrix(frame) if hasattr(model, "matrix") else model.spec_.matrix(frame)

    @property
    def features(self) -> list[str]:
        return list(self.lgbm.spec_.names)

    @property
    def catalog_version(self) -> str:
        return self.reasons.catalog_version

    @property
    def threshold(self) -> float | None:
        f = self.params.flag
        return None if f.policy == "capacity" else (f.threshold if f.policy == "fixed" else self.best_f1_threshold)

    def explainer(self) -> Any:
        if self._explainer is None:
            model = self.lgbm
            if hasattr(model, "explainer"):  # an additive model: its terms are its exact contributions
                self._explainer = model.explainer()
            else:
                from models.treeshap import TreeShap

                self._explainer = TreeShap(model.booster_)
        return self._explainer

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_explainer"] = None  # rebuilt from the booster on first use
        return state

    # --- checks --------------------------------------------------------------------------------
    def check_columns(self, frame: pd.DataFrame, *, allow_extra: Sequence[str] = ()) -> None:
        """Raise ``FeatureColumnsError`` listing missing model features and unknown extra columns."""
        have = set(frame.columns)
        missing = [c for c in self.features if c not in have]
        known = {*self.features, *self.reasons.catalog_names, *KEY_COLUMNS, *allow_extra}
        extra = [c for c in frame.columns if c not in known]
        problems = []
        if missing:
            problems.append(f"missing feature columns ({len(missing)}): {', '.join(missing)}")
        if extra:
            problems.append(f"columns the scorer does not know ({len(extra)}): {', '.join(map(str, extra))}")
        if problems:
            raise FeatureColumnsError(
                "the frame to score does not match the scorer's features: " + "; ".join(problems)
            )

    def check_catalog(self, version: str) -> None:
        if version != self.catalog_version:
            raise FeatureColumnsError(
                f"the features were built with catalog version {version}, but this scorer was trained on "
                f"catalog version {self.catalog_version}: rebuild the features with the scorer's leadlift "
                "version, or retrain and export a new scorer"
            )

    # --- scoring ---------------------------------------------------------------------------------
    def score(self, frame: pd.DataFrame, *, check: bool = True) -> pd.DataFrame:
        """One output row per input row (index kept): probability, flag, tier, reasons, contributions."""
        if check:
            self.check_columns(frame)
        cols = output_columns()
        if len(frame) == 0:
            return _empty(cols, frame.index)
        matrix = self.matrix(frame)
        contrib = self.explainer().contributions(matrix)
        raw = contrib.sum(axis=1)  # equals the booster's raw score (to ~1e-12): the trees run once
        p = probability_from_raw(self.calibrated, raw)
        explained = self.reasons.explain(frame[self.features], contrib[:, :-1])
        out = pd.DataFrame(
            {"probability": p, "flag": flags(p, self.params.flag, self.best_f1_threshold),
             "tier": tier_of(p, self.params.tiers), "raw_score": raw},
            index=frame.index,
        )
        out = pd.concat([out, explained], axis=1)
        return out[cols]

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Exact contributions per model feature (log-odds), plus ``base_value``: TreeSHAP values for
        LightGBM, the per-feature terms for the additive naive Bayes."""
        contrib = self.explainer().contributions(self.matrix(frame))
        return pd.DataFrame(contrib, index=frame.index, columns=[*self.features, "base_value"])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrated.predict_proba(frame)


def with_learned_effects(scorer: LeadScorer, frame: pd.DataFrame, *, max_rows: int = 5000, seed: int = 0) -> LeadScorer:
    """A copy of ``scorer`` whose reason book knows which way each feature's learned effect goes (so a
    low count that raises the score reads "only ..."), from its contributions on ``frame`` (training
    rows; a seeded sample of at most ``max_rows``). The input scorer is not modified."""
    sample = frame if len(frame) <= max_rows else frame.sample(max_rows, random_state=seed)
    contrib = scorer.contributions(sample)[scorer.features].to_numpy()
    out = copy.copy(scorer)
    out.reasons = scorer.reasons.with_effects(sample[scorer.features], contrib)
    return out


def _empty(cols: list[str], index: pd.Index) -> pd.DataFrame:
    dtypes = {"probability": "float64", "flag": "bool", "raw_score": "float64"}
    return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, "float64" if c.endswith("_shap") else object))
                         for c in cols}, index=index[:0])

