import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.lgbm import (
    FeatureSpec,
    LGBMParams,
    LGBMScorer,
    SearchParams,
    booster_params,
    fit_lgbm,
    search_lgbm,
    trial_grid,
)

FAST = LGBMParams(
    n_estimators=200,
    early_stopping_rounds=20,
    learning_rate=0.1,
    min_child_samples=20,
    search=SearchParams(n_trials=3, grid={"num_leaves": [7, 15], "lambda_l2": [0.0, 5.0]}),
)


def _frame(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    src = rng.choice(["web", "event", "cold"], n)
    logit = -2 + 1.5 * x + np.select([src == "web", src == "cold"], [1.0, -1.0], 0.0)
    return pd.DataFrame(
        {
            "lead_id": np.arange(n) // 2,
            "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8"),
            "x": x,
            "flag": rng.random(n) < 0.5,
            "n": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "src": pd.array(src, dtype="str"),
            "cat": pd.Categorical(rng.choice(["p", "q"], n)),
            "obj": pd.Series(rng.choice(["k", "l", None], n), dtype=object),
        }
    )


def test_feature_spec_kinds_and_levels():
    frame = _frame(200)
    spec = FeatureSpec.infer(frame, ["x", "flag", "n", "src", "cat", "obj"])
    assert spec.numeric == ("x", "flag", "n")
    assert spec.categorical == ("src", "cat", "obj")
    assert spec.levels["src"] == ("cold", "event", "web")
    assert spec.levels["obj"] == ("k", "l")


def test_matrix_codes_levels_and_maps_unseen_to_missing():
    frame = _frame(50)
    spec = FeatureSpec.infer(frame, ["x", "src"])
    new = pd.DataFrame({"x": [1.5, np.nan], "src": pd.array(["web", "mars"], dtype="str")})
    m = spec.matrix(new)
    assert m.dtype == np.float32
    assert m[0, 0] == pytest.approx(1.5) and np.isnan(m[1, 0])
    assert m[0, 1] == spec.levels["src"].index("web") and np.isnan(m[1, 1])


def test_max_levels_keeps_the_most_frequent():
    frame = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c"]})
    assert FeatureSpec.infer(frame, ["c"], max_levels=2).levels["c"] == ("a", "b")


def test_fit_learns_signal_and_scores_any_row_order():
    train, test = _frame(4000, 0), _frame(2000, 1)
    features = ["x", "flag", "n", "src", "cat", "obj"]
    scorer = fit_lgbm(train, FAST, features=features)
    p = scorer.predict_proba(test)[:, 1]
    assert roc_auc_score(test["label"], p) > 0.75
    shuffled = test.sample(frac=1.0, random_state=3)
    np.testing.assert_allclose(scorer.predict_proba(shuffled)[:, 1], p[shuffled.index.to_numpy()])
    np.testing.assert_allclose(scorer.decision_function(test), np.log(p / (1 - p)), rtol=1e-6)
    reordered_columns = test[list(reversed(test.columns))]
    np.testing.assert_allclose(scorer.predict_proba(reordered_columns)[:, 1], p)
    again = pickle.loads(pickle.dumps(scorer))
    np.testing.assert_allclose(again.predict_proba(test)[:, 1], p)


def test_trial_grid_starts_with_base_params_and_is_seeded():
    grid = trial_grid(FAST)
    assert grid[0] == {} and len(grid) == 3
    assert grid == trial_grid(FAST)
    assert all(set(g) <= {"num_leaves", "lambda_l2"} for g in grid)
    single = FAST.model_copy(update={"search": SearchParams(n_trials=1)})
    assert trial_grid(single) == [{}]


def test_search_reports_every_trial_and_keeps_the_best():
    seen = []
    scorer, trials, best = search_lgbm(
        _frame(4000), ["x", "src"], FAST, on_trial=lambda p, m: seen.append((p, m))
    )
    assert len(trials) == len(seen) == 3
    assert [p["trial"] for p, _ in seen] == [0, 1, 2]
    assert all({"roc_auc", "pr_auc", "log_loss", "best_iteration"} <= set(m) for _, m in seen)
    assert best.metrics["roc_auc"] == max(t.metrics["roc_auc"] for t in trials)
    assert scorer.booster_.best_iteration == best.best_iteration


def test_search_on_a_row_sample_refits_the_best_on_all_rows():
    params = FAST.model_copy(
        update={"search": SearchParams(n_trials=2, grid={"num_leaves": [7, 15]}, max_rows=1000)}
    )
    frame = _frame(6000)
    scorer, trials, best = search_lgbm(frame, ["x", "src"], params)
    assert scorer.booster_.num_trees() > 0
    assert len(trials) == 2


def test_unknown_search_parameter_is_refused():
    with pytest.raises(ValueError, match="max_depth"):
        booster_params(FAST, {"max_depth": 3})


def test_scorer_fit_and_clone_follow_the_sklearn_contract():
    from sklearn.base import clone

    frame = _frame(3000)
    features = ["x", "flag", "src"]
    scorer = LGBMScorer(params=FAST).fit(frame[features], frame["label"])
    assert list(scorer.classes_) == [0, 1] and list(scorer.feature_names_in_) == ["x", "flag", "src"]
    assert roc_auc_score(frame["label"], scorer.predict_proba(frame)[:, 1]) > 0.75
    fresh = clone(scorer)
    assert fresh.get_params()["params"] == FAST and not hasattr(fresh, "booster_")


def test_monotone_features_never_lower_the_score_of_any_row():
    rng = np.random.default_rng(5)
    n = 4000
    demo = rng.poisson(0.5, n)
    noise = rng.normal(size=n)
    # a label that wobbles with demo requests, so an unconstrained model would learn dips
    logit = -2 + 0.8 * demo + 0.8 * np.sin(3 * demo) + noise
    frame = pd.DataFrame(
        {
            "lead_id": np.arange(n),
            "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8"),
            "demo": demo.astype(float),
            "noise": noise,
        }
    )
    params = FAST.model_copy(update={"monotone_increasing": ["demo"]})
    scorer = fit_lgbm(frame, params, features=["demo", "noise"])
    for step in (1, 2, 3):
        delta = scorer.decision_function(frame.assign(demo=frame["demo"] + step)) - scorer.decision_function(
            frame
        )
        assert (delta >= -1e-9).all()
    with pytest.raises(ValueError, match="not features: typo"):
        fit_lgbm(frame, FAST.model_copy(update={"monotone_increasing": ["typo"]}), features=["demo", "noise"])


def test_trials_may_lower_min_child_samples_on_the_shared_dataset(capfd):
    """Trials share one binned dataset; one with a smaller min_child_samples than an earlier one must
    train on it as is. With feature_pre_filter on, LightGBM reports a fatal error and rebuilds the
    dataset for every such trial."""
    from models.lgbm import _dataset, _train

    frame = _frame(1500, seed=3)
    features = [c for c in frame.columns if c not in ("lead_id", "cutoff", "label")]
    spec = FeatureSpec.infer(frame, features)
    dtrain = _dataset(spec, frame.iloc[:1000], FAST)
    dvalid = _dataset(spec, frame.iloc[1000:], FAST, dtrain)
    first = _train(dtrain, dvalid, FAST, {"min_child_samples": 200})
    second = _train(dtrain, dvalid, FAST, {"min_child_samples": 5})
    assert first.num_trees() > 0 and second.num_trees() > 0
    captured = capfd.readouterr()
    assert "Fatal" not in captured.out + captured.err
