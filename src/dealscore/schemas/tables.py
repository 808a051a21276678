"""The input data contract: one Pandera model per CRM table (DESIGN.md section 3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

# All times are UTC; microseconds are pandas 3's native resolution for parsed timestamps.
UtcTimestamp = Annotated[pd.DatetimeTZDtype, "us", "UTC"]
TIMESTAMP_DTYPE = pd.DatetimeTZDtype("us", "UTC")


def utc(value: pd.Timestamp | str) -> pd.Timestamp:
    """A time as a UTC Timestamp; a naive one is taken as UTC (the contract's times all are)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# Beyond these a value is a placeholder or a unit slip (9999-12-31, 1e308), not a fact.
LATEST = pd.Timestamp("2100-01-01", tz="UTC")
MAX_AMOUNT = 1e13


class Status(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    NO_DECISION = "no_decision"


class ActivityType(StrEnum):
    EMAIL = "email"
    CALL = "call"
    MEETING = "meeting"
    DEMO = "demo"
    OTHER = "other"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    UNKNOWN = "unknown"


class Seniority(StrEnum):
    EXECUTIVE = "executive"
    VP = "vp"
    DIRECTOR = "director"
    MANAGER = "manager"
    INDIVIDUAL = "individual"


class ContactRole(StrEnum):
    DECISION_MAKER = "decision_maker"
    CHAMPION = "champion"
    INFLUENCER = "influencer"
    USER = "user"


class ForecastCategory(StrEnum):
    COMMIT = "commit"
    BEST_CASE = "best_case"
    PIPELINE = "pipeline"
    OMITTED = "omitted"


# A stage-history row logged at the moment a deal closes may carry CRM's own "closed" category.
HISTORY_FORECAST_CATEGORIES = [*ForecastCategory, "closed"]


def values(enum: type[StrEnum]) -> list[str]:
    """The allowed string values of an enum."""
    return [member.value for member in enum]


class _Contract(pa.DataFrameModel):
    class Config:
        coerce = True
        strict = False  # extra columns (custom ICP attributes, CRM fields) are kept


class Opportunities(_Contract):
    """One row per deal, its current state as of the export."""

    opportunity_id: Series[str] = pa.Field(unique=True)
    name: Series[str] | None = pa.Field(nullable=True)  # for people: reports show it
    created_at: Series[UtcTimestamp] = pa.Field(le=LATEST)
    status: Series[str] = pa.Field(isin=values(Status))
    closed_at: Series[UtcTimestamp] = pa.Field(le=LATEST, nullable=True)
    account_id: Series[str] | None = pa.Field(nullable=True)
    owner_id: Series[str] | None = pa.Field(nullable=True)
    amount: Series[float] | None = pa.Field(ge=0, le=MAX_AMOUNT, nullable=True)
    close_date: Series[UtcTimestamp] | None = pa.Field(le=LATEST, nullable=True)
    stage: Series[str] | None = pa.Field(nullable=True)
    product: Series[str] | None = pa.Field(nullable=True)
    lead_source: Series[str] | None = pa.Field(nullable=True)
    deal_type: Series[str] | None = pa.Field(nullable=True)
    loss_reason: Series[str] | None = pa.Field(nullable=True)

    @pa.dataframe_check(name="closed_at_set_iff_closed")
    def closed_at_set_iff_closed(cls, df: pd.DataFrame) -> Series[bool]:
        return df[cls.closed_at].isna() == (df[cls.status] == Status.OPEN)

    @pa.dataframe_check(name="closed_at_not_before_created_at")
    def closed_after_created(cls, df: pd.DataFrame) -> Series[bool]:
        # An unparseable created_at is reported on its own; don't report it twice.
        unknown = df[cls.closed_at].isna() | df[cls.created_at].isna()
        return unknown | (df[cls.closed_at] >= df[cls.created_at])


class Accounts(_Contract):
    account_id: Series[str] = pa.Field(unique=True)
    name: Series[str] | None = pa.Field(nullable=True)
    industry: Series[str] | None = pa.Field(nullable=True)
    employees: Series[float] | None = pa.Field(ge=0, le=1e8, nullable=True)
    annual_revenue: Series[float] | None = pa.Field(ge=0, le=MAX_AMOUNT * 100, nullable=True)
    country: Series[str] | None = pa.Field(nullable=True)
    region: Series[str] | None = pa.Field(nullable=True)
    created_at: Series[UtcTimestamp] | None = pa.Field(le=LATEST, nullable=True)


class StageHistory(_Contract):
    """Each row is the deal's state from changed_at on."""

    opportunity_id: Series[str]
    changed_at: Series[UtcTimestamp] = pa.Field(le=LATEST)
    stage: Series[str]
    amount: Series[float] | None = pa.Field(ge=0, le=MAX_AMOUNT, nullable=True)
    close_date: Series[UtcTimestamp] | None = pa.Field(le=LATEST, nullable=True)
    forecast_category: Series[str] | None = pa.Field(
        isin=HISTORY_FORECAST_CATEGORIES, nullable=True
    )
    probability: Series[float] | None = pa.Field(ge=0, le=1, nullable=True)


class Activities(_Contract):
    occurred_at: Series[UtcTimestamp] = pa.Field(le=LATEST)
    type: Series[str] = pa.Field(isin=values(ActivityType))
    opportunity_id: Series[str] | None = pa.Field(nullable=True)
    account_id: Series[str] | None = pa.Field(nullable=True)
    activity_id: Series[str] | None = pa.Field(unique=True, nullable=True)
    contact_id: Series[str] | None = pa.Field(nullable=True)
    direction: Series[str] | None = pa.Field(isin=values(Direction), nullable=True)
    # When the row was logged or booked: a meeting booked on Monday for Friday is known from
    # Monday; a call logged the day after is known from then. Missing: known at occurred_at.
    created_at: Series[UtcTimestamp] | None = pa.Field(le=LATEST, nullable=True)

    @pa.dataframe_check(name="linked_to_opportunity_or_account")
    def linked(cls, df: pd.DataFrame) -> Series[bool]:
        linked = pd.Series(False, index=df.index)
        for column in (cls.opportunity_id, cls.account_id):
            if column in df:
                linked |= df[column].notna()
        return linked


class Contacts(_Contract):
    contact_id: Series[str] = pa.Field(unique=True)
    account_id: Series[str]
    title: Series[str] | None = pa.Field(nullable=True)
    seniority: Series[str] | None = pa.Field(isin=values(Seniority), nullable=True)
    role: Series[str] | None = pa.Field(isin=values(ContactRole), nullable=True)


class Forecasts(_Contract):
    opportunity_id: Series[str]
    submitted_at: Series[UtcTimestamp] = pa.Field(le=LATEST)
    forecast_category: Series[str] = pa.Field(isin=values(ForecastCategory))
    probability: Series[float] | None = pa.Field(ge=0, le=1, nullable=True)
    amount: Series[float] | None = pa.Field(ge=0, le=MAX_AMOUNT, nullable=True)
    period: Series[str] | None = pa.Field(nullable=True)


class Owners(_Contract):
    owner_id: Series[str] = pa.Field(unique=True)
    name: Series[str] | None = pa.Field(nullable=True)
    team: Series[str] | None = pa.Field(nullable=True)
    manager_id: Series[str] | None = pa.Field(nullable=True)
    region: Series[str] | None = pa.Field(nullable=True)
    hired_at: Series[UtcTimestamp] | None = pa.Field(le=LATEST, nullable=True)


# Labels of a few values on the largest tables (17M activities on a million deals), and the ids
# that repeat over their rows (a deal's, a contact's, an account's): a reader may give them as
# categoricals (a byte or a few a row, not a string each), kept so through validation, which
# checks their values as text. Not an activity's own id: each is its own value.
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "activities": (
        Activities.type,
        Activities.direction,
        Activities.opportunity_id,
        Activities.contact_id,
        Activities.account_id,
    ),
    "stage_history": (
        StageHistory.forecast_category,
        StageHistory.stage,
        StageHistory.opportunity_id,
    ),
    "forecasts": (Forecasts.forecast_category, Forecasts.opportunity_id),
}
TABLE_MODELS: dict[str, type[_Contract]] = {
    "opportunities": Opportunities,
    "accounts": Accounts,
    "stage_history": StageHistory,
    "activities": Activities,
    "contacts": Contacts,
    "forecasts": Forecasts,
    "owners": Owners,
}
TABLE_NAMES: tuple[str, ...] = tuple(TABLE_MODELS)


def coverage_of(filled: dict[str, list[str]]) -> tuple[str, ...]:
    """`table.column` of each column holding a value (`filled`, by table), in contract order."""
    return tuple(f"{name}.{column}" for name in TABLE_NAMES for column in filled.get(name, []))


@dataclass(frozen=True)
class CrmTables:
    """A CRM export in contract form; only opportunities is mandatory."""

    opportunities: pd.DataFrame
    accounts: pd.DataFrame | None = None
    stage_history: pd.DataFrame | None = None
    activities: pd.DataFrame | None = None
    contacts: pd.DataFrame | None = None
    forecasts: pd.DataFrame | None = None
    owners: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        # An optional table without rows (a header-only CSV, an export cut at an early date) is
        # a missing one: features and baselines then say "unknown", as for an absent file.
        for field in fields(self)[1:]:
            frame = getattr(self, field.name)
            if frame is not None and len(frame) == 0:
                object.__setattr__(self, field.name, None)

    def present(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """(name, frame) for each table the export has, in contract order."""
        for field in fields(self):
            frame = getattr(self, field.name)
            if frame is not None:
                yield field.name, frame

    def get(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)

    def fingerprint(self) -> str:
        """A content hash of every table present (names, columns, row order and values)."""
        digest = hashlib.sha256()
        for name, frame in self.present():
            digest.update(name.encode())
            digest.update(",".join(map(str, frame.columns)).encode())
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        return digest.hexdigest()[:16]

    def coverage(self) -> tuple[str, ...]:
        """Every `table.column` holding at least one value: what the export can tell a model.
        Two exports of one CRM share it; another CRM's (no forecasts, no stage history) differs."""
        return coverage_of(
            {
                name: [column for column in frame.columns if frame[column].notna().any()]
                for name, frame in self.present()
            }
        )

    def with_tables(self, **frames: pd.DataFrame | None) -> CrmTables:
        """A copy with some tables replaced."""
        return replace(self, **frames)

    @classmethod
    def from_dict(cls, frames: dict[str, pd.DataFrame]) -> CrmTables:
        unknown = set(frames) - set(TABLE_NAMES)
        if unknown:
            raise ValueError(f"unknown table(s) {sorted(unknown)}; the contract has {TABLE_NAMES}")
        if "opportunities" not in frames:
            raise ValueError("the export has no 'opportunities' table, the one mandatory table")
        return cls(**frames)


def coverage_change(model: tuple[str, ...] | None, export: tuple[str, ...]) -> str:
    """What a model's training export had that this one lacks, and the reverse; "" when they
    match (or the model predates coverage)."""
    if model is None:
        return ""
    lacks = [c for c in model if c not in set(export)]
    extra = [c for c in export if c not in set(model)]
    parts = [
        f"{what} {len(cols)} column(s) ({', '.join(cols[:4])}{', ...' if len(cols) > 4 else ''})"
        for what, cols in (("lacks", lacks), ("adds", extra))
        if cols
    ]
    return (
        ("this export " + " and ".join(parts) + " against the model's training data")
        if parts
        else ""
    )
