"""The scorer as an MLflow pyfunc model: what is registered, served and loaded by batch jobs."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from features.contract import LEAD_ID
from models.scorer import LeadScorer


class LeadScorerModel(mlflow.pyfunc.PythonModel):
    """``predict`` scores a frame of snapshot features: probability, flag, tier, reasons, contributions.

    ``params={"catalog_version": ...}`` makes it refuse features built with another catalog.
    """

    def __init__(self, scorer: LeadScorer) -> None:
        self.scorer = scorer

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if params and params.get("catalog_version"):
            self.scorer.check_catalog(str(params["catalog_version"]))
        out = self.scorer.score(frame, check=False)
        if LEAD_ID in frame.columns:
            out.insert(0, LEAD_ID, frame[LEAD_ID].to_numpy())
        return out.reset_index(drop=True)
