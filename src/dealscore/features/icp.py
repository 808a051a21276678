"""ICP fit as of T: the documented profile (rules) and the profile learned from closed deals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.extensions import take

from dealscore.features.catalogue import Feature, family
from dealscore.features.pit import DAY, Snapshots, asof_by_key, asof_global, micros, smoothed_rate
from dealscore.schemas.keys import lookup, positions
from dealscore.schemas.tables import Accounts, CrmTables, Opportunities, Status

SIZE_BINS = [0, 50, 200, 1000, 5000, np.inf]
SIZE_LABELS = ["1-49", "50-199", "200-999", "1000-4999", "5000+"]
# Segments of the learned profile: (name, table the attribute lives on, column).
SEGMENTS = (
    ("industry", "accounts", Accounts.industry),
    ("size_band", "accounts", Accounts.employees),
    ("region", "accounts", Accounts.region),
    ("product", "opportunities", Opportunities.product),
    ("lead_source", "opportunities", Opportunities.lead_source),
)
PRIOR_STRENGTH = 20.0  # closed deals' worth of weight on the global rate


@dataclass(frozen=True)
class IcpRule:
    """One rule of the documented ICP: an account attribute in a set or a numeric range."""

    name: str
    column: str
    values: tuple[str, ...] = ()
    between: tuple[float, float] | None = None
    weight: float = 1.0

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> IcpRule:
        unknown = set(spec) - {"name", "column", "in", "between", "weight"}
        if (
            unknown
            or "name" not in spec
            or "column" not in spec
            or ("in" in spec) == ("between" in spec)
        ):
            raise ValueError(
                f"ICP rule {spec!r}: needs name, column and exactly one of 'in' or 'between'"
                + (f"; unknown keys {sorted(unknown)}" if unknown else "")
            )
        between = tuple(float(x) for x in spec["between"]) if "between" in spec else None
        return cls(
            name=str(spec["name"]),
            column=str(spec["column"]),
            values=tuple(str(v) for v in spec.get("in", [])),
            between=between,  # type: ignore[arg-type]
            weight=float(spec.get("weight", 1.0)),
        )

    def matches(self, accounts: pd.DataFrame) -> pd.Series:
        """1.0 / 0.0 per account; missing where the attribute is missing or absent."""
        if self.column not in accounts:
            return pd.Series(np.nan, index=accounts.index)
        values = accounts[self.column]
        if self.between is not None:
            hit = pd.to_numeric(values, errors="coerce").between(*self.between)
        else:
            hit = values.astype("str").isin(self.values)
        return hit.astype(float).where(values.notna())


def parse_icp(spec: dict[str, Any]) -> tuple[IcpRule, ...]:
    """Rules from a documented ICP (the parsed YAML of an ICP file)."""
    return tuple(IcpRule.parse(rule) for rule in spec.get("rules", []))


FEATURES: list[Feature] = family(
    "icp",
    ("accounts", "opportunities"),
    icp_rule_score="weighted share of the documented ICP rules the account matches (training setting icp)",
    lookalike_win_rate="win rate of past deals whose account matches on industry, size band and region, shrunk to the industry rate",
    **{
        f"win_rate_{name}": f"share of past deals in the same {name} won within the horizon of their creation (deals created at least a horizon before as_of), shrunk to the global rate"
        for name, _, _ in SEGMENTS
    },
    **{
        f"won_value_{name}": f"log10 mean amount of past deals in the same {name} won within the horizon"
        for name, _, _ in SEGMENTS
    },
)
NAMES = [f.name for f in FEATURES]


def _deal_attributes(tables: CrmTables) -> dict[str, pd.Series | None]:
    """Each segment's attribute per deal (position-aligned with opportunities), None where the
    export lacks it; the deals' accounts are looked up once for all account attributes."""
    deals = tables.opportunities
    accounts = tables.accounts
    where = (
        positions(deals[Opportunities.account_id], accounts[Accounts.account_id])
        if accounts is not None and Opportunities.account_id in deals
        else None
    )
    out: dict[str, pd.Series | None] = {}
    for name, table, column in SEGMENTS:
        if table == "opportunities":
            out[name] = deals.get(column)
        elif where is None or accounts is None or column not in accounts:
            out[name] = None
        else:
            values = accounts[column]
            if column == Accounts.employees:
                values = (
                    pd.cut(values, SIZE_BINS, labels=SIZE_LABELS, right=False)
                    .astype("str")
                    .where(values.notna())
                )
            out[name] = pd.Series(
                take(values.array, where, allow_fill=True), index=deals.index, name=column
            )
    return out


def segment_values(tables: CrmTables, snaps: Snapshots) -> pd.DataFrame:
    """Each snapshot's segment per `SEGMENTS` name (industry, size band, region, product, lead
    source) as text; missing where the deal has none or the export lacks the attribute."""
    out = {}
    for name, values in _deal_attributes(tables).items():
        if values is None:  # not in the export: no deal has one
            values = pd.Series(pd.NA, index=tables.opportunities.index, dtype="string")
        # Taken in Arrow: no Python string per row.
        out[name] = values.astype("string").array.take(snaps.deal)
    return pd.DataFrame(out, index=range(len(snaps)))


