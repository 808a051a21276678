"""The columns scoring reads of the large tables, and an export cut down to them.

Validation needs every column (an activity's own id is checked unique, its account linked), the
features only some: on a million open deals the rest held gigabytes through the whole job.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pyarrow.compute as pc

from dealscore.schemas.keys import arrow_text, as_categorical
from dealscore.schemas.tables import (
    LABEL_COLUMNS,
    Activities,
    CrmTables,
    Forecasts,
    StageHistory,
)

# Per large table, the columns the feature path (build_features, the current stage) reads.
READ: dict[str, tuple[str, ...]] = {
    "activities": (
        Activities.occurred_at,
        Activities.type,
        Activities.opportunity_id,
        Activities.contact_id,
        Activities.direction,
        Activities.created_at,
    ),
    "stage_history": (
        StageHistory.opportunity_id,
        StageHistory.changed_at,
        StageHistory.stage,
        StageHistory.amount,
        StageHistory.close_date,
        StageHistory.probability,
    ),
    "forecasts": (
        Forecasts.opportunity_id,
        Forecasts.submitted_at,
        Forecasts.forecast_category,
        Forecasts.probability,
    ),
}
# The contract's label columns and repeating ids among them (LABEL_COLUMNS): text of a few
# distinct values over millions of rows, and the ids the features look up, as categoricals (a
# code a row, each value looked up once). Read so from Parquet by scoring; encoded here otherwise.
LABELS: dict[str, tuple[str, ...]] = {
    name: tuple(c for c in LABEL_COLUMNS[name] if c in columns) for name, columns in READ.items()
}


def as_labels(values: pd.Series) -> pd.Series:
    """Text as a categorical (categories in order of first appearance; missing stays missing)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values
    text = arrow_text(values)
    if text is None:
        return values.astype("category")
    # Arrow's hash encoding: several times faster than pandas' (which also sorts the labels).
    encoded = pc.dictionary_encode(text)
    labels = as_categorical(encoded)
    if labels is None:  # no label at all: pandas' own conversion, as a read gives it
        labels = encoded.to_pandas().array
    return pd.Series(labels, index=values.index, name=values.name, copy=False)


def scoring_columns(tables: CrmTables) -> CrmTables:
    """The tables with the large ones cut to the columns scoring reads (READ); the other tables,
    and the frames given, are left as they are."""
    return _with_columns(tables, lambda name, column, values: values)


def with_labels(tables: CrmTables) -> CrmTables:
    """The tables with the large ones' labels and ids (LABELS) as categoricals (the frames given
    are left as they are): the features look each one up once, not once a row."""
    return _with_columns(
        tables,
        lambda name, column, values: as_labels(values) if column in LABELS[name] else values,
    )


def _with_columns(tables: CrmTables, make: Callable[[str, str, pd.Series], pd.Series]) -> CrmTables:
    """The tables with each large one's READ columns made by `make(table, column, values)`."""
    frames: dict[str, pd.DataFrame | None] = {}
    for name, columns in READ.items():
        frame = tables.get(name)
        if frame is None:
            continue
        kept = {c: make(name, c, frame[c]) for c in frame.columns if c in columns}
        # copy=False: the columns kept as they are are the validated ones, not copies of them.
        frames[name] = pd.DataFrame(kept, index=frame.index, copy=False)
    return tables.with_tables(**frames)
