"""The Spark engine: the nightly scoring of `jobs.score`, spread over a Spark cluster.

Same features, model and write-back as the pandas engine; only where the work runs changes:

1. Each table is read from Parquet or a Spark table and checked against the data contract: every
   row's own rules per partition with the pandas engine's checks; keys, foreign keys and event
   timing across tables as Spark joins. Nothing is scored when an error is found.
2. The rows of each deal open at as_of (the deal, its account, stage history, activities and
   their contacts, forecasts) go to one of N groups by a hash of the opportunity id, packed as
   Arrow IPC blobs so one `applyInPandas` group receives every table it needs.
3. What a feature needs from *other* deals (the deals closed before as_of, their accounts, the
   won ones' stage history and the last forecast before each close: win rates, cycle lengths,
   time per stage, forecast bias) is collected once and broadcast; the model, with its fitted
   feature state, travels with the function.
4. Each group runs `score_deals`, the pandas engine's own function, on its rows plus the
   broadcast and the store's previous scores: features, calibrated probabilities, reasons, the
   trend and why a score moved, rejects and drift counts (deals per reference bin of each input,
   per value of each segment).
5. The driver reconciles the open deals counted in Spark with the groups' output, then `settle`
   (schema quarantine, reject limit, one atomic write) as for pandas.

A feature of deal d at T may read d's own rows and closed-before-T deals' opportunity, account
and last forecast. A feature needing more must extend `Reference`; the engines' agreement test
(tests/jobs/test_spark.py) fails until it does.

Its rooms: `session` (starting Spark), `read` (the tables), `contract` (the data contract's
checks), `route` (each open deal's rows to one group), `reference` (what is broadcast), `group`
(scoring one group) and `engine` (the job, `score_on_spark`).
"""

from dealscore.pipeline.spark.contract import check_contract
from dealscore.pipeline.spark.engine import coverage, score_on_spark
from dealscore.pipeline.spark.group import group_tables, score_group
from dealscore.pipeline.spark.read import read_spark_tables
from dealscore.pipeline.spark.reference import Reference, reference
from dealscore.pipeline.spark.route import route
from dealscore.pipeline.spark.session import SparkUnavailableError, default_groups, spark_session

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
