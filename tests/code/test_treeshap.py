"""TreeShap must equal LightGBM's own pred_contrib (and shap.TreeExplainer) on random models and data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import shap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.treeshap import TreeShap

TOL = 1e-6
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _warm_jit() -> None:
    """Compile (or load from numba's on-disk cache) the kernels once per test session."""
    X, y, cat = _data(300, seed=0)
    ts = TreeShap(_train(X, y, cat, rounds=2), n_threads=1)
    ts.contributions(X)
    ts.raw_score(X)


def _data(n: int, seed: int, n_num: int = 6, n_cat: int = 2, levels: int = 12, distinct: int | None = None,
          nan_rate: float = 0.1, zero_rate: float = 0.3) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Counts with many zeros (optionally few distinct values), NaNs, and integer-coded categoricals."""
    rng = np.random.default_rng(seed)
    num = rng.gamma(0.7, 3.0, (n, n_num))
    num = np.floor(num) if distinct is None else rng.integers(0, distinct, (n, n_num)).astype(float)
    num[rng.random((n, n_num)) < zero_rate] = 0.0
    num[rng.random((n, n_num)) < nan_rate] = np.nan
    cat = rng.integers(0, levels, (n, n_cat)).astype(float)
    cat[rng.random((n, n_cat)) < nan_rate] = np.nan
    X = np.column_stack([num, cat])
    logit = np.nan_to_num(X[:, 0], nan=-2) * 0.3 - np.nan_to_num(X[:, n_num - 1], nan=5) * 0.2
    if n_cat:
        logit += np.isin(X[:, n_num], [1, 3, 5]) * 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit - 1)))).astype(int)
    return X, y, list(range(n_num, n_num + n_cat))


def _train(X: np.ndarray, y: np.ndarray, cat: list[int], rounds: int = 40, callbacks: list | None = None,
           **params: object) -> lgb.Booster:
    base = {"objective": "binary", "verbose": -1, "num_threads": 1, "num_leaves": 15,
            "min_data_in_leaf": 5, "min_data_per_group": 5, "cat_smooth": 1.0, "seed": 0}
    ds = lgb.Dataset(X, y, categorical_feature=cat, params={"verbose": -1})
    return lgb.train({**base, **params}, ds, rounds, callbacks=callbacks)


def _score_data(X: np.ndarray, seed: int) -> np.ndarray:
    """Scoring rows, including unseen/negative categories, zeros, tiny values and NaNs everywhere."""
    rng = np.random.default_rng(seed)
    Z = X[rng.permutation(len(X))].copy()
    Z[rng.random(Z.shape) < 0.05] = np.nan
    Z[rng.random(Z.shape) < 0.05] = 0.0
    Z[rng.random(Z.shape) < 0.01] = -1.0
    Z[rng.random(Z.shape) < 0.01] = 1e-40
    Z[rng.random(Z.shape) < 0.01] = 99.0
    return Z


def _check(booster: lgb.Booster, X: np.ndarray) -> None:
    ts = TreeShap(booster, batch_rows=700)  # several batches
    got = ts.contributions(X)
    want = booster.predict(X, pred_contrib=True, num_threads=1)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= TOL
    raw = booster.predict(X, raw_score=True, num_threads=1)
    assert np.abs(got.sum(axis=1) - raw).max() <= TOL
    assert np.abs(ts.raw_score(X) - raw).max() <= TOL


CASES = {
    "default": {},
    "small_trees": {"num_leaves": 4},
    "deep": {"num_leaves": 63, "min_data_in_leaf": 2},
    "over_64_splits": {"num_leaves": 100, "min_data_in_leaf": 2},
    "depth_limited": {"num_leaves": 31, "max_depth": 4},
    "zero_as_missing": {"zero_as_missing": True},
    "no_missing": {"use_missing": False},
    "cat_heavy": {"max_cat_to_onehot": 2, "max_cat_threshold": 8, "min_data_per_group": 2},
    "onehot_cats": {"max_cat_to_onehot": 32},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pred_contrib(name: str) -> None:
    X, y, cat = _data(3000, seed=len(name))
    booster = _train(X, y, cat, **CASES[name])
    _check(booster, _score_data(X, seed=1))


@pytest.mark.parametrize("distinct", [2, 3, None])
def test_few_and_many_distinct_values(distinct: int | None) -> None:
    X, y, cat = _data(2000, seed=7, distinct=distinct, n_cat=1, levels=30)
    _check(_train(X, y, cat, num_leaves=31), _score_data(X, seed=2))


def test_float32_input_and_no_nans_in_training() -> None:
    X, y, cat = _data(2000, seed=3, nan_rate=0.0)  # missing_type None everywhere
    booster = _train(X, y, cat)
    _check(booster, _score_data(X, seed=3).astype(np.float32))


def test_continuous_features() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 5))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (X[:, 0] + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(size=2000) > 0).astype(int)
    _check(_train(X, y, [], num_leaves=31), _score_data(X, seed=4))


def test_single_leaf_trees() -> None:
    X, y, cat = _data(500, seed=11)
    booster = _train(X, y, cat, rounds=5, min_gain_to_split=1e9)
    assert all(t["num_leaves"] == 1 for t in booster.dump_model()["tree_info"])
    _check(booster, X)


def test_mixed_single_leaf_and_split_trees() -> None:
    X, y, cat = _data(1500, seed=12)
    no_split_first = lgb.reset_parameter(min_gain_to_split=[1e9, 0.0, 0.0, 0.0, 0.0])
    booster = _train(X, y, cat, rounds=5, callbacks=[no_split_first])
    leaves = [t["num_leaves"] for t in booster.dump_model()["tree_info"]]
    assert 1 in leaves and max(leaves) > 1
    _check(booster, _score_data(X, seed=5))


def test_regression_objective() -> None:
    X, y, cat = _data(1500, seed=13)
    target = np.nan_to_num(X[:, 0]) + y
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "num_leaves": 15},
                        lgb.Dataset(X, target, categorical_feature=cat), 20)
    _check(booster, _score_data(X, seed=6))


def test_matches_shap_tree_explainer() -> None:
    X, y, cat = _data(2000, seed=21)
    booster = _train(X, y, cat, num_leaves=31)
    Z = _score_data(X, seed=7)[:300]
    explainer = shap.TreeExplainer(booster)
    values = explainer.shap_values(Z)
    values = values[1] if isinstance(values, list) else values
    got = TreeShap(booster).contributions(Z)
    assert np.abs(got[:, :-1] - values).max() <= TOL
    expected = np.ravel(explainer.expected_value)[-1]
    assert np.abs(got[:, -1] - expected).max() <= TOL


def test_rejects_multiclass() -> None:
    X, y, cat = _data(600, seed=31)
    booster = _train(X, (y + (np.nan_to_num(X[:, 0]) > 2)).astype(int), cat, rounds=2,
                     objective="multiclass", num_class=3)
    with pytest.raises(ValueError, match="single-output"):
        TreeShap(booster)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(30, 400),
    n_num=st.integers(1, 4),
    n_cat=st.integers(0, 2),
    distinct=st.sampled_from([2, 4, None]),
    num_leaves=st.integers(2, 24),
    min_data=st.integers(1, 20),
    rounds=st.integers(1, 8),
    zero_as_missing=st.booleans(),
)
def test_property_random_models(seed: int, n: int, n_num: int, n_cat: int, distinct: int | None,
                                num_leaves: int, min_data: int, rounds: int, zero_as_missing: bool) -> None:
    X, y, cat = _data(n, seed, n_num=n_num, n_cat=n_cat, levels=6, distinct=distinct)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    booster = _train(X, y, cat, rounds=rounds, num_leaves=num_leaves, min_data_in_leaf=min_data,
                     min_data_per_group=1, zero_as_missing=zero_as_missing)
    _check(booster, _score_data(X, seed + 1))


@pytest.mark.parametrize("table_slots", [0, 3, 64])
def test_quadrature_and_table_paths_agree(table_slots: int) -> None:
    """Leaves beyond the table limit use the per-row quadrature: same values for any split of the two."""
    X, y, cat = _data(2000, seed=41)
    booster = _train(X, y, cat, num_leaves=31, rounds=10, zero_as_missing=True)
    ts = TreeShap(booster, batch_rows=500, table_slots=table_slots)
    if table_slots == 0:
        assert (ts.model.table_start < 0).all()
    Z = _score_data(X, seed=8)
    assert np.abs(ts.contributions(Z) - booster.predict(Z, pred_contrib=True, num_threads=1)).max() <= TOL


def test_deep_trees() -> None:
    """Deep leaf-wise trees with many distinct features per path: tables and quadrature mixed."""
    rng = np.random.default_rng(9)
    n, d = 3000, 80
    X = rng.normal(size=(n, d))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (X[:, 0] + 0.3 * np.nan_to_num(X).sum(axis=1) + rng.normal(size=n) > 0).astype(int)
    booster = _train(X, y, [], rounds=3, num_leaves=300, min_data_in_leaf=1, min_sum_hessian_in_leaf=0.0,
                     max_depth=-1, feature_fraction_bynode=0.05, min_gain_to_split=0.0)
    ts = TreeShap(booster, batch_rows=1000)
    assert np.diff(ts.model.path_start).max() >= 15 and (ts.model.table_start < 0).any()
    Z = _score_data(X, seed=9)
    assert np.abs(ts.contributions(Z) - booster.predict(Z, pred_contrib=True, num_threads=1)).max() <= TOL
    assert np.abs(ts.raw_score(Z) - booster.predict(Z, raw_score=True, num_threads=1)).max() <= TOL


def test_threads_give_identical_values() -> None:
    X, y, cat = _data(3000, seed=51)
    booster = _train(X, y, cat, num_leaves=31, rounds=20)
    Z = _score_data(X, seed=10)
    one = TreeShap(booster, n_threads=1).contributions(Z)
    two = TreeShap(booster, n_threads=2).contributions(Z)
    assert np.array_equal(one, two)
    other_chunks = TreeShap(booster, n_threads=2, batch_rows=777).contributions(Z)  # other chunks
    assert np.array_equal(one, other_chunks)


def test_import_compiles_nothing() -> None:
    """Importing the module only defines the kernels; they compile on first use."""
    code = ("import models.treeshap as t; "
            "print(sum(len(f.signatures) "
            "for f in (t._fill_tables, t._contributions, t._raw_score, t._chunk, t._tree_vector, "
            "t._part_vector)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"


@pytest.mark.parametrize(("part_leaves", "group"), [(1, 1), (3, 4), (64, 7)])
def test_parts_and_tree_groups_do_not_change_values(part_leaves: int, group: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Memoised parts of any size and any number of trees per group give the same contributions."""
    X, y, cat = _data(3000, seed=61)
    booster = _train(X, y, cat, num_leaves=31, rounds=15)
    Z = _score_data(X, seed=11)
    want = booster.predict(Z, pred_contrib=True, num_threads=1)
    default = TreeShap(booster, n_threads=1).contributions(Z)
    monkeypatch.setattr("models.treeshap.GROUP_TREES", group)
    ts = TreeShap(booster, n_threads=2, batch_rows=1000, part_leaves=part_leaves)
    assert np.diff(ts.model.part_start).max() == -(-31 // part_leaves)  # 31-leaf trees cut as asked
    got = ts.contributions(Z)
    assert np.abs(got - want).max() <= TOL
    assert np.abs(got - default).max() <= 1e-12


def test_repeated_rows_share_patterns_exactly() -> None:
    """Lead-like bases repeat rows (all zeros, a few counts): each copy gets the same exact values."""
    X, y, cat = _data(2000, seed=71, distinct=3)
    booster = _train(X, y, cat, num_leaves=31, rounds=20)
    source = np.random.default_rng(3).integers(0, 50, 5000)  # 50 distinct rows, ~100 copies each
    Z = _score_data(X, seed=12)[source]
    got = TreeShap(booster, n_threads=2, batch_rows=1500).contributions(Z)
    assert np.abs(got - booster.predict(Z, pred_contrib=True, num_threads=1)).max() <= TOL
    for k in np.unique(source):
        copies = got[source == k]
        assert (copies == copies[0]).all()


def test_row_order_changes_no_value_and_the_locality_sort_is_a_permutation() -> None:
    """Rows are worked in an order sorted by their codes; each row's values are bit-identical
    whatever order the rows come in, and the sort visits every row once."""
    X, y, cat = _data(3000, seed=81)
    booster = _train(X, y, cat, num_leaves=31, rounds=20)
    Z = _score_data(X, seed=13)
    ts = TreeShap(booster, n_threads=2, batch_rows=1100)
    order = ts._locality_order(ts._codes(Z[:1100]))
    assert np.array_equal(np.sort(order), np.arange(1100)) and not np.array_equal(order, np.arange(1100))
    perm = np.random.default_rng(5).permutation(len(Z))
    assert np.array_equal(ts.contributions(Z[perm]), ts.contributions(Z)[perm])
    assert np.abs(ts.contributions(Z) - booster.predict(Z, pred_contrib=True, num_threads=1)).max() <= TOL


def _reference_codes(coder, column: np.ndarray) -> np.ndarray:
    """The coding of ``FeatureCoder`` written with numpy's searchsorted: the oracle for ``_encode``."""
    col = np.asarray(column, dtype=np.float64)
    nan = np.isnan(col)
    if coder.categorical:
        iv = np.trunc(np.where(nan, -1.0, col))
        pos = np.searchsorted(coder.cuts, iv)
        hit = np.take(coder.cuts, np.minimum(pos, len(coder.cuts) - 1)) == iv
        return np.where(hit & (iv >= 0), pos, len(coder.cuts))
    code = np.searchsorted(coder.cuts, col, side="left")
    code[nan] = len(coder.cuts) + 1
    return code


def test_compiled_coder_equals_each_feature_coder() -> None:
    """The row-parallel encoder gives every value the code the numpy reference gives it: at, just
    below and just above every cut, in the zero band, at +-inf and NaN, and for categories that are
    negative, fractional, unseen or huge."""
    X, y, cat = _data(2000, seed=3)
    ts = TreeShap(_train(X, y, cat, rounds=30))
    rng = np.random.default_rng(4)
    columns = []
    for f in range(X.shape[1]):
        coder = ts.coders.get(f)
        edges = [] if coder is None else list(coder.cuts)
        probes = [*edges, *np.nextafter(edges, np.inf), *np.nextafter(edges, -np.inf), 0.0, -0.0, 1e-40,
                  -1e-40, np.inf, -np.inf, np.nan, -1.0, -0.5, 2.5, 1e9, *rng.normal(0, 10, 50)]
        columns.append(rng.choice(np.array(probes), 3000))
    Z = np.column_stack(columns)
    for dtype in (np.float64, np.float32):
        with np.errstate(over="ignore"):  # cuts beyond float32's range become +-inf: probes too
            Zd = Z.astype(dtype)
        got = ts._codes(Zd)
        for i, f in enumerate(sorted(ts.coders)):
            np.testing.assert_array_equal(got[:, i], _reference_codes(ts.coders[f], Zd[:, f]),
                                          err_msg=f"feature {f}")
