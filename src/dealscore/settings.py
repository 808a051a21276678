"""Typed, frozen settings for every job: each is a pydantic dataclass, so a TOML file or an
option is checked against the types and limits on load, before any data is read, and an unknown
key is an error. `dataclasses.replace` and `asdict` work on them as on any dataclass."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import pandas as pd
from pydantic import BeforeValidator, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from dealscore.errors import InputError
from dealscore.schemas.tables import utc

# Use as @pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS): no unknown keys; pandas
# Timestamps allowed. (Spelt out at each class: type checkers see the dataclass only that way.)
SETTINGS = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _utc(value: Any) -> Any:
    """A date or time from TOML or the CLI as a UTC pandas Timestamp (a naive one is UTC)."""
    if value is None or value == "":
        return None
    return utc(value)


UtcTime = Annotated[pd.Timestamp, BeforeValidator(_utc)]


@dataclass(frozen=True)
class FileSetting:
    """Marks a field holding a file's path (`Annotated[str, FileSetting()]`): written relative
    in a settings file, it is read against that file's folder, so the file works from any
    working directory. `keep`: values that are words, not paths."""

    keep: tuple[str, ...] = ("",)


def _against(cls: type, values: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The file's relative paths, read against its folder."""
    hints = get_type_hints(cls, include_extras=True)
    out = dict(values)
    for key, value in values.items():
        marks = [
            m for m in getattr(hints.get(key), "__metadata__", ()) if isinstance(m, FileSetting)
        ]
        if marks and isinstance(value, str) and value not in marks[0].keep:
            out[key] = str(folder / value) if not Path(value).is_absolute() else value
    return out


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
        elif isinstance(value, tuple | list):  # a TOML array of strings
            text = "[" + ", ".join(json.dumps(str(item)) for item in value) + "]"
        else:
            text = json.dumps(str(value))
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def default(cls: Any, name: str) -> Any:
    """The default of another settings class's field: one place for each default."""
    return cls.__dataclass_fields__[name].default


T = TypeVar("T")


class SettingsError(InputError):
    """A settings file or override that does not fit the job's settings."""


def load_settings(cls: type[T], path: Path | None = None, **overrides: Any) -> T:
    """File values first, then every override that is not None; unknown keys are an error. A
    relative path in the file is read against the file's folder (`FileSetting`); one given as
    an override, against the working directory."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise SettingsError(f"settings file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
        unknown = set(values) - known
        if unknown:
            raise SettingsError(
                f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        values = _against(cls, values, Path(path).parent)
    values.update({k: v for k, v in overrides.items() if v is not None})
    where = f"{path}" if path is not None else "the options"
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise SettingsError(f"{where}: {problems}") from exc
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{where}: {exc}") from exc


def _problem(error: ErrorDetails) -> str:
    """'n_estimators: Input should be a valid integer (got 'lots')'; a check of the whole
    object (shares that do not sum to 1) has no key."""
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    got = "" if not key else f" (got {error['input']!r})"
    return f"{key}: {message}{got}" if key else message
