"""``train_all``: split, train the three models, calibrate LightGBM, evaluate out of time.

The one library call of the ``train`` stage. It does no I/O: the stage reads the snapshots
(and, on simulated data, the oracle), calls it, and writes ``TrainResult.metrics`` as
``reports/metrics.json``, ``TrainResult.curves`` as plot tables, logs the figures and trials
to MLflow and registers ``TrainResult.models["lightgbm"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score
from sklearn.pipeline import Pipeline

from features.contract import CUTOFF, LABEL, LEAD_ID
from models.baselines import LogRegParams, PointsModel, PointsParams, fit_logreg
from models.calibration import CalibrationChoice, CalibrationParams, calibrate
from models.guards import (
    check_class_counts,
    check_no_outcome_columns,
    check_snapshot_frame,
    drop_null_features,
    drop_timestamp_features,
    feature_columns,
)
from models.lgbm import FeatureSpec, LGBMParams, LGBMScorer, Trial, search_lgbm
from models.metrics import TOP_FRACTIONS, band, binary_metrics, curve_tables, ece, slice_metrics
from models.plots import curve_figures
from models.scorer import FlagParams
from models.split import SplitParams, split_out_of_time

MODELS: tuple[str, ...] = ("lightgbm", "logreg", "points")
ORACLE_COLUMN = "true_probability"


class TrainParams(BaseModel):
    """The ``train`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: SplitParams = SplitParams()
    points: PointsParams = PointsParams()
    logreg: LogRegParams = LogRegParams()
    lgbm: LGBMParams = LGBMParams()
    calibration: CalibrationParams = CalibrationParams()
    min_class_rows: int = Field(40, ge=1)
    """Fewer positive or negative training rows than this stops the run."""
    warn_class_rows: int = Field(200, ge=1)
    """Fewer positive or negative rows than this in any part warns that metrics will be noisy."""
    exclude: list[str] = []
    """Columns never used as features (identifiers, audit columns)."""
    slices: list[str] = ["lead_source", "source_type", "employees"]
    slice_bands: dict[str, list[float]] = {"employees": [1, 50, 250, 1000]}
    """Numeric slice columns are cut into bands at these edges ('1-49', ..., '1000+')."""
    min_slice_rows: int = Field(100, ge=1)
    top_fractions: list[float] = list(TOP_FRACTIONS)


@dataclass(frozen=True)
class TrainResult:
    """Everything the stage writes or logs. ``models[name].predict_proba(snapshots)`` works for each."""

    split: dict[str, Any]
    models: dict[str, Any]
    scorer: LGBMScorer
    calibration: CalibrationChoice
    best_f1_threshold: float
    """The calibrated probability with the best F1 on the calibration part (the ``best_f1`` policy's)."""
    trials: list[Trial]
    best_trial: Trial
    metrics: dict[str, Any]
    curves: dict[str, pd.DataFrame]
    figures: dict[str, Figure]
    test_predictions: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def booster(self) -> lgb.Booster:
        return self.scorer.booster_

    @property
    def spec(self) -> FeatureSpec:
        """Feature list (numeric then categorical) and the categorical levels seen in training."""
        return self.scorer.spec_

    @property
    def calibrated(self) -> CalibratedClassifierCV:
        return self.models["lightgbm"]

    @property
    def logreg(self) -> Pipeline:
        return self.models["logreg"]


def train_all(
    snapshots: pd.DataFrame,
    params: TrainParams,
    *,
    horizon_days: int,
    oracle: pd.DataFrame | None = None,
    on_trial: Callable[[dict, dict], None] | None = None,
    flag: FlagParams = FlagParams(),
) -> TrainResult:
    """Split, train points/logreg/LightGBM, calibrate LightGBM, evaluate all on the out-of-time test.

    ``flag`` is the scorer's flag policy (``scorer.flag``): the test metrics at the flag threshold
    are those the exported scorer would give.
    """
    check_snapshot_frame(snapshots)
    notes = check_class_counts(
        snapshots[LABEL], part="the snapshots", minimum=params.min_class_rows, warn_below=0
    )
    candidates = feature_columns(snapshots, params.exclude)
    check_no_outcome_columns(candidates)
    candidates, dropped_times, time_notes = drop_timestamp_features(snapshots, candidates)
    features, dropped, dropped_notes = drop_null_features(snapshots, candidates)
    dropped = [*dropped_times, *dropped]
    notes += time_notes + dropped_notes

    parts = split_out_of_time(snapshots, params.split, horizon_days)
    notes += check_class_counts(
        parts.train[LABEL],
        part="the train part",
        minimum=params.min_class_rows,
        warn_below=params.warn_class_rows,
    )
    for name in ("calibration", "test"):
        notes += check_class_counts(
            parts.part(name)[LABEL], part=f"the {name} part", minimum=1, warn_below=params.warn_class_rows
        )

    points = PointsModel(params.points).fit(parts.train[features], parts.train[LABEL].to_numpy())
    if points.missing_columns_:
        notes.append(
            f"points rules name columns the snapshots lack (scored 0): {', '.join(points.missing_columns_)}"
        )
    logreg = fit_logreg(parts.train, features, params.logreg)
    scorer, trials, best = search_lgbm(parts.train, features, params.lgbm, on_trial=on_trial)
    calibrated, choice = calibrate(scorer, parts.calibration, params.calibration)
    best_f1 = best_f1_threshold(calibrated, parts.calibration)
    models = {"lightgbm": calibrated, "logreg": logreg, "points": points}

    evaluation = evaluate(models, parts.test, params, flag=flag, best_f1=best_f1, oracle=oracle)
    notes += evaluation.notes
    raw = scorer.predict_proba(parts.test)[:, 1]
    y = parts.test[LABEL].to_numpy()
    metrics = {
        "split": parts.summary,
        "data": {
            "rows": int(len(snapshots)),
            "features": len(features),
            "numeric_features": len(scorer.spec_.numeric),
            "categorical_features": len(scorer.spec_.categorical),
            "dropped_features": dropped,
        },
        "test": evaluation.test,
        "slices": evaluation.slices,
        "calibration": {
            **choice.to_dict(),
            "test_before": {
                "ece": ece(y, raw),
                "brier": float(brier_score_loss(y, raw)),
                "mean_probability": float(raw.mean()),
            },
        },
        "search": search_summary(trials, best, params.lgbm, scorer),
        "logreg": {
            "iterations": int(np.max(logreg.named_steps["model"].n_iter_)),
            "max_iter": params.logreg.max_iter,
        },
        "flag": {**flag.model_dump(), "best_f1_threshold": best_f1, "test_thresholds": evaluation.thresholds},
        "warnings": notes,
        "targets": target_checks(evaluation.test),
    }
    return TrainResult(
        split=parts.summary,
        models=models,
        scorer=scorer,
        calibration=choice,
        best_f1_threshold=best_f1,
        trials=trials,
        best_trial=best,
        metrics=metrics,
        curves=evaluation.curves,
        figures=curve_figures(evaluation.curves),
        test_predictions=evaluation.predictions,
        warnings=notes,
    )


@dataclass(frozen=True)
class Evaluation:
    """Test metrics per model, per-slice metrics, curve tables, per-row predictions, notes."""

    test: dict[str, Any]
    slices: dict[str, Any]
    curves: dict[str, pd.DataFrame]
    predictions: pd.DataFrame
    notes: list[str]
    thresholds: dict[str, float]


def evaluate(
    models: dict[str, Any],
    test: pd.DataFrame,
    params: TrainParams,
    *,
    flag: FlagParams,
    best_f1: float,
    oracle: pd.DataFrame | None = None,
) -> Evaluation:
    """Score ``test`` with every model (``predict_proba``) and compute all metrics and curves.

    Also usable on its own, e.g. to compare a registered champion with a challenger on the
    same test rows.
    """
    y = test[LABEL].to_numpy()
    probabilities = {name: model.predict_proba(test)[:, 1] for name, model in models.items()}
    thresholds = {name: flag_threshold(flag, best_f1, p) for name, p in probabilities.items()}
    metrics: dict[str, Any] = {
        name: binary_metrics(y, p, threshold=thresholds[name], top_fractions=params.top_fractions)
        for name, p in probabilities.items()
    }
    if oracle is not None:
        metrics["oracle"] = oracle_metrics(test, oracle)
    slices, notes = evaluate_slices(test, y, probabilities, thresholds, params)
    predictions = test[[LEAD_ID, CUTOFF, LABEL]].assign(
        **{f"p_{name}": p for name, p in probabilities.items()}
    )
    return Evaluation(metrics, slices, curve_tables(y, probabilities), predictions, notes, thresholds)


def search_summary(
    trials: list[Trial], best: Trial, params: LGBMParams, scorer: LGBMScorer
) -> dict[str, Any]:
    """The search as JSON: every trial's overrides and holdout metrics, the best, the final tree count."""
    return {
        "metric": params.search.metric,
        "trials": [
            {"number": t.number, "params": t.params, "best_iteration": t.best_iteration, **t.metrics}
            for t in trials
        ],
        "best": {"number": best.number, "params": best.params, "best_iteration": best.best_iteration},
        "trees": int(scorer.booster_.num_trees()),
    }


def best_f1_threshold(model: Any, calibration: pd.DataFrame) -> float:
    """The calibrated probability whose flag has the best F1 on the calibration part."""
    y = calibration[LABEL].to_numpy()
    precision, recall, thresholds = precision_recall_curve(y, model.predict_proba(calibration)[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    return float(thresholds[int(np.argmax(f1))])


def flag_threshold(flag: FlagParams, best_f1: float, p: np.ndarray) -> float:
    """The probability at and above which the evaluation flags a row under the scorer's policy.

    fixed: ``flag.threshold``; best_f1: ``best_f1``; capacity: the ``flag.capacity``-th highest of
    ``p``, so the top ``capacity`` rows are flagged, as one scoring run of these rows would (ties
    at that probability are all flagged).
    """
    if flag.policy == "fixed":
        return float(flag.threshold)
    if flag.policy == "best_f1":
        return float(best_f1)
    p = np.asarray(p, dtype=float)
    if len(p) == 0:
        return 1.0
    k = min(flag.capacity, len(p))
    return float(np.partition(p, len(p) - k)[len(p) - k])


def oracle_metrics(test: pd.DataFrame, oracle: pd.DataFrame) -> dict[str, Any]:
    """Ranking metrics of the simulator's true probability on the test rows (the ceiling)."""
    keys = list((LEAD_ID, CUTOFF))
    truth = oracle[[*keys, ORACLE_COLUMN]].astype({LEAD_ID: test[LEAD_ID].dtype, CUTOFF: test[CUTOFF].dtype})
    joined = test[[*keys, LABEL]].merge(truth, on=keys, how="left", validate="one_to_one")
    matched = joined[ORACLE_COLUMN].notna().to_numpy()
    y, p = joined[LABEL].to_numpy()[matched], joined[ORACLE_COLUMN].to_numpy(dtype=float)[matched]
    both = 0 < y.sum() < len(y)
    return {
        "rows_matched": int(matched.sum()),
        "rows_unmatched": int((~matched).sum()),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p)) if len(y) else None,
    }


def evaluate_slices(
    test: pd.DataFrame,
    y: np.ndarray,
    probabilities: dict[str, np.ndarray],
    thresholds: dict[str, float],
    params: TrainParams,
) -> tuple[dict[str, Any], list[str]]:
    """Per-slice metrics for each configured slice column in ``test``, and notes on absent ones."""
    out: dict[str, Any] = {}
    notes = []
    for col in params.slices:
        if col not in test.columns:
            notes.append(f"slice column '{col}' is not in the snapshots; its slice metrics are skipped")
            continue
        keys, name = test[col], col
        if col in params.slice_bands:
            keys, name = band(test[col], params.slice_bands[col]), f"{col}_band"
        out[name] = slice_metrics(keys, y, probabilities, thresholds=thresholds, min_rows=params.min_slice_rows)
    return out, notes


def target_checks(test: dict[str, Any]) -> dict[str, bool | None]:
    """The acceptance targets on the test metrics (None where a figure is missing)."""
    lgbm = test.get("lightgbm", {})
    out: dict[str, bool | None] = {}
    for metric in ("roc_auc", "pr_auc"):
        mine = lgbm.get(metric)
        others = [test.get(m, {}).get(metric) for m in ("logreg", "points")]
        out[f"lightgbm_beats_baselines_{metric}"] = (
            None if mine is None or None in others else bool(all(mine > o for o in others))
        )
    oracle_auc = test.get("oracle", {}).get("roc_auc")
    out["lightgbm_roc_auc_at_least_97pct_of_oracle"] = (
        None
        if oracle_auc is None or lgbm.get("roc_auc") is None
        else bool(lgbm["roc_auc"] >= 0.97 * oracle_auc)
    )
    out["lightgbm_ece_at_most_0.02"] = None if lgbm.get("ece") is None else bool(lgbm["ece"] <= 0.02)
    rate, mean_p = lgbm.get("positive_rate"), lgbm.get("mean_probability")
    out["lightgbm_mean_probability_within_10pct_of_rate"] = (
        None if not rate or mean_p is None else bool(abs(mean_p - rate) / rate <= 0.10)
    )
    return out


def metrics_on_test_part(model: Any, snapshots: pd.DataFrame, params: TrainParams, *, horizon_days: int) -> dict[str, Any]:
    """``model``'s metrics on the out-of-time test part of ``snapshots`` (the split is deterministic,
    so a registered champion is measured on exactly the rows the challenger was)."""
    test = split_out_of_time(snapshots, params.split, horizon_days).test
    p = model.predict_proba(test)[:, 1]
    return binary_metrics(test[LABEL].to_numpy(), p, threshold=0.5, top_fractions=params.top_fractions)
