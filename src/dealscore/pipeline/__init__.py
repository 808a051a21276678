"""The steps the jobs share, below them: training and its forward test, scoring, the Spark
engine, period forecasts and the backtest. Nothing here talks to MLflow: the jobs load models
and log runs (through `tracking`), and no job imports another."""
