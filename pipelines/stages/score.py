"""Stage `score`: every open MQL of the lead base scored as of a time, with reasons, for a CRM import.

Features come from the same catalog and DuckDB builder as training, with one snapshot per open lead
at the scoring time (``scoring_spine``); the scorer is loaded from an exported folder, a run URI or
``models:/lead-propensity@champion``. Output columns: ``lead_id, probability, flag, tier, reason_1..3,
risk_1, model_name, model_version, scored_at``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.builder import FeaturesParams, build_snapshots
from features.catalog import build_catalog, discover_attributes
from features.contract import CUTOFF, LEAD_ID
from features.errors import DataContractError, OutputError
from features.io import atomic_path
from features.snapshots import scoring_spine
from features.tabular import DataParams, tabular_features
from features.timeline import latest_event_time, latest_lead_time, resolve_data_end
from features.validate import ValidateParams, validate_leads
from models.scorer import LeadScorer, flags
from pipelines.config import load_section
from pipelines.console import console, progress
from pipelines.stages.export import EXPORT_INFO

SCORE_COLUMNS: tuple[str, ...] = (
    "lead_id", "probability", "flag", "tier", "reason_1", "reason_2", "reason_3", "risk_1",
    "model_name", "model_version", "scored_at",
)
BATCH_ROWS = 100_000


def load_scorer(location: str) -> LeadScorer:
    """A ``LeadScorer`` from an exported folder, a run URI or a registry URI (the model version is read
    from the export note or the registry)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pyfunc.load_model(location)
        scorer: LeadScorer = model.unwrap_python_model().scorer
    except (MlflowException, OSError, AttributeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataContractError(
            location, f"no leadlift scorer can be loaded from here ({first})",
            expected="an exported scorer folder (artifacts/scorer), a runs:/…/model URI or models:/lead-propensity@champion",
        ) from None
    note = Path(location) / EXPORT_INFO
    if note.exists():
        scorer.model_version = json.loads(note.read_text())["model_version"]
    elif location.startswith("models:/"):
        scorer.model_version = str(model.metadata.get_model_info().registered_model_version or "")
    return scorer


def resolve_as_of(text: str, leads: pd.DataFrame, events_glob: str) -> pd.Timestamp:
    """``now`` (UTC), ``data-end`` (the latest timestamp in the data) or an ISO time (naive = UTC)."""
    if text == "now":
        return pd.Timestamp.now(tz="UTC")
    if text == "data-end":
        return resolve_data_end(None, latest_event_time(events_glob), latest_lead_time(leads))
    try:
        return resolve_data_end(text)
    except ValueError:
        raise DataContractError("--as-of", f"'{text}' is not a time", expected="now, data-end or an ISO time") from None


def main(
    params_path: Path, scorer_location: str, leads_in: Path, events_in: Path, out: Path,
    csv_out: Path | None, as_of_text: str,
) -> None:
    features = load_section(params_path, "features", FeaturesParams)
    data = load_section(params_path, "data", DataParams)
    scorer = load_scorer(scorer_location)
    leads = pd.read_parquet(leads_in)
    events_glob = str(Path(events_in) / "*.parquet")
    tabular = data.files_tabular
    if tabular:  # a CRM export: every row is scored from its own columns (no behaviour to rebuild)
        as_of = pd.Timestamp.now(tz="UTC") if as_of_text in ("now", "data-end") else resolve_as_of(as_of_text, leads, events_glob)
        rows = tabular_features(leads, data, as_of, source=str(data.leads))
        spine = rows[[LEAD_ID, CUTOFF]]
    else:
        if len(leads):  # a leads file given by hand gets the validate stage's checks (an empty base scores empty)
            checks = load_section(params_path, "validate", ValidateParams)
            leads, _ = validate_leads(leads, source=str(leads_in), now=pd.Timestamp.now(tz="UTC"), params=checks)
        as_of = resolve_as_of(as_of_text, leads, events_glob)
        catalog = build_catalog(features.windows, discover_attributes(leads))
        scorer.check_catalog(catalog.version)
        spine = scoring_spine(leads, as_of)
    _check_writable(out, csv_out)

    with tempfile.TemporaryDirectory(dir=Path(out).parent, prefix=".score-") as tmp:
        snap_path = Path(tmp) / "features.parquet"
        if tabular and len(spine):
            rows[[LEAD_ID, CUTOFF, *[c for c in scorer.features if c in rows.columns]]].to_parquet(snap_path, index=False)
            parts = _score_batches(scorer, snap_path, len(spine))
            scored = pd.concat(parts, ignore_index=True)
        elif len(spine):
            build_snapshots(leads, events_glob, spine, catalog, str(snap_path), threads=features.threads,
                            memory_limit=features.memory_limit, temp_dir=str(Path(tmp) / "duckdb"))
            parts = _score_batches(scorer, snap_path, len(spine))
            scored = pd.concat(parts, ignore_index=True)
        else:
            scored = scorer.score(pd.DataFrame(columns=[LEAD_ID, CUTOFF, *scorer.features]), check=False)
            scored.insert(0, LEAD_ID, pd.Series([], dtype=leads[LEAD_ID].dtype))
    # a capacity policy picks the top K of the whole run, not of each batch
    scored["flag"] = flags(scored["probability"].to_numpy(), scorer.params.flag, scorer.best_f1_threshold)
    scored["model_name"] = scorer.model_name
    scored["model_version"] = scorer.model_version or "unregistered"
    scored["scored_at"] = pd.Series(as_of, index=scored.index, dtype="datetime64[us, UTC]")
    result = scored[list(SCORE_COLUMNS)]
    _write(result, out, csv_out)
    _summary(result, as_of, out)


def _score_batches(scorer: LeadScorer, path: Path, total: int) -> list[pd.DataFrame]:
    parquet = pq.ParquetFile(path)
    parts = []
    with progress() as bar:
        task = bar.add_task("scoring leads", total=total)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            frame = batch.to_pandas()
            scored = scorer.score(frame)
            scored.insert(0, LEAD_ID, frame[LEAD_ID].to_numpy())
            parts.append(scored)
            bar.advance(task, len(frame))
    return parts


def _check_writable(*paths: Path | None) -> None:
    for path in paths:
        if path is None:
            continue
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=Path(path).parent, prefix=".leadlift-write-test-"):
                pass
        except OSError as exc:
            raise OutputError(f"{path}: cannot write the scores here ({exc.strerror or exc})") from None


def _write(result: pd.DataFrame, out: Path, csv_out: Path | None) -> None:
    with atomic_path(out) as tmp:
        result.to_parquet(tmp, index=False)
    if csv_out is not None:
        with atomic_path(csv_out) as tmp:
            result.assign(scored_at=result["scored_at"].map(lambda t: t.isoformat())).to_csv(tmp, index=False)


def _summary(result: pd.DataFrame, as_of: pd.Timestamp, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"lead base scored as of {as_of:%Y-%m-%d %H:%M} UTC")
    for col in ("tier", "leads", "expected conversions", "flagged"):
        table.add_column(col, justify="left" if col == "tier" else "right")
    for tier in ("hot", "warm", "cold"):
        part = result[result["tier"] == tier]
        table.add_row(tier, f"{len(part):,}", f"{part['probability'].sum():,.1f}", f"{int(part['flag'].sum()):,}")
    table.add_row("all", f"{len(result):,}", f"{result['probability'].sum():,.1f}", f"{int(result['flag'].sum()):,}")
    console.print(table)
    console.print(f"scores -> {out}", highlight=False)