def closed_deals(tables: CrmTables) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mask, closed time, won flag, amount) over all deals; outcomes dated by closed_at."""
    deals = tables.opportunities
    closed = deals[Opportunities.closed_at].notna().to_numpy()
    times = np.where(closed, micros(deals[Opportunities.closed_at]), 0)
    won = (deals[Opportunities.status] == Status.WON).to_numpy().astype(float)
    amount = (
        deals[Opportunities.amount].to_numpy(dtype=float)
        if Opportunities.amount in deals
        else np.full(len(deals), np.nan)
    )
    return closed, times, won, amount


def matured_outcomes(
    tables: CrmTables, maturity_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mask, time known, won flag, amount) over all deals: whether each was won within
    `maturity_days` of its creation, known from creation + maturity_days on.

    Why not "deals closed before as_of": early in a history where losses are closed months after
    wins, the closed deals are mostly wins, so such a rate is censored like a label would be.
    Every deal created at least maturity_days before as_of counts, won or not, closed or open.
    """
    deals = tables.opportunities
    created = micros(deals[Opportunities.created_at])
    known = created + int(maturity_days * DAY)
    closed_at = deals[Opportunities.closed_at]
    closed = np.where(closed_at.notna(), micros(closed_at), np.iinfo(np.int64).max)
    won = (deals[Opportunities.status] == Status.WON).to_numpy() & (closed < known)
    _, _, _, amount = closed_deals(tables)
    return np.ones(len(deals), dtype=bool), known, won.astype(float), amount


def segment_rates(
    tables: CrmTables,
    snaps: Snapshots,
    values: pd.Series,
    prior: np.ndarray,
    maturity_days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed win rate, log10 mean won amount) of each snapshot's segment, over the deals
    whose first maturity_days ended before as_of (`matured_outcomes`)."""
    closed, times, won, amount = matured_outcomes(tables, maturity_days)
    codes, _ = pd.factorize(values)  # missing -> -1: no segment, the prior stands
    won_amount = np.where(won > 0, np.nan_to_num(amount), 0.0)
    cum = asof_by_key(
        snaps.as_of,
        codes[snaps.deal],
        times[closed],
        codes[closed],
        {"won": won[closed], "n": np.ones(closed.sum()), "won_amount": won_amount[closed]},
    )
    rate = smoothed_rate(cum["won"].to_numpy(), cum["n"].to_numpy(), prior, PRIOR_STRENGTH)
    value = np.where(
        cum["won"] > 0, np.log10(1 + cum["won_amount"] / cum["won"].where(cum["won"] > 0)), np.nan
    )
    return rate, value


def global_win_rate(tables: CrmTables, snaps: Snapshots, maturity_days: float) -> np.ndarray:
    """Win rate (within maturity_days) of all deals matured before each as_of (0.5 before any)."""
    closed, times, won, _ = matured_outcomes(tables, maturity_days)
    cum = asof_global(snaps.as_of, times[closed], {"won": won[closed], "n": np.ones(closed.sum())})
    return smoothed_rate(cum["won"].to_numpy(), cum["n"].to_numpy(), np.full(len(snaps), 0.5), 2.0)


def icp_features(
    tables: CrmTables, snaps: Snapshots, rules: tuple[IcpRule, ...], maturity_days: float
) -> pd.DataFrame:
    """Documented ICP match and the learned segment profile."""
    out = pd.DataFrame(index=range(len(snaps)), columns=NAMES, dtype=float)
    prior = global_win_rate(tables, snaps, maturity_days)
    attributes = _deal_attributes(tables)
    for name, values in attributes.items():
        if values is None:
            continue
        rate, value = segment_rates(tables, snaps, values, prior, maturity_days)
        out[f"win_rate_{name}"] = rate
        out[f"won_value_{name}"] = value
    lookalike = [attributes[name] for name, _, _ in SEGMENTS[:3]]
    if all(values is not None for values in lookalike):
        out["lookalike_win_rate"], _ = segment_rates(
            tables,
            snaps,
            _joint([v for v in lookalike if v is not None]),
            out["win_rate_industry"].to_numpy(),
            maturity_days,
        )
    out["icp_rule_score"] = rule_scores(tables, rules)[snaps.deal]
    return out


def _joint(attributes: list[pd.Series]) -> pd.Series:
    """One key per combination of the attributes (missing where any is), as a number: the
    attributes' codes combined, not their text joined row by row."""
    key = np.zeros(len(attributes[0]), dtype=np.int64)
    missing = np.zeros(len(key), dtype=bool)
    for values in attributes:
        codes, uniques = pd.factorize(values)
        key = key * (len(uniques) + 1) + codes
        missing |= codes < 0
    return pd.Series(np.where(missing, np.nan, key), index=attributes[0].index)


def rule_scores(tables: CrmTables, rules: tuple[IcpRule, ...]) -> np.ndarray:
    """Weighted share of the documented ICP rules each deal's account matches (a missing
    attribute is no match); NaN where the deal has no account or there are no rules."""
    deals = tables.opportunities
    if not rules or tables.accounts is None or Opportunities.account_id not in deals:
        return np.full(len(deals), np.nan)
    accounts = tables.accounts.set_index(Accounts.account_id)
    matched = sum(rule.weight * rule.matches(accounts).fillna(0.0) for rule in rules)
    score = matched / sum(rule.weight for rule in rules)
    return lookup(deals[Opportunities.account_id], score).to_numpy(dtype=float)
