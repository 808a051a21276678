"""Typed, frozen settings for every job: each is a pydantic dataclass, so a TOML file or an
option is checked against the types and limits on load, before any data is read, and an unknown
key is an error. `dataclasses.replace` and `asdict` work on them as on any dataclass."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import pandas as pd
from pydantic import BeforeValidator, ConfigDict

# Use as @pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS): no unknown keys; pandas
# Timestamps allowed. (Spelt out at each class: type checkers see the dataclass only that way.)
SETTINGS = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _utc(value: Any) -> Any:
    """A date or time from TOML or the CLI as a UTC pandas Timestamp (a naive one is UTC)."""
    if value is None or value == "":
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


UtcTime = Annotated[pd.Timestamp, BeforeValidator(_utc)]


def as_toml(values: object) -> str:
    """A settings object as the TOML file that would give it (for --print-config)."""
    lines = []
    for key, value in asdict(values).items():  # type: ignore[call-overload]
        if value is None:
            continue  # TOML has no null: a key left out takes its default
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = json.dumps(str(value))
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def default(cls: Any, name: str) -> Any:
    """The default of another settings class's field: one place for each default."""
    return cls.__dataclass_fields__[name].default
