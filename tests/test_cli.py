"""The command line, driven as a user would through Typer's CliRunner."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.io import write_tables
from dealscore.synthetic import DEFAULT_EXPORT_DATE

runner = CliRunner()
MAVEN_MAPPING = Path(__file__).resolve().parents[1] / "examples" / "maven-crm" / "mapping.yaml"


def test_generate_then_validate(tmp_path):
    # when
    made = runner.invoke(
        app,
        [
            "generate",
            "--deals",
            "300",
            "--seed",
            "3",
            "--export-date",
            "2026-06-30",
            "--out",
            str(tmp_path),
        ],
    )
    checked = runner.invoke(app, ["validate", str(tmp_path)])
    # then
    assert made.exit_code == 0, made.output
    assert "opportunities" in made.output and "win rate" in made.output
    assert (tmp_path / "truth.parquet").is_file() and (tmp_path / "activities.parquet").is_file()
    assert checked.exit_code == 0, checked.output
    assert "valid" in checked.output and "open pipeline" in checked.output
    created = pd.read_parquet(tmp_path / "opportunities.parquet")["created_at"]
    assert created.max() < pd.Timestamp("2026-06-30", tz="UTC")


def test_generate_reads_a_settings_file_and_options_override_it(tmp_path):
    config = tmp_path / "gen.toml"
    config.write_text('deals = 200\nseed = 4\nexport_date = "2025-01-01"\n')
    result = runner.invoke(
        app, ["generate", "--config", str(config), "--deals", "150", "--out", str(tmp_path / "crm")]
    )
    assert result.exit_code == 0, result.output
    deals = pd.read_parquet(tmp_path / "crm" / "opportunities.parquet")
    assert len(deals) == 150
    assert deals["created_at"].max() < pd.Timestamp(
        "2025-01-01", tz="UTC"
    )  # the file's export date
    assert deals["created_at"].max() > pd.Timestamp("2024-10-01", tz="UTC")
    config.write_text("deal = 5\n")
    bad = runner.invoke(app, ["generate", "--config", str(config), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown setting" in bad.output


def test_generate_defaults_to_the_documented_export_date(tmp_path):
    # when generate is run twice without --export-date, on any day
    for out in ("a", "b"):
        result = runner.invoke(app, ["generate", "--deals", "100", "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    # then both are the same CRM as of the documented demo's date, so its figures reproduce
    first, second = (pd.read_parquet(tmp_path / o / "opportunities.parquet") for o in "ab")
    pd.testing.assert_frame_equal(first, second)
    export = pd.Timestamp(DEFAULT_EXPORT_DATE, tz="UTC")
    assert export - pd.Timedelta(days=60) < first["created_at"].max() < export


def test_validate_broken_export_exits_non_zero_and_names_the_problem(tables, tmp_path):
    broken = tables.opportunities.assign(status=["won", "lost", "pending"])
    broken.to_csv(tmp_path / "opportunities.csv", index=False)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "opportunities.status" in result.output and "pending" in result.output


@pytest.mark.parametrize(
    ("created_at", "said"),
    [
        (["abc", "31/02/2025", "soon"], "opportunities.created_at: 3 rows fail 'parseable as"),
        (["", "", ""], "opportunities.created_at: 3 rows fail 'not_nullable'"),
        (None, "opportunities.created_at: 3 rows fail 'required column present'"),
    ],
    ids=["unreadable", "empty", "no-column"],
)
def test_validate_reports_an_export_with_no_readable_creation_date(
    tables, tmp_path, created_at, said
):
    # given opportunities whose created_at cannot be read, or is not there at all, two open
    # deals, and an amount written with a thousands separator (text a summary must not add up)
    deals = tables.opportunities.assign(
        status=["won", "open", "open"],
        closed_at=[tables.opportunities["closed_at"].iloc[0], pd.NaT, pd.NaT],
        amount=["1 000", "2500", "400"],
    )
    deals = deals.drop(columns="created_at") if created_at is None else deals
    if created_at is not None:
        deals["created_at"] = created_at
    deals.to_csv(tmp_path / "opportunities.csv", index=False)
    # when it is validated
    result = runner.invoke(app, ["validate", str(tmp_path)])
    # then the summary and every broken rule print, and the exit code says invalid
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output
    assert said in result.output and "INVALID" in result.output
    assert "created: no readable date" in result.output
    assert "open pipeline: 2 deals, value 2,900" in result.output
    assert "opportunities.amount: 1 row fails 'parseable as number' e.g. 1 000" in result.output


def test_validate_warnings_do_not_fail(tables, tmp_path):
    tables.opportunities.assign(account_id=["A1", "A2", None]).to_csv(
        tmp_path / "opportunities.csv", index=False
    )
    tables.accounts.to_csv(tmp_path / "accounts.csv", index=False)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0 and "WARNING" in result.output


def test_validate_unreadable_source_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such folder" in result.output


def test_ingest_maven_with_its_mapping(maven_dir, tmp_path):
    result = runner.invoke(
        app, ["ingest", str(maven_dir), "--mapping", str(MAVEN_MAPPING), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "won 4,238" in result.output
    again = runner.invoke(app, ["validate", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".dealscore-tables.json",  # what this ingest wrote: a rerun may replace only these
        "accounts.parquet",
        "opportunities.parquet",
        "owners.parquet",
    ]


def test_ingest_writes_nothing_when_the_export_is_invalid(tables, tmp_path):
    src, out = tmp_path / "raw", tmp_path / "out"
    src.mkdir()
    tables.opportunities.assign(amount=[-1.0, 2.0, 3.0]).to_csv(
        src / "opportunities.csv", index=False
    )
    result = runner.invoke(app, ["ingest", str(src), "--out", str(out)])
    assert result.exit_code == 1 and "opportunities.amount" in result.output
    assert not out.exists()


def test_help_explains_each_command():
    for command in ["generate", "validate", "ingest"]:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--" in result.output
    assert "--mapping" in runner.invoke(app, ["validate", "--help"]).output
    assert runner.invoke(app, ["--version"]).output.startswith("dealscore ")


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


def test_validating_a_missing_sqlite_database_creates_nothing(tmp_path):
    # when a SQLite URL names a file that is not there
    result = runner.invoke(app, ["validate", f"sqlite:///{tmp_path / 'nosuch.db'}"])
    # then it says so, and no empty database is left behind
    assert result.exit_code == 2
    assert "no SQLite database at" in result.output
    assert not (tmp_path / "nosuch.db").exists()


def test_counts_and_signed_shares_read_well():
    from dealscore.cli import _count, _signed_pct

    assert [_count(1, "error"), _count(1204, "error")] == ["1 error", "1,204 errors"]
    assert [_signed_pct(v) for v in (-0.004, 0.0, 0.124, -0.031)] == ["0%", "0%", "+12%", "-3%"]


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
import dealscore.cli as cli
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
