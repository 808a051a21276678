"""Scoring one group: its own rows plus the broadcast reference, through the pandas engine's
`score_deals`, out as score rows, reject rows and one row of drift counts."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
from pandera.pandas import DataFrameModel

from dealscore.model.bundle import LoadedModel
from dealscore.model.drift import bin_counts, category_counts
from dealscore.pipeline.scoring import ScoreSettings, drift_inputs, drift_segments, score_deals
from dealscore.pipeline.spark.read import ROW
from dealscore.pipeline.spark.reference import Reference, _coerced
from dealscore.pipeline.spark.route import BLOB, TABLE, _unpack
from dealscore.schemas.coerce import column_kind, to_utc_timestamps
from dealscore.schemas.scores import Rejected, Scores
from dealscore.schemas.tables import Accounts, CrmTables, Opportunities

KIND = "_kind"
# What each group returns: score rows, reject rows, and one row of drift counts.
SCORED, REJECTED, DRIFT = "score", "reject", "drift"
SPARK_TYPES = {"timestamp": "timestamp", "number": "double", "string": "string"}


def _spark_columns(model: type[DataFrameModel]) -> dict[str, str]:
    """A schema's columns and their Spark types."""
    columns = model.to_schema().columns
    return {name: SPARK_TYPES[column_kind(spec.dtype)] for name, spec in columns.items()}


OUTPUT_COLUMNS: dict[str, str] = {
    KIND: "string",
    **_spark_columns(Scores),
    **_spark_columns(Rejected),
    "payload": "string",
}


def group_tables(packed: pd.DataFrame, ref: Reference) -> CrmTables:
    """A group's own rows in contract types plus the broadcast closed deals, in read order."""
    own = {
        name: _unpack(part[BLOB]).sort_values(ROW, kind="stable")
        for name, part in packed.groupby(TABLE, sort=False)
    }
    frames = {name: _coerced(name, frame) for name, frame in own.items()}
    if "opportunities" in frames:  # a matured open deal is broadcast too: keep the group's own
        ids = set(frames["opportunities"][Opportunities.opportunity_id])
        ref = replace(
            ref,
            opportunities=ref.opportunities[
                ~ref.opportunities[Opportunities.opportunity_id].isin(ids)
            ],
        )
    for name, extra in (
        ("opportunities", ref.opportunities),
        ("accounts", ref.accounts),
        ("stage_history", ref.stage_history),
        ("forecasts", ref.forecasts),
    ):
        if extra is None or not len(extra):
            continue
        mine = frames.get(name)
        both = extra if mine is None else pd.concat([mine, extra], ignore_index=True)
        frames[name] = both
    if "accounts" in frames:  # an account with open and closed deals is in both
        frames["accounts"] = frames["accounts"].drop_duplicates(Accounts.account_id)
    return CrmTables.from_dict(
        {
            name: frame.sort_values(ROW, kind="stable").drop(columns=[ROW]).reset_index(drop=True)
            for name, frame in frames.items()
        }
    )


def score_group(
    packed: pd.DataFrame,
    ref: Reference,
    loaded: LoadedModel,
    as_of: pd.Timestamp,
    scored_at: pd.Timestamp,
    settings: ScoreSettings,
    previous: pd.DataFrame,
) -> pd.DataFrame:
    """One group's score rows, reject rows and drift counts, in `OUTPUT_COLUMNS`."""
    tables = group_tables(packed, ref)
    scores, rejected, features = score_deals(
        tables, loaded, as_of, settings, scored_at=scored_at, previous=previous
    )
    inputs = drift_inputs(features, scores).drop(columns=["win_probability"])
    counts = bin_counts(loaded.bundle.reference, inputs)
    categories = category_counts(drift_segments(tables, features))
    drift = pd.DataFrame(
        {
            KIND: [DRIFT],
            "payload": [
                json.dumps(
                    {
                        "open": len(features),
                        "counts": {k: v.tolist() for k, v in counts.items()},
                        "categories": categories,
                    }
                )
            ],
        }
    )
    parts = [scores.assign(**{KIND: SCORED}), rejected.assign(**{KIND: REJECTED}), drift]
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    out = out.reindex(columns=list(OUTPUT_COLUMNS))
    # pandas 3 keeps strings in chunked Arrow arrays, which pyspark's converter refuses.
    text = [name for name, kind in OUTPUT_COLUMNS.items() if kind == "string"]
    return out.astype({name: object for name in text})


def _output_schema() -> str:
    return ", ".join(f"{name} {kind}" for name, kind in OUTPUT_COLUMNS.items())


def _split(collected: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The groups' output as the pandas engine's (scores, rejected) and summed drift counts."""
    kind = collected[KIND]
    total: dict = {"open": 0, "counts": {}, "categories": {}}
    for payload in collected.loc[kind == DRIFT, "payload"]:
        part = json.loads(payload)
        total["open"] += part["open"]
        for name, values in part["counts"].items():
            total["counts"][name] = np.add(total["counts"].get(name, 0), values)
        for name, found in part["categories"].items():  # rows per segment value, summed
            total["categories"].setdefault(name, Counter()).update(found)
    for column, spark_type in OUTPUT_COLUMNS.items():
        if spark_type == "timestamp":
            collected[column] = to_utc_timestamps(collected[column])
    scores = collected[kind == SCORED].reset_index(drop=True)
    scores = scores[list(Scores.to_schema().columns)]
    rejected = collected.loc[kind == REJECTED, list(Rejected.to_schema().columns)]
    return scores, rejected.reset_index(drop=True), total
