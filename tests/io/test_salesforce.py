"""A Salesforce Data Export as an admin downloads it ingests with the preset untouched, then
trains and scores: ISO-8859-1 files, no TaskSubtype, forecast categories as labels, the empty
lookup id, a closing history row a second after LastStageChangeDate, list emails tied to
nothing, and amounts in two currencies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.io import read_export
from dealscore.synthetic import GeneratorSettings, generate_crm

EMPTY_ID = "000000000000000AAA"
EUR_RATE = 0.9  # CurrencyType.ConversionRate: euros per corporate (US) dollar
STAGES = {
    "prospecting": "Prospecting",
    "qualification": "Qualification",
    "discovery": "Needs Analysis",
    "proposal": "Proposal/Price Quote",
    "negotiation": "Negotiation/Review",
}
CATEGORY_LABELS = {
    "pipeline": "Pipeline",
    "best_case": "Best Case",
    "commit": "Commit",
    "omitted": "Omitted",
    "closed": "Closed",
}


def _sf_id(prefix: str, ids: pd.Series) -> pd.Series:
    """OPP00000042 -> 0060000OPP00000042: 18-character ids with the object's key prefix."""
    return (prefix + ids.astype("str").str.zfill(15)).where(ids.notna())


def _stamp(times: pd.Series) -> pd.Series:
    return times.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z").where(times.notna())


