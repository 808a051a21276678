"""dealscore's CLI under spark-submit: the session spark-submit configured does the work.

    spark-submit --master yarn --deploy-mode client --driver-memory 8g \
        examples/spark/submit.py score --engine spark --data spark:crm \
        --out postgresql+psycopg://scorer@db/sales --tracking-uri http://mlflow:5000

Every argument after the script is dealscore's (`dealscore score --help`). The executors need
dealscore installed in the Python they run (docs/spark.md, "On a cluster").
"""

from pyspark.sql import SparkSession

from dealscore.cli import app

if __name__ == "__main__":
    SparkSession.builder.getOrCreate()  # dealscore finds and uses this active session
    app()
