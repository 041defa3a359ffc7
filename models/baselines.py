"""The two baselines reported beside LightGBM: marketing's points score and a logistic regression.

``points`` is the rule-based lead score teams use today: explicit fit points (free e-mail
domain -10, senior buyer +10, ...) plus implicit behaviour points (demo request +30, pricing
page views +10 each up to a cap, ...). It is the floor any model must beat. Its score is not
a probability, so a one-feature logistic fit on the training part maps it to one (strictly
increasing, so its ranking metrics are the rule's own).

``logreg`` is scikit-learn's logistic regression on the same features: counts are
log-compressed, missing values imputed with an indicator, everything scaled, categoricals
one-hot encoded (rare levels pooled), all inside one Pipeline so it scores raw snapshot frames.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from features.contract import LABEL
from models.lgbm import as_float, as_labels, is_numeric
from models.split import lead_holdout

MISSING_LEVEL = "(missing)"


class FitRule(BaseModel):
    """Explicit (fit) points: ``points`` when ``column`` is one of ``values`` or within ``[min, max)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    points: float
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None


class BehaviourRule(BaseModel):
    """Implicit (behaviour) points from an activity count column.

    ``points`` once when the count is positive, or ``points`` per event when ``per_event``;
    the rule's total is capped at ``max_points`` (marketing caps repeated activity).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    points: float
    per_event: bool = False
    max_points: float | None = None


class PointsParams(BaseModel):
    """Marketing's rule-based score. Column names are parameters: point them at the catalog's names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fit: list[FitRule] = [
        FitRule(column="email_domain_type", values=["free"], points=-10),
        FitRule(column="seniority", values=["vp", "c_level", "director"], points=10),
        FitRule(column="employees", min=250, points=10),
        FitRule(column="employees", max=10, points=-5),
        FitRule(column="crm_compatible", values=["false", "False", "0", "no"], points=-20),
        FitRule(column="source_type", values=["inbound"], points=5),
    ]
    behaviour: list[BehaviourRule] = [
        BehaviourRule(column="demo_request_count_90d", points=30),
        BehaviourRule(column="contact_form_count_90d", points=20),
        BehaviourRule(column="page_view_pricing_count_30d", points=10, per_event=True, max_points=30),
        BehaviourRule(column="trial_signup_count_90d", points=15),
        BehaviourRule(column="webinar_attend_count_90d", points=10, per_event=True, max_points=20),
        BehaviourRule(column="content_download_count_90d", points=5, per_event=True, max_points=15),
        BehaviourRule(column="email_click_count_30d", points=2, per_event=True, max_points=10),
        BehaviourRule(column="email_unsubscribe_count_90d", points=-15),
    ]
    on_missing_column: Literal["warn", "error"] = "warn"
    """A rule whose column is absent scores 0 with a warning, or stops the run."""


def _rule_columns(params: PointsParams) -> list[str]:
    return [r.column for r in (*params.fit, *params.behaviour)]


def missing_rule_columns(frame: pd.DataFrame, params: PointsParams) -> list[str]:
    """Columns the rules name that ``frame`` lacks (sorted, unique)."""
    return sorted({c for c in _rule_columns(params) if c not in frame.columns})


def points_score(frame: pd.DataFrame, params: PointsParams) -> np.ndarray:
    """The points of each row (float64). Rules on absent columns score 0; missing values score 0."""
    total = np.zeros(len(frame), dtype=np.float64)
    for rule in params.fit:
        if rule.column not in frame.columns:
            continue
        col = frame[rule.column]
        if rule.values is not None:
            hit = as_labels(col).isin(rule.values).to_numpy()
        else:
            x = as_float(col)
            with np.errstate(invalid="ignore"):
                hit = ~np.isnan(x)
                if rule.min is not None:
                    hit &= x >= rule.min
                if rule.max is not None:
                    hit &= x < rule.max
        total += np.where(hit, rule.points, 0.0)
    for rule in params.behaviour:
        if rule.column not in frame.columns:
            continue
        count = np.nan_to_num(as_float(frame[rule.column]), nan=0.0)
        pts = rule.points * count if rule.per_event else np.where(count > 0, rule.points, 0.0)
        if rule.max_points is not None:
            pts = np.clip(pts, -abs(rule.max_points), abs(rule.max_points))
        total += pts
    return total


