"""How written scores did: a generated CRM scored night by night for a year, judged by what the
full export says happened; and a world whose win rate halves half-way through that year."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features.asof import export_time, last_event
from dealscore.model.bundle import LoadedModel
from dealscore.pipeline.monitor import (
    ELAPSED,
    GONE,
    PENDING,
    monitor_table,
    realised,
    retrain_reasons,
    scored_outcomes,
)
from dealscore.pipeline.scoring import ScoreSettings, score_deals
from dealscore.schemas import CrmTables
from dealscore.schemas.scores import ScoreHistory

EXPORT = pd.Timestamp("2026-06-01", tz="UTC")  # the shared world's (year_after_training)
TRAINED = EXPORT - pd.Timedelta(days=365)  # the champion's cut-off: a year of nights follows
CHANGE = TRAINED + pd.Timedelta(days=182)  # the win rate halves for deals closing from here


def _halved(tables: CrmTables, seed: int = 0) -> CrmTables:
    """The same world, but half the deals won from CHANGE on were lost instead."""
    deals = tables.opportunities.copy()
    won = deals.index[(deals["status"] == "won") & (deals["closed_at"] >= CHANGE)]
    flipped = np.random.default_rng(seed).choice(won, size=len(won) // 2, replace=False)
    deals.loc[flipped, "status"] = "lost"
    history = tables.stage_history.copy()
    ids = set(deals.loc[flipped, "opportunity_id"])
    closing = history["opportunity_id"].isin(ids) & (history["stage"] == "closed_won")
    history.loc[closing, "stage"] = "closed_lost"
    return tables.with_tables(opportunities=deals, stage_history=history)


def _nightly(tables: CrmTables, loaded: LoadedModel) -> pd.DataFrame:
    """Every deal open at 02:00 each night of the year after training, scored from the export
    as it stood then (features see only rows dated before each as_of), as `score` writes them."""
    nights = pd.date_range(TRAINED + pd.Timedelta(days=1), EXPORT, freq="D") + pd.Timedelta(hours=2)
    ids = tables.opportunities["opportunity_id"].to_numpy()
    pairs = pd.DataFrame(
        {"opportunity_id": np.repeat(ids, len(nights)), "as_of": np.tile(nights, len(ids))}
    )
    scores, rejected, _ = score_deals(tables, loaded, pairs, ScoreSettings(), scored_at=EXPORT)
    assert rejected.empty
    return ScoreHistory.validate(scores)


@pytest.fixture(scope="module")
def worlds(year_after_training) -> dict[str, tuple[CrmTables, pd.DataFrame]]:
    """A steady world and the same world with its win rate halved from CHANGE on, each scored
    every night by one champion trained on the export as it stood a year before its end."""
    tables, loaded = year_after_training
    cutoff = pd.Timestamp(loaded.bundle.metadata["cutoff"])
    assert TRAINED - pd.Timedelta(days=2) < cutoff <= TRAINED
    changed = _halved(tables)
    return {
        "steady": (tables, _nightly(tables, loaded)),
        "changed": (changed, _nightly(changed, loaded)),
    }


def _ece(y: np.ndarray, p: np.ndarray) -> float:
    """Expected calibration error written out again: ten equal bins, |won - predicted| each."""
    total = 0.0
    for low in np.arange(10) / 10:
        inside = (p >= low) & ((p < low + 0.1) | (low == 0.9))
        total += abs(y[inside].sum() - p[inside].sum())
    return total / len(p)


def test_the_monitor_matches_an_independent_count_and_leaves_open_windows_pending(worlds):
    # given a year of nightly scores and the full export's outcomes
    tables, history = worlds["steady"]
    now = export_time(last_event(tables))
    # when the monitor joins them
    outcomes = scored_outcomes(history, tables, now)
    table = monitor_table(outcomes)
    # then a score counts only once its window (as_of + horizon) ended by the export's time...
    horizon = pd.to_timedelta(history["horizon_days"], unit="D")
    ended = (history["as_of"] + horizon <= now).to_numpy()
    assert 0 < ended.sum() < len(history)
    assert (outcomes["state"].to_numpy() == np.where(ended, ELAPSED, PENDING)).all()
    pooled = table[table["by"] == "pooled"].iloc[0]
    assert pooled["rows"] == ended.sum() and pooled["pending"] == (~ended).sum()
    # ...and its outcome is "won within the window", read from the deals as they ended
    deals = tables.opportunities.set_index("opportunity_id")
    done = history[ended]
    closed = done["opportunity_id"].map(deals["closed_at"])
    won = (done["opportunity_id"].map(deals["status"]) == "won") & (
        closed < done["as_of"] + horizon[ended]
    )
    y, p = won.to_numpy(dtype=int), done["win_probability"].to_numpy()
    assert pooled["won"] == pytest.approx(y.mean())
    assert pooled["mean_predicted"] == pytest.approx(p.mean())
    assert pooled["ece"] == pytest.approx(_ece(y, p))
    assert pooled["brier"] == pytest.approx(np.mean((p - y) ** 2))
    # and each night's row holds that night's scores alone
    night = table[(table["by"] == "as_of") & (table["rows"] > 0)].iloc[40]
    mine = (done["as_of"].dt.strftime("%Y-%m-%d") == night["group"]).to_numpy()
    assert night["rows"] == mine.sum()
    assert night["ece"] == pytest.approx(_ece(y[mine], p[mine]))
    # the three outcomes of an elapsed score are exclusive, the reps' calls sit beside
    assert (outcomes.loc[ended, ["won", "lost", "no_decision"]].sum(axis=1) == 1).all()
    assert pooled["rep_rows"] > 0.5 * pooled["rows"]


def test_deals_that_left_the_export_are_counted_and_named_not_lost(worlds):
    # given the scores, and an export from which three scored deals were deleted
    tables, history = worlds["steady"]
    gone = history["opportunity_id"].drop_duplicates().head(3).tolist()
    deals = tables.opportunities
    smaller = tables.with_tables(opportunities=deals[~deals["opportunity_id"].isin(gone)])
    # when the monitor runs
    outcomes = scored_outcomes(history, smaller, export_time(last_event(tables)))
    # then their scores are gone, not losses, and nothing else changed
    assert set(outcomes.loc[outcomes["state"] == GONE, "opportunity_id"]) == set(gone)
    assert outcomes.loc[outcomes["state"] == GONE, "won"].isna().all()
    table = monitor_table(outcomes)
    assert (
        table.loc[table["by"] == "pooled", "gone"].item()
        == history["opportunity_id"].isin(gone).sum()
    )


def _weekly_reasons(tables: CrmTables, history: pd.DataFrame) -> dict[pd.Timestamp, list[str]]:
    """What the retraining rule says each week of the year, from what was known that night: the
    scores written by then, those whose window had ended by then."""
    outcomes = scored_outcomes(history, tables, export_time(last_event(tables)))
    said = {}
    for night in pd.date_range(CHANGE - pd.Timedelta(days=70), EXPORT, freq="7D"):
        known = outcomes[outcomes["as_of"] <= night]
        known = known.assign(state=np.where(known["window_end"] <= night, known["state"], PENDING))
        check = realised(known, "1", 28)
        age = (night - TRAINED) / pd.Timedelta(days=1)
        said[night] = retrain_reasons(age, 10_000, check, 0.05)
    return said


def test_a_halved_win_rate_triggers_retraining_and_a_steady_world_does_not(worlds):
    # given both worlds scored every night by the same champion
    # when the retraining rule is asked each week, knowing only what was known that week
    steady = _weekly_reasons(*worlds["steady"])
    changed = _weekly_reasons(*worlds["changed"])
    # then the steady world never calls for a challenger...
    assert not any(steady.values()), {k: v for k, v in steady.items() if v}
    # ...and the changed one does, once the windows that straddle the change have ended, for
    # its realised calibration
    due = [night for night, reasons in changed.items() if reasons]
    assert due and all("realised ECE" in changed[night][0] for night in due)
    assert min(due) > CHANGE
