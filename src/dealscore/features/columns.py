"""The columns scoring reads of the large tables, and an export cut down to them.

Validation needs every column (an activity's own id is checked unique, its account linked), the
features only some: on a million open deals the rest held gigabytes through the whole job.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dealscore.schemas.tables import Activities, CrmTables, Forecasts, StageHistory

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
# Text of a few distinct values over millions of rows: a byte per row as a categorical.
LABELS: dict[str, tuple[str, ...]] = {
    "activities": (Activities.type, Activities.direction),
    "stage_history": (StageHistory.stage,),
    "forecasts": (Forecasts.forecast_category,),
}


def as_labels(values: pd.Series) -> pd.Series:
    """Text as a categorical (categories in order of first appearance; missing stays missing)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values
    try:
        text = pa.array(values.array, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return values.astype("category")
    if not pa.types.is_string(text.type) and not pa.types.is_large_string(text.type):
        return values.astype("category")
    # Arrow's hash encoding: several times faster than pandas' (which also sorts the labels).
    encoded = pc.dictionary_encode(text).to_pandas()
    return pd.Series(encoded.array, index=values.index, name=values.name, copy=False)


def scoring_columns(tables: CrmTables) -> CrmTables:
    """The tables with the large ones cut to the columns scoring reads (READ) and their labels
    as categoricals; the other tables, and the frames given, are left as they are."""
    frames: dict[str, pd.DataFrame | None] = {}
    for name, columns in READ.items():
        frame = tables.get(name)
        if frame is None:
            continue
        labels = LABELS[name]
        kept = {
            column: as_labels(frame[column]) if column in labels else frame[column]
            for column in frame.columns
            if column in columns
        }
        # copy=False: the kept columns are the validated ones, not copies of them.
        frames[name] = pd.DataFrame(kept, index=frame.index, copy=False)
    return tables.with_tables(**frames)
