"""`make example-bank`: run the whole pipeline on an example's own data, in its own workspace.

An example folder (``examples/<name>/``) holds a ``params.yaml`` with only the sections it changes.
This merges them over the project's ``params.yaml``, resolves ``data.leads``/``data.events``
(written relative to the repository root) to absolute paths, and runs ``dvc repro`` in
``build/examples/<name>/`` (git-ignored) with a copy of the pipeline definition and its code, so
the example's data, MLflow runs and registry never mix with the project's own. The data files are
read in place, never copied.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pipelines.console import console
from pipelines.run import main as run_main

ROOT = Path(__file__).resolve().parents[1]
CODE = ("features", "models", "pipelines")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s keys replaced recursively (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def example_params(example: Path, root: Path = ROOT) -> dict[str, Any]:
    """The project's params with the example's sections merged over them; data paths made absolute."""
    params = merge(yaml.safe_load((root / "params.yaml").read_text()),
                   yaml.safe_load((example / "params.yaml").read_text()) or {})
    data = params.get("data", {})
    for key in ("leads", "events"):
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str((root / data[key]).resolve())
    return params


def prepare_workspace(example: Path, dest: Path, root: Path = ROOT) -> Path:
    """``dest`` with the pipeline (``dvc.yaml``, code) and the merged params; DVC initialised once."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "dvc.yaml", dest / "dvc.yaml")
    for pkg in CODE:
        shutil.copytree(root / pkg, dest / pkg, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    text = yaml.safe_dump(example_params(example, root), sort_keys=False)
    if not (dest / "params.yaml").exists() or (dest / "params.yaml").read_text() != text:
        (dest / "params.yaml").write_text(text)
    if not (dest / ".dvc").is_dir():
        subprocess.run([sys.executable, "-m", "dvc", "init", "--quiet", "--no-scm"], cwd=dest, check=True)
        subprocess.run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], cwd=dest, check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        console.print("usage: python -m pipelines.example examples/<name>")
        return 2
    example = (ROOT / args[0]).resolve()
    if not (example / "params.yaml").exists():
        console.print(f"[bold red]error[/]: {example / 'params.yaml'} not found", highlight=False)
        return 2
    dest = prepare_workspace(example, ROOT / "build" / "examples" / example.name)
    console.print(f"example {example.name}: workspace {dest.relative_to(ROOT)}", highlight=False)
    import os

    os.chdir(dest)
    return run_main()


if __name__ == "__main__":
    raise SystemExit(main())
