"""The feature frame: one row per (opportunity_id, as_of), every feature a float (NaN = missing)."""

from __future__ import annotations

from typing import Annotated, ClassVar, TypeAlias

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from dealscore.schemas.tables import UtcTimestamp

OPPORTUNITY_ID = "opportunity_id"
AS_OF = "as_of"


class FeatureFrame(pa.DataFrameModel):
    opportunity_id: Series[str]
    as_of: Series[UtcTimestamp]

    class Config:
        strict = False
        unique: ClassVar[list[str]] = [OPPORTUNITY_ID, AS_OF]

    @pa.dataframe_check(name="features_are_floats")
    def floats(cls, df: pd.DataFrame) -> bool:
        features = df.drop(columns=[OPPORTUNITY_ID, AS_OF])
        return all(pd.api.types.is_float_dtype(dtype) for dtype in features.dtypes)


class SnapshotFrame(pa.DataFrameModel):
    """Training snapshots: a deal, a time it was open, its label and outcome, its weight."""

    opportunity_id: Series[str]
    as_of: Series[UtcTimestamp]
    label: Series[int] = pa.Field(isin=[0, 1])
    outcome: Series[str]
    weight: Series[float] = pa.Field(gt=0, le=1)


# The frames that cross a stage boundary, named by their schema in signatures.
FeatureRows: TypeAlias = Annotated[pd.DataFrame, FeatureFrame]  # build_features' rows
SnapshotRows: TypeAlias = Annotated[pd.DataFrame, SnapshotFrame]  # training's (deal, as_of) rows
