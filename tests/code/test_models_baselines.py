import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.baselines import (
    BehaviourRule,
    FitRule,
    LogRegParams,
    PointsModel,
    PointsParams,
    fit_logreg,
    missing_rule_columns,
    points_score,
)

RULES = PointsParams(
    fit=[
        FitRule(column="email_domain_type", values=["free"], points=-10),
        FitRule(column="employees", min=250, points=10),
    ],
    behaviour=[
        BehaviourRule(column="demo", points=30),
        BehaviourRule(column="pricing", points=10, per_event=True, max_points=30),
    ],
)


def test_points_follow_the_rules():
    frame = pd.DataFrame(
        {
            "email_domain_type": pd.array(["free", "business", None, "free"], dtype="str"),
            "employees": [300, 10, np.nan, 250],
            "demo": [1, 0, 2, np.nan],
            "pricing": [1, 5, 0, 2],
        }
    )
    # row 0: -10 free, +10 big, +30 demo, +10 one pricing view
    # row 1: pricing 5 views capped at 30; row 2: demo +30 (once, not per event), missing values score 0
    # row 3: -10 free, +10 (250 is in [250, inf)), missing demo 0, +20 pricing
    assert points_score(frame, RULES).tolist() == [40.0, 30.0, 30.0, 20.0]


def test_points_accept_category_and_bool_columns():
    params = PointsParams(fit=[FitRule(column="crm", values=["False"], points=-20)], behaviour=[])
    frame = pd.DataFrame({"crm": [True, False, None]}, dtype="boolean")
    assert points_score(frame, params).tolist() == [0.0, -20.0, 0.0]
    cat = pd.DataFrame({"crm": pd.Categorical(["False", "True"])})
    assert points_score(cat, params).tolist() == [-20.0, 0.0]


def test_missing_rule_columns_warn_or_stop():
    frame = pd.DataFrame({"demo": [0, 1, 0, 1], "pricing": [0, 0, 1, 1]})
    assert missing_rule_columns(frame, RULES) == ["email_domain_type", "employees"]
    with pytest.warns(UserWarning, match="email_domain_type, employees"):
        model = PointsModel(RULES).fit(frame, [0, 1, 0, 1])
    assert model.missing_columns_ == ["email_domain_type", "employees"]
    strict = RULES.model_copy(update={"on_missing_column": "error"})
    with pytest.raises(ValueError, match="email_domain_type"):
        PointsModel(strict).fit(frame, [0, 1, 0, 1])


def test_points_probability_is_increasing_in_points():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "email_domain_type": rng.choice(["free", "business"], 2000),
            "employees": rng.integers(1, 5000, 2000),
            "demo": rng.poisson(0.2, 2000),
            "pricing": rng.poisson(1.0, 2000),
        }
    )
    score = points_score(frame, RULES)
    y = rng.random(2000) < 1 / (1 + np.exp(-(score - 30) / 10))
    model = PointsModel(RULES).fit(frame, y.astype(int))
    p = model.predict_proba(frame)[:, 1]
    order = np.argsort(score, kind="stable")
    assert np.all(np.diff(p[order]) >= -1e-12)
    assert np.corrcoef(score, p)[0, 1] > 0.9


def test_default_points_params_mirror_a_marketing_rule():
    params = PointsParams()
    behaviour = {r.column: r.points for r in params.behaviour}
    assert behaviour["demo_request_count_90d"] == 30
    assert behaviour["page_view_pricing_count_30d"] == 10
    assert any(r.values == ["free"] and r.points == -10 for r in params.fit)
    with pytest.raises(ValidationError):
        PointsParams.model_validate({"behaviour": [{"column": "x", "points": "lots"}]})


def _logreg_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    src = rng.choice(["a", "b", "c"], n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x + (src == "a") - 1)))).astype("int8")
    frame = pd.DataFrame(
        {
            "lead_id": np.arange(n),
            "label": y,
            "x": np.where(rng.random(n) < 0.1, np.nan, x),
            "count": rng.poisson(3, n),
            "flag": rng.random(n) < 0.5,
            "src": pd.array(np.where(rng.random(n) < 0.05, None, src), dtype="str"),
            "cat": pd.Categorical(rng.choice(["u", "v"], n)),
            "empty": np.nan,
        }
    )
    return frame


def test_logreg_pipeline_handles_mixed_dtypes_missing_and_unseen_levels():
    frame = _logreg_frame(3000, 1)
    features = ["x", "count", "flag", "src", "cat", "empty"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from imputing or encoding
        pipe = fit_logreg(frame, features, LogRegParams())
    p = pipe.predict_proba(frame[features])[:, 1]
    assert np.isfinite(p).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(frame["label"], p) > 0.75
    new = frame.head(5).assign(src=pd.array(["zzz"] * 5, dtype="str"))
    assert np.isfinite(pipe.predict_proba(new[features])).all()
    names = pipe[:-1].get_feature_names_out()
    assert len(names) == pipe.named_steps["model"].coef_.shape[1]
    assert any(n.startswith("numeric__x") for n in names) and any(
        n.startswith("categorical__src_") for n in names
    )
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_allclose(again.predict_proba(frame[features]), pipe.predict_proba(frame[features]))


def test_logreg_trains_on_a_capped_lead_sample():
    from models.split import lead_holdout

    frame = _logreg_frame(3000, 2)
    capped = fit_logreg(frame, ["x", "src"], LogRegParams(max_rows=500))
    _, sample = lead_holdout(frame, 500 / 3000, seed=LogRegParams().seed)
    assert len(sample) == 500
    on_sample = fit_logreg(sample, ["x", "src"], LogRegParams(max_rows=None))
    on_all = fit_logreg(frame, ["x", "src"], LogRegParams(max_rows=None))
    np.testing.assert_allclose(capped.named_steps["model"].coef_, on_sample.named_steps["model"].coef_)
    assert not np.allclose(capped.named_steps["model"].coef_, on_all.named_steps["model"].coef_)
