"""Data contracts: one Pandera model per stage boundary, plus cross-table validation."""

from dealscore.schemas.contract import require_valid, validate_tables
from dealscore.schemas.report import ContractError, Issue, Severity, ValidationReport
from dealscore.schemas.tables import (
    TABLE_MODELS,
    TABLE_NAMES,
    Accounts,
    Activities,
    ActivityType,
    ContactRole,
    Contacts,
    CrmTables,
    Direction,
    ForecastCategory,
    Forecasts,
    Opportunities,
    Owners,
    Seniority,
    StageHistory,
    Status,
)

__all__ = [
    "TABLE_MODELS",
    "TABLE_NAMES",
    "Accounts",
    "Activities",
    "ActivityType",
    "ContactRole",
    "Contacts",
    "ContractError",
    "CrmTables",
    "Direction",
    "ForecastCategory",
    "Forecasts",
    "Issue",
    "Opportunities",
    "Owners",
    "Seniority",
    "Severity",
    "StageHistory",
    "Status",
    "ValidationReport",
    "require_valid",
    "validate_tables",
]
