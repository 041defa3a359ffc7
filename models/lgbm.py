"""LightGBM, the main model: native categoricals, early stopping, a small seeded search.

``FeatureSpec`` fixes, from the training part, which columns are numeric and which are
categorical and the levels of each categorical, so any later frame with the same columns
turns into exactly the same matrix (unseen levels become missing). ``LGBMScorer`` wraps the
booster as a scikit-learn classifier whose ``decision_function`` is the raw score (log-odds):
calibration fits its sigmoid on that, and SHAP explains that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.model_selection import ParameterSampler

from features.contract import LABEL, LEAD_ID
from models.split import lead_holdout


def is_numeric(series: pd.Series) -> bool:
    """Numbers and bools are numeric; every other dtype (strings, objects, category) is categorical."""
    return pd.api.types.is_bool_dtype(series.dtype) or (
        pd.api.types.is_numeric_dtype(series.dtype) and not isinstance(series.dtype, pd.CategoricalDtype)
    )


def as_float(series: pd.Series) -> np.ndarray:
    """A numeric or bool column as float64 with NaN for missing (nullable dtypes included)."""
    return series.astype("float64").to_numpy(dtype="float64", na_value=np.nan)


def as_labels(series: pd.Series) -> pd.Series:
    """A categorical column as strings with missing kept missing (levels compare as text)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    return series.astype("str").where(series.notna())


