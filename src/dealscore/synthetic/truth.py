"""The ceiling on generated data: P(won within H days | the deal's hidden state at as_of).

The forward process is Markov and everything visible is drawn from its state and independent
noise, so no model reading the export can beat this probability on average (docs/synthetic.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.schemas.features import OPPORTUNITY_ID
from dealscore.synthetic.generator import GeneratorSettings
from dealscore.synthetic.process import CLOSED_WON, health_index

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Truth:
    """What `dealscore generate` keeps beside the export: per deal, its hidden path, the knobs."""

    deals: pd.DataFrame  # truth.parquet, one row per deal in generation order
    path: pd.DataFrame  # truth_path.parquet
    settings: GeneratorSettings


def ceiling(truth: Truth, keys: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """For (opportunity_id, as_of) rows: `p_star` (from the state at as_of) and `p_creation`.

    `p_creation` reads the deal's state at creation as if nothing had happened since: what could
    be known on its first day. A deal already decided at as_of (its close not yet recorded) has
    p_star 1 or 0.
    """
    settings, chain = truth.settings, truth.settings.chain()
    start = settings.start
    code = pd.Series(np.arange(len(truth.deals)), index=truth.deals[OPPORTUNITY_ID])
    deal = code.reindex(keys[OPPORTUNITY_ID]).to_numpy()
    if np.isnan(deal).any():
        raise ValueError("ceiling: some opportunity_id values are not in the truth file")
    deal = deal.astype(np.int32)
    at = ((pd.to_datetime(keys["as_of"], utc=True) - start) / DAY).to_numpy(dtype=float)
    asks = pd.DataFrame({"deal": deal, "t": at, "row": np.arange(len(keys))})
    path = pd.DataFrame(
        {
            "deal": code.reindex(truth.path[OPPORTUNITY_ID]).to_numpy().astype(np.int32),
            "t": ((truth.path["t"] - start) / DAY).to_numpy(dtype=float),
            "health": health_index(truth.path["health"].to_numpy()),
            "stage": truth.path["stage"].to_numpy(),
        }
    )
    state = pd.merge_asof(
        asks.sort_values("t", kind="stable"),
        path.sort_values("t", kind="stable"),
        on="t",
        by="deal",
        direction="backward",
    ).sort_values("row")
    if state["stage"].isna().any():
        raise ValueError("ceiling: an as_of falls before its deal was created")
    stage = state["stage"].to_numpy().astype(np.int64)
    health = state["health"].to_numpy().astype(np.int64)
    deals = truth.deals
    klass = deals["speed_class"].to_numpy()[deal]
    stage0 = deals["stage0"].to_numpy()[deal]
    health0 = health_index(deals["health0"].to_numpy())[deal]
    closed = ((deals["eventual_closed_at"] - start) / DAY).to_numpy(dtype=float)[deal]
    decided_won = (stage == CLOSED_WON) & (closed < at + horizon_days)
    p_star = np.where(stage > CLOSED_WON - 1, decided_won.astype(float), np.nan)
    p_creation = np.empty(len(keys))
    for value in np.unique(at):
        rows = at == value
        table = chain.within(float(value), horizon_days)
        open_ = rows & (stage < CLOSED_WON)
        p_star[open_] = table[klass[open_], stage[open_], health[open_]]
        p_creation[rows] = table[klass[rows], stage0[rows], health0[rows]]
    return pd.DataFrame(
        {"p_star": np.clip(p_star, 0, 1), "p_creation": np.clip(p_creation, 0, 1)}, index=keys.index
    )
