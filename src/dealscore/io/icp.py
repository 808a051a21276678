"""Read the documented ideal customer profile (ICP) from its YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml

from dealscore.errors import InputError
from dealscore.features import IcpRule, parse_icp
from dealscore.io import yaml_files

# The ICP the generated CRMs' sales team documented, shipped inside dealscore so it is found
# from any working directory: the training setting `icp = "builtin"`.
BUILTIN_ICP = "builtin"
BUILTIN_ICP_FILE = Path(__file__).with_name("builtin_icp.yaml")


def icp_path(setting: str | Path | None) -> Path | None:
    """The file an `icp` setting names: "builtin" is the shipped one, "" or None none."""
    if setting is None or str(setting) == "":
        return None
    return BUILTIN_ICP_FILE if str(setting) == BUILTIN_ICP else Path(setting)


def load_icp(setting: str | Path | None) -> tuple[IcpRule, ...]:
    """The documented ICP rules from YAML ("builtin": the shipped file); none without one."""
    path = icp_path(setting)
    if path is None:
        return ()
    if not path.is_file():
        raise InputError(f"ICP file {path} does not exist (setting icp)")
    try:
        return parse_icp(yaml_files.load(yaml_files.read_text(path, "an ICP"), "an ICP") or {})
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: {exc}") from exc
