"""Stage `train`: train, calibrate and evaluate the models, track the run in MLflow, register and
maybe promote the calibrated main model (LightGBM unless ``train.candidates`` chose another).

The modelling is one library call (``models.train.train_all``); this entry point reads the inputs,
writes ``reports/metrics.json`` and the curve tables for ``dvc plots``, and does the MLflow work:
params, metrics, figures, provenance (git commit, DVC hashes), the trials as child runs, the model
with its signature, the ``challenger`` alias and the champion decision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.builder import FeaturesParams
from features.catalog import build_catalog, discover_attributes
from features.contract import CUTOFF, LABEL, LEAD_ID
from features.io import atomic_path, write_json_atomic
from features.tabular import DataParams
from models.reasons import ReasonBook
from models.registry import PromotionParams, decide_promotion
from models.scorer import FlagParams, LeadScorer, ScorerParams, with_learned_effects
from models.train import TrainParams, TrainResult, metrics_on_test_part, train_all
from pipelines.config import load_section
from pipelines.console import console
from pipelines.tracking import (
    artifact_location,
    check_tracking,
    dvc_hashes,
    flat_metrics,
    flat_params,
    git_commit,
    mlflow_errors,
    tracking_uri,
)

CHALLENGER, CHAMPION = "challenger", "champion"


def main(
    params_path: Path,
    snapshots_in: Path,
    leads_in: Path,
    oracle_in: Path | None,
    metrics_out: Path,
    plots_out: Path,
    run_out: Path,
    root: Path | None = None,
    profile_in: Path | None = None,
) -> None:
    root = Path(root or Path.cwd())
    data = load_section(params_path, "data", DataParams)
    params = resolve_split(load_section(params_path, "train", TrainParams), data)
    registry = load_section(params_path, "registry", PromotionParams)
    features = load_section(params_path, "features", FeaturesParams)
    scorer_params = load_section(params_path, "scorer", ScorerParams)
    horizon = features.horizon_days
    uri = tracking_uri(root)
    check_tracking(uri)  # before the long part: a dead server should fail in a second, not after training
    snapshots = pd.read_parquet(snapshots_in)
    oracle = pd.read_parquet(oracle_in) if oracle_in is not None and Path(oracle_in).exists() else None
    # a CRM export's features are its typed columns, as in the snapshots (the leads file is raw text)
    attributes_from = snapshots.drop(columns=[CUTOFF, LABEL]) if data.files_tabular else pd.read_parquet(leads_in)
    catalog = build_catalog(features.windows, discover_attributes(attributes_from))
    inputs = [Path(snapshots_in), Path(leads_in), *([Path(oracle_in)] if oracle is not None else [])]
    profile = Path(profile_in) if profile_in is not None and Path(profile_in).exists() else None

    def make_scorer(result: TrainResult) -> LeadScorer:
        book = ReasonBook.from_catalog(catalog, result.spec.names)
        scorer = LeadScorer(result.calibrated, book, scorer_params, best_f1_threshold=result.best_f1_threshold,
                            model_name=registry.model_name)
        # the rows the main model was fitted on: the train part, or train + calibration when refit
        last = "calibration" if result.metrics["model"]["final_refit"] else "train"
        train_rows = snapshots[snapshots[CUTOFF] <= pd.Timestamp(result.split[last]["end"])]
        return with_learned_effects(scorer, train_rows)

    with mlflow_errors(uri):
        run_info, result = _tracked_training(
            root, uri, params, registry, horizon, snapshots, oracle, inputs, make_scorer, scorer_params.flag,
            profile,
        )

    write_json_atomic(result.metrics, metrics_out)
    _write_curves(result, plots_out)
    write_json_atomic(run_info, run_out)
    for note in result.warnings:
        console.print(f"[yellow]warning[/]: {note}", highlight=False)
    _print_summary(result, run_info)


def _tracked_training(
    root: Path,
    uri: str,
    params: TrainParams,
    registry: PromotionParams,
    horizon: int,
    snapshots: pd.DataFrame,
    oracle: pd.DataFrame | None,
    inputs: list[Path],
    make_scorer: Any,
    flag: FlagParams,
    profile: Path | None = None,
) -> tuple[dict[str, Any], TrainResult]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature, infer_signature

    from models.pyfunc import LeadScorerModel

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(registry.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(registry.experiment, artifact_location=artifact_location(root, uri))
    )
    started = datetime.now(UTC)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train {started:%Y-%m-%d %H:%M:%S}") as run:
        hashes = dvc_hashes(root, inputs)
        mlflow.set_tags({**git_commit(root), **{f"dvc.md5.{path}": md5 for path, md5 in hashes.items()}})
        mlflow.log_params(flat_params({"train": params.model_dump(mode="json"), "features": {"horizon_days": horizon}}))

        def log_trial(trial_params: dict, trial_metrics: dict) -> None:
            number = trial_metrics.get("number", "")
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial {number}", nested=True):
                mlflow.log_params(flat_params(trial_params))
                mlflow.log_metrics(flat_metrics(trial_metrics))

        result = train_all(snapshots, params, horizon_days=horizon, oracle=oracle, on_trial=log_trial, flag=flag)

        mlflow.log_metrics(flat_metrics({k: result.metrics[k] for k in ("split", "test", "slices", "calibration")}))
        mlflow.log_dict(result.metrics, "metrics.json")
        mlflow.set_tags(
            {
                "model.main": result.main,
                "calibration.method": result.calibration.method,
                "calibration.reason": result.calibration.reason,
                "flag.policy": flag.policy,
                "flag.best_f1_threshold": f"{result.best_f1_threshold:.6f}",
            }
        )
        for kind, figure in result.figures.items():
            mlflow.log_figure(figure, f"plots/{kind}.png")
        if profile is not None:
            mlflow.log_artifact(str(profile), "data_profile")

        scorer = make_scorer(result)
        features = result.spec.names
        example = snapshots[[LEAD_ID, *features]].head(5)
        example = example.astype({c: object for c in features if isinstance(example[c].dtype, pd.CategoricalDtype)})
        model = LeadScorerModel(scorer)
        signature = ModelSignature(
            inputs=input_schema(snapshots, features), outputs=infer_signature(model.predict(None, example)).inputs
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=signature,
            input_example=example,
            registered_model_name=registry.model_name,
            pip_requirements=_requirements(),
            code_paths=[str(Path(__file__).resolve().parents[2] / pkg) for pkg in ("models", "features")],
            metadata={"catalog_version": scorer.catalog_version},
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(registry.model_name, CHALLENGER, version)

        champion_metrics, champion_version, champion_note = _champion_metrics(
            client, registry.model_name, snapshots, params, horizon
        )
        decision = decide_promotion(result.metrics["test"][result.main], champion_metrics, registry)
        if champion_note:  # a champion exists but cannot be measured on these rows: it is replaced
            decision = type(decision)(True, f"{champion_note}; the challenger replaces it", decision.challenger, None)
        if decision.promote:
            client.set_registered_model_alias(registry.model_name, CHAMPION, version)
        mlflow.set_tags({"promotion.promoted": str(decision.promote).lower(), "promotion.reason": decision.reason})
        mlflow.log_dict({**decision.to_dict(), "champion_version_before": champion_version}, "promotion.json")

    run_info = {
        "run_id": run.info.run_id,
        "experiment": registry.experiment,
        "tracking_uri": uri,
        "model_name": registry.model_name,
        "model_version": version,
        "model_uri": info.model_uri,
        "aliases": [CHALLENGER, *([CHAMPION] if decision.promote else [])],
        "champion_version_before": champion_version,
        "promotion": decision.to_dict(),
        "started_at": started.isoformat(),
    }
    return run_info, result


def resolve_split(params: TrainParams, data: DataParams) -> TrainParams:
    """``train.split.method: auto`` made concrete from the data (``data.split_method``), and for a
    CRM export a gap of 0 days unless set: its outcome is not a label window after a cutoff."""
    split = params.split
    updates: dict[str, Any] = {}
    if split.method == "auto":
        updates["method"] = data.split_method
    if data.files_tabular and split.gap_days is None:
        updates["gap_days"] = 0
    return params.model_copy(update={"split": split.model_copy(update=updates)}) if updates else params


def _champion_metrics(
    client: Any, name: str, snapshots: pd.DataFrame, params: TrainParams, horizon: int
) -> tuple[dict[str, float] | None, str | None, str | None]:
    """The current champion's test metrics on today's test rows, its version, and a note when it
    exists but cannot score these snapshots (then the challenger replaces it)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None, None
    try:
        champion = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}").unwrap_python_model().scorer
        metrics = metrics_on_test_part(champion, snapshots, params, horizon_days=horizon)
    except Exception as exc:  # noqa: BLE001 (any failure to score means it cannot be compared)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, str(current.version), f"champion v{current.version} cannot score these snapshots: {first}"
    if metrics.get("roc_auc") is None:
        return None, str(current.version), f"champion v{current.version}: the test part has one class"
    return metrics, str(current.version), None


