"""Sweep reports: ``python -m medsight_ray.report --out DIR`` turns a sweep's ``summary.json``
into a markdown and HTML report with PNG figures."""
