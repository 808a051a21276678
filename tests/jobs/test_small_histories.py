"""The CRMs people have: a small org's first months, a funnel whose sales start late, a business
whose win rate changed. Each trains, says what it decided, and is judged forward."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dealscore.io import write_tables
from dealscore.jobs.train import TooManyRejectedError, run_train
from dealscore.pipeline.training import TrainSettings
from dealscore.schemas import CrmTables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-06-01", tz="UTC")
QUICK = TrainSettings(n_estimators=300, learning_rate=0.1, icp="", track=False, forward_dates=3)


def _small_org(folder: Path, deals: int, years: float, export: pd.Timestamp = EXPORT) -> Path:
    """A young CRM: every deal created since it was adopted, few activities logged, stage
    probabilities in the stage history (the generator's are the stage defaults)."""
    settings = GeneratorSettings(
        deals=deals,
        years=years,
        seed=4,
        export_date=export,
        activities_per_deal=3,
        deals_per_rep=50,
    )
    write_tables(generate_crm(settings).tables, folder)
    return folder


@pytest.mark.parametrize(("deals", "years"), [(600, 0.5), (900, 0.75)], ids=["6mo", "9mo"])
def test_a_small_orgs_first_months_get_a_model_that_ranks_at_least_as_the_crm(
    deals, years, tmp_path, monkeypatch
):
    # given a small org's export of its first 6 (or 9) months: about 100 won and 100 lost
    export = _small_org(tmp_path / "crm", deals, years)
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # when it is trained as a new user would, forward test and registry included
    result = run_train(export, replace(QUICK, track=True, tracking_uri=store))
    closed = result.fold_rows  # it trained: the history was long enough for its folds
    assert sum(closed.values()) > 500
    # then the model ranks the deals really open at past dates at least as well as the CRM's
    # own stage probability, and is calibrated enough to be promoted
    forward = result.forward
    assert forward is not None and len(forward.rungs) >= 2, forward.skipped
    model, stage = forward.pooled(), forward.pooled("stage_probability")
    assert model["roc_auc"] >= stage["roc_auc"] - 0.005, forward.table
    assert result.tracking.promoted, result.tracking.reason
    # and its won-this-quarter model's calibration reads the days left: its snapshots span
    # quarters enough to tell them from the date
    assert len(result.in_quarter_error.quarters) >= 2 and result.in_quarter.timed_ is not None
    # and it says which rung scores, why, and what the short history changed
    assert result.ladder.chosen in result.ladder.models
    assert any(note.startswith("label horizon") for note in result.notes)


def test_a_crm_of_one_past_quarter_calibrates_its_quarter_without_the_days_left(tmp_path):
    # given an org exported five months after adopting its CRM: the snapshots whose quarter
    # is over all lie in one quarter, where the days left and the date are one thing
    export = _small_org(tmp_path / "crm", 700, 0.45, pd.Timestamp("2026-02-20", tz="UTC"))
    # when it is trained (the linear rungs: what is asked of the calibration, not of the trees)
    lean = replace(QUICK, forward_dates=0, ladder=("base_rate", "logistic_regression"))
    result = run_train(export, lean)
    # then its won-this-quarter model is calibrated on the raw score alone
    assert result.in_quarter is not None and result.in_quarter_error.quarters == ("2025Q4",)
    assert result.in_quarter.timed_ is None


def test_a_funnel_whose_sales_start_late_trains_from_there_and_says_so(tmp_path):
    # given a funnel whose first sale came seven months after its first lead, and one lead
    # marked won two days before it was created
    tables = generate_crm(
        GeneratorSettings(deals=2500, years=1.5, seed=6, export_date=EXPORT)
    ).tables
    deals = tables.opportunities
    first = deals["created_at"].min()
    early_win = (deals["status"] == "won") & (deals["closed_at"] < first + pd.Timedelta(days=210))
    funnel = _without_deals(tables, deals.loc[early_win, "opportunity_id"])
    deals = funnel.opportunities.copy()
    bad = deals.index[deals["status"] == "won"][5]
    deals.loc[bad, "closed_at"] = deals.loc[bad, "created_at"] - pd.Timedelta(days=2)
    write_tables(funnel.with_tables(opportunities=deals), tmp_path / "funnel")
    # when it is trained
    said: list[str] = []
    result = run_train(tmp_path / "funnel", replace(QUICK, forward_dates=0), progress=said.append)
    # then the bad lead was quarantined, named by table, column and rule...
    quarantined = [n for n in result.notes if n.startswith("quarantined")]
    assert quarantined and "opportunities.closed_at" in quarantined[0]
    assert "(1 deals)" in quarantined[0]
    # ...the months before the first sale were set aside...
    start = [n for n in result.notes if n.startswith("training starts at")]
    assert start and "the 2" in start[0]  # "the 2xx days before it"
    assert result.test["as_of"].min() > first + pd.Timedelta(days=210)
    # ...and it learned from the rest, saying both as it went
    assert result.comparison.set_index(["segment", "contender"]).loc[("all", "model"), "roc_auc"]
    assert any(line.startswith("quarantined") for line in said)
    # while an export where more than max_rejected_share of the deals break a rule trains nothing
    with pytest.raises(TooManyRejectedError, match="nothing was trained"):
        run_train(tmp_path / "funnel", replace(QUICK, forward_dates=0, max_rejected_share=0.0))


def _without_deals(tables: CrmTables, ids: pd.Series) -> CrmTables:
    """The export without these deals and every row about them."""
    gone = set(ids)
    frames = {}
    for name, frame in tables.present():
        if "opportunity_id" in frame and name != "contacts":
            frame = frame[~frame["opportunity_id"].isin(gone)]
        frames[name] = frame
    return CrmTables.from_dict(frames)


@pytest.mark.slow  # two trainings with forward tests on 5,000 deals: a minute
def test_a_win_rate_that_doubled_in_the_last_year_is_followed_forward(tmp_path):
    # given a history whose wins before its last year were half as frequent: half of them were
    # lost instead (the business doubled its win rate a year before the export)
    tables = generate_crm(
        GeneratorSettings(deals=5000, years=2.5, seed=8, export_date=EXPORT)
    ).tables
    deals = tables.opportunities.copy()
    rng = np.random.default_rng(0)
    before = (deals["status"] == "won") & (deals["closed_at"] < EXPORT - pd.Timedelta(days=365))
    lost = before & (rng.random(len(deals)) < 0.5)
    deals.loc[lost, "status"] = "lost"
    write_tables(tables.with_tables(opportunities=deals), tmp_path / "crm")
    # when trained and replayed at past dates inside the new regime
    result = run_train(tmp_path / "crm", QUICK)
    # then the forward test's mean prediction follows the new rate, within 15%
    pooled = result.forward.pooled()
    assert abs(pooled["mean_predicted"] / pooled["actual"] - 1) < 0.15, result.forward.table
    # where the labelled rows alone would lag behind it
    plain = run_train(tmp_path / "crm", replace(QUICK, recent_correction=False)).forward.pooled()
    assert abs(pooled["mean_predicted"] - pooled["actual"]) < abs(
        plain["mean_predicted"] - plain["actual"]
    )
