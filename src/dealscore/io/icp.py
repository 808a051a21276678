"""Read the documented ideal customer profile (ICP) from its YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml

from dealscore.errors import InputError
from dealscore.features import IcpRule, parse_icp


def load_icp(path: Path | None) -> tuple[IcpRule, ...]:
    """The documented ICP rules from YAML; none when no file is given."""
    if path is None:
        return ()
    if not path.is_file():
        raise InputError(f"ICP file {path} does not exist")
    try:
        return parse_icp(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: {exc}") from exc
