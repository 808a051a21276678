"""The model-from-code script MLflow runs to build the dealscore pyfunc model."""

import mlflow

from dealscore.tracking.pyfunc import DealScoreModel

mlflow.models.set_model(DealScoreModel())
