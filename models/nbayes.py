"""An additive naive-Bayes scorer: per-feature log-odds terms, so its contributions are exact.

Each feature is cut into *slots*: a categorical's training levels plus one slot for missing and one
for a level never seen in training; a numeric column's bins (cut at midpoints between its distinct
training quantiles, so a 0/1 flag keeps both values and a column that is mostly one value keeps the
rest apart) plus one slot for missing. Per slot the model keeps the Laplace-smoothed frequencies in
each class, and the row's raw score is

    log(N1 / N0) + sum_j [log P(slot_j | 1) - log P(slot_j | 0)]

so the per-feature terms *are* the contributions (they sum exactly to the raw score; no SHAP
approximation) and reason codes come from them as for LightGBM's TreeSHAP values.

A level unseen in training has zero counts in both classes. ``unseen: smoothed`` gives it the
smoothed frequency of a zero count (the textbook Laplace estimate: ``alpha / (N_c + alpha S)``, which
favours the rarer class, as scikit-learn's ``CategoricalNB`` does when it knows the level);
``unseen: neutral`` gives it no evidence (a term of 0). Which one suits a data set is an empirical
question: choose it on a validation part, never on the test.

Two options for data that drift over time (both off by default):

* ``half_life`` weights the training rows by recency: a row's weight halves every ``half_life`` times
  the time span of the rows it is fitted on, counting back from the latest (weights rescaled to a
  mean of 1, so ``alpha`` keeps its meaning). The counts, and so the terms and the prior, are weighted.
* ``select`` chooses the columns on a validation part (``select_columns``): ``backward`` starts from
  every column and drops, one at a time, the one whose removal raises the validation ROC AUC most,
  while that gain is at least ``select_min_gain``; ``forward`` starts from none and adds the best
  column while it gains that much. Each term depends on its own column only, so the model on a
  subset of columns is the full model with the other terms left out: every subset is scored exactly
  from one fit, without refitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score

from features.contract import CUTOFF, LABEL
from models.lgbm import FeatureSpec, LogOddsMixin, as_float, as_labels


class NaiveBayesParams(BaseModel):
    """The ``train.naive_bayes`` section: smoothing, numeric bins, unseen levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(1.0, gt=0)
    """Laplace smoothing: ``alpha`` pseudo-counts per slot and class."""
    numeric_bins: int = Field(10, ge=0)
    """Quantile bins per numeric column; 0 leaves numeric columns out (categoricals only)."""
    unseen: Literal["smoothed", "neutral"] = "smoothed"
    """A categorical level never seen in training: the smoothed zero-count estimate, or no evidence."""
    max_levels: int = Field(1000, ge=2)
    half_life: float | None = Field(None, gt=0)
    """Recency weights: a row's weight halves every ``half_life`` x the fitted rows' time span (by
    cutoff) back from the latest row; None weighs every row the same."""
    select: Literal["none", "backward", "forward"] = "none"
    """Column selection on the validation (calibration) part by ROC AUC; see ``select_columns``."""
    select_min_gain: float = Field(0.001, ge=0)
    """Validation ROC AUC a step of the selection must gain to be taken."""


def decay_weights(times: pd.Series, half_life: float) -> np.ndarray:
    """Weights ``0.5 ** ((latest - t) / (half_life * span))`` of each row's time, rescaled to mean 1.

    ``span`` is latest minus earliest time; with a single distinct time every weight is 1.
    """
    t = pd.to_datetime(times, utc=True)
    if t.isna().any():
        raise ValueError("recency weights need a time (cutoff) on every training row")
    age = (t.max() - t).dt.total_seconds().to_numpy(dtype=float)
    span = float(age.max()) if len(age) else 0.0
    if span <= 0:
        return np.ones(len(age))
    w = np.power(0.5, age / (half_life * span))
    return w * (len(w) / w.sum())


@dataclass(frozen=True)
class FeatureTable:
    """One feature's slots and their log-likelihood ratios (the additive terms)."""

    name: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...]
    """Numeric: bin edges (bin i = values in [edges[i-1], edges[i])); categorical: empty."""
    levels: tuple[str, ...]
    """Categorical: the training levels; numeric: empty."""
    terms: np.ndarray
    """log P(slot | 1) - log P(slot | 0) per slot: bins or levels, then missing (then unseen)."""

    @property
    def missing_slot(self) -> int:
        return (len(self.edges) + 1) if self.kind == "numeric" else len(self.levels)

    @property
    def unseen_slot(self) -> int:
        return len(self.levels) + 1


