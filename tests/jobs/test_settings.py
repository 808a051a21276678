"""Frozen job settings from a TOML file, overridden by the command line."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, fields
from pathlib import Path

import pytest

from dealscore.jobs.settings import SettingsError, load_settings
from dealscore.jobs.train import TrainSettings


@dataclass(frozen=True)
class Knobs:
    size: int = 1
    name: str = "a"


def test_file_then_overrides_then_defaults(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('size = 5\nname = "file"\n')
    knobs = load_settings(Knobs, path, name="cli", size=None)
    assert knobs == Knobs(size=5, name="cli")
    assert load_settings(Knobs) == Knobs()
    with pytest.raises(FrozenInstanceError):
        knobs.size = 2  # type: ignore[misc]


def test_unknown_missing_and_malformed_files_are_explained(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(Knobs, tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("size = = 1")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(Knobs, bad)
    bad.write_text("colour = 1")
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(Knobs, bad)


def test_the_shipped_training_recipe_is_the_built_in_defaults():
    # given training/default.toml, which documents every setting
    path = Path(__file__).resolve().parents[2] / "training" / "default.toml"
    # then it names every setting and changes none of them
    assert load_settings(TrainSettings, path) == TrainSettings()
    written = {
        line.split("=")[0].strip()
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert written == {f.name for f in fields(TrainSettings)}
