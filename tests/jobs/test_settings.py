"""Frozen job settings from a TOML file, overridden by the command line."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.errors import InputError
from dealscore.io.icp import load_icp
from dealscore.jobs.train import run_train
from dealscore.pipeline.training import TrainSettings
from dealscore.settings import SettingsError, load_settings


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


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ('calibration = "platt"', "calibration: Input should be 'auto', 'sigmoid' or 'isotonic'"),
        ('n_estimators = "lots"', "n_estimators: Input should be a valid integer"),
        ("folds = 1", "folds: Input should be greater than or equal to 2"),
        ('ladder = ["lightgbm", "deep_net"]', "ladder.1: Input should be 'base_rate', "),
        ("learning_rate = 0", "learning_rate: Input should be greater than 0"),
        ("track = 3", "track: Input should be a valid boolean"),
    ],
)
def test_a_bad_setting_is_refused_on_load_with_its_file_and_key(tmp_path, written, said):
    path = tmp_path / "train.toml"
    path.write_text(written + "\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(TrainSettings, path)
    assert str(caught.value).startswith(f"{path}: ") and said in str(caught.value)


def test_cli_refuses_bad_settings_before_reading_any_data(tmp_path):
    # given a bad file and an export that does not exist (reading it would fail otherwise)
    path = tmp_path / "score.toml"
    path.write_text('engine = "flink"\nband_a = 2.0\n')
    for command in (["score"], ["train"]):
        config = path if command == ["score"] else tmp_path / "train.toml"
        if command == ["train"]:
            config.write_text('snapshot_scheme = "weekly"\n')
        result = CliRunner().invoke(
            app, [*command, "--data", str(tmp_path / "missing"), "--config", str(config)]
        )
        # then the setting is named, exit 2, and the data was never touched
        assert result.exit_code == 2, result.output
        assert f"{config}: " in result.output and "no such folder" not in result.output
    assert (
        "engine: Input should be 'pandas' or 'spark' (got 'flink')"
        in CliRunner().invoke(app, ["score", "--data", "x", "--config", str(path)]).output
    )


def test_print_config_shows_the_effective_settings_and_reads_back(tmp_path):
    # when the effective settings are printed, with a file and an option over the defaults
    path = tmp_path / "train.toml"
    path.write_text("num_leaves = 15\n")
    printed = CliRunner().invoke(
        app, ["train", "--data", "x", "--config", str(path), "--seed", "4", "--print-config"]
    )
    # then they are TOML that loads back to the same settings
    assert printed.exit_code == 0, printed.output
    again = tmp_path / "again.toml"
    again.write_text(printed.output)
    assert load_settings(TrainSettings, again) == TrainSettings(num_leaves=15, seed=4)


def test_a_path_in_a_settings_file_is_read_against_that_files_folder(tmp_path, monkeypatch):
    # given a training recipe in its own folder naming an ICP file beside it
    recipe = tmp_path / "recipes" / "train.toml"
    recipe.parent.mkdir()
    (recipe.parent / "our_icp.yaml").write_text(
        "rules:\n  - name: big\n    column: employees\n    between: [500, 100000]\n"
    )
    recipe.write_text('icp = "our_icp.yaml"\n')
    # when it is loaded from another working directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(TrainSettings, Path("../recipes/train.toml"))
    # then the ICP is the file beside the recipe, and its rules load from here
    assert Path(settings.icp).resolve() == (recipe.parent / "our_icp.yaml").resolve()
    assert [rule.name for rule in load_icp(settings.icp)] == ["big"]
    # and a path given on the command line stays relative to the working directory
    assert load_settings(TrainSettings, recipe, icp="mine.yaml").icp == "mine.yaml"
    # and the words "builtin" and "" are not paths
    recipe.write_text('icp = "builtin"\n')
    assert load_settings(TrainSettings, recipe).icp == "builtin"


def test_the_builtin_icp_is_found_from_any_working_directory(tmp_path, monkeypatch):
    # given a working directory far from the repository
    monkeypatch.chdir(tmp_path)
    # when the default training settings' ICP is loaded
    rules = load_icp(TrainSettings().icp)
    # then it is the shipped one, and an ICP file that is not there is an error, not silence
    assert {rule.column for rule in rules} >= {"industry", "employees", "region"}
    with pytest.raises(InputError, match="does not exist"):
        load_icp("features/icp.yaml")


def test_the_shipped_recipe_trains_with_the_documented_icp_from_any_folder(
    crm, tmp_path, monkeypatch
):
    # given the shipped recipe, read from a working directory far from the repository (the
    # quick rungs stand in for the ladder: the ICP is the subject)
    monkeypatch.chdir(tmp_path)
    recipe = Path(__file__).resolve().parents[2] / "training" / "default.toml"
    settings = load_settings(
        TrainSettings,
        recipe,
        track=False,
        forward_dates=0,
        ladder=("logistic_regression",),
        in_quarter_model=False,
        independent_contender=False,
        outcome_model=False,
    )
    # when it trains
    result = run_train(crm, settings)
    # then the model learned with the documented ICP: its rules, and accounts scored by them
    assert result.feature_state.icp_rules == load_icp("builtin") != ()
    assert result.test["icp_rule_score"].notna().any()