def bin_edges(x: np.ndarray, bins: int) -> tuple[float, ...]:
    """Midpoints between the distinct values of ``x``'s quantiles at 0, 1/bins, ..., 1 (NaN ignored)."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return ()
    cuts = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
    return tuple(float(v) for v in (cuts[:-1] + cuts[1:]) / 2.0)


def _slots(kind: str, column: pd.Series, edges: tuple[float, ...], levels: tuple[str, ...]) -> np.ndarray:
    """Slot index of each value of ``column`` for one feature (see ``FeatureTable``)."""
    if kind == "numeric":
        x = as_float(column)
        out = np.searchsorted(np.asarray(edges, dtype=float), x, side="right")
        return np.where(np.isnan(x), len(edges) + 1, out).astype(np.int64)
    labels = as_labels(column)
    codes = pd.Index(levels, dtype=object).get_indexer(labels.astype(object))
    missing = labels.isna().to_numpy()
    return np.where(missing, len(levels), np.where(codes < 0, len(levels) + 1, codes)).astype(np.int64)


def _terms(slots: np.ndarray, y: np.ndarray, n_slots: int, alpha: float, w: np.ndarray) -> np.ndarray:
    counts = np.stack([np.bincount(slots[y == c], weights=w[y == c], minlength=n_slots) for c in (0, 1)])
    probs = (counts + alpha) / (counts.sum(axis=1, keepdims=True) + alpha * n_slots)
    return np.log(probs[1]) - np.log(probs[0])


class NaiveBayesScorer(LogOddsMixin, ClassifierMixin, BaseEstimator):
    """The fitted additive model; the same face as ``LGBMScorer`` (``spec_``, ``decision_function``,
    ``predict_proba``) plus ``matrix`` and ``contributions`` for exact reason codes."""

    def __init__(self, params: NaiveBayesParams | None = None) -> None:
        self.params = params

    def fit(
        self, X: pd.DataFrame, y: Sequence[int], sample_weight: np.ndarray | None = None
    ) -> NaiveBayesScorer:
        """Learn the slots and terms from ``X``'s columns (every column is a feature) and labels ``y``;
        ``sample_weight`` weighs each row's counts (the bin edges and levels are unweighted)."""
        params = self.params or NaiveBayesParams()
        y = np.asarray(y).astype(np.int64)
        if len(np.unique(y)) < 2:
            raise ValueError("naive Bayes needs both classes in its training rows")
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        valid = w.shape == y.shape and bool(np.all(np.isfinite(w))) and not np.any(w < 0)
        if not valid or w[y == 1].sum() <= 0 or w[y == 0].sum() <= 0:
            raise ValueError(
                "sample_weight must be one finite, non-negative weight per row, positive in each class"
            )
        spec = FeatureSpec.infer(X, list(X.columns), params.max_levels)
        numeric = spec.numeric if params.numeric_bins > 0 else ()
        self.spec_ = FeatureSpec(numeric, spec.categorical, spec.levels)
        tables = []
        for name in self.spec_.numeric:
            edges = bin_edges(as_float(X[name]), params.numeric_bins)
            slots = _slots("numeric", X[name], edges, ())
            terms = _terms(slots, y, len(edges) + 2, params.alpha, w)
            tables.append(FeatureTable(name, "numeric", edges, (), terms))
        for name in self.spec_.categorical:
            levels = tuple(self.spec_.levels[name])
            slots = _slots("categorical", X[name], (), levels)
            terms = _terms(slots, y, len(levels) + 2, params.alpha, w)
            if params.unseen == "neutral":
                terms[len(levels) + 1] = 0.0
            tables.append(FeatureTable(name, "categorical", (), levels, terms))
        self.tables_ = tuple(tables)
        self.base_value_ = float(np.log(w[y == 1].sum() / w[y == 0].sum()))
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(self.spec_.names, dtype=object)
        self.n_features_in_ = len(self.spec_.names)
        return self

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The slot index of every row and feature, ``(n, features)`` int64."""
        out = np.empty((len(X), len(self.tables_)), dtype=np.int64)
        for j, t in enumerate(self.tables_):
            out[:, j] = _slots(t.kind, X[t.name], t.edges, t.levels)
        return out

    def contributions(self, slots: np.ndarray) -> np.ndarray:
        """Per-feature log-odds terms of slot matrix ``slots`` and the base value as the last column."""
        out = np.empty((slots.shape[0], len(self.tables_) + 1))
        for j, t in enumerate(self.tables_):
            out[:, j] = t.terms[slots[:, j]]
        out[:, -1] = self.base_value_
        return out

    def explainer(self) -> NaiveBayesScorer:
        """The model is its own explainer: its contributions are its terms."""
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Raw score (log-odds) of each row."""
        return self.contributions(self.matrix(X)).sum(axis=1)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "tables_")


