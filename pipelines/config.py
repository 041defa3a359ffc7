"""Load `params.yaml` sections into the typed parameter models of the library.

Each stage owns one section; a section is validated by the library's pydantic model, so an
unknown key or a wrong type stops the run with a message that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ParamsError(ValueError):
    """`params.yaml` is missing, unreadable, or has an unknown key or a value of the wrong type."""


def read_params(path: Path) -> dict[str, Any]:
    """The whole params file as a mapping of section name to section."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def parse_section(raw: Any, model: type[M], *, section: str, source: str) -> M:
    """Validate one section's raw mapping with ``model``; errors name ``section.key``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: section '{section}' must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_explain(exc, model, section=section, source=source)) from None


def load_section(path: Path, section: str, model: type[M]) -> M:
    """Read ``section`` of the params file at ``path`` into ``model``."""
    return parse_section(read_params(path).get(section), model, section=section, source=str(path))


def _explain(exc: ValidationError, model: type[BaseModel], *, section: str, source: str) -> str:
    lines = [f"{source}: invalid '{section}' parameters:"]
    known = ", ".join(model.model_fields)
    for err in exc.errors():
        key = ".".join(str(p) for p in (section, *err["loc"]))
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (known keys: {known})")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
