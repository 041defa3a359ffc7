"""`make run`: initialise DVC if needed, reproduce the pipeline, and say where the results are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from pipelines.console import console

OUTPUTS = {
    "data/raw/": "the raw input: simulated engagement logs, or your files read and mapped (leads.parquet, events/)",
    "data/truth/": "the simulator's hidden truth: personas, states, oracle probabilities",
    "data/validated/": "contract-checked leads and events",
    "data/snapshots.parquet": "point-in-time training snapshots (lead_id, cutoff, label, features)",
    "reports/ingest.json": "what was read (source, rows, leakage audit of your leads)",
    "reports/validation.json": "validation report",
    "reports/data_profile.html": "data profile: columns, outcome by value and by month, censoring and leakage warnings",
    "reports/features.json": "snapshot counts, positives, censoring, build time",
    "reports/feature_catalog.md": "every feature with its window and reason text",
    "reports/metrics.json": "out-of-time test metrics of lightgbm, logreg, points and the oracle (dvc metrics show)",
    "reports/plots/": "ROC, precision-recall, reliability and gains curves (dvc plots show)",
    "reports/train_run.json": "the MLflow run, registered model version and the champion decision",
    "mlflow.db": "MLflow runs and registry: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db",
    "artifacts/scorer/": "the exported scorer (MLflow pyfunc): probability, flag, tier, reasons",
    "data/scores/": "every open MQL scored with its reasons (scores.parquet, scores.csv)",
    "reports/explanations.html": "the RevOps report: drivers, segments, tiers vs outcomes, example leads (also in MLflow)",
}


def _dvc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], check=True)


def main() -> int:
    root = Path.cwd()
    if not (root / ".dvc").is_dir():
        scm = [] if (root / ".git").exists() else ["--no-scm"]
        _dvc("init", "--quiet", *scm)
        _dvc("config", "core.analytics", "false")
    try:
        _dvc("repro")
    except subprocess.CalledProcessError as exc:
        console.print(f"[bold red]the pipeline stopped[/] (dvc repro exited {exc.returncode}); see the message above")
        return exc.returncode
    table = Table(title="leadlift: where the results are", show_lines=False)
    table.add_column("path")
    table.add_column("what")
    for path, what in OUTPUTS.items():
        if (root / path).exists():
            table.add_row(path, what)
    console.print(table)
    features = root / "reports/features.json"
    if features.exists():
        rep = json.loads(features.read_text())
        console.print(
            f"snapshots: {rep['snapshots']:,} rows, {rep['positives']:,} positive "
            f"({rep['positive_rate']:.1%}), {rep.get('censored_snapshots', 0):,} censored; "
            + (f"data end {rep['data_end']}" if rep.get("data_end") else f"split {rep.get('split')}")
        )
    metrics = root / "reports/metrics.json"
    if metrics.exists():
        test = json.loads(metrics.read_text())["test"]
        console.print(
            "out-of-time test ROC AUC: "
            + ", ".join(f"{name} {m['roc_auc']:.3f}" for name, m in test.items() if m.get("roc_auc") is not None)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
