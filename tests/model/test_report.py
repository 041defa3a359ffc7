"""The RevOps report stage on a tiny trained project: a self-contained page with every section, a tier
table whose observed rates are the test rows' own, sentences without raw feature names, and the page
logged to the MLflow run that trained the model."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.report import ReportParams, pick_examples, tier_table
from models.scorer import TierParams
from models.split import SplitParams, split_out_of_time
from pipelines.stages import export as export_stage
from pipelines.stages import report as stage
from pipelines.stages.score import load_scorer
from tests.model.test_train_stage import _project, _run

SECTIONS = (
    "Do the tiers hold up?", "What moves a lead's score the most", "Which way each signal pushes",
    "How the strongest signals work", "Drivers by lead source", "Drivers by company size",
    "Example leads and their reasons", "How this is worked out",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        try:
            _project(root)
            run = _run(root)
            export_stage.main(root / "params.yaml", root / "reports/train_run.json", root / "artifacts/scorer",
                              root / "reports/export.json")
            stage.main(root / "params.yaml", str(root / "artifacts/scorer"), root / "snapshots.parquet",
                       root / "reports/train_run.json", root / "reports/explanations.html")
        finally:
            mlflow.set_tracking_uri(None)
    return root, run


def _text(page: str) -> str:
    """What a reader sees: the page without tags, styles and embedded images."""
    body = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    body = re.sub(r"<img[^>]*>", " ", body)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_the_page_is_self_contained_and_has_every_section(project):
    root, _ = project
    page = (root / "reports/explanations.html").read_text()
    assert not list((root / "reports").glob(".explanations.html.tmp-*")), "no temporary file left behind"
    for title in SECTIONS:
        assert f"<h2>{html.escape(title)}</h2>" in page, title
    sources = re.findall(r"""src=['"]([^'"]+)""", page)
    assert len(sources) >= 2 + 4, "bar, beeswarm and four dependence charts at least"
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for external in ("<script", "<link", "href=", "url(", "http://", "https://"):
        assert external not in page, f"external reference {external!r}"
    assert page.count("class='lead'") == 10, "ten example leads"


def test_the_tier_table_matches_a_hand_count_on_the_test_rows(project):
    root, _ = project
    page = (root / "reports/explanations.html").read_text()
    snapshots = pd.read_parquet(root / "snapshots.parquet")
    test = split_out_of_time(snapshots, SplitParams(), horizon_days=30).test
    scorer = load_scorer(str(root / "artifacts/scorer"))
    p = scorer.predict_proba(test)[:, 1]
    y = test["label"].to_numpy()
    hot, warm = scorer.params.tiers.hot, scorer.params.tiers.warm
    table = re.search(r"<table class='tiers'>(.*?)</table>", page, flags=re.S).group(1)
    found = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S)[1:]:
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)]
        found[cells[0].lower()] = cells
    for tier, mask in {"hot": p >= hot, "warm": (p >= warm) & (p < hot), "cold": p < warm,
                       "all": np.ones(len(p), bool)}.items():
        n, converted = int(mask.sum()), int(y[mask].sum())
        cells = found[tier]
        assert cells[2] == f"{n:,}", tier
        assert cells[6] == f"{converted:,}", tier
        assert cells[7] == (f"{converted / n:.1%}" if n else "–"), tier
        assert cells[4] == (f"{p[mask].mean():.1%}" if n else "–"), tier
    assert found["all"][2] == f"{len(test):,}", "every test row, none dropped"


def test_no_raw_feature_names_in_what_the_reader_sees(project):
    root, _ = project
    text = _text((root / "reports/explanations.html").read_text())
    scorer = load_scorer(str(root / "artifacts/scorer"))
    assert text.count("▲") >= 10, "the example leads' reasons are in the page"
    for name in scorer.features:
        if "_" in name:
            assert name not in text, name
    assert not re.search(r"\b[a-z]+_[a-z0-9_]+\b", text), re.search(r"\b[a-z]+_[a-z0-9_]+\b", text)


def test_the_page_is_logged_to_the_run_that_trained_the_model(project):
    root, run = project
    client = MlflowClient(tracking_uri=run["tracking_uri"])
    logged = {a.path for a in client.list_artifacts(run["run_id"], "reports")}
    assert "reports/explanations.html" in logged
    local = mlflow.artifacts.download_artifacts(
        run_id=run["run_id"], artifact_path="reports/explanations.html", tracking_uri=run["tracking_uri"],
        dst_path=str(root / "downloaded"),
    )
    assert Path(local).read_bytes() == (root / "reports/explanations.html").read_bytes()
    assert json.loads((root / "reports/export.json").read_text())["run_id"] == run["run_id"]


def test_tier_table_counts_by_hand():
    p = np.array([0.05, 0.08, 0.12, 0.2, 0.31, 0.5, 0.9])
    y = np.array([0, 0, 1, 0, 1, 0, 1])
    t = tier_table(p, y, TierParams(hot=0.3, warm=0.1))
    assert t.loc["hot", ["rows", "converted"]].tolist() == [3, 2]
    assert t.loc["hot", "observed_rate"] == pytest.approx(2 / 3)
    assert t.loc["warm", "mean_predicted"] == pytest.approx(0.16)
    assert t.loc["cold", "observed_rate"] == 0
    assert t.loc["all", "expected"] == pytest.approx(p.sum())


def test_examples_are_distinct_leads_spread_over_the_tiers():
    scores = pd.DataFrame({"probability": [0.9, 0.8, 0.5, 0.2, 0.15, 0.12, 0.05, 0.04, 0.9],
                           "tier": ["hot"] * 3 + ["warm"] * 3 + ["cold"] * 2 + ["hot"]})
    frame = pd.DataFrame({"lead_id": [1, 2, 3, 4, 5, 6, 7, 8, 1],
                          "cutoff": pd.to_datetime(["2025-01-01"] * 8 + ["2025-02-01"], utc=True)})
    chosen = pick_examples(scores, frame, 6)
    assert len(chosen) == 6 and frame.loc[chosen, "lead_id"].is_unique
    assert scores.loc[chosen, "tier"].value_counts().to_dict() == {"hot": 2, "warm": 2, "cold": 2}
    assert 0 not in chosen, "a lead's latest snapshot stands for it"
    assert len(pick_examples(scores, frame, 0)) == 0


def test_report_params_reject_unknown_keys():
    with pytest.raises(ValueError):
        ReportParams.model_validate({"top_signals": 5, "colour": "blue"})


def test_snapshots_too_short_for_a_test_part_stop_with_a_clear_error(project, tmp_path):
    from features.errors import DataContractError

    root, _ = project
    snapshots = pd.read_parquet(root / "snapshots.parquet")
    one_day = snapshots[snapshots["cutoff"] == snapshots["cutoff"].min()]
    one_day.to_parquet(tmp_path / "short.parquet", index=False)
    with pytest.raises(DataContractError, match="no out-of-time test part"):
        stage.main(root / "params.yaml", str(root / "artifacts/scorer"), tmp_path / "short.parquet",
                   root / "reports/train_run.json", tmp_path / "explanations.html")
    assert not (tmp_path / "explanations.html").exists(), "nothing written"
