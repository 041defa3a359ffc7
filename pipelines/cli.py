"""The `leadlift` command line: one command per pipeline stage (DVC calls these)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from features.errors import DataContractError, OutputError
from pipelines.config import ParamsError
from pipelines.console import console
from pipelines.tracking import TrackingError
from models.scorer import FeatureColumnsError

app = typer.Typer(
    name="leadlift",
    help="Calibrated, explained MQL-to-SQL conversion models from engagement logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="The params file (one section per stage).")]


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show bad input and bad parameters as a short message and exit 2, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataContractError, ParamsError, TrackingError, FeatureColumnsError, OutputError) as exc:
            console.print(f"[bold red]error[/]: {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


@app.command()
@_user_errors
def simulate(
    leads: Annotated[Path, typer.Option(help="Where to write the simulated leads table (Parquet).")],
    events: Annotated[Path, typer.Option(help="Folder for the simulated events (Parquet parts).")],
    truth: Annotated[Path, typer.Option(help="Folder for the hidden truth: personas, states, oracle.")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Simulate a realistic lead base (the embedded default data)."""
    from pipelines.stages import simulate as stage

    stage.main(params, leads, events, truth)


@app.command()
@_user_errors
def ingest(
    leads: Annotated[Path, typer.Option(help="Where to write the raw leads table (Parquet).")],
    events: Annotated[Path, typer.Option(help="Folder for the raw events (Parquet parts).")],
    truth: Annotated[Path, typer.Option(help="Folder for the simulator's hidden truth (empty for your files).")],
    report: Annotated[Path, typer.Option(help="What was read, and the leakage audit of the leads (JSON).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The raw input: the simulated lead base, or your own files (params: data)."""
    from pipelines.stages import ingest as stage

    stage.main(params, leads, events, truth, report)


@app.command()
@_user_errors
def profile(
    leads: Annotated[Path, typer.Option(help="Validated leads or CRM export (Parquet).")],
    out: Annotated[Path, typer.Option(help="Where to write the data profile page (HTML).")],
    json_out: Annotated[Path, typer.Option("--json", help="Where to write the profile's figures (JSON).")],
    ingest_report: Annotated[Path | None, typer.Option(help="The ingest stage's report (leakage audit of leads).")] = None,
    features_report: Annotated[Path | None, typer.Option(help="The features stage's report (audit of a CRM export).")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Profile the data: columns, outcome by value and over time, censoring and leakage warnings."""
    from pipelines.stages import profile as stage

    stage.main(params, leads, ingest_report, features_report, out, json_out)


@app.command()
@_user_errors
def validate(
    leads: Annotated[Path, typer.Option(help="Leads table to check (CSV or Parquet).")],
    events: Annotated[Path, typer.Option(help="Events: a file, a folder of Parquet parts, or a glob.")],
    leads_out: Annotated[Path, typer.Option(help="Where to write the checked leads (Parquet).")],
    events_out: Annotated[Path, typer.Option(help="Folder for the checked events (Parquet parts).")],
    report: Annotated[Path, typer.Option(help="Validation report (JSON).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Check leads and events against the engagement-log contract."""
    from pipelines.stages import validate as stage

    stage.main(params, leads, events, leads_out, events_out, report)


@app.command()
@_user_errors
def features(
    leads: Annotated[Path, typer.Option(help="Validated leads (Parquet).")],
    events: Annotated[Path, typer.Option(help="Folder of validated events (Parquet parts).")],
    out: Annotated[Path, typer.Option(help="Where to write the snapshots (Parquet).")],
    report: Annotated[Path, typer.Option(help="Snapshot report (JSON).")],
    catalog: Annotated[Path, typer.Option(help="Feature catalog documentation (Markdown).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Build point-in-time training snapshots with the feature catalog."""
    from pipelines.stages import features as stage

    stage.main(params, leads, events, out, report, catalog)


@app.command()
@_user_errors
def train(
    snapshots: Annotated[Path, typer.Option(help="Training snapshots (Parquet) from the features stage.")],
    leads: Annotated[Path, typer.Option(help="Validated leads (Parquet): their columns define the catalog.")],
    metrics: Annotated[Path, typer.Option(help="Where to write the metrics (JSON, a DVC metrics file).")],
    plots: Annotated[Path, typer.Option(help="Folder for the curve tables (CSV, DVC plots).")],
    run: Annotated[Path, typer.Option(help="Where to write the MLflow run, model version and promotion (JSON).")],
    oracle: Annotated[
        Path | None, typer.Option(help="The simulator's true probabilities, to report the oracle (optional).")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="The data profile page to log with the run (optional).")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Train, calibrate and evaluate the models; track in MLflow; register and maybe promote."""
    from pipelines.stages import train as stage

    stage.main(params, snapshots, leads, oracle, metrics, plots, run, profile_in=profile)


@app.command()
@_user_errors
def export(
    run: Annotated[Path, typer.Option(help="The train stage's run file (reports/train_run.json).")],
    out: Annotated[Path, typer.Option(help="Folder for the exported MLflow pyfunc scorer.")],
    report: Annotated[Path, typer.Option(help="What was exported (JSON).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Export the champion (or this run's model) as a local MLflow pyfunc scorer folder."""
    from pipelines.stages import export as stage

    stage.main(params, run, out, report)


@app.command()
@_user_errors
def score(
    scorer: Annotated[str, typer.Option(help="Exported scorer folder, runs:/… or models:/lead-propensity@champion.")],
    leads: Annotated[Path, typer.Option(help="Validated leads (Parquet).")],
    events: Annotated[Path, typer.Option(help="Folder of validated events (Parquet parts).")],
    out: Annotated[Path, typer.Option(help="Where to write the scores (Parquet).")],
    csv: Annotated[Path | None, typer.Option(help="Also write the scores as CSV here.")] = None,
    as_of: Annotated[str, typer.Option(help="Score as of: now (UTC), data-end, or an ISO time.")] = "now",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Score every open MQL as of a time: probability, flag, tier and reasons per lead."""
    from pipelines.stages import score as stage

    stage.main(params, scorer, leads, events, out, csv, as_of)


@app.command()
@_user_errors
def report(
    scorer: Annotated[str, typer.Option(help="Exported scorer folder, runs:/… or models:/lead-propensity@champion.")],
    snapshots: Annotated[Path, typer.Option(help="Training snapshots (Parquet): the out-of-time test part is taken from them.")],
    run: Annotated[Path, typer.Option(help="The train stage's run file (reports/train_run.json).")],
    out: Annotated[Path, typer.Option(help="Where to write the report (HTML, self-contained).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Write the RevOps report (drivers, segments, tiers vs outcomes, example leads) and log it to MLflow."""
    from pipelines.stages import report as stage

    stage.main(params, scorer, snapshots, run, out)


if __name__ == "__main__":
    app()
