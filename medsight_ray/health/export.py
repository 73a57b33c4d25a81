"""Health as Ray metrics (``ray.util.metrics``), for the dashboard's Metrics view and for
Prometheus/Grafana.

Rank 0 of every run exports, tagged by ``stage`` (``task/stage``) and ``run`` (the Ray
Train run name; under Tune it is ``train-<trial id>``):

==============================  =======  =============================================
name (Prometheus adds ``ray_``)  type     meaning
==============================  =======  =============================================
``medsight_health_status``       gauge    0 healthy, 1 warned, 2 stopped (fatal)
``medsight_diagnoses``           counter  diagnoses, also tagged ``rule`` and ``severity``
                                          (Prometheus: ``ray_medsight_diagnoses_total``)
``medsight_grad_norm``           gauge    total gradient norm of the last optimiser step
``medsight_train_loss``          gauge    mean train loss of the last epoch (lower is better)
``medsight_val_metric``          gauge    the stage's primary validation metric, tagged
                                          ``metric`` (higher is better)
``medsight_epoch``               gauge    epochs finished
==============================  =======  =============================================

No pixel data and no patient ids are exported: tags are stage, run, rule and metric names.
"""

from __future__ import annotations

import math
from typing import Any

from medsight_ray.health.diagnosis import Diagnosis

STATUS = {"healthy": 0.0, "warned": 1.0, "stopped": 2.0}
#: Every exported metric, as Prometheus names it (``ray_`` prefix; counters end in ``_total``).
PROMETHEUS_NAMES = ("ray_medsight_health_status", "ray_medsight_diagnoses_total", "ray_medsight_grad_norm",
                    "ray_medsight_train_loss", "ray_medsight_val_metric", "ray_medsight_epoch")
#: Setting a gauge costs microseconds; every Nth step keeps it far below the 1 % budget
#: while the dashboard (which scrapes every few seconds) still sees a live value.
GRAD_NORM_EVERY = 5


class HealthExporter:
    """Sets the ``medsight_*`` metrics of one run (a no-op unless ``enabled``)."""

    def __init__(self, stage: str, run: str, primary_metric: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.primary = primary_metric
        self.tags = {"stage": stage, "run": run}
        self.steps = 0
        self.current = STATUS["healthy"]
        if not enabled:
            return
        from ray.util.metrics import Counter, Gauge

        keys = ("stage", "run")
        self.status = Gauge("medsight_health_status", "0 healthy, 1 warned, 2 stopped by a fatal diagnosis", keys)
        self.diagnoses = Counter("medsight_diagnoses", "health diagnoses by rule", (*keys, "rule", "severity"))
        self.grad_norm = Gauge("medsight_grad_norm", "total gradient norm of the last optimiser step", keys)
        self.train_loss = Gauge("medsight_train_loss", "mean train loss of the last epoch", keys)
        self.val_metric = Gauge("medsight_val_metric", "primary validation metric (higher is better)",
                                (*keys, "metric"))
        self.epoch = Gauge("medsight_epoch", "epochs finished", keys)
        self.status.set(STATUS["healthy"], tags=self.tags)

    def on_step(self, grad_norm: float) -> None:
        """Record the step's gradient norm (every :data:`GRAD_NORM_EVERY` steps)."""
        self.steps += 1
        if self.enabled and self.steps % GRAD_NORM_EVERY == 1 and math.isfinite(grad_norm):
            self.grad_norm.set(grad_norm, tags=self.tags)

    def on_epoch(self, epoch: int, train: dict[str, Any], metrics: dict[str, Any],
                 new: list[Diagnosis], stopped: bool) -> None:
        """Record the epoch: loss, primary metric, new diagnoses and the health status."""
        if not self.enabled:
            return
        for diagnosis in new:
            self.diagnoses.inc(1.0, tags={**self.tags, "rule": diagnosis.rule, "severity": diagnosis.severity})
        self._finite(self.train_loss, train.get("train/loss"), self.tags)
        self._finite(self.val_metric, metrics.get(self.primary), {**self.tags, "metric": self.primary})
        self.epoch.set(float(epoch + 1), tags=self.tags)
        # A warned run stays warned: within a run the status only rises.
        now = STATUS["stopped"] if stopped else STATUS["warned"] if new else STATUS["healthy"]
        self.current = max(self.current, now)
        self.status.set(self.current, tags=self.tags)

    @staticmethod
    def _finite(gauge: Any, value: Any, tags: dict[str, str]) -> None:
        if isinstance(value, (int, float)) and math.isfinite(value):
            gauge.set(float(value), tags=tags)
