"""Stage `export`: copy the scorer to be used (the registry's champion, or this run's model) into a
local MLflow model folder that batch scoring and `mlflow models serve` load without the registry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from features.io import atomic_path, write_json_atomic
from models.registry import PromotionParams
from pipelines.config import load_section
from pipelines.console import console
from pipelines.tracking import check_tracking, mlflow_errors

EXPORT_INFO = "leadlift_export.json"
"""Written inside the exported folder: which registered model and version it is."""


class ExportParams(BaseModel):
    """The ``export`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["champion", "run"] = "champion"
    """champion: ``models:/<name>@champion``; run: the model the last train stage registered."""


def main(params_path: Path, run_in: Path, out: Path, report_out: Path) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per stage in DVC logs
    params = load_section(params_path, "export", ExportParams)
    registry = load_section(params_path, "registry", PromotionParams)
    run = json.loads(Path(run_in).read_text())
    uri = run["tracking_uri"]
    check_tracking(uri)
    with mlflow_errors(uri):
        info = _export(uri, registry.model_name, params.source, run, out)
    write_json_atomic(info, report_out)
    console.print(
        f"exported {info['model_name']} v{info['model_version']} ({info['source']}) -> {out}", highlight=False
    )


def _export(uri: str, name: str, source: str, run: dict, out: Path) -> dict:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if source == "champion":
        version = client.get_model_version_by_alias(name, "champion")
        model_uri = f"models:/{name}@champion"
    else:
        version = client.get_model_version(name, run["model_version"])
        model_uri = f"models:/{name}/{version.version}"
    info = {
        "model_name": name,
        "model_version": str(version.version),
        "source": source,
        "model_uri": model_uri,
        "run_id": version.run_id,
        "tracking_uri": uri,
    }
    with atomic_path(out) as tmp:
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(tmp))
        scorer = mlflow.pyfunc.load_model(str(tmp)).unwrap_python_model().scorer
        scorer.model_version = info["model_version"]
        info["catalog_version"] = scorer.catalog_version
        info["features"] = len(scorer.features)
        info["flag_policy"] = scorer.params.flag.model_dump()
        info["best_f1_threshold"] = scorer.best_f1_threshold
        info["tiers"] = scorer.params.tiers.model_dump()
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return info