def fit_naive_bayes(
    train: pd.DataFrame, features: Sequence[str], params: NaiveBayesParams
) -> NaiveBayesScorer:
    """Fit the additive model on ``train``'s ``features`` and label (recency-weighted by ``CUTOFF`` when
    ``params.half_life`` is set)."""
    weights = None if params.half_life is None else decay_weights(train[CUTOFF], params.half_life)
    return NaiveBayesScorer(params).fit(train[list(features)], train[LABEL].to_numpy(), weights)


@dataclass(frozen=True)
class ColumnSelection:
    """The columns ``select_columns`` kept, and each step it took with the validation ROC AUC after it."""

    method: str
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    start_roc_auc: float
    roc_auc: float
    steps: tuple[tuple[str, str, float], ...]
    """(``"drop"`` or ``"add"``, column, validation ROC AUC after the step), in order."""

    def to_dict(self) -> dict:
        return {"method": self.method, "kept": list(self.kept), "dropped": list(self.dropped),
                "start_roc_auc": self.start_roc_auc, "roc_auc": self.roc_auc,
                "steps": [{"step": a, "column": c, "roc_auc": r} for a, c, r in self.steps]}


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if np.ptp(score) > 0 else 0.5


def select_columns(
    train: pd.DataFrame, validation: pd.DataFrame, features: Sequence[str], params: NaiveBayesParams
) -> ColumnSelection:
    """The columns of ``features`` chosen greedily by ROC AUC on ``validation`` for the model fitted on
    ``train`` (``params.select``: backward or forward, steps gaining at least ``select_min_gain``; ties
    go to the column listed first). Never looks at any other rows."""
    if params.select == "none":
        raise ValueError("select_columns needs naive_bayes.select backward or forward")
    y = validation[LABEL].to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError(
            "the validation part has a single class; naive Bayes columns cannot be selected on it"
        )
    model = fit_naive_bayes(train, features, params)
    names = [t.name for t in model.tables_]
    terms = model.contributions(model.matrix(validation))[:, :-1]
    order = [c for c in features if c in names]  # the caller's order breaks ties
    column = {c: names.index(c) for c in order}

    def auc(cols: list[str]) -> float:
        return _auc(y, terms[:, [column[c] for c in cols]].sum(axis=1)) if cols else 0.5

    chosen = list(order) if params.select == "backward" else []
    start = current = auc(chosen)
    steps: list[tuple[str, str, float]] = []
    while True:
        if params.select == "backward":
            options = [(auc([c for c in chosen if c != x]), x) for x in chosen] if len(chosen) > 1 else []
        else:
            options = [(auc([*chosen, x]), x) for x in order if x not in chosen]
        if not options:
            break
        best = max(options, key=lambda o: (o[0], -order.index(o[1])))
        if best[0] < current + params.select_min_gain:
            break
        current = best[0]
        if params.select == "backward":
            chosen.remove(best[1])
            steps.append(("drop", best[1], current))
        else:
            chosen.append(best[1])
            steps.append(("add", best[1], current))
    kept = tuple(c for c in order if c in chosen)
    dropped = tuple(c for c in features if c not in kept)
    return ColumnSelection(params.select, kept, dropped, start, current, tuple(steps))
