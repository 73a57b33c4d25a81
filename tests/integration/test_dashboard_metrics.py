"""What a run shows and what it must not: a tiny training run exposes the ``medsight_*``
health metrics on local Ray's Prometheus endpoint (bound to 127.0.0.1), and no patient
id or pixel data reaches its logs, metrics, results or checkpoint history."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medsight_ray.config import apply_overrides
from medsight_ray.data.importers.folders import import_class_folders
from medsight_ray.data.store import list_dataset, read_info
from medsight_ray.fit.runner import prepare_data, run_stage
from medsight_ray.health.export import PROMETHEUS_NAMES
from medsight_ray.stages.registry import get_stage

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]


def _samples(text: str, name: str, run: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for match in re.finditer(rf"^{name}\{{(.*?)\}} (\S+)$", text, flags=re.M):
        labels = dict(re.findall(r'(\w+)="(.*?)"', match.group(1)))
        if labels.get("run") == run:
            out.append((labels, float(match.group(2))))
    return out


@pytest.fixture(scope="module")
def observed_run(synth_dir, tmp_path_factory):
    """One grading run on data whose patient ids are unmistakable and stand in its
    file names, as users name files (``SECRETPATIENT17_2.png``, imported with a patient
    regex), with a warning diagnosis: (run name, StageResult, storage dir)."""
    tmp = tmp_path_factory.mktemp("observed")
    source = synth_dir("grading", rows=90)
    info = read_info(list_dataset(source))
    for path in sorted(source.glob("*.parquet")):
        for i, row in enumerate(pq.read_table(path).to_pylist()):
            folder = tmp / "files" / info.class_names[row["label"]]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"SECRETPATIENT{row['patient_id']}_{path.stem}{i}.png").write_bytes(row["image"])
    data = tmp / "data"
    import_class_folders(tmp / "files", data, image_size=32, mode=info.image_mode,
                         patient_regex=r"^(SECRETPATIENT\w+?)_")
    ids = [r for p in data.glob("*.parquet") for r in pq.read_table(p, columns=["image_id", "patient_id"]).to_pylist()]
    assert all("SECRETPATIENT" in r["patient_id"] and "SECRETPATIENT" not in r["image_id"] for r in ids)
    stage = get_stage("grading")
    # Every gradient norm is above 0, so this rule fires as a warning on the first steps:
    # a diagnosis without stopping the run.
    cfg = apply_overrides(stage.config_cls(), [
        "fit.epochs=1", "fit.batch_size=16", "fit.cpus_per_worker=0.5", "data.image_size=32",
        "model.backbone.name=resnet10t", "health.exploding_gradients.threshold=0",
        "health.exploding_gradients.growth=0", "health.exploding_gradients.fatal=false"])
    run = "observed"
    result = run_stage(stage, cfg, prepare_data(str(data), "grading"), str(tmp / "ray"), run)
    assert result.status == "completed" and [d["rule"] for d in result.diagnoses] == ["exploding_gradients"]
    return run, result, tmp / "ray"


def test_training_run_exports_health_metrics_on_loopback(observed_run) -> None:
    import ray

    run, result, _ = observed_run
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


def test_no_patient_id_or_pixels_in_logs_metrics_results_or_history(observed_run, capfd) -> None:
    import ray

    _, result, storage = observed_run
    printed = capfd.readouterr()
    node = ray.nodes()[0]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{node['MetricsExportPort']}/metrics", timeout=10).read()
    texts = {"stdout": printed.out, "stderr": printed.err, "metrics": metrics.decode(),
             "summary": json.dumps(result.summary(), default=str)}
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    files = [p for p in logs.rglob("*") if p.is_file()] + list(storage.rglob("*.json"))
    for path in files:
        texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert len(files) > 10 and any(p.name == "history.json" for p in files)
    assert [where for where, text in texts.items() if "SECRETPATIENT" in text] == []
    assert [where for where, text in texts.items() if "\ufffdPNG" in text or "iVBORw0KGgo" in text] == []
