"""What moved in a quarter's pipeline between two dates (this week against last), as Dynamics 365
shows it, and why each deal's probability moved, in the seller's words of the reasons.

The pipeline at a date: the deals open then whose expected close (as known then) falls in the
quarter, at their amounts then. Between `since` and `as_of` a deal of either pipeline moved one
way: won or lost (closed in between), pushed out (still open, now due after the quarter),
pulled in (open at `since` but due later then), new (created in between), or stayed (its amount
may have changed). The pipeline at `since` plus the moves is the pipeline at `as_of`, to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dealscore.explain.factors import change_reasons
from dealscore.features import build_features
from dealscore.features.build import FeatureState
from dealscore.features.deal import amount_as_of
from dealscore.model.estimator import WinProbabilityModel
from dealscore.pipeline.periods import deal_labels, due_in, expected_close
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.schemas.features import OPPORTUNITY_ID

MOVES = ("won", "lost", "pushed out", "pulled in", "new", "amount changed")
TOP_MOVERS = 10


@dataclass(frozen=True)
class Moves:
    since: pd.Timestamp
    as_of: pd.Timestamp
    flow: pd.DataFrame  # move, deals, amount: from the pipeline at since to the one at as_of
    start: float  # the pipeline's amount at since
    end: float  # ... and at as_of
    # per deal open at both dates: p_then, p_now, amount, change_reason, deal and owner names
    deals: pd.DataFrame

    def top(self, count: int = TOP_MOVERS) -> pd.DataFrame:
        """The deals whose probability moved most, by the amount it moved."""
        return self.deals[self.deals["p_now"] != self.deals["p_then"]].head(count)

    def summary(self, count: int = TOP_MOVERS) -> dict[str, Any]:
        """The moves as plain records, as the report and `compare --json` show them."""
        top = self.top(count)[
            [OPPORTUNITY_ID, "deal", "owner", "amount", "p_then", "p_now", "change_reason"]
        ]
        return {
            "since": self.since,
            "start": self.start,
            "end": self.end,
            "flow": self.flow.to_dict("records"),
            "top": top.to_dict("records"),
        }


def _pipeline(
    tables: CrmTables,
    as_of: pd.Timestamp,
    state: FeatureState,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """Every deal open at as_of, its features, amount then and whether it is due in [start, end)."""
    features = build_features(tables, as_of, state)
    return features.assign(
        amount=np.nan_to_num(amount_as_of(features)),
        due=due_in(expected_close(features), start, end),
    ).set_index(OPPORTUNITY_ID)


def _flow(
    tables: CrmTables,
    before: pd.DataFrame,
    after: pd.DataFrame,
    since: pd.Timestamp,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """How the pipeline due in the quarter went from `before` to `after`: won, lost, pushed out,
    pulled in, new and amount changed, with deals and amounts (then + moves = now)."""
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    closed = deals.reindex(before.index)[Opportunities.closed_at]
    status = deals.reindex(before.index)[Opportunities.status]
    closed_between = closed.notna() & (closed < as_of)
    won = before.index[closed_between & (status == Status.WON)]
    lost = before.index[closed_between & (status != Status.WON)]
    still = before.index[~closed_between]
    pushed = still.difference(after.index)
    stayed = still.intersection(after.index)
    arrived = after.index.difference(before.index)
    new = arrived[arrived.isin(deals.index[deals[Opportunities.created_at] >= since])]
    pulled = arrived.difference(new)
    changed = after.loc[stayed, "amount"] - before.loc[stayed, "amount"]
    return pd.DataFrame(
        [
            ("won", len(won), -before.loc[won, "amount"].sum()),
            ("lost", len(lost), -before.loc[lost, "amount"].sum()),
            ("pushed out", len(pushed), -before.loc[pushed, "amount"].sum()),
            ("pulled in", len(pulled), after.loc[pulled, "amount"].sum()),
            ("new", len(new), after.loc[new, "amount"].sum()),
            ("amount changed", int((changed.abs() > 0).sum()), changed.sum()),
        ],
        columns=["move", "deals", "amount"],
    )


def _movers(
    tables: CrmTables,
    estimator: WinProbabilityModel,
    state: FeatureState,
    names: list[str],
    then: pd.DataFrame,
    now: pd.DataFrame,
) -> pd.DataFrame:
    """Each deal open at both dates: its probability then and now, why it moved, the amount at
    stake, its name and owner; the largest stakes first."""
    both = then.index.intersection(now.index)
    p_then = estimator.predict_proba(then.loc[both, names])[:, 1] if len(both) else np.empty(0)
    p_now = estimator.predict_proba(now.loc[both, names])[:, 1] if len(both) else np.empty(0)
    movers = pd.DataFrame(
        {
            OPPORTUNITY_ID: both,
            "amount": now.loc[both, "amount"].to_numpy(),
            "p_then": p_then,
            "p_now": p_now,
            "due": now.loc[both, "due"].to_numpy(),
        }
    )
    movers["change_reason"] = change_reasons(estimator, names, then.loc[both], now.loc[both], state)
    movers["stake"] = (movers["p_now"] - movers["p_then"]) * movers["amount"]
    labels = deal_labels(tables, movers[OPPORTUNITY_ID])
    movers = movers.assign(deal=labels["deal"], owner=labels["owner"])
    return movers.sort_values("stake", key=np.abs, ascending=False, ignore_index=True)


def deal_moves(
    tables: CrmTables,
    estimator: WinProbabilityModel,
    state: FeatureState,
    names: list[str],
    period_start: pd.Timestamp,
    period_end: pd.Timestamp,
    since: pd.Timestamp,
    as_of: pd.Timestamp,
) -> Moves | None:
    """The quarter's pipeline at `since` and at `as_of`, the moves between them, and per deal
    open at both its probability then and now, why it moved, its name and owner. Features at
    each date see only what was known then (build_features), so the same export serves both.
    None when the export starts after `since`: there was no pipeline then to compare with."""
    if since >= as_of:
        raise ValueError(f"since ({since}) must be before as_of ({as_of})")
    if since <= tables.opportunities[Opportunities.created_at].min():
        return None
    then = _pipeline(tables, since, state, period_start, period_end)
    now = _pipeline(tables, as_of, state, period_start, period_end)
    before, after = then[then["due"]], now[now["due"]]
    movers = _movers(tables, estimator, state, names, then, now)
    return Moves(
        since,
        as_of,
        _flow(tables, before, after, since, as_of),
        float(before["amount"].sum()),
        float(after["amount"].sum()),
        movers,
    )
