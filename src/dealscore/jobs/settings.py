"""Load a job's frozen settings from a TOML file, with command-line overrides on top."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

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
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc
