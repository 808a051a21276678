"""Reading exports from folders and SQL databases, and writing contract tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.io import SourceError, read_export, write_tables
from dealscore.io.read import FolderSource, dataset_name
from dealscore.io.write import write_text
from dealscore.schemas import ContractError, validate_tables
from dealscore.schemas.quarantine import quarantine
from dealscore.schemas.tables import LABEL_COLUMNS


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_written_tables_read_back_identically(tables, tmp_path, fmt):
    # given
    valid, _ = validate_tables(tables)
    # when
    write_tables(valid, tmp_path, fmt)
    again, report = validate_tables(read_export(tmp_path).tables)
    # then
    assert report.ok, report.to_text()
    for name, frame in valid.present():
        pd.testing.assert_frame_equal(again.get(name), frame, check_dtype=False)
        assert again.get(name).dtypes.astype(str).tolist() == frame.dtypes.astype(str).tolist()


def test_labels_read_as_categoricals_are_checked_as_their_text(tables, tmp_path):
    # given Parquet tables whose labels include a blank, a value outside the contract, a gap,
    # and whose ids an activity linked to no deal and a blank contact
    valid, _ = validate_tables(tables)
    acts = valid.activities.assign(
        type=["email", "fax"],
        direction=["", None],
        opportunity_id=["NO-SUCH-DEAL", valid.activities["opportunity_id"].iloc[1]],
        contact_id=[valid.activities["contact_id"].iloc[0], ""],
    )
    write_tables(valid.with_tables(activities=acts), tmp_path, "parquet")
    # when they are read with and without labels as categoricals, and validated
    plain = read_export(tmp_path).tables
    labelled = read_export(tmp_path, labels=True).tables
    checked, report = validate_tables(plain)
    kept, again = validate_tables(labelled)
    # then the labels come as categoricals (a byte a row) and stay so through validation
    labels = {
        name: [c for c in columns if c in plain.get(name)]
        for name, columns in LABEL_COLUMNS.items()
    }
    assert labels["activities"] == [
        "type",
        "direction",
        "opportunity_id",
        "contact_id",
        "account_id",
    ]
    assert labels["forecasts"] and labels["stage_history"]
    for name, columns in labels.items():
        for column in columns:
            assert isinstance(labelled.get(name)[column].dtype, pd.CategoricalDtype)
            assert isinstance(kept.get(name)[column].dtype, pd.CategoricalDtype)
            assert pd.api.types.is_string_dtype(plain.get(name)[column].dtype)
    # and the contract says the same of them, word for word, with the same values once text
    assert again.to_text() == report.to_text()
    assert "fax" in report.to_text() and "NO-SUCH-DEAL" in report.to_text()
    for name, frame in checked.present():
        text = kept.get(name).astype({c: "str" for c in labels.get(name, [])})
        pd.testing.assert_frame_equal(text, frame)
    # and the quarantine takes out the same rows and deals
    held, held_plain = quarantine(labelled), quarantine(plain)
    assert held.dropped == held_plain.dropped and held.dropped["activities"] == 2
    pd.testing.assert_frame_equal(held.deals, held_plain.deals)


def test_rewrite_removes_its_own_stale_tables_and_leaves_no_temp_files(tables, tmp_path):
    # given a folder an earlier run wrote as CSV
    write_tables(tables, tmp_path, "csv")
    # when it is rewritten as Parquet without forecasts and owners
    write_tables(tables.with_tables(forecasts=None, owners=None), tmp_path, "parquet")
    # then only this run's tables are left, no stale CSV that a reader would take for a table
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert files == sorted(
        f"{n}.parquet"
        for n in ["opportunities", "accounts", "stage_history", "activities", "contacts"]
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_folder_holding_table_files_it_did_not_write_is_refused_untouched(tables, tmp_path):
    # given a raw export in contract form (CSV), ingested into its own folder as Parquet
    raw = tmp_path / "crm"
    raw.mkdir()
    for name, frame in tables.present():
        frame.to_csv(raw / f"{name}.csv", index=False)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    # when
    result = CliRunner().invoke(app, ["ingest", str(raw), "--out", str(raw)])
    # then it refuses, names the files, and nothing was deleted, replaced or added
    assert result.exit_code == 2
    assert "did not write there" in result.output and "activities.csv" in result.output
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before
    # and a destination that is a file is one clear line too
    result = CliRunner().invoke(app, ["ingest", str(raw), "--out", str(raw / "accounts.csv")])
    assert result.exit_code == 2 and "is a file" in result.output


def test_csv_keeps_text_as_text(tmp_path):
    # "NA" is North America and "007" an id, not a missing value and a number.
    pd.DataFrame(
        {
            "opportunity_id": ["007"],
            "created_at": ["2025-01-01"],
            "status": ["open"],
            "closed_at": [""],
            "stage": ["NA"],
        }
    ).to_csv(tmp_path / "opportunities.csv", index=False)
    frame = read_export(tmp_path).tables.opportunities
    assert frame.loc[0, "opportunity_id"] == "007" and frame.loc[0, "stage"] == "NA"
    assert pd.isna(frame.loc[0, "closed_at"])


CSV_HEADER = "opportunity_id,created_at,status,closed_at,amount,owner_id,stage\n"


def test_a_ragged_csv_row_is_a_contract_error_naming_its_lines(tmp_path):
    # given an export where a row lost its last three fields and another has one too many,
    # beside quoted values holding a comma and a line break, which are fine
    (tmp_path / "opportunities.csv").write_text(
        CSV_HEADER
        + 'O1,2025-01-01,open,,100,U1,"Discovery, then demo"\n'
        + "O2,2025-01-02,open,\n"
        + "O4,2025-01-04,open,,400,U1,demo,extra\n"
        + 'O3,2025-01-03,open,,300,U1,"two\nlines"\n'
        + "O5,2025-01-05,open,,500,U1,demo\n"
    )
    # when it is read, then nothing is padded or cut in silence: the file, rows and count
    with pytest.raises(ContractError) as raised:
        read_export(tmp_path)
    (issue,) = raised.value.report.errors
    assert (issue.table, issue.count) == ("opportunities", 2)
    assert "opportunities.csv" in issue.rule and "7 fields" in issue.rule
    assert issue.examples == ("line 3: 4 fields", "line 4: 8 fields")
    # and validate says so, invalid
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "opportunities.*: 2 rows fail" in result.output and "line 3: 4 fields" in result.output
    # while the same file without the two broken rows reads whole, quotes and all
    (tmp_path / "opportunities.csv").write_text(
        CSV_HEADER
        + 'O1,2025-01-01,open,,100,U1,"Discovery, then demo"\n'
        + 'O3,2025-01-03,open,,300,U1,"two\nlines"\n'
    )
    frame = read_export(tmp_path).tables.opportunities
    assert frame["stage"].tolist() == ["Discovery, then demo", "two\nlines"]
    # and a header without a line break after it is a table of no rows
    (tmp_path / "opportunities.csv").write_text(CSV_HEADER.strip())
    assert read_export(tmp_path).tables.opportunities.columns.tolist() == CSV_HEADER.strip().split(
        ","
    )


def test_a_repeated_csv_header_is_a_contract_error_naming_the_column(tmp_path):
    # given an export whose header names status twice (one of them would become status.1)
    (tmp_path / "opportunities.csv").write_text(
        "opportunity_id,created_at,status,closed_at,status\nO1,2025-01-01,open,,won\n"
    )
    # when it is read, then the repeated column is named, with where it stands
    with pytest.raises(ContractError) as raised:
        read_export(tmp_path)
    (issue,) = raised.value.report.errors
    assert (issue.table, issue.column) == ("opportunities", "status")
    assert "opportunities.csv" in issue.rule and issue.examples == ("fields 3 and 5",)


def test_the_mapping_path_reads_csv_as_strictly(tmp_path):
    # given a raw export, read through a mapping, with a row that lost its fields
    (tmp_path / "Opp.csv").write_text("Id,Made,State\n1,2025-01-01,open\n2,2025-01-02\n")
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "tables:\n  opportunities:\n    source: Opp\n    columns:\n"
        "      opportunity_id: Id\n      created_at: Made\n      status: State\n"
    )
    # when it is ingested, then it is refused with the file and the row, and nothing written
    result = CliRunner().invoke(
        app, ["ingest", str(tmp_path), "--mapping", str(mapping), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1, result.output
    assert "Opp.*: 1 row fails" in result.output and "Opp.csv" in result.output
    assert "line 3: 2 fields" in result.output
    assert not (tmp_path / "out").exists()


def test_sqlite_database_with_case_insensitive_names(tables, tmp_path):
    # given an export loaded into SQLite, with dates stored as text
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    tables.opportunities.to_sql("Opportunities", engine, index=False)
    tables.accounts.to_sql("accounts", engine, index=False)
    engine.dispose()
    # when
    export = read_export(url)
    validated, report = validate_tables(export.tables)
    # then
    assert report.ok, report.to_text()
    assert validated.opportunities["opportunity_id"].tolist() == ["O1", "O2", "O3"]
    assert validated.accounts is not None and validated.stage_history is None


def test_unreachable_or_wrong_sources_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no such folder"):
        read_export(tmp_path / "nope")
    with pytest.raises(SourceError, match=r"no opportunities table.*--mapping"):
        read_export(tmp_path)
    with pytest.raises(SourceError, match="no SQLite database at"):
        read_export(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    with pytest.raises(SourceError, match="not a database URL"):
        read_export("not a url://")


def test_a_table_that_is_there_but_unreadable_is_an_error_not_a_missing_table(tables, tmp_path):
    # given an export whose activities "file" is a folder, as a botched copy leaves it
    write_tables(tables.with_tables(activities=None), tmp_path, "csv")
    (tmp_path / "activities.csv").mkdir()
    # then reading it fails and names the file, instead of scoring without activities
    with pytest.raises(
        SourceError, match=r"activities\.csv: table 'activities' is there but is not a file"
    ):
        read_export(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code != 0 and "is not a file" in result.output


def test_a_parquet_dataset_folder_reads_as_its_table(tables, tmp_path):
    # given activities written as a folder of Parquet parts, as Spark writes a table
    valid, _ = validate_tables(tables)
    write_tables(valid.with_tables(activities=None), tmp_path, "parquet")
    folder = tmp_path / "activities.parquet"
    folder.mkdir()
    half = len(valid.activities) // 2
    valid.activities.iloc[:half].to_parquet(folder / "part-0.parquet", index=False)
    valid.activities.iloc[half:].to_parquet(folder / "part-1.parquet", index=False)
    # when
    again, report = validate_tables(read_export(tmp_path).tables)
    # then
    assert report.ok, report.to_text()
    assert len(again.activities) == len(valid.activities)


@pytest.mark.parametrize("index", ["range", "named range", "named", "unnamed"])
def test_a_parquet_file_read_a_column_at_a_time_is_the_file_as_pandas_reads_it(
    tables, tmp_path, index
):
    # given activities written with pandas' own index: 0, 1, 2, ... (plain or named), a column,
    # other numbers
    valid, _ = validate_tables(tables)
    acts = valid.activities
    if index == "named range":
        acts = acts.rename_axis("row")
    elif index == "named":
        acts = acts.set_index(acts.columns[0])
    elif index == "unnamed":
        acts = acts.set_axis(range(7, 7 + 3 * len(acts), 3))
    acts.to_parquet(tmp_path / "activities.parquet")
    labels = list(LABEL_COLUMNS["activities"])
    # when the folder is read (a column at a time), labels as categoricals
    read = FolderSource(tmp_path, labels=LABEL_COLUMNS).read("activities")
    # then it is the frame pandas reads from the whole file, index and dtypes included
    whole = pd.read_parquet(
        tmp_path / "activities.parquet",
        read_dictionary=[c for c in labels if c in acts.columns],
    )
    pd.testing.assert_frame_equal(read, whole, check_exact=True)


@pytest.mark.parametrize("contacts", [["C1", None], [None, None]])
def test_a_label_column_with_blanks_reads_as_pandas_reads_it(tables, tmp_path, contacts):
    # given two activities whose contact is blank on one, or on both
    valid, _ = validate_tables(tables)
    acts = valid.activities.iloc[:2].assign(contact_id=pd.Series(contacts, dtype="str").array)
    acts.to_parquet(tmp_path / "activities.parquet", index=False)
    # when the folder is read, labels as categoricals
    read = FolderSource(tmp_path, labels=LABEL_COLUMNS).read("activities")
    # then the contacts are the categorical pandas reads, its categories' type included
    whole = pd.read_parquet(tmp_path / "activities.parquet", read_dictionary=["contact_id"])
    pd.testing.assert_series_equal(read["contact_id"], whole["contact_id"], check_exact=True)


def test_salesforce_preset_on_a_standard_export(tmp_path):
    # given a tiny export with Salesforce's standard objects and field API names
    frames = {
        "Opportunity": pd.DataFrame(
            {
                "Id": ["0061", "0062", "0063"],
                "AccountId": ["0011", "0011", "0012"],
                "OwnerId": ["0051", "0051", "0052"],
                "Amount": ["1000", "2000", ""],
                "CloseDate": ["2025-03-01", "2025-04-01", "2025-06-30"],
                "StageName": ["Closed Won", "Closed Lost", "Negotiation"],
                "IsClosed": ["true", "true", "false"],
                "IsWon": ["true", "false", "false"],
                "CreatedDate": [
                    "2025-01-01T09:00:00.000Z",
                    "2025-01-10T09:00:00.000Z",
                    "2025-02-01T09:00:00.000Z",
                ],
                "LastStageChangeDate": [
                    "2025-03-01T15:30:00.000Z",
                    "2025-04-01T10:00:00.000Z",
                    "2025-02-01T09:00:00.000Z",
                ],
                "Type": ["New Business", "Existing Business", "New Business"],
                "LeadSource": ["Web", "Partner", "Web"],
            }
        ),
        "Account": pd.DataFrame(
            {
                "Id": ["0011", "0012"],
                "Industry": ["Technology", "Retail"],
                "NumberOfEmployees": ["250", "40"],
            }
        ),
        "OpportunityHistory": pd.DataFrame(
            {
                "OpportunityId": ["0061", "0061", "0063"],
                "CreatedDate": [
                    "2025-01-01T09:00:00.000Z",
                    "2025-03-01T15:30:00.000Z",  # closed the same day as CloseDate, after midnight
                    "2025-02-01T09:00:00.000Z",
                ],
                "StageName": ["Prospecting", "Closed Won", "Prospecting"],
                "Amount": ["1000", "1000", "500"],
                "CloseDate": ["2025-03-01", "2025-03-01", "2025-06-30"],
                "Probability": ["10", "100", "10"],
                "ForecastCategory": ["Pipeline", "Closed", "Forecast"],
            }
        ),
        "Task": pd.DataFrame(
            {
                "Id": ["00T1", "00T2"],
                "WhatId": ["0061", "0012"],
                "WhoId": ["0031", ""],
                "ActivityDate": ["2025-01-05", "2025-02-03"],
                "TaskSubtype": ["Email", "Call"],
                "CallType": ["", "Inbound"],
            }
        ),
        "Event": pd.DataFrame(
            {
                "Id": ["00U1"],
                "WhatId": ["0063"],
                "WhoId": ["0031"],
                "StartDateTime": ["2025-02-10T15:00:00.000Z"],
                "Type": ["Meeting"],
            }
        ),
        "Contact": pd.DataFrame(
            {"Id": ["0031"], "AccountId": ["0011"], "Title": ["Chief Financial Officer"]}
        ),
        "User": pd.DataFrame(
            {
                "Id": ["0051", "0052"],
                "ManagerId": ["", "0051"],
                "Department": ["Sales", "Sales"],
                "CreatedDate": ["2020-01-01T00:00:00.000Z", "2021-01-01T00:00:00.000Z"],
            }
        ),
    }
    for name, frame in frames.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    # when
    export = read_export(tmp_path, "salesforce")
    tables, report = validate_tables(export.tables)
    # then
    assert report.ok, report.to_text()
    assert tables.opportunities["status"].tolist() == ["won", "lost", "open"]
    assert tables.opportunities["closed_at"].notna().tolist() == [True, True, False]
    assert tables.opportunities["closed_at"].iloc[0] == pd.Timestamp("2025-03-01 15:30", tz="UTC")
    assert tables.stage_history["probability"].tolist() == [0.1, 1.0, 0.1]
    assert tables.forecasts["forecast_category"].tolist() == ["pipeline", "commit"]
    activities = tables.activities.sort_values("occurred_at")
    assert activities["type"].tolist() == ["email", "call", "meeting"]
    assert activities["direction"].tolist() == ["unknown", "inbound", "unknown"]
    assert activities["opportunity_id"].isna().tolist() == [False, True, False]
    assert activities["account_id"].tolist()[1] == "0012"
    assert tables.contacts["seniority"].tolist() == ["executive"]
    assert any("Division" in note for note in export.notes)  # no region on User: noted, not fatal


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("data/demo/crm", "demo-crm"),  # a generic folder name takes its parent's
        ("data/maven", "maven"),
        ("exports/acme/2026-12-01", "acme"),  # a dated night's folder is not another CRM
        ("sqlite:///var/crm/Acme Corp.db", "acme-corp"),
        ("postgresql+psycopg://etl:secret@db:5432/sales?sslmode=require", "sales"),
        ("spark:sales_prod", "sales-prod"),
    ],
)
def test_an_export_is_named_after_its_crm_not_its_night(source, name):
    assert dataset_name(source) == name


def test_text_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    # given a page already written
    page = write_text("old", tmp_path / "page.html")
    # when the next write fails half way
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_text("new", page)
    # then the old page is intact and no temporary file is left
    monkeypatch.undo()
    assert page.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_a_tampered_manifest_cannot_delete_files_outside_the_folder(tables, tmp_path):
    # given a folder written once, whose manifest was then edited to name files elsewhere
    out = tmp_path / "crm"
    write_tables(tables, out)
    outside, absolute = tmp_path / "victim.txt", tmp_path / "elsewhere" / "opportunities.csv"
    absolute.parent.mkdir()
    for victim in (outside, absolute):
        victim.write_text("keep me")
    (out / "notes.txt").write_text("mine, not a table")
    manifest = out / ".dealscore-tables.json"
    listed = json.loads(manifest.read_text())["files"]
    names = [*listed, "../victim.txt", str(absolute), "notes.txt", "sub/../../victim.txt"]
    manifest.write_text(json.dumps({"files": names}))
    # when tables are written there again (a str path, as scripts pass it)
    write_tables(tables.with_tables(contacts=None), str(out))
    # then only its own stale table went; nothing it did not write was touched
    assert outside.read_text() == "keep me" and absolute.read_text() == "keep me"
    assert (out / "notes.txt").exists() and not (out / "contacts.parquet").exists()
