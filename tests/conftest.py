"""Shared test helpers: a throw-away copy of the project for end-to-end runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "data", "reports", "mlruns", "mlflow.db", "artifacts", "__pycache__",
    ".pytest_cache", ".hypothesis", "*.egg-info", "benchmarks", "dvc.lock", "tmp", "cache",
)


def tool_env() -> dict[str, str]:
    """The environment with this interpreter's scripts (leadlift, dvc) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)  # end-to-end runs use the copy's own embedded backend
    return env


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=900)


@pytest.fixture
def project_copy(tmp_path: Path):
    """A git+DVC initialised copy of the project's code and configuration, with tiny params."""

    def make(**overrides: dict) -> Path:
        dest = tmp_path / "project"
        shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
        params = yaml.safe_load((dest / "params.yaml").read_text())
        for section, values in overrides.items():
            params.setdefault(section, {}).update(values)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"]):
            subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
        return dest

    return make
