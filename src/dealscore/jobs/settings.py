"""Load a job's frozen settings from a TOML file, with command-line overrides on top."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dealscore.errors import InputError

T = TypeVar("T")


class SettingsError(InputError):
    """A settings file or override that does not fit the job's settings."""


def load_settings(cls: type[T], path: Path | None = None, **overrides: Any) -> T:
    """File values first, then every override that is not None; unknown keys are an error."""
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
