"""MLflow: the tracking store, the pyfunc model, plots, the model card and the registry.

Sits beside `jobs`: it may import `schemas`, `features` and `model`, which never import MLflow.
"""
