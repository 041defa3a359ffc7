"""``train_all``: split, train the three models, calibrate the main one, evaluate out of time.

The one library call of the ``train`` stage. It does no I/O: the stage reads the snapshots
(and, on simulated data, the oracle), calls it, and writes ``TrainResult.metrics`` as
``reports/metrics.json``, ``TrainResult.curves`` as plot tables, logs the figures and trials
to MLflow and registers ``TrainResult.calibrated`` (``TrainResult.models[TrainResult.main]``).

The main model is LightGBM by default. ``train.candidates`` may list more families (``naive_bayes``,
the additive model of ``models/nbayes.py``): each is fitted on the train part and the one with the
best ROC AUC on the calibration part becomes the main model, so the choice never sees the test.
``train.final_refit`` then refits it on train + calibration, with its calibration map learnt from
time-ordered out-of-fold scores of the calibration part (``models/calibration.py``).
With ``train.naive_bayes.select`` the naive Bayes columns are chosen first, also on the calibration
part (fitted on the train part; ``models/nbayes.py: select_columns``), and the family comparison and
the refit use the chosen columns. The calibration figures of that family are then in-sample for the
selection (``metrics.json: model.column_selection`` says so); the test never is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score
from sklearn.pipeline import Pipeline

from features.contract import CUTOFF, LABEL, LEAD_ID
from models.baselines import LogRegParams, PointsModel, PointsParams, fit_logreg
from models.calibration import (
    CalibrationChoice,
    CalibrationParams,
    CrossFitCalibrated,
    base_model,
    calibrate,
    choose_method,
    cross_fit_blocks,
)
from models.guards import (
    check_class_counts,
    check_no_outcome_columns,
    check_snapshot_frame,
    drop_null_features,
    drop_timestamp_features,
    feature_columns,
)
from models.lgbm import FeatureSpec, LGBMParams, LGBMScorer, Trial, fit_lgbm, search_lgbm
from models.nbayes import NaiveBayesParams, NaiveBayesScorer, fit_naive_bayes, select_columns
from models.metrics import TOP_FRACTIONS, band, binary_metrics, curve_tables, ece, slice_metrics
from models.plots import curve_figures
from models.scorer import FlagParams
from models.split import SplitParams, SplitResult, split_out_of_time

MODELS: tuple[str, ...] = ("lightgbm", "logreg", "points")
FAMILIES: tuple[str, ...] = ("lightgbm", "naive_bayes")
"""Families the main model can be chosen from (``train.candidates``)."""
Family = Literal["lightgbm", "naive_bayes"]
ORACLE_COLUMN = "true_probability"


class TrainParams(BaseModel):
    """The ``train`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: SplitParams = SplitParams()
    points: PointsParams = PointsParams()
    logreg: LogRegParams = LogRegParams()
    lgbm: LGBMParams = LGBMParams()
    calibration: CalibrationParams = CalibrationParams()
    naive_bayes: NaiveBayesParams = NaiveBayesParams()
    candidates: list[Family] = ["lightgbm"]
    """Families of the main model. With more than one, each is fitted on the train part and the one
    with the best ROC AUC on the calibration part is kept (ties: the first listed)."""
    final_refit: bool = False
    """Refit the main model on train + calibration (the rows before the test). Its calibration map is
    then learnt from out-of-fold scores: the calibration part cut into ``refit_folds`` time blocks,
    each scored by the model fitted on the rows before it. Off: trained on the train part and
    calibrated on the calibration part."""
    refit_folds: int = Field(3, ge=1)
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

    @field_validator("candidates")
    @classmethod
    def _some_candidates(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"candidates must list one or more distinct families of {list(FAMILIES)}")
        return value


@dataclass(frozen=True)
class TrainResult:
    """Everything the stage writes or logs. ``models[name].predict_proba(snapshots)`` works for each."""

    split: dict[str, Any]
    models: dict[str, Any]
    scorer: LGBMScorer | NaiveBayesScorer
    """The main model (uncalibrated): the one under ``calibrated``."""
    calibration: CalibrationChoice
    best_f1_threshold: float
    """The calibrated probability with the best F1 on the calibration part (the ``best_f1`` policy's)."""
    trials: list[Trial]
    best_trial: Trial | None
    """The LightGBM search's best trial (None when LightGBM was not a candidate)."""
    metrics: dict[str, Any]
    curves: dict[str, pd.DataFrame]
    figures: dict[str, Figure]
    test_predictions: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    main: str = "lightgbm"
    """Key of the main (calibrated, registered) model in ``models`` and ``metrics["test"]``."""

    @property
    def booster(self) -> lgb.Booster:
        return self.scorer.booster_

    @property
    def spec(self) -> FeatureSpec:
        """Feature list (numeric then categorical) and the categorical levels seen in training."""
        return self.scorer.spec_

    @property
    def calibrated(self) -> CalibratedClassifierCV | CrossFitCalibrated:
        return self.models[self.main]

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
    family_features = {name: features for name in params.candidates}
    columns = None
    if "naive_bayes" in params.candidates and params.naive_bayes.select != "none":
        columns = select_columns(parts.train, parts.calibration, features, params.naive_bayes)
        family_features["naive_bayes"] = list(columns.kept)
    fitted = {
        name: fit_candidate(name, parts.train, family_features[name], params, on_trial=on_trial)
        for name in params.candidates
    }
    main, selection = choose_candidate(fitted, parts.calibration)
    scorer, trials, best = fitted[main]
    if params.final_refit:
        calibrated, choice, best_f1, refit = refit_with_cross_fit(
            main, parts, family_features[main], params, best
        )
        scorer = base_model(calibrated)
    else:
        calibrated, choice = calibrate(scorer, parts.calibration, params.calibration)
        best_f1 = best_f1_threshold(calibrated, parts.calibration)
        refit = None
    models = {main: calibrated, "logreg": logreg, "points": points}
    # the LightGBM search is reported whenever it ran, with the trees of the model it gave
    if main != "lightgbm":
        scorer_lgbm, trials, best = fitted.get("lightgbm", (None, [], None))
    else:
        scorer_lgbm = scorer

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
        "model": {
            "main": main,
            "candidates": list(params.candidates),
            "calibration_roc_auc": selection,
            "final_refit": refit,
            "column_selection": None if columns is None else {
                **columns.to_dict(), "family": "naive_bayes",
                "note": "chosen on the calibration part: that family's calibration figures are in-sample for it",
            },
        },
        "search": search_summary(trials, best, params.lgbm, scorer_lgbm) if best is not None else None,
        "logreg": {
            "iterations": int(np.max(logreg.named_steps["model"].n_iter_)),
            "max_iter": params.logreg.max_iter,
        },
        "flag": {**flag.model_dump(), "best_f1_threshold": best_f1, "test_thresholds": evaluation.thresholds},
        "warnings": notes,
        "targets": target_checks(evaluation.test, main),
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
        main=main,
    )


Candidate = tuple[LGBMScorer | NaiveBayesScorer, list[Trial], Trial | None]


def fit_candidate(
    name: str,
    train: pd.DataFrame,
    features: list[str],
    params: TrainParams,
    *,
    on_trial: Callable[[dict, dict], None] | None = None,
    trial: Trial | None = None,
) -> Candidate:
    """One family fitted on ``train``: LightGBM through its search (or, given ``trial``, one fit with
    that trial's settings and no search), naive Bayes directly. Returns the model, trials and best."""
    if name == "lightgbm":
        if trial is not None:
            return fit_lgbm(train, params.lgbm, features=features, overrides=trial.params), [], trial
        return search_lgbm(train, features, params.lgbm, on_trial=on_trial)
    if name == "naive_bayes":
        return fit_naive_bayes(train, features, params.naive_bayes), [], None
    raise ValueError(f"unknown model family {name!r}; expected one of {list(FAMILIES)}")


def choose_candidate(
    fitted: dict[str, Candidate], calibration: pd.DataFrame
) -> tuple[str, dict[str, float] | None]:
    """The family with the best ROC AUC on the calibration part (first listed on ties), and each
    family's figure; a single candidate is taken as it is (``None``: nothing was compared)."""
    names = list(fitted)
    if len(names) == 1:
        return names[0], None
    y = calibration[LABEL].to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("the calibration part has a single class; the model candidates cannot be compared")
    aucs = {name: float(roc_auc_score(y, fitted[name][0].decision_function(calibration))) for name in names}
    return max(names, key=lambda name: (aucs[name], -names.index(name))), aucs


def refit_with_cross_fit(
    main: str, parts: SplitResult, features: list[str], params: TrainParams, best: Trial | None
) -> tuple[CrossFitCalibrated, CalibrationChoice, float, dict[str, Any]]:
    """``main`` refit on train + calibration, calibrated on time-ordered out-of-fold scores.

    Each of ``refit_folds`` consecutive blocks of the calibration part is scored by the family fitted
    (LightGBM: with the searched settings) on the rows before the block, minus the split's gap and
    the block's own leads. The calibration method is chosen on those scores as usual, the map is
    fitted on them, and the best-F1 flag threshold comes from their calibrated probabilities.
    """
    calibration = parts.calibration
    gap = int(parts.summary.get("gap_days", 0) or 0)
    before = pd.concat([parts.train, calibration], ignore_index=True)
    oof = np.full(len(calibration), np.nan)
    folds = []
    for rows, history_end in cross_fit_blocks(calibration, params.refit_folds, gap):
        block_leads = set(calibration[LEAD_ID].iloc[rows])
        history = before[(before[CUTOFF] < history_end) & ~before[LEAD_ID].isin(block_leads)]
        model, _, _ = fit_candidate(main, history.reset_index(drop=True), features, params, trial=best)
        block = calibration.iloc[rows]
        oof[rows] = model.decision_function(block)
        y_block = block[LABEL].to_numpy()
        folds.append({
            "fit_rows": int(len(history)),
            "rows": int(len(rows)),
            "start": block[CUTOFF].min().isoformat(),
            "roc_auc": float(roc_auc_score(y_block, oof[rows])) if 0 < y_block.sum() < len(y_block) else None,
        })
    y = calibration[LABEL].to_numpy()
    choice = choose_method(oof, y, params.calibration)
    final, _, _ = fit_candidate(main, before, features, params, trial=best)
    calibrated = CrossFitCalibrated(final, choice.method).fit(oof, y)
    best_f1 = best_f1_from(y, calibrated.probability(oof))
    return calibrated, choice, best_f1, {"fit_rows": int(len(before)), "folds": folds,
                                         "out_of_fold_roc_auc": float(roc_auc_score(y, oof))}


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
    return best_f1_from(calibration[LABEL].to_numpy(), model.predict_proba(calibration)[:, 1])


def best_f1_from(y: np.ndarray, p: np.ndarray) -> float:
    """The probability among ``p`` whose flag (``p >=`` it) has the best F1 against labels ``y``."""
    precision, recall, thresholds = precision_recall_curve(y, p)
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


def target_checks(test: dict[str, Any], main: str = "lightgbm") -> dict[str, bool | None]:
    """The acceptance targets on the main model's test metrics (None where a figure is missing)."""
    lgbm = test.get(main, {})
    out: dict[str, bool | None] = {}
    for metric in ("roc_auc", "pr_auc"):
        mine = lgbm.get(metric)
        others = [test.get(m, {}).get(metric) for m in ("logreg", "points")]
        out[f"{main}_beats_baselines_{metric}"] = (
            None if mine is None or None in others else bool(all(mine > o for o in others))
        )
    oracle_auc = test.get("oracle", {}).get("roc_auc")
    out[f"{main}_roc_auc_at_least_97pct_of_oracle"] = (
        None
        if oracle_auc is None or lgbm.get("roc_auc") is None
        else bool(lgbm["roc_auc"] >= 0.97 * oracle_auc)
    )
    out[f"{main}_ece_at_most_0.02"] = None if lgbm.get("ece") is None else bool(lgbm["ece"] <= 0.02)
    rate, mean_p = lgbm.get("positive_rate"), lgbm.get("mean_probability")
    out[f"{main}_mean_probability_within_10pct_of_rate"] = (
        None if not rate or mean_p is None else bool(abs(mean_p - rate) / rate <= 0.10)
    )
    return out


def metrics_on_test_part(model: Any, snapshots: pd.DataFrame, params: TrainParams, *, horizon_days: int) -> dict[str, Any]:
    """``model``'s metrics on the out-of-time test part of ``snapshots`` (the split is deterministic,
    so a registered champion is measured on exactly the rows the challenger was)."""
    test = split_out_of_time(snapshots, params.split, horizon_days).test
    p = model.predict_proba(test)[:, 1]
    return binary_metrics(test[LABEL].to_numpy(), p, threshold=0.5, top_fractions=params.top_fractions)
