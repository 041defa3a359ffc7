"""A small simulated base turned into real snapshots, a trained scorer on them (session-scoped)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from features.builder import build_features
from features.catalog import build_catalog, discover_attributes
from features.simulate import SimulateParams, simulate_chunks
from features.snapshots import SpineParams, snapshot_spine
from features.timeline import latest_lead_time, resolve_data_end
from models.lgbm import LGBMParams, SearchParams
from models.reasons import ReasonBook
from models.scorer import LeadScorer, ScorerParams, with_learned_effects
from models.train import TrainParams, train_all


@pytest.fixture(scope="session")
def simulated_snapshots():
    """``(leads, events, snapshots, catalog)`` of a 4,000-lead simulated base."""
    params = SimulateParams(leads=4000, chunk_leads=2000, workers=1, seed=7)
    chunks = list(simulate_chunks(params))
    leads = pd.concat([c.leads for c in chunks], ignore_index=True)
    events = pa.concat_tables([c.events for c in chunks])
    end = resolve_data_end(None, pd.Timestamp(pa.compute.max(events["ts"]).as_py()), latest_lead_time(leads))
    spine = snapshot_spine(leads, end, SpineParams())
    catalog = build_catalog([7, 30, 90], discover_attributes(leads))
    snapshots = build_features(leads, events, spine, catalog)
    return leads, events, snapshots, catalog


@pytest.fixture(scope="session")
def trained_scorer(simulated_snapshots):
    """A ``LeadScorer`` trained by ``train_all`` on the simulated snapshots (small, fast settings)."""
    _, _, snapshots, catalog = simulated_snapshots
    params = TrainParams(lgbm=LGBMParams(n_estimators=150, early_stopping_rounds=20,
                                         search=SearchParams(n_trials=1)))
    result = train_all(snapshots, params, horizon_days=30)
    book = ReasonBook.from_catalog(catalog, result.spec.names)
    scorer = LeadScorer(result.calibrated, book, ScorerParams(), best_f1_threshold=result.best_f1_threshold)
    train_rows = snapshots[snapshots["cutoff"] <= pd.Timestamp(result.split["train"]["end"])]
    return with_learned_effects(scorer, train_rows), result
