"""Matching ids between tables (a deal's activities to the deal, say), in Arrow.

pandas 3 keeps text in Arrow, but its `isin`, `Index.get_indexer` and `Series.map` on such text
still make a Python string per value: on the 17M activities of a million open deals they took a
third of the nightly run. Arrow's hash lookups do the same work without leaving C++. Anything
that is not text (numbers, a mix) takes the pandas path, with the same answers. Categorical
values (labels and repeating ids read as a dictionary) are looked up once per category.
"""

from __future__ import annotations

import functools
import itertools
from typing import TypeAlias

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import take

TEXT = (pa.string(), pa.large_string())
Keys: TypeAlias = pd.Series | pd.Index


def arrow_text(values: Keys) -> pa.Array | pa.ChunkedArray | None:
    """The values as Arrow text, or None when they are not all text (or missing)."""
    if isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype) or values.dtype == object:
        try:
            array = pa.array(values.array, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        return array if array.type in TEXT else None
    return None


def _codes(values: Keys) -> np.ndarray:
    """The category codes of categorical values (-1 for a missing one)."""
    return np.asarray(values.array.codes)


def positions(values: Keys, keys: Keys) -> np.ndarray:
    """Each value's position in `keys` (ids, each once), -1 where it is not there or missing;
    `pd.Index(keys).get_indexer(values)` without a missing key matching a missing value."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Each label looked up once, then spread by its codes (-1, a missing value: the -1 after)
        labels = positions(values.dtype.categories, keys)
        return np.append(labels, -1)[_codes(values)]
    found, among = arrow_text(values), arrow_text(keys)
    if found is None or among is None:
        index = pd.Index(keys)
        first = np.flatnonzero(~index.duplicated())  # Arrow's answer: the first occurrence
        out = index[first].get_indexer(values)
        # No keys: nothing found (taking position 0 of none would fail).
        out = np.where(out >= 0, first[np.maximum(out, 0)], -1) if len(first) else out
        return np.where(pd.isna(np.asarray(values, dtype=object)), -1, out).astype(np.int64)
    where = pc.index_in(found, value_set=among, skip_nulls=True)
    return where.fill_null(-1).to_numpy().astype(np.int64, copy=False)


def contains(values: Keys, keys: Keys) -> np.ndarray:
    """Whether each value is one of `keys`; False for a missing value."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return np.append(contains(values.dtype.categories, keys), False)[_codes(values)]
    found, among = arrow_text(values), arrow_text(keys)
    if found is None or among is None:
        return np.asarray(pd.Series(values).isin(keys)) & np.asarray(pd.notna(values))
    return pc.is_in(found, value_set=among, skip_nulls=True).to_numpy(zero_copy_only=False)


def lookup(values: pd.Series, table: pd.Series) -> pd.Series:
    """`values.map(table)`: the entry of `table` (indexed by id) for each value, missing where
    there is none; the table's dtype is kept where it can hold a missing value."""
    where = positions(values, table.index)
    return pd.Series(
        take(table.array, where, allow_fill=True), index=values.index, name=values.name
    )


@functools.cache
def _fnv():
    """FNV-1a over each string's bytes, compiled on first use (cached on disk by numba)."""

    @numba.njit(cache=True)
    def fnv(offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
        for i in range(len(out)):
            h = np.uint64(14695981039346656037)
            for j in range(offsets[i], offsets[i + 1]):
                h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
            out[i] = h

    return fnv


def _hashes(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each string, 0 for a missing one, read straight from Arrow's buffers."""
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    parts = []
    for chunk in chunks:
        chunk = chunk.cast(pa.large_string())
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)
        offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
        data = chunk.buffers()[2]
        bytes_ = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
        out = np.empty(len(chunk), dtype=np.uint64)
        _fnv()(offsets, bytes_, out)
        if chunk.null_count:
            out[chunk.is_null().to_numpy(zero_copy_only=False)] = 0
        parts.append(out)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def duplicated(values: pd.Series) -> np.ndarray:
    """Every row whose value another row holds too, missing values equal to each other:
    `values.duplicated(keep=False)`. For text, sorted 64-bit hashes find the few candidates and
    pandas compares only those: a hash table of 17M ids took 17 s, this takes 0.4 (no repeats)."""
    text = arrow_text(values)
    if text is None:
        return values.duplicated(keep=False).to_numpy()
    hashes = _hashes(text)
    # Sorting the hashes alone (no positions) takes a tenth of an argsort; the few values that
    # repeat are then found among all by a binary search.
    ordered = np.sort(hashes)
    same = ordered[1:] == ordered[:-1]
    out = np.zeros(len(values), dtype=bool)
    if not same.any():
        return out
    repeated = np.unique(ordered[1:][same])
    found = np.minimum(np.searchsorted(repeated, hashes), len(repeated) - 1)
    shared = repeated[found] == hashes
    # equal hashes: the same value, or (rarely) two values that collide
    out[shared] = values[shared].duplicated(keep=False).to_numpy()
    return out


def as_categorical(column: pa.Array | pa.ChunkedArray) -> pd.Categorical | None:
    """Dictionary-encoded text as pandas converts it (the same categories, in the same order, and
    codes), its labels checked distinct in Arrow: pandas' own check builds a hash table of them
    as Python strings and keeps it (a second on four columns of a million ids each). None where
    a dictionary is not distinct, non-missing text or is empty."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    # A Parquet row group's batches share its dictionary: each one is unified once, not once a
    # batch (Arrow's unify_dictionaries hashed 132 copies of 17 on the 17M activities: 2.4 s).
    dictionaries: list[pa.Array] = []
    number: dict[tuple[int, ...], int] = {}  # each distinct dictionary's place in `dictionaries`
    which = []  # each chunk's dictionary, by that place
    for chunk in chunks:
        key = _identity(chunk.dictionary)
        if key not in number:
            number[key] = len(dictionaries)
            dictionaries.append(chunk.dictionary)
        which.append(number[key])
    if (
        not any(len(d) for d in dictionaries)  # no label at all: pandas' categories are objects
        or any(d.type not in TEXT or d.null_count for d in dictionaries)
    ):
        return None
    # The labels in order of first appearance, as Arrow's unification orders them.
    encoded = pc.dictionary_encode(pa.chunked_array(dictionaries).combine_chunks())
    categories = pd.Index(encoded.dictionary.to_pandas())
    # The narrowest codes that hold every label, as pandas' own conversion gives.
    width = next(
        t for t in (np.int8, np.int16, np.int32, np.int64) if len(categories) < np.iinfo(t).max
    )
    into = np.asarray(encoded.indices.to_numpy(), dtype=width)
    bounds = np.cumsum([0, *(len(d) for d in dictionaries)])
    if any(
        np.count_nonzero(np.bincount(into[a:b], minlength=len(categories))) != b - a
        for a, b in itertools.pairwise(bounds)
    ):
        return None  # a label twice in one dictionary: pandas' own conversion decides
    # Each dictionary's codes in the unified labels, a missing value (-1) the -1 appended.
    into_unified = [np.append(into[a:b], width(-1)) for a, b in itertools.pairwise(bounds)]
    codes = np.empty(sum(len(c) for c in chunks), dtype=width)
    at = 0
    for chunk, k in zip(chunks, which, strict=True):
        indices = chunk.indices.fill_null(-1).to_numpy()
        np.take(into_unified[k], indices, out=codes[at : at + len(chunk)])
        at += len(chunk)
    # Distinct already (checked above): pandas need not check again.
    dtype = pd.CategoricalDtype._from_fastpath(categories, False)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _identity(dictionary: pa.Array) -> tuple[int, ...]:
    """Where a dictionary's values lie: equal for batches that share one (Arrow's buffers are
    immutable, so the same buffers at the same offset and length hold the same labels)."""
    addresses = (b.address if b is not None else 0 for b in dictionary.buffers())
    return (*addresses, dictionary.offset, len(dictionary))
