"""dealscore: calibrated win probabilities for B2B deals from CRM history."""

import warnings

# Pandera imports pyspark.pandas whenever pyspark (the optional Spark engine) is installed, and
# that warns about pandas 3 on every command; the engines' agreement test covers what we use.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

__version__ = "0.1.0"
