"""MLflow for the pipeline: where runs go, clear errors when that place is unusable, provenance.

Embedded by default: a SQLite backend file ``mlflow.db`` in the project root and artifacts in
``mlruns/`` beside it, so nothing has to be started. A team with a tracking server sets
``MLFLOW_TRACKING_URI``; the server is asked for ``/health`` first, so a server that does not answer
stops the stage with one readable line instead of a wall of retries and tracebacks.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
_METRIC_KEY_BAD = re.compile(r"[^\w\-. /]")


class TrackingError(RuntimeError):
    """The MLflow backend cannot be used (not writable, not answering, refused an operation)."""


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the embedded SQLite file in ``root``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return env or f"sqlite:///{(Path(root) / DB_FILE).resolve()}"


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Raise ``TrackingError`` unless runs can be written to ``uri`` (SQLite/file: a writable place;
    HTTP: a server answering ``/health`` within ``timeout_s``)."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        _check_writable(path.parent, what=f"the MLflow backend {uri}")
        if path.exists() and not os.access(path, os.W_OK):
            raise TrackingError(f"the MLflow backend {uri} is not writable: {path}")
    elif uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (user's own URI)
                status = response.status
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"the MLflow server at {uri} does not answer ({reason}). Start it, fix MLFLOW_TRACKING_URI, "
                "or unset MLFLOW_TRACKING_URI to use the embedded SQLite backend (mlflow.db)."
            ) from None
        if status != 200:
            raise TrackingError(f"the MLflow server at {uri} answered /health with HTTP {status}")
    elif uri.startswith("file:") or "://" not in uri:
        path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
        _check_writable(path if path.exists() else path.parent, what=f"the MLflow store {uri}")


def _check_writable(folder: Path, *, what: str) -> None:
    """Try to create a file in ``folder``: permission bits alone lie (root, read-only mounts)."""
    if not folder.is_dir():
        raise TrackingError(f"{what} is not usable: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".leadlift-write-test-"):
            pass
    except OSError as exc:
        raise TrackingError(f"{what} is not writable: cannot create a file in {folder} ({exc.strerror})") from None


def artifact_location(root: Path, uri: str) -> str | None:
    """Where a new experiment keeps artifacts: ``mlruns/`` in the project for the embedded backend,
    the server's default otherwise."""
    if uri.startswith("sqlite:///") or "://" not in uri or uri.startswith("file:"):
        return (Path(root) / ARTIFACTS_DIR).resolve().as_uri()
    return None


def flat_metrics(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested metrics dict as ``a.b.c`` keys MLflow accepts (bools and None skipped)."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = _METRIC_KEY_BAD.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, prefix=f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out[name] = float(value)
    return out


def flat_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every leaf of a nested params dict as ``a.b.c`` -> text (lists kept whole)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_params(value, prefix=f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def git_commit(root: Path) -> dict[str, str]:
    """The git commit of ``root`` and whether the work tree had changes (empty outside git)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"git_commit": sha, "git_dirty": str(bool(dirty)).lower()}


def dvc_hashes(root: Path, paths: list[Path]) -> dict[str, str]:
    """DVC's md5 of each input: from ``dvc.lock`` when it lists the path (folders included), else the
    file's own md5 (what DVC 3 records for a file)."""
    locked: dict[str, str] = {}
    lock = Path(root) / "dvc.lock"
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for entry in [*stage.get("outs", []), *stage.get("deps", [])]:
                if "md5" in entry:
                    locked[entry["path"]] = entry["md5"]
    out = {}
    for path in paths:
        rel = _relative(Path(path), Path(root))
        if rel in locked:
            out[rel] = locked[rel]
        elif Path(path).is_file():
            out[rel] = _md5(Path(path))
    return out


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 (DVC's content hash, not security)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def mlflow_errors(uri: str) -> Iterator[None]:
    """Turn MLflow's own failures (locked or corrupt database, refused request) into ``TrackingError``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"MLflow ({uri}) refused: {first}") from None
