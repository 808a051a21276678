"""Options: refused before any data is read, and named the same way on every command."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from dealscore.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["compare", "--period", "2026Q5"], "period must look like 2026Q3"),
        (["backtest", "--periods", "0"], "--periods"),
        (["report", "--periods", "0"], "--periods"),
    ],
)
def test_bad_options_are_refused_before_any_data_is_read(tmp_path, args, said):
    # given a data path that does not exist: reading it would fail with another message
    missing = str(tmp_path / "no-such-export")
    result = runner.invoke(app, [*args, "--data", missing])
    # then the option is what is refused, with exit code 2
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert "no-such-export" not in result.output


def test_every_out_option_has_the_short_form():
    # every command that writes somewhere takes -o for --out
    command = typer.main.get_command(app)
    checked = 0
    for name, sub in command.commands.items():
        groups = sub.commands.items() if hasattr(sub, "commands") else [(name, sub)]
        for sub_name, leaf in groups:
            for param in leaf.params:
                if "--out" in getattr(param, "opts", []):
                    assert "-o" in param.opts, sub_name
                    checked += 1
    assert checked >= 6
