"""The promotion rule: a challenger replaces the champion only when at least as good on the same rows."""

from models.registry import PromotionParams, decide_promotion

RULE = PromotionParams(roc_auc_tolerance=0.005, brier_tolerance=0.0)


def test_first_model_becomes_champion():
    d = decide_promotion({"roc_auc": 0.7, "brier": 0.1}, None, RULE)
    assert d.promote and "no champion" in d.reason


def test_equal_or_better_is_promoted_within_tolerance():
    champion = {"roc_auc": 0.80, "brier": 0.050}
    assert decide_promotion({"roc_auc": 0.80, "brier": 0.050}, champion, RULE).promote
    assert decide_promotion({"roc_auc": 0.796, "brier": 0.049}, champion, RULE).promote


def test_lower_auc_beyond_tolerance_or_higher_brier_is_not_promoted():
    champion = {"roc_auc": 0.80, "brier": 0.050}
    worse_auc = decide_promotion({"roc_auc": 0.79, "brier": 0.049}, champion, RULE)
    assert not worse_auc.promote and "ROC AUC is lower" in worse_auc.reason
    worse_brier = decide_promotion({"roc_auc": 0.81, "brier": 0.051}, champion, RULE)
    assert not worse_brier.promote and "Brier is higher" in worse_brier.reason