def input_schema(snapshots: pd.DataFrame, features: list[str]) -> Any:
    """The scorer's input signature: every model feature by name; text features typed as strings,
    numbers and flags accepted as any number (the scorer converts them itself, so a count sent as
    ``2`` or ``2.0`` or missing is fine); ``lead_id`` optional."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    def spec(col: str) -> Any:
        dtype = snapshots[col].dtype
        numeric = pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
        return ColSpec(AnyType() if numeric or pd.api.types.is_bool_dtype(dtype) else "string", col)

    return Schema([ColSpec(AnyType(), LEAD_ID, required=False), *(spec(c) for c in features)])


def _requirements() -> list[str]:
    """The model's runtime requirements, pinned to what is installed (no slow import inference)."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "lightgbm", "pandas", "numpy", "scipy", "pydantic", "pyarrow", "duckdb", "mlflow")]


def _write_curves(result: TrainResult, plots_out: Path) -> None:
    """One CSV per curve and model (``roc/lightgbm.csv``…), the layout ``dvc plots`` reads."""
    with atomic_path(plots_out) as tmp:
        for kind, table in result.curves.items():
            (tmp / kind).mkdir(parents=True)
            for model, part in table.groupby("model", sort=False):
                part.drop(columns="model").to_csv(tmp / kind / f"{model}.csv", index=False)


