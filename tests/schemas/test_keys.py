"""Id lookups in Arrow give pandas' answers, missing values never match."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dealscore.schemas.keys import as_categorical, contains, duplicated, lookup, positions

IDS = ["OPP-1", "OPP-2", "OPP-3", "ÄÖ-4"]
VALUES = ["OPP-3", None, "nope", "OPP-1", "ÄÖ-4", "OPP-3"]


@pytest.mark.parametrize("dtype", ["str", object])
def test_positions_and_contains_agree_with_pandas_on_text(dtype):
    # given ids and values as Arrow text and as Python objects
    ids, values = pd.Series(IDS, dtype=dtype), pd.Series(VALUES, dtype=dtype)
    # when they are looked up
    where, found = positions(values, ids), contains(values, ids)
    # then positions are get_indexer's and membership isin's, a missing value matching nothing
    assert where.tolist() == [2, -1, -1, 0, 3, 2]
    assert where.tolist() == pd.Index(ids).get_indexer(values).tolist()
    assert found.tolist() == (values.isin(ids) & values.notna()).tolist()


def test_categorical_values_are_looked_up_as_their_text():
    # given values as a categorical (labels read as a dictionary), with a missing one
    ids, text = pd.Series(IDS, dtype="str"), pd.Series(VALUES, dtype="str")
    for values in (text.astype("category"), pd.CategoricalIndex(text)):
        # when they are looked up
        where, found = positions(values, ids), contains(values, ids)
        # then the answers are those of the same values as text
        assert where.tolist() == positions(text, ids).tolist()
        assert found.tolist() == contains(text, ids).tolist()
        table = pd.Series(IDS, index=IDS, dtype="str")
        pd.testing.assert_series_equal(lookup(pd.Series(values), table), lookup(text, table))


def test_a_missing_key_does_not_match_a_missing_value():
    # given ids that include a missing one, as Arrow text and as numbers
    text = pd.Series(["a", None], dtype="str")
    numbers = pd.Index([1.0, np.nan])
    # when a missing value is looked up
    # then it is found in neither
    assert positions(pd.Series([None, "a"], dtype="str"), text).tolist() == [-1, 0]
    assert positions(pd.Series([np.nan, 1.0]), numbers).tolist() == [-1, 0]
    assert contains(pd.Series([np.nan, 1.0]), numbers).tolist() == [False, True]


def test_repeated_keys_give_the_first_position_on_every_path():
    # given ids that repeat, as text and as numbers
    # when looked up
    # then the first occurrence answers, as Arrow's hash lookup does
    assert positions(pd.Series(["b"], dtype="str"), pd.Index(["a", "b", "b"])).tolist() == [1]
    assert positions(pd.Series([2]), pd.Index([1, 2, 2])).tolist() == [1]


def test_no_keys_find_nothing_on_every_path():
    # given values looked up among no keys (a stage order fitted before any stage was seen)
    # then each is not found, rather than an IndexError
    empty_numbers, empty_objects = pd.Index([], dtype=float), pd.Index([], dtype=object)
    assert positions(pd.Series(["a", None], dtype="str"), empty_objects).tolist() == [-1, -1]
    assert positions(pd.Series([1.0]), empty_numbers).tolist() == [-1]
    assert lookup(pd.Series(["a"], dtype="str"), pd.Series({}, dtype=float)).isna().all()


def test_lookup_is_map_and_keeps_the_table_dtype():
    # given a per-deal table of amounts and of text, indexed by id
    values = pd.Series(VALUES, dtype="str", index=range(10, 16), name="opportunity_id")
    amounts = pd.Series([1.5, 2.5, 3.5, 4.5], index=pd.Index(IDS, dtype="str"))
    names = pd.Series(["w", "x", "y", "z"], index=pd.Index(IDS, dtype="str"), dtype="str")
    # when each value's entry is looked up
    got_amounts, got_names = lookup(values, amounts), lookup(values, names)
    # then the answers are Series.map's, on the values' own index
    pd.testing.assert_series_equal(got_amounts, values.map(amounts))
    pd.testing.assert_series_equal(got_names, values.map(names))


@pytest.mark.parametrize("dtype", ["str", object, "float"])
def test_duplicated_marks_every_copy_as_pandas_does(dtype):
    # given values with repeats, missing ones, and (for text) a chunked Arrow column
    raw = (
        ["b", "a", None, "c", "a", None, "ü", "ü", "d"]
        if dtype != "float"
        else [1.0, 2.0, 1.0, np.nan, np.nan, 3.0]
    )
    values = pd.Series(raw, dtype=dtype)
    if dtype == "str":
        values = pd.concat([values, values.iloc[:1]], ignore_index=True)  # "b" twice, two chunks
    # when the duplicates are found
    got = duplicated(values)
    # then every copy of a repeated value is marked, as pandas marks them
    assert got.tolist() == values.duplicated(keep=False).tolist()


def test_duplicated_tells_colliding_hashes_from_equal_values(monkeypatch):
    # given a hash that gives every string the same value
    import dealscore.schemas.keys as keys

    monkeypatch.setattr(keys, "_hashes", lambda text: np.zeros(len(text), dtype=np.uint64))
    values = pd.Series(["x", "y", "x", "z"], dtype="str")
    # when the duplicates are found, then only the equal values are marked
    assert keys.duplicated(values).tolist() == [True, False, True, False]


def _dictionary(indices: list[int | None], labels: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(indices, pa.int32()), pa.array(labels, pa.string())
    )


@pytest.mark.parametrize(
    "chunks",
    [
        "one",
        "batches sharing a dictionary",
        "row groups with their own",
        "an empty dictionary among them",
        "a label twice in one",
    ],
)
def test_dictionary_text_converts_as_pandas_converts_it(chunks):
    # given dictionary-encoded text in chunks as a Parquet read gives it: the batches of a row
    # group share its dictionary, row groups have their own, a blank one has none
    shared = _dictionary([0, 1, None, 1, 2, 0], ["b", "a", "c"])
    arrays = {
        "one": [shared],
        "batches sharing a dictionary": [shared.slice(0, 2), shared.slice(2, 3), shared[5:]],
        "row groups with their own": [shared.slice(0, 3), _dictionary([1, 0, 1], ["d", "a"])],
        "an empty dictionary among them": [_dictionary([None], []), shared],
        "a label twice in one": [shared, _dictionary([0, 1], ["e", "e"])],
    }[chunks]
    column = pa.chunked_array(arrays)
    # when it is converted
    converted = as_categorical(column)
    # then it is pandas' own conversion: categories in the same order, the same codes and width;
    # only a dictionary that repeats a label may be left to pandas (None: read the pandas way)
    if converted is None:
        assert chunks == "a label twice in one"
        return
    expected = column.to_pandas().array
    pd.testing.assert_extension_array_equal(converted, expected)
    assert converted.codes.dtype == expected.codes.dtype
