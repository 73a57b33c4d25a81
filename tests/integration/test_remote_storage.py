"""``train`` and ``tune`` with ``--storage s3://…`` and ``--data s3://…`` run to the end
against a local S3 server: the final model, summary and report land where the README
says, and the keys written into the URIs are printed, logged and saved nowhere.

The URIs carry keys as an S3-compatible store's URIs do
(``s3://KEY:SECRET@bucket/prefix?endpoint_override=HOST:PORT&scheme=http``); Ray is
given the filesystem, never the URI, so the keys reach none of its files either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from medsight_ray import train
from medsight_ray.console import ray_logs_dir
from medsight_ray.fit.checkpoint import load_model_file
from medsight_ray.tune import __main__ as tune_cli
from tests.conftest import grading_space, run_cli, upload

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

KEYS = "AKIDNEVERSHOWN:SECRETNEVERSHOWN"
SECRETS = (b"AKIDNEVERSHOWN", b"SECRETNEVERSHOWN")
TINY = ["--set", "fit.epochs=1", "--set", "data.image_size=32", "--set", "model.backbone.name=resnet10t",
        "--set", "fit.batch_size=16", "--set", "fit.cpus_per_worker=0.5"]


def _objects(uri: str) -> dict[str, bytes]:
    """Every object under ``uri``, by key below it."""
    fs, root = pafs.FileSystem.from_uri(uri)
    found = {}
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_file(info.path) as fh:
                found[info.path[len(root) + 1:]] = fh.read()
    return found


def _leaks(printed: str, *where: Path, storage: dict[str, bytes]) -> list[str]:
    """Every place a key shows: the console, files under ``where`` and Ray's logs, and
    the objects written to storage."""
    places = {"console": printed.encode()} | {f"storage:{k}": v for k, v in storage.items()}
    for root in (*where, Path(ray_logs_dir())):
        places |= {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return [name for name, body in places.items() if any(secret in body for secret in SECRETS)]


@pytest.fixture(scope="module")
def remote_data(s3, synth_dir) -> str:
    # Stored at 40 px, trained at 32: a sweep decodes it once, into a mirror on the bucket.
    return upload(s3, synth_dir("grading", rows=60, image_size=40), "remote/data", KEYS)


def test_train_with_s3_storage_completes_and_keeps_its_keys_secret(s3: Callable[..., str], remote_data: str,
                                                                   tmp_path: Path, capsys) -> None:
    out, storage = tmp_path / "train", s3("remote/train-storage", KEYS)
    code, text = run_cli(train.cli, "medsight_ray.train", ["--task", "grading", "--data", remote_data, "--storage",
                                                            storage, "--out", str(out), *TINY, "--mlflow"], capsys)
    assert code == 0, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert run["status"] == "completed" and summary["final_model"] == str((out / "final_model.pt").resolve())
    assert load_model_file(out / "final_model.pt")["task"] == "grading"
    # The checkpoints are in the bucket, and the summary names them without the keys.
    objects = _objects(storage)
    assert any(key.endswith("/model.pt") for key in objects)
    assert run["checkpoint"].startswith("s3://medsight-test/remote/train-storage/")
    # --mlflow alone: one run in the store in OUT/mlflow, with the final model; the
    # store and its artifacts are among the files searched for keys below.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow' / 'mlflow.db'}")
    (logged,) = client.search_runs([client.get_experiment_by_name("medsight_ray").experiment_id])
    assert logged.data.tags["medsight.kind"] == "train" and logged.data.tags["medsight.status"] == "completed"
    assert logged.data.params["fit.epochs"] == "1" and client.get_metric_history(logged.info.run_id, "train/loss")
    assert [a.path for a in client.list_artifacts(logged.info.run_id, "checkpoint")] == ["checkpoint/final_model.pt"]
    assert _leaks(text, out, storage=objects) == []


def test_tune_with_s3_storage_completes_and_keeps_its_keys_secret(s3: Callable[..., str], remote_data: str,
                                                                  tmp_path: Path, capsys) -> None:
    (tmp_path / "space.yaml").write_text(grading_space(3.0e-2, 1.0e-2))
    out, storage = tmp_path / "sweep", s3("remote/sweep-storage", KEYS)
    code, text = run_cli(tune_cli.cli, "medsight_ray.tune", ["--space", str(tmp_path / "space.yaml"), "--data",
                                                              remote_data, "--storage", storage, "--out", str(out),
                                                              "--remedies", "0"], capsys)
    assert code == 0, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    (stage,) = summary["stages"]
    assert len(stage["trials"]) == 2 and all(t["status"] == "completed" for t in stage["trials"])
    assert stage["best"]["checkpoint"].startswith("s3://medsight-test/remote/sweep-storage/")
    assert (out / "report" / "report.html").is_file() and (out / "request.json").is_file()
    objects = _objects(storage)
    # The sweep's own outputs are published beside its trials in the bucket.
    assert {"summary.json", "request.json", "report/report.md"} <= objects.keys()
    assert any(key.endswith("/model.pt") for key in objects)
    # Each split was decoded once, into a mirror on the bucket every trial read.
    assert any(key.startswith("decoded/") and key.endswith("/decoded.json") for key in objects)
    # Ray Tune's resume state pickles the storage filesystem and the searcher, keys and
    # all, into the storage it describes (README, "Tuning"): the one known exception.
    resume_state = {k for k in objects if k.endswith("tuner.pkl") or "/search_gen_state-" in k}
    assert resume_state and _leaks(text, out, storage={k: v for k, v in objects.items()
                                                      if k not in resume_state}) == []