def _print_summary(result: TrainResult, run_info: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="out-of-time test", show_lines=False)
    for col in ("model", "ROC AUC", "PR AUC", "Brier", "ECE", "lift@10%"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in result.metrics["test"].items():
        table.add_row(
            name,
            *(f"{m[k]:.4f}" if m.get(k) is not None else "-" for k in ("roc_auc", "pr_auc", "brier", "ece")),
            f"{m['lift_at_10pct']:.2f}" if m.get("lift_at_10pct") is not None else "-",
        )
    console.print(table)
    model = result.metrics["model"]
    if model.get("calibration_roc_auc"):
        figures = ", ".join(f"{k} {v:.4f}" for k, v in model["calibration_roc_auc"].items())
        console.print(f"main model {result.main}, chosen on the calibration part (ROC AUC {figures})", highlight=False)
    columns = model.get("column_selection")
    if columns:
        console.print(
            f"naive Bayes columns chosen on the calibration part ({columns['method']}): kept {len(columns['kept'])}, "
            f"ROC AUC {columns['start_roc_auc']:.4f} -> {columns['roc_auc']:.4f}; "
            f"dropped: {', '.join(columns['dropped']) or 'none'}",
            highlight=False,
        )
    p = run_info["promotion"]
    verdict = "champion" if p["promote"] else "challenger only"
    console.print(
        f"registered {run_info['model_name']} v{run_info['model_version']} ({verdict}): {p['reason']}",
        highlight=False,
    )
    console.print(f"MLflow run {run_info['run_id']} at {run_info['tracking_uri']}", highlight=False)
