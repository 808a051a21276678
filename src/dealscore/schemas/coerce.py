"""Raw columns coerced to the contract's dtypes, with the values that cannot be parsed named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from dealscore.schemas.report import Issue, value_examples
from dealscore.schemas.tables import LABEL_COLUMNS, TIMESTAMP_DTYPE


def column_kind(dtype: object) -> str:
    """A contract dtype's kind: "timestamp", "number" or "string"."""
    text = str(dtype)
    if text.startswith("datetime64"):
        return "timestamp"
    if text.startswith(("float", "int")):
        return "number"
    return "string"


def to_utc_timestamps(values: pd.Series) -> pd.Series:
    """Parse to UTC timestamps; unparseable values become NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype(TIMESTAMP_DTYPE)
    if pd.api.types.is_numeric_dtype(values.dtype):
        # Numbers are not dates (epoch seconds or milliseconds? nobody can tell): read as text,
        # they fail the ISO 8601 parse and are named as unreadable.
        values = values.astype("string")
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    return parsed.astype(TIMESTAMP_DTYPE)


def to_strings(values: pd.Series) -> pd.Series:
    """Identifiers and labels as strings; integral floats lose their '.0', blanks become missing."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.dropna()
        if (whole == np.floor(whole)).all():
            values = values.astype("Int64")
    if pd.api.types.is_string_dtype(values.dtype):
        values = values.astype("str")
        blank = values == ""
        return values.where(~blank) if blank.any() else values  # no copy in the common case
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map({True: "true", False: "false"}).astype("str")
    return values.astype("str").where(values.notna())


def to_labels(values: pd.Series) -> pd.Series:
    """A label column (LABEL_COLUMNS) given as a categorical of text stays one, a blank label
    missing; anything else is read as `to_strings`."""
    dtype = values.dtype
    if not isinstance(dtype, pd.CategoricalDtype) or not pd.api.types.is_string_dtype(
        dtype.categories.dtype
    ):
        return to_strings(values)
    # Compared in Arrow: `"" in categories` builds pandas' hash table of a million ids as
    # Python strings (0.9 s over the activities' labels).
    blank = bool((dtype.categories == "").any())
    return values.cat.remove_categories([""]) if blank else values


def _coerce_column(values: pd.Series, kind: str, label: bool = False) -> pd.Series:
    if label and kind == "string":
        return to_labels(values)
    if kind == "timestamp":
        return to_utc_timestamps(values)
    if kind == "number":
        if values.dtype == np.float64:  # already numbers: to_numeric would copy them
            return values
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return to_strings(values)


def coerce_table(
    name: str, frame: pd.DataFrame, model: type[pa.DataFrameModel]
) -> tuple[pd.DataFrame, list[Issue], dict[str, pd.Index]]:
    """Coerce contract columns to their types; report values that cannot be parsed."""
    schema = model.to_schema()
    out = frame.copy(deep=False)
    issues: list[Issue] = []
    unparsed: dict[str, pd.Index] = {}
    for column, spec in schema.columns.items():
        if column not in frame:
            continue
        kind = column_kind(spec.dtype)
        coerced = _coerce_column(frame[column], kind, column in LABEL_COLUMNS.get(name, ()))
        out[column] = coerced
        if coerced.isna().sum() == frame[column].isna().sum():
            continue  # the common case: nothing was lost, skip the row-wise comparison
        bad = frame[column].notna() & coerced.isna()
        if kind == "string":
            bad &= frame[column].astype("str") != ""  # blanks are missing values, not errors
        if bad.any():
            issues.append(
                Issue(
                    name,
                    column,
                    f"parseable as {kind}",
                    int(bad.sum()),
                    value_examples(frame[column][bad]),
                )
            )
            unparsed[column] = frame.index[bad.to_numpy()]
    return out, issues, unparsed
