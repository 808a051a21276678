"""Training: grid snapshots of the whole usable history, cross-fitted over purged time folds
through the model ladder (the data picks the rung), corrected for a change in the last horizon,
and every contender compared on the newest fold's out-of-fold predictions. Used by the train
job, the forward test and the backtest; logging and registering is tracking's.

The rooms: `settings` (the recipe), `rows` (snapshots, labels, folds, minimums, heroic weights),
`fit` (the ladder, the recent correction, the forward test of the recipe), `side` (the models
beside the win model), `evaluate` (`fit_and_evaluate`: every contender on the same test rows) and
`result` (what it returns).
"""

from dealscore.pipeline.training.evaluate import fit_and_evaluate, latest_pipeline_reference
from dealscore.pipeline.training.fit import correct_recent, fit_recipe, round_progress, run_forward
from dealscore.pipeline.training.result import Heroics, Tracking, TrainResult
from dealscore.pipeline.training.rows import (
    DataMinimumError,
    TrainingRows,
    check_minimums,
    cohort_warning,
    training_rows,
    without_rep_inputs,
)
from dealscore.pipeline.training.settings import RECIPE_NEEDS, TrainSettings

__all__ = [
    "RECIPE_NEEDS",
    "DataMinimumError",
    "Heroics",
    "Tracking",
    "TrainResult",
    "TrainSettings",
    "TrainingRows",
    "check_minimums",
    "cohort_warning",
    "correct_recent",
    "fit_and_evaluate",
    "fit_recipe",
    "latest_pipeline_reference",
    "round_progress",
    "run_forward",
    "training_rows",
    "without_rep_inputs",
]
