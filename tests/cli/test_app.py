"""The app: --version, the help of every command, and the libraries' warnings kept off the
terminal."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.io import write_tables

runner = CliRunner()


def test_help_explains_each_command():
    for command in ["generate", "validate", "ingest"]:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--" in result.output
    assert "--mapping" in runner.invoke(app, ["validate", "--help"]).output
    assert runner.invoke(app, ["--version"]).output.startswith("dealscore ")


def test_version_answers_without_importing_the_data_stack():
    import subprocess
    import sys

    # when the executable's entry point is asked for the version
    code = (
        "import sys; sys.argv = ['dealscore', '--version']; "
        "from dealscore.entry import main; main(); "
        "print(sorted(m for m in ('pandas', 'mlflow', 'dealscore.cli') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # then it answers, and nothing heavy was imported to do it
    assert done.stdout.splitlines() == ["dealscore 0.1.0", "[]"]


def _commands(group: typer.Typer, prefix: list[str]) -> list[list[str]]:
    found = [[*prefix, c.name or c.callback.__name__] for c in group.registered_commands]
    for sub in group.registered_groups:
        found += _commands(sub.typer_instance, [*prefix, sub.name])
    return found


@pytest.mark.parametrize("command", _commands(app, []), ids=" ".join)
def test_every_help_shows_defaults_one_way(command):
    text = runner.invoke(app, [*command, "--help"], terminal_width=200).output
    # defaults in Typer's own [default: ...] form, never restated in prose
    assert "Default:" not in text and "(default" not in text
    # no type labels on flags: only --help keeps Typer's own
    assert text.count("<bool>") <= 1


WARNS_THEN_VALIDATES = """
import sys, warnings
import dealscore.cli.data as cli  # where the validate command finds run_validate
real = cli.run_validate
def noisy(*args, **kwargs):
    warnings.warn("library noise", RuntimeWarning)
    return real(*args, **kwargs)
cli.run_validate = noisy
from dealscore.entry import main
sys.argv = ["dealscore", "validate", sys.argv[1]]
main()
"""


@pytest.mark.parametrize("shown", [False, True])
def test_library_warnings_stay_off_the_terminal_unless_asked_for(tables, tmp_path, shown):
    # given an export, and a command during which a library warns
    write_tables(tables, tmp_path)
    flags = ["-W", "default"] if shown else []
    # when it runs as the executable does
    result = subprocess.run(
        [sys.executable, *flags, "-c", WARNS_THEN_VALIDATES, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then the command's own report is there, and the warning only when Python was asked to
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert ("library noise" in result.stderr) is shown


def _wrapped_pairs(text: str) -> list[tuple[str, str]]:
    """(line, next line) where the next continues the same paragraph or help text: in the
    description, lines at the same indent; in a section (Options, Arguments, Commands), a
    deeper indent than the rows' own."""
    pairs, section = [], False
    lines = text.splitlines()
    for line, following in itertools.pairwise(lines):
        if line.rstrip().endswith(":") and not line.startswith(" "):
            section = True
            continue
        if not line.strip() or not following.strip() or line.startswith("Usage:"):
            continue
        indent = len(following) - len(following.lstrip())
        if section and indent <= 2:
            continue  # a new row
        if section and line.strip().startswith("-") and "  " not in line.strip():
            continue  # an option too long to share its line with its help
        if not section and indent != len(line) - len(line.lstrip()):
            continue
        pairs.append((line, following))
    return pairs


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("command", [[], *_commands(app, [])], ids=lambda c: " ".join(c) or "app")
def test_help_reflows_to_the_terminal_and_says_defaults_plainly(command, width):
    # when a command's help is shown on a terminal of this width
    text = runner.invoke(app, [*command, "--help"], terminal_width=width).output
    # then no line is cut, and no default is in parentheses or a flag labelled <bool>
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text and "..." not in text.replace("[ARGS]...", "")
    assert "[default: (" not in text and "<bool>" not in text
    # and every wrapped line is full: it ends where the next word would not have fitted, never
    # where the source happened to break its line
    for line, following in _wrapped_pairs(text):
        word = following.split()[0]
        gap = 2 if word.startswith("[") else 1  # Click sets "[default: ...]" two spaces off
        assert len(line) + gap + len(word) > width, (line, following)
