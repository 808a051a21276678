"""Reading the export's tables into Spark: Parquet files or a database's Spark tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dealscore.errors import InputError
from dealscore.schemas.tables import TABLE_NAMES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW = "_row"  # each row's number in read order
SPARK_TABLE_PREFIX = "spark:"


def read_spark_tables(spark: SparkSession, data: str) -> dict[str, DataFrame]:
    """Contract tables from a folder of Parquet (`name.parquet` file or folder) or, for
    `spark:DATABASE` (`spark:` alone: the current one), from Spark tables named after them.

    Each gets a `_row` number in read order, so rows of one deal tied at the same instant are
    taken in the order the pandas engine takes them."""
    from pyspark.sql import functions as F

    frames: dict[str, DataFrame] = {}
    if data.startswith(SPARK_TABLE_PREFIX):
        database = data.removeprefix(SPARK_TABLE_PREFIX)
        for name in TABLE_NAMES:
            qualified = f"{database}.{name}" if database else name
            if spark.catalog.tableExists(qualified):
                frames[name] = spark.table(qualified)
        where = f"Spark database {database or spark.catalog.currentDatabase()!r}"
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise InputError(f"{data}: no such folder (or use spark:DATABASE for tables)")
        for name in TABLE_NAMES:
            for candidate in (folder / f"{name}.parquet", folder / f"{name}.pq", folder / name):
                if candidate.exists():
                    frames[name] = spark.read.parquet(str(candidate))
                    break
        if not frames and any(folder.glob("*.csv*")):
            raise InputError(
                f"{data}: the Spark engine reads Parquet; convert the CSV export with "
                "`dealscore ingest --out FOLDER` (it writes Parquet)"
            )
        where = str(folder)
    if "opportunities" not in frames:
        raise InputError(f"{where} has no 'opportunities' table, the one mandatory table")
    return {
        name: frame.withColumn(ROW, F.monotonically_increasing_id())
        for name, frame in frames.items()
    }
