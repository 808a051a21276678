"""The Spark engine (`engine`): the nightly scoring of `jobs.score`, spread over a Spark cluster."""

from dealscore.pipeline.spark.engine import (
    Reference,
    SparkUnavailableError,
    check_contract,
    coverage,
    default_groups,
    group_tables,
    read_spark_tables,
    reference,
    route,
    score_group,
    score_on_spark,
    spark_session,
)

__all__ = [
    "Reference",
    "SparkUnavailableError",
    "check_contract",
    "coverage",
    "default_groups",
    "group_tables",
    "read_spark_tables",
    "reference",
    "route",
    "score_group",
    "score_on_spark",
    "spark_session",
]
