"""Health reaches the Ray dashboard: a tiny training run exposes the ``medsight_*``
metrics on local Ray's Prometheus endpoint, bound to 127.0.0.1."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from medsight_ray.config import apply_overrides
from medsight_ray.fit.runner import prepare_data, run_stage
from medsight_ray.health.export import PROMETHEUS_NAMES
from medsight_ray.stages.base import get_stage

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _samples(text: str, name: str, run: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for match in re.finditer(rf"^{name}\{{(.*?)\}} (\S+)$", text, flags=re.M):
        labels = dict(re.findall(r'(\w+)="(.*?)"', match.group(1)))
        if labels.get("run") == run:
            out.append((labels, float(match.group(2))))
    return out


def test_training_run_exports_health_metrics_on_loopback(synth_dir, tmp_path) -> None:
    import ray

    stage = get_stage("grading")
    # Every gradient norm is above 0, so this rule fires as a warning on the first steps:
    # a diagnosis without stopping the run.
    cfg = apply_overrides(stage.config_cls(), [
        "fit.epochs=1", "fit.batch_size=16", "fit.cpus_per_worker=0.5", "data.image_size=32",
        "model.backbone.name=resnet10t", "health.exploding_gradients.threshold=0",
        "health.exploding_gradients.fatal=false"])
    run = "metrics-export"
    result = run_stage(stage, cfg, prepare_data(str(synth_dir("grading", rows=90)), "grading"), str(tmp_path), run)
    assert result.status == "completed" and [d["rule"] for d in result.diagnoses] == ["exploding_gradients"]

    node = ray.nodes()[0]
    assert node["NodeManagerAddress"] == "127.0.0.1"
    url = f"http://127.0.0.1:{node['MetricsExportPort']}/metrics"
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:  # Ray exports recorded values about every 10 s
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        if all(_samples(text, name, run) for name in PROMETHEUS_NAMES):
            break
        time.sleep(2)
    found = {name: _samples(text, name, run) for name in PROMETHEUS_NAMES}
    assert all(found.values()), {k: bool(v) for k, v in found.items()}
    (status,) = found["ray_medsight_health_status"]
    assert status[1] == 1.0 and status[0]["stage"] == "grading/grading"  # warned, not stopped
    (diagnoses,) = found["ray_medsight_diagnoses_total"]
    assert diagnoses[0]["rule"] == "exploding_gradients" and diagnoses[0]["severity"] == "warn"
    assert diagnoses[1] == 1.0
    (metric,) = found["ray_medsight_val_metric"]
    assert metric[0]["metric"] == "f1_macro" and metric[1] == pytest.approx(result.final["val/f1_macro"])
    assert found["ray_medsight_grad_norm"][0][1] > 0 and found["ray_medsight_epoch"][0][1] == 1.0
