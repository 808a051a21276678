"""What moved in the quarter's pipeline between two dates, and why each deal's probability did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features.asof import tables_as_of
from dealscore.pipeline.moves import MOVES, deal_moves
from dealscore.pipeline.training import TrainSettings, fit_recipe
from dealscore.schemas import Opportunities
from dealscore.synthetic import GeneratorSettings, generate_crm

SINCE = pd.Timestamp("2026-02-10", tz="UTC")
AS_OF = pd.Timestamp("2026-02-17", tz="UTC")
QUARTER = (pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-04-01", tz="UTC"))


@pytest.fixture(scope="module")
def world():
    """A small generated CRM and a linear model trained on it as of AS_OF."""
    tables = generate_crm(
        GeneratorSettings(
            deals=2500, years=2.0, seed=4, export_date=pd.Timestamp("2026-06-01", tz="UTC")
        )
    ).tables
    settings = TrainSettings(icp="", ladder=("logistic_regression",), forward_dates=0)
    ladder, state = fit_recipe(tables_as_of(tables, AS_OF), settings)
    return tables, ladder.model, state


def moves_of(tables, model, state):
    return deal_moves(tables, model, state, list(model.feature_names_in_), *QUARTER, SINCE, AS_OF)


def test_the_moves_take_the_pipeline_from_then_to_now(world):
    tables, model, state = world
    # when
    moves = moves_of(tables, model, state)
    # then every move is counted, and the pipeline then plus the moves is the pipeline now
    assert list(moves.flow["move"]) == list(MOVES)
    assert moves.start + moves.flow["amount"].sum() == pytest.approx(moves.end)
    flow = moves.flow.set_index("move")
    assert flow.loc["won", "deals"] > 0 and flow.loc["won", "amount"] < 0
    assert flow.loc["new", "amount"] >= 0 and flow.loc["pushed out", "amount"] <= 0


def test_the_moves_read_nothing_after_as_of(world):
    tables, model, state = world
    # given the export as it stood at as_of, and the whole export
    full = moves_of(tables, model, state)
    past = moves_of(tables_as_of(tables, AS_OF), model, state)
    # then the moves and the deals' probabilities are the same
    pd.testing.assert_frame_equal(full.flow, past.flow)
    pd.testing.assert_frame_equal(full.deals, past.deals)


def test_each_deal_says_why_its_probability_moved(world):
    tables, model, state = world
    moves = moves_of(tables, model, state)
    deals = moves.deals
    # then deals open at both dates have both probabilities, ordered by the amount at stake
    assert deals["opportunity_id"].is_unique and len(deals) > 20
    stake = deals["stake"].abs().to_numpy()
    assert (np.diff(stake) <= 1e-9).all()
    # and a deal whose probability moved names the factors that moved it, up or down
    moved = deals[(deals["p_now"] - deals["p_then"]).abs() > 0.01]
    assert len(moved) > 0
    assert moved["change_reason"].str.match(r"^(up|down): ").all()
    assert not moved["change_reason"].str.contains("None|nan").any()
    # and a deal created after since is not among them
    created = deals["opportunity_id"].map(
        tables.opportunities.set_index(Opportunities.opportunity_id)[Opportunities.created_at]
    )
    assert (created < SINCE).all()
    with pytest.raises(ValueError, match="before"):
        deal_moves(tables, model, state, list(model.feature_names_in_), *QUARTER, AS_OF, SINCE)
