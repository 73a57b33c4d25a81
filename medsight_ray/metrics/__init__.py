"""Epoch metrics from gathered predictions, computed with scikit-learn."""