@dataclass(frozen=True)
class FeatureSpec:
    """The model's input columns, their kind, and the levels of each categorical (from training)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    levels: Mapping[str, tuple[str, ...]]

    @property
    def names(self) -> list[str]:
        """Feature order of the matrix: numeric first, then categorical."""
        return [*self.numeric, *self.categorical]

    @classmethod
    def infer(cls, frame: pd.DataFrame, features: Sequence[str], max_levels: int = 1000) -> FeatureSpec:
        """Kinds from dtypes, levels from the values seen (the ``max_levels`` most frequent, sorted)."""
        numeric = tuple(c for c in features if is_numeric(frame[c]))
        categorical = tuple(c for c in features if c not in set(numeric))
        levels = {}
        for col in categorical:
            counts = as_labels(frame[col]).value_counts()
            top = counts.sort_index().sort_values(ascending=False, kind="stable").index[:max_levels]
            levels[col] = tuple(sorted(str(v) for v in top))
        return cls(numeric, categorical, levels)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The float32 model matrix: numeric values, then categorical level codes (NaN = missing/unseen)."""
        # Filled column by column (contiguous writes), then one transposing copy into rows: writing the
        # columns of a row-major matrix directly touches a new cache line per value (~4x slower).
        columns = np.empty((len(self.names), len(frame)), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            columns[j] = as_float(frame[col])
        for k, col in enumerate(self.categorical):
            codes = pd.Index(self.levels[col], dtype=object).get_indexer(as_labels(frame[col]).astype(object))
            columns[len(self.numeric) + k] = np.where(codes < 0, np.nan, codes)
        return np.ascontiguousarray(columns.T)

    def categorical_indices(self) -> list[int]:
        return list(range(len(self.numeric), len(self.names)))


class SearchParams(BaseModel):
    """A small random search over ``grid`` (seeded); each trial is early-stopped on the holdout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_trials: int = Field(6, ge=1)
    grid: dict[str, list[float | int]] = {
        "num_leaves": [15, 31, 63],
        "learning_rate": [0.03, 0.05, 0.1],
        "min_child_samples": [20, 50, 100],
        "lambda_l2": [0.0, 1.0, 10.0],
        "feature_fraction": [0.6, 0.8, 1.0],
    }
    metric: Literal["auc", "average_precision", "binary_logloss"] = "auc"
    """What the holdout ranks trials by (also the early-stopping metric)."""
    max_rows: int | None = Field(300_000, ge=1000)
    """Trials use a lead sample of at most this many training rows; the best is then refit on all."""


class LGBMParams(BaseModel):
    """Base hyperparameters; a search trial overrides the ones in its grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_leaves: int = Field(31, ge=2)
    learning_rate: float = Field(0.05, gt=0)
    n_estimators: int = Field(2000, ge=1)
    early_stopping_rounds: int = Field(100, ge=1)
    min_child_samples: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(1.0, ge=0)
    max_bin: int = Field(63, ge=2)
    """Histogram bins per numeric feature. 63 rather than LightGBM's 255: lead features are counts and
    day counts, 63 bins lose nothing on them (default base: test ROC AUC 0.8997 vs 0.8992, PR AUC
    0.428 vs 0.425) and every boosting round reads a quarter of the histogram memory (train stage
    247 vs 530 CPU-s on the same snapshots)."""
    max_cat_levels: int = Field(1000, ge=2)
    max_cat_to_onehot: int = Field(4, ge=1)
    """Categoricals with at most this many levels split one level against the rest; more levels get
    LightGBM's many-vs-many grouping (a training parameter: LightGBM ignores it on the dataset)."""
    num_threads: int = Field(2, ge=1)
    seed: int = 42
    monotone_increasing: list[str] = []
    """Features whose increase may never lower the score (e.g. demo requests); names from the catalog."""
    valid_fraction: float = Field(0.15, gt=0, lt=1)
    """Share of training leads held out for early stopping and the search."""
    search: SearchParams = SearchParams()


_SEARCHABLE = {
    "num_leaves",
    "learning_rate",
    "min_child_samples",
    "lambda_l2",
    "feature_fraction",
    "bagging_fraction",
    "bagging_freq",
}


def booster_params(params: LGBMParams, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """LightGBM's native parameter dict for ``params`` with a trial's ``overrides`` applied."""
    unknown = set(overrides or {}) - _SEARCHABLE
    if unknown:
        raise ValueError(
            f"search grid has parameters LightGBM training does not take here: {sorted(unknown)}"
        )
    base = {k: getattr(params, k) for k in _SEARCHABLE}
    base.update(overrides or {})
    return {
        "objective": "binary",
        "metric": params.search.metric,
        "num_leaves": int(base["num_leaves"]),
        "learning_rate": float(base["learning_rate"]),
        "min_data_in_leaf": int(base["min_child_samples"]),
        "feature_fraction": float(base["feature_fraction"]),
        "bagging_fraction": float(base["bagging_fraction"]),
        "bagging_freq": int(base["bagging_freq"]),
        "lambda_l2": float(base["lambda_l2"]),
        "max_cat_to_onehot": params.max_cat_to_onehot,
        "num_threads": params.num_threads,
        "seed": params.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }


class LogOddsMixin:
    """``predict_proba`` and ``predict`` of a binary model from its ``decision_function`` (log-odds)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(np.int8)


class LGBMScorer(LogOddsMixin, ClassifierMixin, BaseEstimator):
    """A trained booster plus its ``FeatureSpec``, usable wherever scikit-learn expects a classifier.

    It is built by ``fit_lgbm``/``search_lgbm`` (or ``fit``) and then only predicts; wrap it in
    ``FrozenEstimator`` to calibrate it.
    """

    def __init__(self, spec: FeatureSpec | None = None, params: LGBMParams | None = None) -> None:
        self.spec = spec
        self.params = params

    def fit(self, X: pd.DataFrame, y: Any) -> LGBMScorer:
        """Train on ``X`` with early stopping on a holdout of its leads (of its rows without ``lead_id``)."""
        features = [c for c in X.columns if c != LEAD_ID]
        frame = X.assign(**{LABEL: np.asarray(y)})
        if LEAD_ID not in frame.columns:  # without lead ids each row is held out on its own
            frame[LEAD_ID] = np.arange(len(frame))
        fitted = fit_lgbm(frame, self.params or LGBMParams(), spec=self.spec, features=features)
        for name in ("booster_", "spec_", "classes_", "feature_names_in_", "n_features_in_"):
            setattr(self, name, getattr(fitted, name))
        return self

    @classmethod
    def from_booster(cls, booster: lgb.Booster, spec: FeatureSpec, params: LGBMParams) -> LGBMScorer:
        scorer = cls(spec=spec, params=params)
        scorer.booster_ = booster
        scorer.spec_ = spec
        scorer.classes_ = np.array([0, 1])
        scorer.feature_names_in_ = np.array(spec.names, dtype=object)
        scorer.n_features_in_ = len(spec.names)
        return scorer

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Raw score (log-odds) of each row."""
        return self.booster_.predict(self.spec_.matrix(X), raw_score=True, num_threads=self._threads())

    def _threads(self) -> int:
        return self.params.num_threads if self.params is not None else 0

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "booster_")


@dataclass(frozen=True)
class Trial:
    """One search trial: the overrides tried, the rounds kept, the holdout metrics."""

    number: int
    params: dict[str, Any]
    best_iteration: int
    metrics: dict[str, float]


def holdout_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Holdout ROC AUC, PR AUC and log loss of probabilities ``p``."""
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def _dataset(
    spec: FeatureSpec, frame: pd.DataFrame, params: LGBMParams, reference: lgb.Dataset | None = None
):
    return lgb.Dataset(
        spec.matrix(frame),
        label=frame[LABEL].to_numpy(dtype=np.float64),
        feature_name=spec.names,
        categorical_feature=spec.categorical_indices(),
        # trials change min_data_in_leaf on one shared binned dataset: LightGBM then needs
        # feature_pre_filter off, or a trial with a smaller value stops with a fatal error
        params={"max_bin": params.max_bin, "verbosity": -1, "feature_pre_filter": False},
        reference=reference,
        free_raw_data=False,
    )


def monotone_constraints(names: Sequence[str], increasing: Sequence[str]) -> list[int]:
    """LightGBM's per-feature constraint vector: 1 for ``increasing`` features, 0 otherwise."""
    unknown = sorted(set(increasing) - set(names))
    if unknown:
        raise ValueError(f"monotone_increasing names columns that are not features: {', '.join(unknown)}")
    return [1 if name in set(increasing) else 0 for name in names]


def _train(dtrain: lgb.Dataset, dvalid: lgb.Dataset, params: LGBMParams, overrides: Mapping[str, Any] | None):
    native = booster_params(params, overrides)
    if params.monotone_increasing:
        native["monotone_constraints"] = monotone_constraints(dtrain.feature_name, params.monotone_increasing)
    return lgb.train(
        native,
        dtrain,
        num_boost_round=params.n_estimators,
        valid_sets=[dvalid],
        valid_names=["holdout"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )


def fit_lgbm(
    train: pd.DataFrame,
    params: LGBMParams,
    *,
    features: Sequence[str] | None = None,
    spec: FeatureSpec | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LGBMScorer:
    """One LightGBM fit on ``train`` (features + label), early-stopped on a lead holdout of it."""
    if spec is None:
        if features is None:
            raise ValueError("fit_lgbm needs either features or a spec")
        spec = FeatureSpec.infer(train, features, params.max_cat_levels)
    fit_part, holdout = _holdout(train, params)
    dtrain = _dataset(spec, fit_part, params)
    booster = _train(dtrain, _dataset(spec, holdout, params, dtrain), params, overrides)
    return LGBMScorer.from_booster(booster, spec, params)


def _holdout(train: pd.DataFrame, params: LGBMParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    fit_part, holdout = lead_holdout(train, params.valid_fraction, params.seed)
    if holdout[LABEL].nunique() < 2 or fit_part[LABEL].nunique() < 2:
        raise ValueError("the early-stopping holdout of the training part has a single class; use more data")
    return fit_part, holdout


def trial_grid(params: LGBMParams) -> list[dict[str, Any]]:
    """The search's trial overrides: the base parameters first, then seeded random grid draws."""
    grid = params.search.grid
    if not grid or params.search.n_trials == 1:
        return [{}]
    n_grid = int(np.prod([len(v) for v in grid.values()]))
    draws = list(
        ParameterSampler(grid, n_iter=min(params.search.n_trials - 1, n_grid), random_state=params.seed)
    )
    return [{}, *draws]


def search_lgbm(
    train: pd.DataFrame,
    features: Sequence[str],
    params: LGBMParams,
    *,
    on_trial: Callable[[dict, dict], None] | None = None,
) -> tuple[LGBMScorer, list[Trial], Trial]:
    """Run the search on ``train``; return the best model (refit on all rows if trials were sampled).

    ``on_trial(params, metrics)`` is called after every trial, so a caller can log it (for
    example as an MLflow child run). Trials share one binned dataset, so each costs only its
    boosting rounds.
    """
    spec = FeatureSpec.infer(train, features, params.max_cat_levels)
    sample = _lead_sample(train, params.search.max_rows, params.seed)
    fit_part, holdout = _holdout(sample, params)
    dtrain = _dataset(spec, fit_part, params)
    dvalid = _dataset(spec, holdout, params, dtrain)
    y_hold = holdout[LABEL].to_numpy()
    x_hold = spec.matrix(holdout)

    trials: list[Trial] = []
    boosters: list[lgb.Booster] = []
    for number, overrides in enumerate(trial_grid(params)):
        booster = _train(dtrain, dvalid, params, overrides)
        p = booster.predict(x_hold, num_iteration=booster.best_iteration, num_threads=params.num_threads)
        trial = Trial(
            number,
            {k: _plain(v) for k, v in overrides.items()},
            int(booster.best_iteration),
            holdout_metrics(y_hold, p),
        )
        trials.append(trial)
        boosters.append(booster)
        if on_trial is not None:
            on_trial(
                {**booster_params(params, overrides), "trial": number},
                {**trial.metrics, "best_iteration": trial.best_iteration},
            )
    best = min(trials, key=lambda t: _rank_key(t, params.search.metric))
    if len(sample) == len(train):
        booster = boosters[best.number]
    else:
        full_fit, full_hold = _holdout(train, params)
        dfull = _dataset(spec, full_fit, params)
        booster = _train(dfull, _dataset(spec, full_hold, params, dfull), params, best.params)
    return LGBMScorer.from_booster(booster, spec, params), trials, best


def _rank_key(trial: Trial, metric: str) -> float:
    if metric == "binary_logloss":
        return trial.metrics["log_loss"]
    return -trial.metrics["roc_auc" if metric == "auc" else "pr_auc"]


def _lead_sample(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """All of ``frame``, or whole leads drawn (seeded) until about ``max_rows`` rows."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    _, sample = lead_holdout(frame, max_rows / len(frame), seed + 1)
    return sample


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
