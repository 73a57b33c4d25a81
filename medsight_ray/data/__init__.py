"""Data layer: parquet layouts, synthetic data, checks, importers and the Ray Data pipeline."""
