"""The pathology zoo: named failure recipes that prove the health monitor end to end.

It drives training (fit, stages), so it sits above them, beside ``train`` and ``tune``;
the monitor itself (:mod:`medsight_ray.health`) knows nothing of it.
"""
