"""A Parquet file as pandas, a column at a time, its labels as categoricals.

Decoded whole, a table is held twice at its peak (17M activities: +2.2 GiB, against +1.2 a column
at a time, in the same time). A text column read as labels comes from Arrow's dictionary with its
labels checked distinct in Arrow: pandas' own check builds a hash table of them as Python strings
and keeps it (a second on four columns of a million ids each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TEXT = (pa.string(), pa.large_string())


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


def as_categorical(column: pa.ChunkedArray) -> pd.Categorical | None:
    """A dictionary-encoded text column as pandas reads it (the same categories, in the same
    order, and codes), or None where its dictionary is not distinct, non-missing text or is empty."""
    unified = column.unify_dictionaries()
    if not unified.num_chunks:
        return None
    dictionary = unified.chunk(0).dictionary
    if (
        dictionary.type not in TEXT
        or not len(dictionary)  # no label at all: pandas' categories are objects, not text
        or dictionary.null_count
        or pc.count_distinct(dictionary).as_py() != len(dictionary)
    ):
        return None
    categories = pd.Index(dictionary.to_pandas())
    codes = pa.chunked_array([c.indices for c in unified.chunks]).fill_null(-1).to_numpy()
    # The narrowest codes that hold every label, as pandas' own conversion gives.
    width = next(
        t for t in (np.int8, np.int16, np.int32, np.int64) if len(categories) < np.iinfo(t).max
    )
    # Distinct already (checked above): pandas need not check again.
    dtype = pd.CategoricalDtype._from_fastpath(categories, False)
    return pd.Categorical.from_codes(codes.astype(width, copy=False), dtype=dtype, validate=False)
