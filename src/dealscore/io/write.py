"""Write contract tables to a folder, one file per table, each replaced atomically."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pandas as pd

from dealscore.errors import DealscoreError
from dealscore.io.read import table_suffix
from dealscore.schemas.tables import TABLE_NAMES, CrmTables

TableFormat = Literal["parquet", "csv"]


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Write next to the target, then rename over it: readers never see half a file. The
    temporary name is unique, so two writers of the same file never share one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """A frame as Parquet (by the suffix) or CSV, replaced atomically."""
    if path.suffix == ".parquet":
        return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_text(text: str, path: Path) -> Path:
    """A text file (UTF-8), replaced atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


MANIFEST = ".dealscore-tables.json"  # the table files the last write_tables put in a folder


class FolderNotOursError(DealscoreError, RuntimeError):
    """The destination holds table files dealscore did not write: refusing to touch them."""


def _ours(out: Path) -> set[str]:
    """The files an earlier write_tables wrote here, by its manifest."""
    try:
        listed = json.loads((out / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    if not isinstance(listed, list):
        return set()
    return {name for name in listed if isinstance(name, str) and _table_file_name(name)}


def _table_file_name(name: str) -> bool:
    """A plain table file name ("opportunities.parquet"): a manifest entry naming anything else
    (a path, "..", another file) is never trusted, so nothing outside the folder is touched."""
    if Path(name).name != name or "\\" in name:
        return False
    suffix = table_suffix(Path(name))
    return bool(suffix) and name[: -len(suffix)].lower() in TABLE_NAMES


def write_tables(tables: CrmTables, out: Path | str, fmt: TableFormat = "parquet") -> list[Path]:
    """Write each present table, then remove the table files an earlier write here left for
    tables now absent (a stale one would be read as part of this export).

    Only files this function wrote (its manifest) are ever replaced or removed: a folder holding
    other files named like contract tables (the raw export itself, say) is refused before
    anything is written, with the files named.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FolderNotOursError(f"{out} is a file; tables go to a folder (nothing was written)")
    out.mkdir(parents=True, exist_ok=True)
    ours = _ours(out)
    targets = {f"{name}.{fmt}" for name, _ in tables.present()}
    foreign = sorted(
        file.name
        for file in out.iterdir()
        if (suffix := table_suffix(file))
        and file.name[: -len(suffix)].lower() in TABLE_NAMES
        and file.name not in ours
    )
    if foreign:
        raise FolderNotOursError(
            f"{out} already holds table files dealscore did not write there: "
            f"{', '.join(foreign)}; write to an empty folder, or move them away (nothing was "
            f"written)"
        )
    written = [write_frame(frame, out / f"{name}.{fmt}") for name, frame in tables.present()]
    write_text(json.dumps({"files": sorted(targets)}, indent=1), out / MANIFEST)
    for name in sorted(ours - targets):
        (out / name).unlink(missing_ok=True)
    return written
