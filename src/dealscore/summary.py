"""A one-screen summary of a CRM export: size, outcomes, win rate, open pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dealscore.schemas.tables import TIMESTAMP_DTYPE, CrmTables, Opportunities, Status


@dataclass(frozen=True)
class CrmSummary:
    rows: dict[str, int]
    status_counts: dict[str, int]
    win_rate: float | None  # won / all closed (lost and no_decision count as not won)
    open_count: int
    open_value: float | None  # sum of open deals' amounts; None without an amount column
    first_created: pd.Timestamp | None
    last_created: pd.Timestamp | None

    def to_text(self) -> str:
        width = max(len(name) for name in self.rows)
        lines = ["tables:"]
        lines += [f"  {name:<{width}}  {count:>12,} rows" for name, count in self.rows.items()]
        outcomes = ", ".join(f"{s} {c:,}" for s, c in self.status_counts.items())
        lines.append(f"deals: {outcomes}")
        if self.first_created is None or self.last_created is None:
            lines.append("created: no readable date")
        else:
            lines.append(f"created: {self.first_created:%Y-%m-%d} .. {self.last_created:%Y-%m-%d}")
        lines.append(
            "win rate (won / closed): "
            + ("n/a" if self.win_rate is None else f"{self.win_rate:.1%}")
        )
        value = "" if self.open_value is None else f", value {self.open_value:,.0f}"
        lines.append(f"open pipeline: {self.open_count:,} deals{value}")
        return "\n".join(lines)


def summarise(tables: CrmTables) -> CrmSummary:
    """Summary of validated tables. A column that is missing, or whose values could not be read
    (the table lacks a required column, so the rest was not checked), counts as unknown."""
    deals = tables.opportunities
    status = deals.get(Opportunities.status, pd.Series("", index=deals.index))
    counts = {s.value: int((status == s).sum()) for s in Status}
    closed = counts["won"] + counts["lost"] + counts["no_decision"]
    is_open = status == Status.OPEN
    open_value = (
        float(pd.to_numeric(deals.loc[is_open, Opportunities.amount], errors="coerce").sum())
        if Opportunities.amount in deals
        else None
    )
    created = deals.get(Opportunities.created_at, pd.Series(dtype=TIMESTAMP_DTYPE))
    if not isinstance(created.dtype, pd.DatetimeTZDtype):
        created = pd.Series(dtype=TIMESTAMP_DTYPE)  # not coerced: nothing known
    created = created.dropna()
    return CrmSummary(
        rows={name: len(frame) for name, frame in tables.present()},
        status_counts=counts,
        win_rate=counts["won"] / closed if closed else None,
        open_count=int(is_open.sum()),
        open_value=open_value,
        first_created=created.min() if len(created) else None,
        last_created=created.max() if len(created) else None,
    )
