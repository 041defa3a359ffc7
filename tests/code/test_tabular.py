"""The user's own files: reading, mapping, missing tokens, typing, outcome parsing, tabular snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.contract import CUTOFF, LABEL, LEAD_ID, SQL_AT
from features.errors import DataContractError
from features.tabular import (
    OUTCOME,
    DataParams,
    EventMapping,
    LeadMapping,
    apply_mapping,
    infer_types,
    normalise_missing,
    outcome_labels,
    prepare_table,
    read_table,
    stratified_order,
    tabular_snapshots,
)

CRM = """Id;Created;Industry;Employees;Newsletter;Status;Country
1;2024-01-03;software;120;yes;won;PT
2;2024-01-09;retail;unknown;no;lost;ES
3;2024-02-11;Select;45;yes;lost;PT
4;2024-02-20;software;800;no;won;FR
5;2024-03-02;banking;;yes;lost;PT
6;2024-03-15;retail;33;no;lost;ES
"""


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _params(**mapping) -> DataParams:
    return DataParams(source="files", leads="x.csv", mapping=LeadMapping(**mapping))


# --- reading ---------------------------------------------------------------------------------


def test_semicolon_and_cp1252_are_detected(tmp_path):
    text = "Id;Company;Outcome\n1;Société Générale;yes\n2;Müller & Söhne;no\n"
    frame = read_table(_write(tmp_path, "crm.csv", text, encoding="cp1252"))
    assert list(frame.columns) == ["Id", "Company", "Outcome"]
    assert frame["Company"].tolist() == ["Société Générale", "Müller & Söhne"]


@pytest.mark.parametrize("sep", [",", "\t", "|"])
def test_other_separators(tmp_path, sep):
    text = sep.join(["a", "b", "c"]) + "\n" + sep.join(["1", "x,y" if sep != "," else "xy", "3"]) + "\n"
    assert read_table(_write(tmp_path, "t.csv", text)).shape == (1, 3)


def test_utf8_bom_is_dropped(tmp_path):
    frame = read_table(_write(tmp_path, "bom.csv", "\ufeffId,y\n1,yes\n"))
    assert list(frame.columns) == ["Id", "y"]


def test_values_are_read_as_text(tmp_path):
    frame = read_table(_write(tmp_path, "t.csv", "zip,y\n01234,NA\n"))
    assert frame.loc[0, "zip"] == "01234" and frame.loc[0, "y"] == "NA"


def test_empty_file_is_a_clear_error(tmp_path):
    path = _write(tmp_path, "empty.csv", "")
    with pytest.raises(DataContractError, match="empty") as err:
        read_table(path)
    assert err.value.file == str(path)


def test_header_only_is_a_clear_error(tmp_path):
    with pytest.raises(DataContractError, match="no rows"):
        read_table(_write(tmp_path, "h.csv", "a,b\n"))


def test_utf16_is_a_clear_error(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes("a,b\n1,2\n".encode("utf-16"))
    with pytest.raises(DataContractError, match="UTF-16"):
        read_table(path)


def test_glob_concatenates_files_with_the_same_columns(tmp_path):
    _write(tmp_path, "part1.csv", "a,b\n1,2\n")
    _write(tmp_path, "part2.csv", "a;b\n3;4\n")
    assert read_table(tmp_path / "part*.csv")["a"].tolist() == ["1", "3"]


def test_glob_with_different_columns_names_the_file(tmp_path):
    _write(tmp_path, "p1.csv", "a,b\n1,2\n")
    _write(tmp_path, "p2.csv", "a,c\n3,4\n")
    with pytest.raises(DataContractError, match="columns differ") as err:
        read_table(tmp_path / "p*.csv")
    assert err.value.file.endswith("p2.csv")


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(DataContractError, match="no files match"):
        read_table(tmp_path / "nothing*.csv")


def test_parquet_is_read(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1, 2], "y": ["yes", "no"]}).to_parquet(path)
    assert read_table(path)["a"].tolist() == [1, 2]


# --- mapping and missing -------------------------------------------------------------------------


def test_mapping_renames_to_the_contract():
    frame = pd.DataFrame({"Id": [1], "Status": ["won"], "x": [0]})
    out = apply_mapping(frame, LeadMapping(lead_id="Id", outcome="Status"), "crm.csv")
    assert list(out.columns) == [LEAD_ID, OUTCOME, "x"]
    assert list(frame.columns) == ["Id", "Status", "x"]  # input untouched


def test_missing_mapped_column_is_named_with_the_columns_found():
    frame = pd.DataFrame({"Id": [1], "Status": ["won"]})
    with pytest.raises(DataContractError) as err:
        apply_mapping(frame, LeadMapping(lead_id="LeadID", outcome="Status"), "crm.csv")
    msg = str(err.value)
    assert "'LeadID'" in msg and "Id, Status" in msg and "crm.csv" in msg


def test_event_mapping():
    frame = pd.DataFrame({"who": [1], "when": ["2024-01-01"], "what": ["page_view"]})
    out = apply_mapping(frame, EventMapping(lead_id="who", ts="when", event_type="what"), "ev.csv")
    assert list(out.columns) == ["lead_id", "ts", "event_type"]


def test_missing_tokens_become_missing():
    frame = pd.DataFrame({"a": ["unknown", " Select ", "", "x", "NULL", "-"], "n": [1, 2, 3, 4, 5, 6]})
    out = normalise_missing(frame, DataParams().missing_tokens)
    assert out["a"].isna().tolist() == [True, True, True, False, True, True]
    assert out["n"].tolist() == [1, 2, 3, 4, 5, 6]


def test_params_reject_unknown_keys():
    with pytest.raises(ValidationError):
        DataParams(source="files", leads="x.csv", sepparator=";")
    with pytest.raises(ValidationError):
        DataParams(source="files")  # files without a path


# --- types ---------------------------------------------------------------------------------------


def test_infer_types():
    frame = pd.DataFrame({
        "customer_id": ["10", "11", "12", "13"],
        "employees": ["120", None, "45", "800"],
        "revenue": ["1,5", "2,25", None, "3,0"],
        "newsletter": ["yes", "no", "YES", None],
        "flag01": ["0", "1", "1", "0"],
        "industry": ["software", "retail", "software", "banking"],
        "signup": ["2024-01-03", "2024-01-09", None, "2024-03-02"],
        "same": ["a", "a", "a", "a"],
    })
    out, types = infer_types(frame)
    assert types == {"customer_id": "id", "employees": "numeric", "revenue": "numeric", "newsletter": "boolean",
                     "flag01": "boolean", "industry": "categorical", "signup": "date", "same": "constant"}
    assert out["revenue"].tolist()[:2] == [1.5, 2.25]
    assert out["newsletter"].tolist()[:3] == [True, False, True]
    assert str(out["signup"].dtype) == "datetime64[us, UTC]"


def test_naive_dates_are_read_in_the_given_timezone():
    frame = pd.DataFrame({"d": ["2024-07-01 12:00", "2024-07-02 12:00"]})
    out, _ = infer_types(frame, timezone="Europe/Lisbon")
    assert out["d"].iloc[0] == pd.Timestamp("2024-07-01 11:00", tz="UTC")


def test_bad_dates_give_row_numbers_and_a_sample():
    frame = pd.DataFrame({"signup": ["2024-01-03", "2024-01-09", "2024-13-45", "2024-02-01", "soon"]})
    with pytest.raises(DataContractError) as err:
        infer_types(frame, source="crm.csv")
    msg = str(err.value)
    assert "row 3: signup='2024-13-45'" in msg and "row 5: signup='soon'" in msg and "crm.csv" in msg


def test_a_date_without_a_year_is_not_given_one():
    """"13th of March" would parse with the current year: it is an error, not a silent guess."""
    frame = pd.DataFrame({"signup": ["01/10/24", *[f"2024-01-0{d}" for d in range(1, 9)], "13th of March"]})
    with pytest.raises(DataContractError) as err:
        infer_types(frame, source="crm.csv")
    msg = str(err.value)
    assert "row 10: signup='13th of March'" in msg and "row 1:" not in msg


def test_the_date_axis_may_be_a_column_named_like_the_contract(tmp_path):
    """mapping.date pointing at a column called created_at (a contract name) is the split axis."""
    frame = pd.DataFrame({"created_at": [f"2024-0{m}-01" for m in range(1, 10)] * 4,
                          "x": np.arange(36.0), "y": ["yes", "no", "no", "no"] * 9})
    snap, report = tabular_snapshots(frame, _params(outcome="y", date="created_at"))
    assert report["split"] == "out_of_time" and "created_at" in report["split_reason"]
    assert snap[CUTOFF].min() == pd.Timestamp("2024-01-01", tz="UTC")


# --- outcome -------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, expected", [
    (["yes", "no", "Yes"], [1, 0, 1]),
    (["1", "0", "0"], [1, 0, 0]),
    (["TRUE", "false", "true"], [1, 0, 1]),
    ([1, 0, 1], [1, 0, 1]),
])
def test_outcome_vocabularies(values, expected):
    assert outcome_labels(pd.Series(values)).tolist() == expected


def test_outcome_with_positive_values():
    s = pd.Series(["won", "lost", "open", "Won"])
    assert outcome_labels(s, ["won"]).tolist() == [1, 0, 0, 1]


def test_outcome_with_more_than_two_values_lists_them():
    with pytest.raises(DataContractError) as err:
        outcome_labels(pd.Series(["won", "lost", "open"], name="Status"), source="crm.csv")
    msg = str(err.value)
    assert "3 distinct values" in msg and "'open'" in msg and "positive_values" in msg


def test_outcome_of_unknown_pair_asks_for_positive_values():
    with pytest.raises(DataContractError, match="positive_values"):
        outcome_labels(pd.Series(["won", "lost"]))


# --- tabular snapshots ---------------------------------------------------------------------------


def test_tabular_snapshots_with_a_date_split_out_of_time(tmp_path):
    frame = read_table(_write(tmp_path, "crm.csv", CRM))
    params = _params(lead_id="Id", outcome="Status", positive_values=["won"], date="Created")
    snap, report = tabular_snapshots(frame, params)
    assert report["split"] == "out_of_time" and "Created" in report["split_reason"]
    assert snap[LABEL].tolist() == [1, 0, 0, 1, 0, 0]
    assert snap[CUTOFF].iloc[0] == pd.Timestamp("2024-01-03", tz="UTC")
    assert {"Industry", "Employees", "Newsletter", "Country"} <= set(snap.columns)
    assert snap["Industry"].isna().sum() == 1  # "Select" is missing
    assert report["types"]["Employees"] == "numeric"


def test_tabular_without_date_is_a_stratified_random_split():
    frame = pd.DataFrame({"x": np.arange(100), "y": ["yes"] * 20 + ["no"] * 80})
    snap, report = tabular_snapshots(frame, _params(outcome="y"))
    assert report["split"] == "stratified_random"
    ordered = snap.sort_values(CUTOFF)[LABEL].to_numpy()
    assert ordered[:50].sum() == 10 and ordered[50:].sum() == 10  # both halves keep the 20 % rate


def test_row_order_is_time():
    frame = pd.DataFrame({"x": np.arange(40) % 7, "y": ["yes", "no", "no", "no"] * 10})
    snap, report = tabular_snapshots(frame, _params(outcome="y", row_order_is_time=True))
    assert report["split"] == "out_of_time" and report["cutoff_is_synthetic"]
    assert snap[CUTOFF].is_monotonic_increasing and snap[LEAD_ID].tolist() == list(range(1, 41))


def test_stratified_order_is_a_permutation():
    label = np.array([1, 0, 0, 0] * 25)
    order = stratified_order(label, seed=1)
    assert sorted(order) == list(range(100))


def test_duplicate_lead_ids(tmp_path):
    frame = read_table(_write(tmp_path, "d.csv", "Id,y\n1,yes\n2,no\n1,no\n"))
    with pytest.raises(DataContractError, match="duplicate lead ids") as err:
        tabular_snapshots(frame, _params(lead_id="Id", outcome="y"))
    assert "row 1" in str(err.value) and "row 3" in str(err.value)


def test_sql_at_as_outcome_and_date_features():
    frame = pd.DataFrame({
        "mql": ["2024-01-01", "2024-01-05", "2024-02-01", "2024-02-10"],
        "sql": ["2024-01-20", None, "2024-02-15", None],
        "first_visit": ["2023-12-25", "2024-01-01", "2024-01-25", "2024-02-01"],
        "size": ["10", "20", "30", "40"],
    })
    params = DataParams(source="files", leads="x", mapping=LeadMapping(mql_at="mql", sql_at="sql"),
                        audit={"enabled": False})
    prep = prepare_table(frame, params)
    assert prep.label.tolist() == [1, 0, 1, 0] and prep.outcome_time == SQL_AT and prep.time_column == "mql_at"
    snap, report = tabular_snapshots(frame, params)
    assert snap["first_visit_days_before"].tolist() == [7.0, 4.0, 7.0, 9.0]
    assert report["split"] == "out_of_time"


def test_excluded_column_must_exist():
    frame = pd.DataFrame({"x": [1, 2], "y": ["yes", "no"]})
    with pytest.raises(DataContractError, match="'nope'"):
        tabular_snapshots(frame, DataParams(source="files", leads="x", mapping={"outcome": "y"}, exclude=["nope"]))


def test_mapped_events_referencing_unknown_leads_are_reported(tmp_path):
    """Mapped events go through the contract's validation, which names leads that do not exist."""
    from features.validate import ValidateParams, validate_events_batch

    events = read_table(_write(tmp_path, "ev.csv", "who;when;what\n1;2024-01-02 10:00;page_view\n9;2024-01-03;chat\n"))
    mapped = apply_mapping(events, EventMapping(lead_id="who", ts="when", event_type="what"), "ev.csv")
    with pytest.raises(DataContractError, match="not in the leads table") as err:
        validate_events_batch(mapped, source="ev.csv", first_row=1, lead_ids=pd.Index(["1", "2"]),
                              now=pd.Timestamp("2025-01-01", tz="UTC"), params=ValidateParams())
    assert "row 2" in str(err.value)
