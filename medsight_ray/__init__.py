"""medsight_ray: train and tune medical-imaging models on Ray, and catch silent failures.

Subpackages:
    data     parquet layouts, synthetic data, checks, importers, the Ray Data pipeline
"""

__version__ = "0.1.0"
