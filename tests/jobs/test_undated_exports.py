"""An export in which no deal has a readable creation date: every job that needs the export's
own time says so in one line, instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features.asof import last_event
from dealscore.schemas import CrmTables, Opportunities
from dealscore.schemas.contract import UndatedExportError, require_dated
from dealscore.schemas.quarantine import quarantine

MODEL = "models:/dealscore@champion"  # the name conftest's model_store registers


def _header_only(crm: Path, folder: Path) -> None:
    header = pd.read_parquet(crm / "opportunities.parquet").columns
    (folder / "opportunities.csv").write_text(",".join(header) + "\n")


def _unreadable(crm: Path, folder: Path) -> None:
    deals = pd.read_parquet(crm / "opportunities.parquet").head(120)
    deals[Opportunities.created_at] = ["abc", "31/02/2025", "soon"] * 40
    deals.to_csv(folder / "opportunities.csv", index=False)


def _int64(crm: Path, folder: Path) -> None:
    deals = pd.read_parquet(crm / "opportunities.parquet").head(120)
    seconds = deals[Opportunities.created_at].astype("int64") // 10**6  # epoch seconds
    deals[Opportunities.created_at] = seconds
    deals.to_parquet(folder / "opportunities.parquet", index=False)


EXPORTS = {
    "header-only": (_header_only, "opportunities.created_at: no readable date in 0 rows"),
    "unreadable": (
        _unreadable,
        "opportunities.created_at: no readable date in 120 rows (e.g. 'abc', '31/02/2025'",
    ),
    "int64": (_int64, "opportunities.created_at: no readable date in 120 rows (e.g. '17"),
}


@pytest.mark.parametrize("case", EXPORTS)
@pytest.mark.parametrize("command", ["score", "report", "compare"])
def test_an_export_with_no_readable_date_is_one_clear_line(
    crm, model_store, tmp_path, command, case
):
    # given an export whose deals carry no creation date that can be read
    export = tmp_path / "export"
    export.mkdir()
    write, said = EXPORTS[case]
    write(crm, export)
    # when a job that needs the export's own time runs on it
    args = [command, "--data", str(export), "--model", MODEL, "--tracking-uri", model_store]
    if command != "compare":
        args += ["--out", str(tmp_path / ("out.html" if command == "report" else "out"))]
    result = CliRunner().invoke(app, args)
    # then it stops with one line naming the table, the column and what was wrong
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(said) and last.endswith("the export's own time cannot be known"), last
    if case == "int64":  # and says why a number is no date
        assert "numbers are not read as dates" in last
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.html").exists()


def test_the_export_time_of_no_deals_is_an_error_not_nat(tables):
    # given an export whose every deal was quarantined (an unknown status everywhere)
    held = quarantine(
        tables.with_tables(opportunities=tables.opportunities.assign(status="pending"))
    )
    # then no time is made up, and the reason is the quarantine, not the dates
    with pytest.raises(UndatedExportError, match="none of the 3 deals is left"):
        require_dated(held.tables, held.report)
    with pytest.raises(UndatedExportError, match=r"opportunities\.created_at: no readable date"):
        last_event(CrmTables(opportunities=tables.opportunities.iloc[:0]))
