"""The promotion rule: when a newly trained model may replace the champion.

Pure: it compares two sets of metrics computed on the *same* test rows and says yes or no with
a reason a person can read. Talking to the MLflow registry is the pipeline's job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PromotionParams(BaseModel):
    """The ``registry`` section of params.yaml: where models are registered and how one is promoted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = Field("lead-propensity", min_length=1)
    experiment: str = Field("leadlift", min_length=1)
    roc_auc_tolerance: float = Field(0.005, ge=0, le=1)
    """The challenger may be this much lower in ROC AUC than the champion and still be promoted."""
    brier_tolerance: float = Field(0.0, ge=0, le=1)
    """The challenger's Brier score may be at most this much higher than the champion's."""


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger becomes champion, and why (both sets of figures kept for the log)."""

    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_promotion(
    challenger: dict[str, float], champion: dict[str, float] | None, params: PromotionParams
) -> PromotionDecision:
    """Promote when there is no champion, or when the challenger, on the same test rows, has a ROC AUC
    not lower than the champion's by more than ``roc_auc_tolerance`` and a Brier score not higher
    than the champion's by more than ``brier_tolerance``."""
    mine = {k: float(challenger[k]) for k in ("roc_auc", "brier")}
    if champion is None:
        return PromotionDecision(True, "no champion yet: the first model becomes champion", mine, None)
    theirs = {k: float(champion[k]) for k in ("roc_auc", "brier")}
    auc_ok = mine["roc_auc"] >= theirs["roc_auc"] - params.roc_auc_tolerance
    brier_ok = mine["brier"] <= theirs["brier"] + params.brier_tolerance
    figures = (
        f"ROC AUC {mine['roc_auc']:.4f} vs champion {theirs['roc_auc']:.4f} "
        f"(tolerance {params.roc_auc_tolerance:g}), Brier {mine['brier']:.5f} vs {theirs['brier']:.5f} "
        f"(tolerance {params.brier_tolerance:g})"
    )
    if auc_ok and brier_ok:
        return PromotionDecision(True, f"at least as good as the champion on the same test rows: {figures}", mine, theirs)
    failed = " and ".join(
        part for part, ok in (("ROC AUC is lower", auc_ok), ("Brier is higher", brier_ok)) if not ok
    )
    return PromotionDecision(False, f"not promoted, {failed} than the tolerance allows: {figures}", mine, theirs)