def salesforce_export(folder: Path, seed: int = 9) -> pd.DataFrame:
    """Write a generated CRM as Salesforce objects with a real export's warts; return the
    contract opportunities it came from."""
    crm = generate_crm(
        GeneratorSettings(deals=3000, seed=seed, export_date=pd.Timestamp("2026-06-01", tz="UTC"))
    ).tables
    deals = crm.opportunities
    closed = deals["status"] != "open"
    euro = np.arange(len(deals)) % 2 == 1
    stage_name = deals["stage"].map(STAGES)
    stage_name = stage_name.mask(deals["status"] == "won", "Closed Won")
    stage_name = stage_name.mask(deals["status"] == "lost", "Closed Lost")
    stage_name = stage_name.mask(deals["status"] == "no_decision", "Closed No Decision")
    objects = {
        "Opportunity": pd.DataFrame(
            {
                "Id": _sf_id("006", deals["opportunity_id"]),
                "Name": "Déal für " + deals["opportunity_id"],
                "AccountId": _sf_id("001", deals["account_id"]),
                "OwnerId": _sf_id("005", deals["owner_id"]),
                "Amount": np.where(euro, deals["amount"] * EUR_RATE, deals["amount"]).round(2),
                "CurrencyIsoCode": np.where(euro, "EUR", "USD"),
                "CloseDate": deals["close_date"].dt.strftime("%Y-%m-%d"),
                "StageName": stage_name,
                "IsClosed": np.where(closed, "true", "false"),
                "IsWon": np.where(deals["status"] == "won", "true", "false"),
                "CreatedDate": _stamp(deals["created_at"]),
                "LastStageChangeDate": _stamp(deals["closed_at"].fillna(deals["created_at"])),
                "Type": deals["deal_type"],
                "LeadSource": deals["lead_source"],
            }
        ),
        "Account": pd.DataFrame(
            {
                "Id": _sf_id("001", crm.accounts["account_id"]),
                "Name": "Société " + crm.accounts["account_id"] + " Müller",
                "Industry": crm.accounts["industry"],
                "NumberOfEmployees": crm.accounts["employees"].astype("Int64"),
                "AnnualRevenue": crm.accounts["annual_revenue"],
                "BillingCountry": crm.accounts["country"].replace({"Germany": "Österreich"}),
                "CreatedDate": _stamp(crm.accounts["created_at"]),
            }
        ),
        "CurrencyType": pd.DataFrame(
            {"IsoCode": ["USD", "EUR"], "ConversionRate": [1.0, EUR_RATE]}
        ),
    }
    history = crm.stage_history
    by_deal = deals.set_index("opportunity_id")
    deal_closed_at = history["opportunity_id"].map(by_deal["closed_at"])
    closing = history["stage"].isin(["closed_won", "closed_lost"])
    # The closing row is saved a second after the deal's LastStageChangeDate.
    changed = history["changed_at"].mask(closing, deal_closed_at + pd.Timedelta(seconds=1))
    status = history["opportunity_id"].map(by_deal["status"])
    history_stage = history["stage"].map(STAGES).mask(closing, "Closed Won")
    history_stage = history_stage.mask(closing & (status == "lost"), "Closed Lost")
    history_stage = history_stage.mask(closing & (status == "no_decision"), "Closed No Decision")
    history_amount = history["amount"] * np.where(
        history["opportunity_id"].map(pd.Series(euro, index=deals["opportunity_id"])), EUR_RATE, 1
    )
    objects["OpportunityHistory"] = pd.DataFrame(
        {
            "OpportunityId": _sf_id("006", history["opportunity_id"]),
            "CreatedDate": _stamp(changed),
            "StageName": history_stage,
            "Amount": history_amount.round(2),
            "CurrencyIsoCode": np.where(history_amount != history["amount"], "EUR", "USD"),
            "CloseDate": history["close_date"].dt.strftime("%Y-%m-%d"),
            "Probability": (history["probability"] * 100).round(),
            "ForecastCategory": history["forecast_category"].map(CATEGORY_LABELS),  # labels
        }
    )
    acts = crm.activities
    is_task = acts["type"].isin(["email", "call", "other"])
    what = _sf_id("006", acts["opportunity_id"]).fillna(_sf_id("001", acts["account_id"]))
    tasks = acts[is_task]
    list_emails = pd.DataFrame(  # sent to a list: tied to no deal and no account
        {"Id": ["00T" + str(i).zfill(15) for i in range(5)], "Type": "Email"}
    ).assign(ActivityDate=tasks["occurred_at"].iloc[:5].dt.strftime("%Y-%m-%d").to_numpy())
    objects["Task"] = pd.concat(
        [
            pd.DataFrame(
                {
                    "Id": _sf_id("00T", tasks["activity_id"]),
                    "WhatId": what[is_task],
                    "WhoId": _sf_id("003", tasks["contact_id"]),
                    "CompletedDateTime": _stamp(tasks["occurred_at"]),
                    "ActivityDate": tasks["occurred_at"].dt.strftime("%Y-%m-%d"),
                    "Type": tasks["type"].map({"email": "Email", "call": "Call", "other": "Other"}),
                    "CallType": tasks["direction"].map(
                        {"inbound": "Inbound", "outbound": "Outbound"}
                    ),
                    "Subject": "Rückruf",
                    "CreatedDate": _stamp(tasks["created_at"]),
                }
            ),
            list_emails,
        ],
        ignore_index=True,
    )  # no TaskSubtype column: older orgs' exports have none
    events = acts[~is_task]
    objects["Event"] = pd.DataFrame(
        {
            "Id": _sf_id("00U", events["activity_id"]),
            "WhatId": what[~is_task],
            "WhoId": _sf_id("003", events["contact_id"]),
            "StartDateTime": _stamp(events["occurred_at"]),
            "CreatedDate": _stamp(events["created_at"]),  # booked ahead
            "Type": events["type"].map({"meeting": "Meeting", "demo": "Demo"}),
        }
    )
    objects["Contact"] = pd.DataFrame(
        {
            "Id": _sf_id("003", crm.contacts["contact_id"]),
            "AccountId": _sf_id("001", crm.contacts["account_id"]),
            "Title": crm.contacts["title"],
        }
    )
    owners = crm.owners
    objects["User"] = pd.DataFrame(
        {
            "Id": _sf_id("005", owners["owner_id"]),
            "Name": "Zoë " + owners["owner_id"],
            "ManagerId": _sf_id("005", owners["manager_id"]).fillna(EMPTY_ID),
            "Department": owners["team"],
            "Division": owners["region"],
            "CreatedDate": _stamp(owners["hired_at"]),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in objects.items():
        frame.to_csv(folder / f"{name}.csv", index=False, encoding="iso-8859-1")
    return deals


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("salesforce")
    return folder, salesforce_export(folder)


def test_the_export_has_the_warts(export):
    folder, _ = export
    with pytest.raises(UnicodeDecodeError):
        (folder / "Account.csv").read_text(encoding="utf-8")
    assert "TaskSubtype" not in pd.read_csv(folder / "Task.csv", nrows=1, encoding="latin-1")
    users = pd.read_csv(folder / "User.csv", encoding="latin-1", dtype=str)
    assert (users["ManagerId"] == EMPTY_ID).any()


def test_it_ingests_with_the_preset_untouched(export, tmp_path):
    folder, deals = export
    # when
    result = CliRunner().invoke(
        app, ["ingest", str(folder), "--mapping", "salesforce", "--out", str(tmp_path / "crm")]
    )
    # then it is valid, and says what it decided
    assert result.exit_code == 0, result.output
    assert "read as ISO-8859-1" in result.output
    assert "5 rows linked to neither a deal nor an account" in result.output
    assert "converted to the corporate currency" in result.output
    tables = read_export(tmp_path / "crm").tables
    # amounts are back in dollars, statuses and closes as they were
    opportunities = tables.opportunities.set_index("opportunity_id")
    expected = deals.assign(opportunity_id=_sf_id("006", deals["opportunity_id"]))
    expected = expected.set_index("opportunity_id").loc[opportunities.index]
    np.testing.assert_allclose(opportunities["amount"], expected["amount"], rtol=1e-6)
    assert (opportunities["status"] == expected["status"]).all()
    # the reps' calls were read from labels, and no empty-lookup id survived
    assert set(tables.forecasts["forecast_category"]) <= {
        "commit",
        "best_case",
        "pipeline",
        "omitted",
    }
    assert tables.forecasts["forecast_category"].eq("best_case").any()
    assert not tables.owners["manager_id"].eq(EMPTY_ID).any()
    # tasks typed from Type, as there is no TaskSubtype
    assert {"email", "call"} <= set(tables.activities["type"])
    # and meetings known from when they were booked (CreatedDate), days before they took place
    acts = tables.activities
    meetings = acts[acts["type"] == "meeting"]
    ahead = (meetings["occurred_at"] - meetings["created_at"]).dt.total_seconds() / 86_400
    assert ahead.median() > 1


@pytest.mark.slow  # run by make test-all (CI)
def test_it_trains_and_scores_straight_from_the_export(export, tmp_path, monkeypatch):
    folder, _ = export
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "fast.toml"
    config.write_text('n_estimators = 80\nlearning_rate = 0.1\nicp = ""\nforward_dates = 0\n')
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--data", str(folder), "--mapping", "salesforce", "--tracking-uri", store]
    trained = CliRunner().invoke(app, ["train", *common, "--config", str(config)])
    assert trained.exit_code == 0, trained.output
    scored = CliRunner().invoke(
        app, ["score", *common, "--as-of", "2026-05-01", "--out", str(tmp_path / "scores")]
    )
    assert scored.exit_code == 0, scored.output
    assert "rejected 0" in scored.output and "band A" in scored.output
