"""The steps the jobs share, below them: training and its forward test, scoring, the Spark
engine, period forecasts. Nothing here reads files or talks to MLflow; the jobs do that, and no
job imports another."""
