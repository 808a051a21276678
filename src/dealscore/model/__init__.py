"""The model: a calibrated LightGBM win-probability estimator and its evaluation (no MLflow, no I/O)."""
