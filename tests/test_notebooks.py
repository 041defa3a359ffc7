"""The notebooks cannot rot: both run top to bottom, in a kernel on this venv's Python, against a
tiny project trained like the train stage tests do (two runs, a real embedded MLflow), and what
they print and draw is checked."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from mlflow import MlflowClient
from nbclient import NotebookClient
from traitlets import default

from tests.model.test_train_stage import _project, _run  # the same tiny project as the train stage tests

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("revops_review", "model_review")


class VenvKernel(AsyncKernelManager):
    """ipykernel's own ``python3`` kernel on the Python running the tests: a kernelspec installed
    elsewhere on the machine (user or system) cannot send the notebooks to another interpreter."""

    @default("kernel_spec_manager")
    def _only_the_native_kernel(self) -> KernelSpecManager:
        return KernelSpecManager(kernel_dirs=[])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        try:
            _project(root)
            _run(root)
            _run(root)  # two runs: two parent runs to compare, versions 1 and 2
        finally:
            mlflow.set_tracking_uri(None)
    (root / "data").mkdir()
    # where the features stage writes them
    shutil.copy(root / "snapshots.parquet", root / "data" / "snapshots.parquet")
    return root


def _execute(name: str, root: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "LEADLIFT_SNAPSHOTS"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{(root / 'mlflow.db').resolve()}"
    client = NotebookClient(
        nb, kernel_name="python3", kernel_manager_class=VenvKernel, timeout=300,
        resources={"metadata": {"path": str(root)}},  # the kernel's working directory
    )
    client.execute(env=env)  # raises CellExecutionError, with the cell and traceback, on the first error
    return nb


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def _stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(o["text"] for o in _outputs(nb) if o["output_type"] == "stream" and o["name"] == "stdout")


def _rich(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o["data"][mime] for o in _outputs(nb) if mime in o.get("data", {})]


@pytest.fixture(scope="module")
def executed(project) -> dict[str, nbformat.NotebookNode]:
    return {name: _execute(name, project) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"
    assert nb.metadata.kernelspec.name == "python3"


def test_the_kernel_is_this_python():
    assert VenvKernel(kernel_name="python3").kernel_spec.argv[0] == sys.executable


def test_revops_review(executed, project):
    nb = executed["revops_review"]
    assert not [o for o in _outputs(nb) if o["output_type"] == "error"]
    text = _stdout(nb)
    run = json.loads((project / "reports/train_run.json").read_text())
    assert f"Champion: lead-propensity version {run['model_version']}" in text

    # The lead looked up: probability, a tier that agrees with the tier cut-offs, sentences.
    lead = re.search(r"(\d+)% chance of becoming sales-qualified within 30 days - tier (HOT|WARM|COLD)", text)
    assert lead, text
    percent, tier = int(lead.group(1)), lead.group(2)
    assert tier == ("HOT" if percent >= 30 else "WARM" if percent >= 10 else "COLD")
    reasons = re.findall(r"^  Reason: (.+)\.$", text, flags=re.M)
    assert reasons, "at least one reason sentence"
    assert re.search(r"^  Risk: .+\.$", text, flags=re.M)
    assert not any(re.search(r"\w+_\w+", r) for r in reasons), f"plain words, not feature names: {reasons}"

    # The tier table: every tier, counts adding up to the recent snapshots scored.
    tier_rows = re.findall(r"^(hot|warm|cold)\s+(\d+)\s+[\d.]+%$", text, flags=re.M)
    rows = {tier: int(n) for tier, n in tier_rows}
    assert set(rows) == {"hot", "warm", "cold"}, text
    scored = re.search(r"^([\d,]+) snapshots of [\d,]+ leads", text, flags=re.M)
    scored = int(scored.group(1).replace(",", ""))
    assert sum(rows.values()) == scored > 0

    assert _rich(nb, "image/png"), "the global drivers chart"
    by_source = "".join(_rich(nb, "text/html"))
    for source in ("organic", "paid_search", "referral", "event", "cold_email", "social_outreach"):
        assert source in by_source, f"drivers by lead source: {source} missing"


def test_model_review(executed, project):
    nb = executed["model_review"]
    assert not [o for o in _outputs(nb) if o["output_type"] == "error"]
    text = _stdout(nb)
    runs = re.search(r"^(\d+) training runs \((\d+) search trials hidden\)$", text, flags=re.M)
    assert runs and runs.groups() == ("2", "4"), text  # two train runs of two search trials each

    html = "".join(_rich(nb, "text/html"))
    for model in ("lightgbm", "logreg", "points"):
        assert model in html
    for metric in ("roc_auc", "pr_auc", "brier", "ece"):
        assert metric in html
    uri = f"sqlite:///{(project / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'lead-propensity'")
    assert len(versions) == 2 and all(v.run_id in html for v in versions), "each registered version listed"
    assert "challenger, champion" in html, "the aliases of the latest version"

    assert len(_rich(nb, "image/png")) >= 2, "reliability and cumulative gains figures"
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert f"Calibration method: {metrics['calibration']['method']}. Reason: " in text
