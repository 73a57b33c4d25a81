"""Bad configuration and impossible requests through the CLIs: each ends before any
training with exit code 2, one message naming what was expected, what came and where,
and no traceback. (Bad *data* is covered case by case in tests/unit/data/test_checks.py.)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from medsight_ray import predict, train
from medsight_ray.data import __main__ as data_cli
from medsight_ray.fit.checkpoint import save_checkpoint
from medsight_ray.tune import __main__ as tune_cli
from medsight_ray.zoo import __main__ as zoo_cli
from tests.conftest import FIXTURES, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

TINY = ["--set", "fit.epochs=1", "--set", "data.image_size=32", "--set", "model.backbone.name=resnet10t"]


def _not_a_dir(tmp: Path) -> Path:
    """A path whose parent is a file: no directory can be made there, not even by root."""
    (tmp / "afile").write_text("x")
    return tmp / "afile" / "sub"


def _garbage_checkpoint(tmp: Path) -> Path:
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / "model.pt").write_bytes(b"\x80\x02garbage, not a zip or pickle")
    return tmp / "ckpt"


def _foreign_checkpoint(tmp: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, tmp / "foreign.pt")
    return tmp / "foreign.pt"


def _other_task_checkpoint(tmp: Path) -> Path:
    meta = {"task": "segmentation", "stage": "segmentation", "config": {}, "info": "{}", "fingerprint": "x"}
    save_checkpoint(tmp / "seg", {"w": torch.zeros(1)}, meta, None, [])
    return tmp / "seg"


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels and holds none."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def _digits_with(tmp: Path, name: str, data: bytes) -> Path:
    """A copy of the real digits with one file replaced by ``data``."""
    root = tmp / "digits"
    shutil.copytree(FIXTURES / "digits4", root)
    victim = sorted((root / "two").glob("*.png"))[0]
    victim.unlink()
    (root / "two" / name).write_bytes(data)
    return root


def _vindr_with_broken_dicom(tmp: Path) -> list[str]:
    ids = list(dict.fromkeys(pd.read_csv(FIXTURES / "vindr_sample.csv").image_id))
    (tmp / "img").mkdir()
    for i in ids:
        shutil.copy(FIXTURES / "cxr_small.dcm", tmp / "img" / f"{i}.dcm")
    (tmp / "img" / f"{ids[3]}.dcm").write_bytes(b"DICM? no: " + bytes(300))
    return ["--csv", str(FIXTURES / "vindr_sample.csv"), "--images", str(tmp / "img")]


def _disagreeing_footers(tmp: Path, data: Path) -> Path:
    out = tmp / "mixed"
    out.mkdir()
    for path in sorted(data.glob("*.parquet")):
        pf = pq.ParquetFile(path)
        meta = dict(pf.metadata.metadata)
        if path.name.startswith("val"):
            meta[b"medsight_ray"] = json.dumps({**json.loads(meta[b"medsight_ray"]),
                                                "class_names": ["a", "b", "c", "d"]}).encode()
        with pq.ParquetWriter(out / path.name, pf.schema_arrow.remove_metadata()) as writer:
            writer.write_table(pf.read().replace_schema_metadata(None))
            writer.add_key_value_metadata({k: v for k, v in meta.items() if k != b"ARROW:schema"})
    return out


def _damaged_sweep(tmp: Path, data: Path) -> list[str]:
    """A sweep folder whose request is whole and whose saved Tune state is not."""
    out = tmp / "sweep"
    experiment = out / "grading-grading"
    experiment.mkdir(parents=True)
    request = vars(tune_cli.build_parser().parse_args(["--space", str(_write(tmp / "s.yaml", SPACE.format(
        "optim.lr: {dist: uniform, low: 0.001, high: 0.1}"))), "--data", str(data)]))
    (out / "request.json").write_text(json.dumps({**request, "out": str(out), "data": str(data)}))
    (experiment / "tuner.pkl").write_bytes(b"\x80\x05 not a pickle")
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text("{truncated")
    return ["--resume", "--out", str(out)]


def _foreign_sweep(tmp: Path, data: Path) -> list[str]:
    argv = _damaged_sweep(tmp, data)
    os.chown(tmp / "sweep" / "grading-grading" / "tuner.pkl", 4242, 4242)
    return argv


def _untrained(tmp: Path, data: Path) -> Path:
    """A grading checkpoint of an untrained model: predict reads it before the image."""
    from medsight_ray.config import apply_overrides, to_dict
    from medsight_ray.data.store import list_dataset, read_info
    from medsight_ray.stages.registry import get_stage

    stage = get_stage("grading")
    cfg = apply_overrides(stage.config_cls(), ["data.image_size=32", "model.backbone.name=resnet10t"])
    info = read_info(list_dataset(data))
    meta = {"task": "grading", "stage": "grading", "config": to_dict(cfg), "info": info.to_json(), "fingerprint": "x"}
    save_checkpoint(tmp / "model", stage.build_model(cfg, info).state_dict(), meta, None, [])
    return tmp / "model"


def _corrupt_png(tmp: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(buf, format="PNG")
    (tmp / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # a download cut short
    return tmp / "cut.png"


# (name, CLI, argv builder(tmp, data dir), fragments the message must contain)
Case = tuple[str, str, Callable[[Path, Path], list[str]], list[str]]
CASES: list[Case] = [
    ("unknown_config_key", "train", lambda t, d: ["--set", "fit.epochz=2"],
     ["unknown config key", "fit.epochz", "epochs"]),
    ("wrong_config_type", "train", lambda t, d: ["--set", "fit.epochs=many"], ["fit.epochs", "many"]),
    ("unknown_backbone", "train", lambda t, d: ["--set", "model.backbone.name=resnet9000"],
     ["resnet9000", "timm"]),
    ("missing_pretrained_file", "train", lambda t, d: ["--set", f"model.backbone.pretrained_path={t}/none.pt"],
     ["none.pt", "does not exist"]),
    ("corrupted_init_checkpoint", "train_s2", lambda t, d: ["--init", str(_garbage_checkpoint(t))],
     ["checkpoint does not load", "model.pt", "weights_only=True"]),
    ("foreign_init_checkpoint", "train_s2", lambda t, d: ["--init", str(_foreign_checkpoint(t))],
     ["not a medsight_ray checkpoint", "foreign.pt", "format"]),
    ("other_task_checkpoint", "train_s2", lambda t, d: ["--init", str(_other_task_checkpoint(t))],
     ["checkpoint is of another task", "'concepts'", "'segmentation'"]),
    ("unwritable_output", "train_out", lambda t, d: ["--out", str(_not_a_dir(t))],
     ["output/storage path is not writable", "afile/sub"]),
    ("unwritable_storage", "train", lambda t, d: ["--storage", str(_not_a_dir(t))],
     ["output/storage path is not writable", "afile/sub"]),
    ("more_workers_than_cpus", "train", lambda t, d: ["--workers", "64"],
     ["cannot hold the requested workers", "64 workers", "CPUs"]),
    ("gpu_without_gpus", "train", lambda t, d: ["--set", "fit.use_gpu=true"], ["not enough GPUs", "0 GPU"]),
    ("missing_dataset", "train_data", lambda t, d: ["--data", str(t / "nowhere")], ["nowhere", "does not exist"]),
    ("bad_yaml_config", "train", lambda t, d: ["--config", str(_write(t / "c.yaml", "fit: [unclosed"))],
     ["c.yaml", "YAML"]),
    ("missing_predict_checkpoint", "predict", lambda t, d: ["--checkpoint", str(t / "no.pt"), "--image",
                                                            str(t / "x.png")],
     ["checkpoint does not exist", "no.pt"]),
    ("space_low_above_high", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: loguniform, low: 1.0, high: 1.0e-3}")))], ["low is above high", "optim.lr"]),
    ("space_unknown_distribution", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: gaussian, low: 0.0, high: 1.0}")))], ["unknown distribution", "gaussian"]),
    ("space_unknown_key", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lrr: {dist: uniform, low: 0.0, high: 1.0}")))], ["optim.lrr", "unknown config key"]),
    ("tune_more_workers_than_cpus", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: uniform, low: 0.001, high: 0.1}"))), "--workers", "64"],
     ["cannot hold the requested workers", "64 workers"]),
    ("tune_unwritable_out", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: uniform, low: 0.001, high: 0.1}"))), "--out", str(_not_a_dir(t))],
     ["output/storage path is not writable"]),
    ("resume_not_a_sweep", "tune_resume", lambda t, d: ["--resume", "--out", str(t)],
     ["not the directory of an earlier sweep", "request.json"]),
    ("invalid_patient_regex", "data", lambda t, d: ["import", "folders", "--root", str(FIXTURES / "digits4"),
                                                     "--patient-regex", "([a-z", "--out", str(t / "o")],
     ["patient regex is not a valid regular expression", "'([a-z'", "unterminated character set"]),
    ("corrupt_dicom_in_vindr", "data", lambda t, d: ["import", "vindr", *_vindr_with_broken_dicom(t), "--serial",
                                                     "--out", str(t / "o")],
     ["DICOM header does not read", ".dcm", "InvalidDicomError"]),
    ("sizes_without_width_height", "data", lambda t, d: ["import", "vindr", *_vindr_with_broken_dicom(t)[:4],
                                                         "--sizes", str(_write(t / "sz.csv", "image_id,w,h\n")),
                                                         "--out", str(t / "o")],
     ["image sizes CSV lacks columns ['width', 'height']", "sz.csv"]),
    ("oversized_image", "data", lambda t, d: ["import", "folders", "--serial", "--out", str(t / "o"), "--root",
                                              str(_digits_with(t, "huge.png", _png_header(30000, 30000)))],
     ["image file does not read", "huge.png", "DecompressionBombError", "900000000 pixels"]),
    ("box_not_a_number", "data", lambda t, d: ["import", "vindr", "--images", _vindr_with_broken_dicom(t)[3],
                                               "--csv", str(_write(t / "a.csv", (FIXTURES / "vindr_sample.csv")
                                                                   .read_text().replace("R10,691.0", "R10,6x1.0"))),
                                               "--out", str(t / "o")],
     ["box coordinate is not a number", "a.csv line 4 column 'x_min'", "'6x1.0'"]),
    ("image_labels_without_columns", "data", lambda t, d: [
        "import", "vindr", *_vindr_with_broken_dicom(t)[:4], "--out", str(t / "o"),
        "--image-labels", str(_write(t / "labels.csv", "image_id,rad_id,Pneumonia\nx,R1,1\n"))],
     ["VinDr image-label CSV lacks columns", "'Lung tumor'", "labels.csv"]),
    ("footers_disagree", "train_data", lambda t, d: ["--data", str(_disagreeing_footers(t, d))],
     ["files of one dataset disagree on their metadata", "val-00000.parquet", '"a", "b", "c", "d"']),
    ("damaged_sweep_state", "tune_resume", _damaged_sweep, ["the sweep's saved state does not load",
                                                            "grading-grading"]),
    ("foreign_sweep_state", "tune_resume", _foreign_sweep, ["refusing to resume", "tuner.pkl", "owner uid 4242"]),
    ("predict_corrupt_image", "predict", lambda t, d: ["--checkpoint", str(_untrained(t, d)), "--image",
                                                       str(_corrupt_png(t))],
     ["image file does not read", "cut.png"]),
    ("unknown_zoo_entry", "zoo", lambda t, d: ["--only", "lr_far_too_high,lr_too_hgih", "--out", str(t / "z")],
     ["unknown zoo entry", "--only lr_too_hgih", "lr_far_too_high"]),
]

SPACE = """stage: grading/grading
fixed: {{fit.epochs: 1, data.image_size: 32, model.backbone.name: resnet10t}}
params:
  {}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _argv(kind: str, tmp: Path, data: Path, concepts: Path, extra: list[str]) -> tuple[Callable, str, list[str]]:
    if kind == "data":
        return data_cli.cli, "medsight_ray.data", extra
    if kind == "predict":
        return predict.cli, "medsight_ray.predict", extra
    if kind == "zoo":
        return zoo_cli.cli, "medsight_ray.zoo", extra
    if kind.startswith("tune"):
        base = [] if kind == "tune_resume" else ["--data", str(data), "--out", str(tmp / "sweep")]
        return tune_cli.cli, "medsight_ray.tune", base + extra
    argv = {"--task": "grading", "--data": str(data), "--out": str(tmp / "out")}
    if kind == "train_s2":
        argv.update({"--task": "concepts", "--data": str(concepts)})
        extra = ["--stage", "prototypes", *extra]
    for flag in ("--out", "--data"):
        if flag in extra:
            argv.pop(flag)
    return train.cli, "medsight_ray.train", [x for kv in argv.items() for x in kv] + TINY + extra


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_exits_2_with_a_named_message(case: Case, synth_dir, tmp_path: Path, capsys) -> None:
    name, kind, build, fragments = case
    data, concepts = synth_dir("grading", rows=60), synth_dir("concepts", rows=160)
    cli, prog, argv = _argv(kind, tmp_path, data, concepts, build(tmp_path, data))
    code, text = run_cli(cli, prog, argv, capsys)
    assert code == 2, f"{name}: exit {code}\n{text[-2000:]}"
    assert "Traceback" not in text and text.count("error:") == 1, text[-2000:]
    for fragment in fragments:
        assert fragment in text, f"{name}: {fragment!r} missing from:\n{text[-2000:]}"
    assert not list(tmp_path.rglob("checkpoint_*")), f"{name}: training started"


def test_the_suite_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
