"""The pieces that wire the user's own files into the pipeline: the split method, the stratified
random split, scoring rows of a CRM export, and the example runner's params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.contract import CUTOFF, LABEL, LEAD_ID
from features.tabular import DataParams, LeadMapping, read_table, tabular_features, tabular_snapshots
from models.split import SplitParams, split_out_of_time, split_stratified_random
from models.train import TrainParams
from pipelines.example import example_params, merge
from pipelines.stages.train import resolve_split
from tests.files_data import CRM_DATA, crm_export, write_export

ROOT = Path(__file__).resolve().parents[2]


def _snapshots(n: int = 1000, rate: float = 0.2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        LEAD_ID: np.arange(n),
        CUTOFF: pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="D"),
        LABEL: (rng.random(n) < rate).astype(np.int8),
        "x": rng.normal(size=n),
    })


@pytest.mark.parametrize(("mapping", "expected"), [
    ({"outcome": "y"}, "stratified_random"),
    ({"outcome": "y", "row_order_is_time": True}, "out_of_time"),
    ({"outcome": "y", "date": "Created"}, "out_of_time"),
    ({"sql_at": "SQL", "mql_at": "MQL"}, "out_of_time"),
])
def test_split_method_follows_the_time_axis(mapping, expected):
    assert DataParams(source="files", leads="x.csv", mapping=LeadMapping(**mapping)).split_method == expected


def test_leads_with_events_and_simulated_data_split_out_of_time():
    assert DataParams().split_method == "out_of_time"
    assert DataParams(source="files", leads="l.csv", events="e.csv").split_method == "out_of_time"


def test_resolve_split_for_an_undated_export_and_keeps_explicit_choices():
    undated = DataParams(source="files", leads="x.csv", mapping=LeadMapping(outcome="y"))
    resolved = resolve_split(TrainParams(), undated).split
    assert (resolved.method, resolved.gap_days) == ("stratified_random", 0)
    explicit = TrainParams(split=SplitParams(method="out_of_time", gap_days=3))
    assert resolve_split(explicit, undated).split == explicit.split
    simulated = resolve_split(TrainParams(), DataParams()).split
    assert (simulated.method, simulated.gap_days) == ("out_of_time", None)


def test_stratified_random_split_keeps_the_rate_and_the_leads_apart():
    snaps = _snapshots()
    parts = split_stratified_random(snaps, SplitParams(method="stratified_random"))
    ids = [set(parts.part(p)[LEAD_ID]) for p in ("train", "calibration", "test")]
    assert sum(len(i) for i in ids) == len(snaps) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    rates = [parts.part(p)[LABEL].mean() for p in ("train", "calibration", "test")]
    assert max(rates) - min(rates) < 0.01
    assert [len(i) for i in ids] == pytest.approx([600, 200, 200], abs=2)
    # random, not by time: the test part is spread over the whole period
    assert parts.test[CUTOFF].min() < snaps[CUTOFF].quantile(0.1) and parts.summary["method"] == "stratified_random"


def test_stratified_random_split_is_seeded_and_does_not_depend_on_row_order():
    snaps = _snapshots()
    params = SplitParams(method="stratified_random", seed=3)
    a = split_out_of_time(snaps, params, horizon_days=30).test[LEAD_ID]
    b = split_out_of_time(snaps.sample(frac=1, random_state=1), params, horizon_days=30).test[LEAD_ID]
    assert sorted(a) == sorted(b)
    other = split_out_of_time(snaps, SplitParams(method="stratified_random", seed=4), horizon_days=30).test[LEAD_ID]
    assert sorted(a) != sorted(other)


def test_out_of_time_is_unchanged_by_the_new_keys():
    snaps = _snapshots()
    before = split_out_of_time(snaps, SplitParams(), horizon_days=0)
    after = split_out_of_time(snaps, SplitParams(method="out_of_time"), horizon_days=0)
    assert before.test[LEAD_ID].tolist() == after.test[LEAD_ID].tolist()
    assert before.test[CUTOFF].min() >= before.calibration[CUTOFF].max()


def test_scoring_rows_have_the_training_columns(tmp_path):
    raw = read_table(write_export(crm_export(), tmp_path / "crm.csv"))
    params = DataParams(leads="crm.csv", **CRM_DATA)
    snaps, _ = tabular_snapshots(raw, params)
    rows = tabular_features(raw, params)
    features = [c for c in snaps.columns if c not in (LEAD_ID, CUTOFF, LABEL)]
    assert set(features) <= set(rows.columns) and len(rows) == len(raw)
    pd.testing.assert_frame_equal(rows[[LEAD_ID, *features]], snaps[[LEAD_ID, *features]])
    assert rows["lead_id"].tolist() == raw["Record ID"].tolist()


def test_example_params_merge_over_the_project_and_resolve_data_paths(tmp_path):
    params = example_params(ROOT / "examples/bank-marketing")
    assert params["data"]["source"] == "files" and params["data"]["mapping"]["outcome"] == "y"
    assert Path(params["data"]["leads"]).is_absolute()
    assert Path(params["data"]["leads"]) == (ROOT / "../shared/data/bank-marketing/bank-additional-full.csv").resolve()
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["registry"] == base["registry"] and params["features"] == base["features"]
    assert merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 1}
    assert DataParams.model_validate(params["data"]).split_method == "out_of_time"
    TrainParams.model_validate(params["train"])  # the merged sections are valid



def test_max_cat_to_onehot_reaches_lightgbm_training():
    from models.lgbm import LGBMParams, booster_params

    assert booster_params(LGBMParams(max_cat_to_onehot=32))["max_cat_to_onehot"] == 32
    assert booster_params(LGBMParams())["max_cat_to_onehot"] == 4  # LightGBM's own default: unchanged
