from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from features.snapshots import SpineParams
from pipelines.config import ParamsError, load_section, read_params


class _Demo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    leads: int = 10
    start: str = "2024-01-01"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_section_loads_into_typed_model(tmp_path):
    params = load_section(_write(tmp_path, "demo:\n  leads: 25\n"), "demo", _Demo)
    assert params == _Demo(leads=25)


def test_missing_section_takes_defaults(tmp_path):
    assert load_section(_write(tmp_path, "other: {}\n"), "demo", _Demo) == _Demo()


def test_unknown_key_is_named_with_known_keys(tmp_path):
    with pytest.raises(ParamsError) as err:
        load_section(_write(tmp_path, "demo:\n  leeds: 25\n"), "demo", _Demo)
    msg = str(err.value)
    assert "demo.leeds: unknown key" in msg
    assert "leads, start" in msg


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ParamsError) as err:
        load_section(_write(tmp_path, "demo:\n  leads: many\n"), "demo", _Demo)
    assert "demo.leads" in str(err.value)
    assert "'many'" in str(err.value)


def test_constraint_violation_is_reported(tmp_path):
    with pytest.raises(ParamsError, match="features.step_days"):
        load_section(_write(tmp_path, "features:\n  step_days: 0\n"), "features", SpineParams)


def test_unreadable_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        read_params(tmp_path / "nope.yaml")
    with pytest.raises(ParamsError, match="not valid YAML"):
        read_params(_write(tmp_path, "demo: [unclosed\n"))
    with pytest.raises(ParamsError, match="mapping of sections"):
        read_params(_write(tmp_path, "- a\n- b\n"))
