"""Hyperparameter search with Ray Tune + Optuna over YAML search spaces (``tune_spaces/``)."""
