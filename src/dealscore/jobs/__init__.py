"""Jobs: the only layer that touches the clock, files and (later) MLflow."""
