import numpy as np
import pandas as pd
import pytest

from features.errors import DataContractError
from models.guards import (
    DroppedFeatureWarning,
    NoisyMetricsWarning,
    check_class_counts,
    check_no_outcome_columns,
    check_snapshot_frame,
    drop_null_features,
    drop_timestamp_features,
    feature_columns,
)


def _snapshots(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": np.arange(n),
            "cutoff": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", unit="us"),
            "label": np.array([0, 1] * (n // 2), dtype="int8"),
            "x": np.arange(n, dtype=float),
        }
    )


def test_too_few_positives_stops_with_found_and_needed_counts():
    y = np.r_[np.ones(12), np.zeros(500)]
    with pytest.raises(DataContractError) as err:
        check_class_counts(y, part="the train part", minimum=40, warn_below=200)
    msg = str(err.value)
    assert "the train part has 12 positive (label=1) rows" in msg and "at least 40" in msg


def test_too_few_negatives_also_stops():
    with pytest.raises(DataContractError, match="has 3 negative"):
        check_class_counts(
            np.r_[np.ones(100), np.zeros(3)], part="the train part", minimum=40, warn_below=200
        )


def test_one_class_only_stops():
    with pytest.raises(DataContractError, match="has 0 positive"):
        check_class_counts(np.zeros(1000), part="the snapshots", minimum=40, warn_below=200)


def test_few_rows_of_a_class_warn_that_metrics_are_noisy():
    with pytest.warns(NoisyMetricsWarning, match="only 150 positive rows .under 200"):
        notes = check_class_counts(
            np.r_[np.ones(150), np.zeros(5000)], part="the test part", minimum=40, warn_below=200
        )
    assert len(notes) == 1


def test_enough_rows_pass_silently(recwarn):
    assert check_class_counts(np.r_[np.ones(300), np.zeros(300)], part="x", minimum=40, warn_below=200) == []
    assert not recwarn.list


def test_entirely_null_feature_is_dropped_with_a_warning_naming_it():
    frame = _snapshots().assign(empty=np.nan, empty_str=pd.array([None] * 10, dtype="str"))
    with pytest.warns(DroppedFeatureWarning) as caught:
        kept, dropped, notes = drop_null_features(frame, feature_columns(frame))
    assert kept == ["x"] and dropped == ["empty", "empty_str"]
    assert [str(w.message) for w in caught] == notes
    assert "'empty'" in notes[0] and "'empty_str'" in notes[1]


def test_no_usable_feature_is_an_error():
    frame = _snapshots()[["lead_id", "cutoff", "label"]].assign(empty=np.nan)
    with pytest.raises(DataContractError, match="no usable feature"), pytest.warns(DroppedFeatureWarning):
        drop_null_features(frame, ["empty"])


def test_feature_columns_skip_key_and_excluded():
    frame = _snapshots().assign(audit=1)
    assert feature_columns(frame, exclude=["audit"]) == ["x"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f.drop(columns="label"), "missing column"),
        (lambda f: f.assign(cutoff=f["cutoff"].dt.tz_localize(None)), "cutoff has dtype"),
        (lambda f: f.assign(label=np.arange(10)), "label values other than 0/1"),
        (lambda f: pd.concat([f, f.head(1)]), "duplicate"),
    ],
)
def test_bad_snapshot_frames_are_explained(change, match):
    with pytest.raises(DataContractError, match=match):
        check_snapshot_frame(change(_snapshots()))


def test_good_snapshot_frame_passes():
    check_snapshot_frame(_snapshots())


@pytest.mark.parametrize("column", ["sql_at", "true_probability"])
def test_outcome_columns_are_refused_as_features(column):
    with pytest.raises(DataContractError, match=f"{column} describe the outcome"):
        check_no_outcome_columns(["x", column])


def test_timestamp_features_are_dropped_with_a_warning():
    frame = _snapshots().assign(last_seen_at=pd.Timestamp("2024-01-01", tz="UTC"))
    with pytest.warns(DroppedFeatureWarning, match="'last_seen_at' holds timestamps"):
        kept, dropped, notes = drop_timestamp_features(frame, ["x", "last_seen_at"])
    assert kept == ["x"] and dropped == ["last_seen_at"] and len(notes) == 1
