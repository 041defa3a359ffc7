"""Behavioural checks of the calibrated scorer: directional (intent) and invariance tests.

The high-intent columns are a parameter (``HIGH_INTENT``) so the real catalog's names can be
plugged in; here they are the synthetic base's, where these columns drive conversion.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models.lgbm import LGBMParams, SearchParams
from models.train import TrainParams, train_all
from tests.model.synthetic import HIGH_INTENT, make_snapshots


@pytest.fixture(scope="module")
def model_and_leads():
    snapshots, _ = make_snapshots(6000, seed=21)
    params = TrainParams(lgbm=LGBMParams(search=SearchParams(n_trials=1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = train_all(snapshots, params, horizon_days=30)
    probe = make_snapshots(1500, seed=22)[0]
    return result.models["lightgbm"], probe


def _score(model, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame)[:, 1]


@pytest.mark.parametrize("column", HIGH_INTENT)
def test_more_high_intent_activity_raises_the_score_on_average(model_and_leads, column):
    model, leads = model_and_leads
    base = _score(model, leads)
    more = _score(model, leads.assign(**{column: leads[column] + 1}))
    delta = more - base
    assert delta.mean() > 0
    # "never lowers on average": nor does it lower the score of a sizeable share of leads
    assert (delta < -0.01).mean() < 0.05


def test_all_high_intent_columns_together_raise_the_score_for_most_leads(model_and_leads):
    model, leads = model_and_leads
    bumped = leads.assign(**{c: leads[c] + 2 for c in HIGH_INTENT})
    delta = _score(model, bumped) - _score(model, leads)
    assert delta.mean() > 0.05
    assert (delta >= 0).mean() > 0.9


def test_lead_id_does_not_change_scores(model_and_leads):
    model, leads = model_and_leads
    renamed = leads.assign(lead_id=leads["lead_id"] + 10_000_000)
    as_text = leads.assign(lead_id=pd.array("L" + leads["lead_id"].astype(str), dtype="str"))
    np.testing.assert_array_equal(_score(model, renamed), _score(model, leads))
    np.testing.assert_array_equal(_score(model, as_text), _score(model, leads))


def test_row_order_does_not_change_scores(model_and_leads):
    model, leads = model_and_leads
    base = pd.Series(_score(model, leads), index=leads.index)
    shuffled = leads.sample(frac=1.0, random_state=7)
    got = pd.Series(_score(model, shuffled), index=shuffled.index)
    pd.testing.assert_series_equal(got.sort_index(), base.sort_index())
    one_by_one = np.concatenate([_score(model, leads.iloc[[i]]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, base.iloc[:5].to_numpy())
