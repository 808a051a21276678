"""Quarantine: an export with every row that breaks a row rule taken out, with the deals those
rows touched, so the rest can be scored."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.schemas.contract import validate_tables
from dealscore.schemas.keys import contains
from dealscore.schemas.report import ContractError, RowFailure, ValidationReport
from dealscore.schemas.tables import (
    Accounts,
    Activities,
    Contacts,
    CrmTables,
    Opportunities,
    Owners,
)


@dataclass(frozen=True)
class Quarantined:
    """An export with every row that breaks a row rule taken out, and the deals it touched."""

    tables: CrmTables  # valid: what is left
    # One row per opportunities row taken out (a repeated id twice, a missing id too):
    # opportunity_id (missing when the export has none), row (its 1-based position in the
    # export's opportunities table), created_at and closed_at where they can be trusted (empty
    # when unreadable or when the row broke a rule on them, or on the status), reason.
    deals: pd.DataFrame
    dropped: dict[str, int]  # rows taken out per table
    report: ValidationReport  # the export as it came: every problem, as `validate` says

    @property
    def share(self) -> float:
        """The share of the export's deals taken out."""
        total = len(self.tables.opportunities) + len(self.deals)
        return len(self.deals) / total if total else 0.0

    def describe(self) -> str:
        """What was taken out, by table and by rule: "" when nothing was."""
        if self.deals.empty:
            return ""
        rows = ", ".join(f"{n:,} {name} rows" for name, n in self.dropped.items() if n)
        rules = "; ".join(
            f"{rule} ({n:,} deal{'s' if n > 1 else ''})"
            for rule, n in self.deals["reason"].value_counts().items()
        )
        return (
            f"quarantined {rows} ({len(self.deals):,} deals) that break the data contract: "
            f"{rules}; `validate` lists them"
        )


def _touched_deals(tables: CrmTables, table: str, bad: pd.DataFrame) -> pd.Series:
    """The deals whose features a broken row would make wrong."""
    deals = tables.opportunities
    if Opportunities.opportunity_id in bad and table != "contacts":
        ids = bad[Opportunities.opportunity_id].dropna()
    else:
        ids = pd.Series(dtype=object)
    if table in ("accounts", "activities") and Accounts.account_id in bad:
        no_deal = (
            bad[Activities.opportunity_id].isna()
            if table == "activities"
            else pd.Series(True, index=bad.index)
        )
        accounts = bad.loc[no_deal, Accounts.account_id].dropna()
        if Opportunities.account_id in deals:
            mask = contains(deals[Opportunities.account_id], accounts)
            ids = pd.concat([ids, deals.loc[mask, Opportunities.opportunity_id]])
    if table == "owners" and Opportunities.owner_id in deals:
        mask = contains(deals[Opportunities.owner_id], bad[Owners.owner_id])
        ids = pd.concat([ids, deals.loc[mask, Opportunities.opportunity_id]])
    if table == "contacts" and tables.activities is not None:
        acts = tables.activities
        touched = acts[contains(acts[Activities.contact_id], bad[Contacts.contact_id])]
        ids = pd.concat([ids, touched[Activities.opportunity_id].dropna()])
    return ids.astype(str).drop_duplicates()


# A deal's own row that breaks a rule on one of these columns cannot say when it was created, or
# whether (and when) it closed: a broken status leaves a close date unexplained.
UNTRUSTED_DATES: dict[str, tuple[str, ...]] = {
    Opportunities.created_at: (Opportunities.created_at,),
    Opportunities.closed_at: (Opportunities.closed_at, Opportunities.status),
}


class _OwnRows:
    """The opportunities rows that broke a rule themselves: their first reason, and which of
    their dates cannot be trusted."""

    def __init__(self) -> None:
        self.reasons: list[pd.Series] = []
        self.untrusted = {column: pd.Index([]) for column in UNTRUSTED_DATES}

    def add(self, failure: RowFailure, rows: pd.Index, reason: str) -> None:
        self.reasons.append(pd.Series(reason, index=rows, dtype=object))
        columns = failure.column.split("/")
        for date, rules_on in UNTRUSTED_DATES.items():
            if any(c in columns for c in rules_on):
                self.untrusted[date] = self.untrusted[date].union(rows)

    def taken_out(
        self, export: pd.DataFrame, kept: pd.DataFrame, reasons: dict[str, str]
    ) -> pd.DataFrame:
        """Each row of the export's opportunities that is not kept, with its position, the dates
        that can be trusted and the reason: by its id's first reason, else by its own row's."""
        out = ~export.index.isin(kept.index)
        taken = export[out]
        ids = taken[Opportunities.opportunity_id]
        by_row = pd.concat(self.reasons) if self.reasons else pd.Series(dtype=object)
        by_row = by_row[~by_row.index.duplicated()]
        reason = ids.map(reasons).fillna(by_row.reindex(taken.index))
        dates = {
            date: taken[date].where(~taken.index.isin(self.untrusted[date]))
            for date in UNTRUSTED_DATES
        }
        return pd.DataFrame(
            {
                Opportunities.opportunity_id: ids,
                "row": np.flatnonzero(out) + 1,
                **dates,
                "reason": reason,
            }
        ).reset_index(drop=True)


def quarantine(tables: CrmTables, rounds: int = 4) -> Quarantined:
    """Take out every row that breaks a row rule (a value, a key, a link, a date after the
    close) and every row of each deal it touches, until the rest is valid.

    Table-level errors (a required column missing) cannot be quarantined: ContractError."""
    rows: list[RowFailure] = []
    checked, now = validate_tables(tables, rows)
    first, report = checked, now  # the export as it came; a valid one is checked once only
    reasons: dict[str, str] = {}
    own = _OwnRows()
    dropped = {name: 0 for name, _ in tables.present()}
    for _ in range(rounds):
        if now.ok:
            deals = own.taken_out(first.opportunities, checked.opportunities, reasons)
            return Quarantined(checked, deals, dropped, report)
        if not rows:
            raise ContractError(now)
        bad_rows: dict[str, pd.Index] = {}
        for failure in rows:
            frame = checked.get(failure.table)
            assert frame is not None  # a failure names a table the export has
            bad = frame.loc[frame.index.intersection(failure.rows)]
            reason = f"{failure.table}.{failure.column}: {failure.rule}"
            for deal in _touched_deals(checked, failure.table, bad):
                reasons.setdefault(deal, reason)
            if failure.table == "opportunities":
                own.add(failure, bad.index, reason)
            bad_rows[failure.table] = bad_rows.get(failure.table, pd.Index([])).union(bad.index)
        kept = {}
        for name, frame in checked.present():
            keep = ~frame.index.isin(bad_rows.get(name, pd.Index([])))
            if Opportunities.opportunity_id in frame and name != "contacts":
                keep &= ~contains(frame[Opportunities.opportunity_id], pd.Index(list(reasons)))
            dropped[name] += int((~keep).sum())
            kept[name] = frame[keep]
        # What is left is checked again from scratch: dropping rows can orphan others.
        rows = []
        checked, now = validate_tables(CrmTables.from_dict(kept), rows)
    raise ContractError(now)