class PointsModel(ClassifierMixin, BaseEstimator):
    """The points score as a classifier.

    ``decision_function`` is the points, ``predict_proba`` their logistic map learnt in ``fit``.
    """

    def __init__(self, params: PointsParams | None = None) -> None:
        self.params = params

    def fit(self, X: pd.DataFrame, y: Sequence[int]) -> PointsModel:
        """Check the rules' columns and learn the points-to-probability map on ``(X, y)``."""
        params = self.params or PointsParams()
        missing = missing_rule_columns(X, params)
        if missing and params.on_missing_column == "error":
            raise ValueError(f"points rules name columns the snapshots lack: {', '.join(missing)}")
        if missing:
            warnings.warn(
                f"points rules name columns the snapshots lack (scored 0): {', '.join(missing)}",
                UserWarning,
                stacklevel=2,
            )
        self.missing_columns_ = missing
        score = points_score(X, params).reshape(-1, 1)
        self.mapper_ = LogisticRegression(C=1e6).fit(score, np.asarray(y))
        self.classes_ = self.mapper_.classes_
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return points_score(X, self.params or PointsParams())

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.mapper_.predict_proba(self.decision_function(X).reshape(-1, 1))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


class LogRegParams(BaseModel):
    """Logistic regression baseline; trained on a lead sample of at most ``max_rows`` rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    C: float = Field(1.0, gt=0)
    max_iter: int = Field(500, ge=10)
    solver: Literal["lbfgs", "saga", "newton-cholesky"] = "lbfgs"
    tol: float = Field(1e-4, gt=0)
    max_rows: int | None = Field(200_000, ge=100)
    min_level_frequency: int = Field(20, ge=1)
    """Categorical levels seen fewer times are pooled into one 'infrequent' column."""
    max_levels: int = Field(50, ge=2)
    seed: int = 42


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: compresses heavy-tailed counts so a linear model is not led by outliers."""
    return np.sign(x) * np.log1p(np.abs(x))


def to_float_frame(frame: pd.DataFrame) -> np.ndarray:
    """Numeric/bool columns as a float64 matrix with NaN for missing."""
    return (
        np.column_stack([as_float(frame[c]) for c in frame.columns])
        if frame.shape[1]
        else np.empty((len(frame), 0))
    )


def to_level_frame(frame: pd.DataFrame) -> np.ndarray:
    """Categorical columns as an object matrix of strings, missing as its own level."""
    return np.column_stack(
        [as_labels(frame[c]).fillna(MISSING_LEVEL).to_numpy(dtype=object) for c in frame.columns]
    )


def make_logreg(numeric: Sequence[str], categorical: Sequence[str], params: LogRegParams) -> Pipeline:
    """The unfitted baseline pipeline for these columns."""
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                make_pipeline(
                    FunctionTransformer(to_float_frame, feature_names_out="one-to-one"),
                    FunctionTransformer(signed_log1p, feature_names_out="one-to-one"),
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                list(numeric),
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                make_pipeline(
                    FunctionTransformer(to_level_frame, feature_names_out="one-to-one"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        min_frequency=params.min_level_frequency,
                        max_categories=params.max_levels,
                        sparse_output=False,
                    ),
                ),
                list(categorical),
            )
        )
    model = LogisticRegression(
        C=params.C, solver=params.solver, max_iter=params.max_iter, tol=params.tol, random_state=params.seed
    )
    return Pipeline([("prepare", ColumnTransformer(transformers)), ("model", model)])


def fit_logreg(train: pd.DataFrame, features: Sequence[str], params: LogRegParams) -> Pipeline:
    """Fit the baseline on ``train`` (whole leads sampled down to ``max_rows`` when larger)."""
    sample = train
    if params.max_rows is not None and len(train) > params.max_rows:
        _, sample = lead_holdout(train, params.max_rows / len(train), params.seed)
    numeric = [c for c in features if is_numeric(train[c])]
    categorical = [c for c in features if c not in set(numeric)]
    pipe = make_logreg(numeric, categorical, params)
    with warnings.catch_warnings():
        # Stopping at max_iter bounds the baseline's cost on large data; the caller reports n_iter_.
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        pipe.fit(sample[list(features)], sample[LABEL].to_numpy())
    return pipe
