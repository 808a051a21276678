"""Write contract tables to a folder, one file per table, each replaced atomically."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Literal

import pandas as pd

from dealscore.io.read import table_suffix
from dealscore.schemas.tables import TABLE_NAMES, CrmTables

TableFormat = Literal["parquet", "csv"]


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write next to the target, then rename over it: readers never see half a file. The
    temporary name is unique, so two writers of the same file never share one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_tables(tables: CrmTables, out: Path, fmt: TableFormat = "parquet") -> list[Path]:
    """Write each present table; remove contract-table files a previous run left for absent ones."""
    written = [write_frame(frame, out / f"{name}.{fmt}") for name, frame in tables.present()]
    keep = {p.name for p in written}
    for file in out.iterdir():
        suffix = table_suffix(file)
        if suffix and file.name[: -len(suffix)].lower() in TABLE_NAMES and file.name not in keep:
            file.unlink()  # a stale table would otherwise be read as part of this export
    return written
