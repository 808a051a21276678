"""A Parquet file as pandas, a column at a time, its labels as categoricals.

Decoded whole, a table is held twice at its peak (17M activities: +2.2 GiB, against +1.2 a column
at a time, in the same time). A text column read as labels comes from Arrow's dictionary
(`schemas.keys.as_categorical`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from dealscore.schemas.keys import as_categorical


def read_parquet_file(file: Path, labels: set[str]) -> pd.DataFrame:
    """The file as `pd.read_parquet` reads it, `labels` as categoricals."""
    schema = pq.read_schema(file)
    stored = (schema.pandas_metadata or {}).get("index_columns", ())
    index = {c for c in stored if isinstance(c, str)}  # a range index is a dict, not a column
    # Nothing of pandas' own but a plain 0, 1, 2, ... index: the one a column read alone gets.
    plain = all(
        isinstance(c, dict)
        and c.get("kind") == "range"
        and c.get("name") is None
        and c.get("start") == 0
        and c.get("step") == 1
        for c in stored
    )
    columns = {
        column: _column(file, column, column in labels, plain)
        for column in schema.names
        if column not in index  # pandas' own index, restored with every column
    }
    if not columns:
        return pd.read_parquet(file)
    return pd.DataFrame(columns, copy=False)


def _column(file: Path, column: str, label: bool, plain_index: bool) -> pd.Series:
    """One column of the file, a `label` as a categorical (from Arrow's dictionary where it is
    text and the file keeps no index of pandas' own)."""
    if label and plain_index:
        table = pq.read_table(file, columns=[column], read_dictionary=[column], pre_buffer=False)
        categorical = as_categorical(table.column(0))
        if categorical is not None:
            return pd.Series(categorical, name=column, copy=False)
    # Column chunks decoded as they are read, not the whole file buffered first.
    return pd.read_parquet(
        file, columns=[column], read_dictionary=[column] if label else None, pre_buffer=False
    )[column]
